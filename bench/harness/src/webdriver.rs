//! The desktop apps under test and how the harness drives them: a virtual X display (Xvfb),
//! tauri-driver (which runs WebKitGTK's WebKitWebDriver, which runs the app) and the few W3C
//! WebDriver commands the desktop bench needs, spoken as raw JSON over HTTP.
//!
//! Every process here runs in a process group of its own, killed as a whole when its handle is
//! dropped, so the app and WebKit's helper processes never outlive a run.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

/// A child process leading a process group of its own; the whole group is killed on drop.
pub struct ProcessGroup {
    child: Child,
    name: String,
}

impl ProcessGroup {
    pub fn spawn(name: &str, command: &mut Command) -> Result<Self> {
        use std::os::unix::process::CommandExt;
        command.process_group(0);
        // SAFETY: the closure runs in the forked child before exec and only calls prctl, which
        // is async-signal-safe. The leader dies with the harness; drop kills the rest.
        unsafe {
            command.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command.spawn().with_context(|| format!("starting {name}"))?;
        Ok(ProcessGroup { child, name: name.to_owned() })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    fn check_alive(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait().context("polling a child")? {
            bail!("{} exited early ({status})", self.name);
        }
        Ok(())
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        // SAFETY: kill(2) on the group this child leads; the leader is reaped just below, so
        // its pid (the group id) cannot have been reused yet.
        unsafe {
            libc::kill(-(self.child.id() as libc::pid_t), libc::SIGKILL);
        }
        let _already_gone = self.child.kill();
        let _reaped = self.child.wait();
    }
}

/// A virtual X display; Xvfb picks a free display number and tells it on `-displayfd`.
pub struct Xvfb {
    pub display: String,
    _group: ProcessGroup,
}

impl Xvfb {
    pub fn start() -> Result<Self> {
        let mut group = ProcessGroup::spawn(
            "Xvfb (Debian package xvfb)",
            Command::new("Xvfb")
                .args(["-displayfd", "1", "-screen", "0", "1280x800x24", "-nolisten", "tcp"])
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::null()),
        )?;
        let stdout = group.child.stdout.take().context("Xvfb stdout")?;
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).context("reading Xvfb's display number")?;
        let number: u32 = line.trim().parse().with_context(|| format!("Xvfb printed {line:?}"))?;
        Ok(Xvfb { display: format!(":{number}"), _group: group })
    }
}

/// The environment an app run gets: the display and a home of its own (fresh XDG dirs), so
/// no run sees another's data, caches or settings.
pub fn app_env(display: &str, home: &Path) -> Vec<(String, String)> {
    let sub = |p: &str| home.join(p).display().to_string();
    vec![
        ("DISPLAY".into(), display.into()),
        ("HOME".into(), home.display().to_string()),
        ("XDG_DATA_HOME".into(), sub(".local/share")),
        ("XDG_CONFIG_HOME".into(), sub(".config")),
        ("XDG_CACHE_HOME".into(), sub(".cache")),
        ("XDG_STATE_HOME".into(), sub(".local/state")),
        ("XDG_RUNTIME_DIR".into(), sub("run")),
    ]
}

/// Creates the directories [`app_env`] names (XDG_RUNTIME_DIR must be 0700).
pub fn prepare_home(home: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    for dir in [".local/share", ".config", ".cache", ".local/state", "run"] {
        std::fs::create_dir_all(home.join(dir)).with_context(|| format!("creating {dir} in the home"))?;
    }
    std::fs::set_permissions(home.join("run"), std::fs::Permissions::from_mode(0o700))
        .context("chmod XDG_RUNTIME_DIR")?;
    Ok(())
}

/// A running tauri-driver, ready for sessions (its WebKitWebDriver answers `/status`).
pub struct TauriDriver {
    url: String,
    http: reqwest::Client,
    group: ProcessGroup,
}

impl TauriDriver {
    /// Starts `program` with `env` (passed on to the app it launches), logging to `log`.
    pub async fn start(program: &Path, env: &[(String, String)], log: &Path) -> Result<Self> {
        let port = free_port()?;
        let native_port = free_port()?;
        let log_file = std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let log_err = log_file.try_clone().context("duplicating a log handle")?;
        let mut command = Command::new(program);
        command
            .args(["--port", &port.to_string(), "--native-port", &native_port.to_string()])
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env_remove("WAYLAND_DISPLAY")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log_file))
            .stderr(Stdio::from(log_err));
        let mut group = ProcessGroup::spawn(&format!("tauri-driver ({})", program.display()), &mut command)?;
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(900))
            .build()
            .context("building the WebDriver HTTP client")?;
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(response) = http.get(format!("{url}/status")).send().await
                && let Ok(value) = response_value(response).await
                && value["ready"] != json!(false)
            {
                break;
            }
            group.check_alive()?;
            if Instant::now() > deadline {
                bail!("tauri-driver did not answer /status within 30 s (log: {})", log.display());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(TauriDriver { url, http, group })
    }

    pub fn pid(&self) -> u32 {
        self.group.pid()
    }

    /// Asks WebKitWebDriver to launch `app` and returns the session once it is established.
    pub async fn new_session(&self, app: &Path) -> Result<Session> {
        let capabilities = json!({ "capabilities": { "alwaysMatch": {
            "tauri:options": { "application": app }
        }}});
        let response = self
            .http
            .post(format!("{}/session", self.url))
            .json(&capabilities)
            .send()
            .await
            .context("POST /session")?;
        let value = response_value(response).await.context("a new WebDriver session")?;
        let id = value["sessionId"].as_str().context("no sessionId in the new session")?;
        Ok(Session { base: format!("{}/session/{id}", self.url), http: self.http.clone() })
    }
}

/// One W3C WebDriver session (one app instance).
pub struct Session {
    base: String,
    http: reqwest::Client,
}

impl Session {
    async fn post(&self, path: &str, body: Value) -> Result<Value> {
        let url = format!("{}{path}", self.base);
        let response =
            self.http.post(&url).json(&body).send().await.with_context(|| format!("POST {url}"))?;
        response_value(response).await
    }

    /// Runs `script` (a function body; `return` gives the value) in the page.
    pub async fn js(&self, script: &str) -> Result<Value> {
        self.post("/execute/sync", json!({ "script": script, "args": [] })).await
    }

    /// Runs `script` in the page; it ends by calling `arguments[arguments.length - 1](value)`.
    pub async fn js_async(&self, script: &str, timeout: Duration) -> Result<Value> {
        self.post("/timeouts", json!({ "script": timeout.as_millis() as u64 }))
            .await
            .context("setting the script timeout")?;
        self.post("/execute/async", json!({ "script": script, "args": [] })).await
    }

    /// Polls `script` until it returns true.
    pub async fn wait_js(&self, script: &str, what: &str, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Value::Bool(true)) = self.js(script).await {
                return Ok(());
            }
            if Instant::now() > deadline {
                let text =
                    self.js("return document.body ? document.body.innerText : ''").await.unwrap_or_default();
                bail!("timed out after {timeout:?} waiting for {what}; the page says: {}", preview(&text));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn element(&self, css: &str) -> Result<String> {
        let found = self
            .post("/element", json!({ "using": "css selector", "value": css }))
            .await
            .with_context(|| format!("no element {css}"))?;
        let (_, id) = found.as_object().and_then(|o| o.iter().next()).context("not an element reference")?;
        Ok(id.as_str().context("element id is not a string")?.to_owned())
    }

    pub async fn click(&self, css: &str) -> Result<()> {
        let id = self.element(css).await?;
        self.post(&format!("/element/{id}/click"), json!({}))
            .await
            .with_context(|| format!("click {css}"))?;
        Ok(())
    }

    pub async fn fill(&self, css: &str, text: &str) -> Result<()> {
        let id = self.element(css).await?;
        self.post(&format!("/element/{id}/clear"), json!({}))
            .await
            .with_context(|| format!("clear {css}"))?;
        self.post(&format!("/element/{id}/value"), json!({ "text": text }))
            .await
            .with_context(|| format!("typing into {css}"))?;
        Ok(())
    }

    /// Ends the session, which quits the app.
    pub async fn close(self) -> Result<()> {
        let response = self.http.delete(&self.base).send().await.context("DELETE session")?;
        response_value(response).await.map(|_| ())
    }
}

async fn response_value(response: reqwest::Response) -> Result<Value> {
    let status = response.status();
    let body: Value = response.json().await.context("WebDriver reply is not JSON")?;
    if status.is_success() {
        Ok(body["value"].clone())
    } else {
        bail!("WebDriver {status}: {}", preview(&body["value"]))
    }
}

fn preview(value: &Value) -> String {
    let text = match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    text.chars().take(400).collect()
}

fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr().context("reading a bound port")?.port())
}

/// tauri-driver: `$HEARTH_TAURI_DRIVER`, else the copy `scripts/test.sh` installs under
/// `target/tools`, else whatever is on PATH.
pub fn default_tauri_driver(root: &Path) -> PathBuf {
    let installed = root.join("target/tools/bin/tauri-driver");
    if installed.is_file() { installed } else { PathBuf::from("tauri-driver") }
}
