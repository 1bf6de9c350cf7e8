//! `desktop-footprint`: the desktop app's start time and idle memory beside a minimal Tauri 2
//! hello world built the same way (`bench/peers/tauri-hello`), and the time the app takes to
//! render a 10,000-message channel scrolled up to its beginning.
//!
//! Both apps run under Xvfb, launched by tauri-driver + WebKitWebDriver, each run with a fresh
//! home (XDG dirs). The steps:
//!
//! 1. A `hearth-server` on loopback, seeded over the gateway with N messages in one channel.
//! 2. Cold starts, alternating the two apps: the page cache is dropped (when we may), then the
//!    clock runs from `POST /session` (which makes WebKitWebDriver spawn the app) to the first
//!    poll that finds the page loaded and its first control laid out (the hello world's button;
//!    Hearth's server field on first run). The median counts.
//! 3. Idle memory: the hello world showing its button; Hearth logged in through its own sign-in
//!    screen with the seeded channel open (its latest page shown). After a settle time, the
//!    RSS (and PSS) of the app's process tree: the app and WebKit's web and network processes.
//! 4. Render: Hearth in a fresh home, logged in; one in-page script clicks the channel and keeps
//!    its message pane scrolled to the top (as a user dragging the scrollbar up would), so the
//!    app pages history in; the clock stops at the first animation frame after the channel's
//!    beginning is shown with all N messages loaded (the pane's `data-loaded-count`). The pane
//!    renders only a window of them, so the messages in the DOM at the end are counted and
//!    reported beside the process tree's memory, read at once and again after the idle time
//!    (WebKit returns freed memory lazily).

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use futures_util::{SinkExt, StreamExt};
use hearth_protocol::ChannelId;
use serde_json::{Value, json};
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::Message as WsMessage;

use crate::gateway::{self, Inbound};
use crate::process::{ScratchDir, TreeMemory, tree_memory};
use crate::report::{Metric, fmt_opt, ratio};
use crate::server::{Account, Group, HearthServer, Paths, workspace_root};
use crate::webdriver::{Session, TauriDriver, Xvfb, app_env, default_tauri_driver, prepare_home};

const BENCH: &str = "desktop-footprint";
/// How long one UI step (a login, a page) may take before the run is declared failed.
const STEP: Duration = Duration::from_secs(60);
/// 1 MB = 10^6 bytes in the metrics (the stricter reading of the 150 MB target).
const MB: f64 = 1e6;

#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Cold starts of each app (alternating); the median counts.
    #[arg(long, env = "DESKTOP_RUNS", default_value_t = 5)]
    pub runs: usize,
    /// Seconds an app is left alone before its memory is read.
    #[arg(long, env = "DESKTOP_IDLE_SECS", default_value_t = 10)]
    pub idle_secs: u64,
    /// Messages seeded into the channel the render step scrolls through.
    #[arg(long, env = "DESKTOP_MESSAGES", default_value_t = 10_000)]
    pub messages: usize,
    /// The Hearth app, built with `--features custom-protocol` (default target/release/hearth).
    #[arg(long, env = "HEARTH_DESKTOP_APP")]
    pub app: Option<PathBuf>,
    /// The hello world peer (default target/release/tauri-hello).
    #[arg(long, env = "HEARTH_HELLO_APP")]
    pub hello: Option<PathBuf>,
    /// tauri-driver (default target/tools/bin/tauri-driver, else PATH).
    #[arg(long, env = "HEARTH_TAURI_DRIVER")]
    pub tauri_driver: Option<PathBuf>,
    /// Do not drop the page cache before cold starts (it needs root).
    #[arg(long, env = "DESKTOP_KEEP_CACHES")]
    pub keep_caches: bool,
}

/// One app under test and how to see that it is interactive.
struct App {
    name: &'static str,
    binary: PathBuf,
    /// The control whose layout marks "interactive" on a fresh start.
    ready_selector: &'static str,
}

/// What one bench run shares: the display, the driver binary, the log dir.
struct Rig {
    xvfb: Xvfb,
    driver: PathBuf,
    out_dir: PathBuf,
}

pub async fn run(paths: &Paths, args: &Args) -> Result<Vec<Metric>> {
    let root = workspace_root();
    let hearth = App {
        name: "hearth",
        binary: absolute(args.app.clone().unwrap_or_else(|| root.join("target/release/hearth")))?,
        ready_selector: "input[name=server]",
    };
    let hello = App {
        name: "tauri-hello",
        binary: absolute(args.hello.clone().unwrap_or_else(|| root.join("target/release/tauri-hello")))?,
        ready_selector: "#hello",
    };
    for app in [&hearth, &hello] {
        if !app.binary.is_file() {
            bail!("{} does not exist: bench/run.sh desktop-footprint builds it", app.binary.display());
        }
    }
    if args.runs == 0 || args.messages == 0 {
        bail!("DESKTOP_RUNS and DESKTOP_MESSAGES must be at least 1");
    }
    let rig = Rig {
        xvfb: Xvfb::start().context("starting Xvfb")?,
        driver: args.tauri_driver.clone().unwrap_or_else(|| default_tauri_driver(&root)),
        out_dir: paths.out_dir.clone(),
    };
    std::fs::create_dir_all(&rig.out_dir).with_context(|| format!("creating {}", rig.out_dir.display()))?;
    println!("== desktop-footprint: Xvfb on {}, driver {}", rig.xvfb.display, rig.driver.display());

    // 1. The server and its long channel.
    let server = HearthServer::start(paths, "desktop-footprint", &[]).await?;
    let group = server.bootstrap(2, "history").await?;
    let seeded = Instant::now();
    seed(&server, &group, args.messages).await.context("seeding the channel")?;
    println!(
        "seeded {} messages into #history in {:.1} s (3 authors)",
        args.messages,
        seeded.elapsed().as_secs_f64()
    );
    let user = &group.members[0];
    let url = format!("http://{}", server.addr);

    // 2. Cold starts.
    let drop_caches = !args.keep_caches && drop_page_cache();
    println!(
        "== cold starts: {} runs each, alternating; page cache {}",
        args.runs,
        if drop_caches { "dropped before each start" } else { "NOT dropped (warm starts)" }
    );
    let mut starts: [Vec<ColdStart>; 2] = [Vec::new(), Vec::new()];
    for run in 0..args.runs {
        // Alternate who goes first, so neither always follows the other's cache misses.
        let order: [usize; 2] = if run % 2 == 0 { [1, 0] } else { [0, 1] };
        for which in order {
            let app = if which == 0 { &hearth } else { &hello };
            if drop_caches && !drop_page_cache() {
                bail!("dropping the page cache worked once and then failed");
            }
            let start = cold_start(&rig, app).await.with_context(|| format!("{} cold start", app.name))?;
            println!(
                "  {:<11} run {}: interactive {:>6.0} ms (session up {:>6.0} ms, navigation began {:>6.0} ms; poll {:.0} ms)",
                app.name,
                run + 1,
                start.interactive_ms,
                start.session_ms,
                start.navigation_ms.unwrap_or(f64::NAN),
                start.poll_ms
            );
            starts[which].push(start);
        }
    }
    let hearth_start = median(starts[0].iter().map(|s| s.interactive_ms).collect());
    let hello_start = median(starts[1].iter().map(|s| s.interactive_ms).collect());

    // 3. Idle memory.
    println!("== idle memory: {} s after the app is ready", args.idle_secs);
    let hello_idle = idle_memory(&rig, &hello, args.idle_secs, None).await.context("hello world idle")?;
    print_memory("tauri-hello (button shown)", &hello_idle);
    let first_run_idle =
        idle_memory(&rig, &hearth, args.idle_secs, None).await.context("hearth first-run idle")?;
    print_memory("hearth (first-run sign-in screen)", &first_run_idle);
    let login = Login { url: &url, user, channel: group.channel };
    let hearth_idle =
        idle_memory(&rig, &hearth, args.idle_secs, Some(&login)).await.context("hearth logged-in idle")?;
    print_memory("hearth (logged in, #history open)", &hearth_idle);

    // 4. Render the long channel up to its beginning.
    println!("== render: open #history and scroll to its beginning ({} messages)", args.messages);
    let render = render_channel(&rig, &hearth, &login, args.messages, args.idle_secs).await;
    match &render {
        Ok(r) => {
            println!(
                "  beginning shown after {:.0} ms ({} messages loaded, {} of them in the DOM; latest page shown at {:.0} ms; {} scroll nudges)",
                r.total_ms, r.loaded, r.dom_messages, r.first_page_ms, r.nudges
            );
            print_memory("hearth scrolled to the beginning", &r.memory);
            print_memory(&format!("hearth {} s later", args.idle_secs), &r.settled);
        }
        Err(e) => println!("  render failed: {e:#}"),
    }
    server.stop().await?;

    let to_mb = |m: &TreeMemory| m.rss_bytes as f64 / MB;
    println!("== summary");
    println!(
        "cold start to interactive (median of {}): hearth {} ms, hello world {} ms, ratio {} (target <= 1.5x)",
        args.runs,
        fmt_opt(hearth_start, 0),
        fmt_opt(hello_start, 0),
        fmt_opt(ratio(hearth_start, hello_start), 2)
    );
    println!(
        "idle RSS of the process tree: hearth {:.1} MB, hello world {:.1} MB (target <= 150 MB); PSS {:.1} / {:.1} MB",
        to_mb(&hearth_idle),
        to_mb(&hello_idle),
        hearth_idle.pss_bytes as f64 / MB,
        hello_idle.pss_bytes as f64 / MB
    );
    let render_ms = render.as_ref().ok().map(|r| r.total_ms);
    let render_dom = render.as_ref().ok().map(|r| r.dom_messages as f64);
    let render_rss = render.as_ref().ok().map(|r| to_mb(&r.memory));
    println!(
        "render {} messages to the top: {} ms (no peer), {} messages in the DOM at the end, RSS {} MB",
        args.messages,
        fmt_opt(render_ms, 0),
        fmt_opt(render_dom, 0),
        fmt_opt(render_rss, 1)
    );

    let metrics = vec![
        Metric::new(BENCH, "cold_start_ms", hearth_start, "ms")
            .peer("tauri 2 hello world", hello_start)
            .target("<=1.5x"),
        Metric::new(BENCH, "idle_rss_mb", Some(to_mb(&hearth_idle)), "MB")
            .peer("tauri 2 hello world", Some(to_mb(&hello_idle)))
            .target("<=150"),
        Metric::new(BENCH, "idle_pss_mb", Some(hearth_idle.pss_bytes as f64 / MB), "MB")
            .peer("tauri 2 hello world", Some(hello_idle.pss_bytes as f64 / MB)),
        Metric::new(BENCH, format!("render_{}_ms", short_count(args.messages)), render_ms, "ms"),
        Metric::new(BENCH, "render_dom_messages", render_dom, "messages"),
        Metric::new(BENCH, "render_rss_mb", render_rss, "MB"),
    ];
    if let Err(e) = render {
        crate::report::print_metrics(&metrics)?;
        return Err(e.context("the render step failed (metrics above)"));
    }
    Ok(metrics)
}

/// "10k" for 10 000, else the plain number.
fn short_count(n: usize) -> String {
    if n.is_multiple_of(1000) { format!("{}k", n / 1000) } else { n.to_string() }
}

fn absolute(path: PathBuf) -> Result<PathBuf> {
    if path.is_absolute() {
        return Ok(path);
    }
    Ok(std::env::current_dir().context("reading the current directory")?.join(path))
}

fn median(mut values: Vec<f64>) -> Option<f64> {
    values.retain(|v| v.is_finite());
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    Some(if values.len() % 2 == 1 { values[mid] } else { (values[mid - 1] + values[mid]) / 2.0 })
}

/// `sync`, then drops the page cache, dentries and inodes (root only). False when not allowed.
fn drop_page_cache() -> bool {
    // SAFETY: sync(2) has no preconditions.
    unsafe { libc::sync() };
    std::fs::write("/proc/sys/vm/drop_caches", "3\n").is_ok()
}

/// A fresh home with the app's environment, and a tauri-driver serving it.
async fn launch(rig: &Rig, app: &App, label: &str) -> Result<(ScratchDir, TauriDriver)> {
    let home = ScratchDir::new(&format!("desktop-{label}"))?;
    prepare_home(home.path())?;
    let mut env = app_env(&rig.xvfb.display, home.path());
    env.push(("HEARTH_LOG".into(), std::env::var("HEARTH_LOG").unwrap_or_else(|_| "warn".into())));
    env.push((
        "HEARTH_LOG_FILE".into(),
        rig.out_dir.join(format!("desktop-footprint.{label}.{}.log", app.name)).display().to_string(),
    ));
    let log = rig.out_dir.join(format!("desktop-footprint.{label}.tauri-driver.log"));
    let driver = TauriDriver::start(&rig.driver, &env, &log).await?;
    Ok((home, driver))
}

struct ColdStart {
    /// From `POST /session` to the first poll that saw the control laid out.
    interactive_ms: f64,
    /// From `POST /session` to its answer (the app's automation session is up).
    session_ms: f64,
    /// From `POST /session` to the page's navigation start (`performance.timeOrigin`).
    navigation_ms: Option<f64>,
    /// The mean round trip of one readiness poll (the measurement's resolution).
    poll_ms: f64,
}

fn ready_script(selector: &str) -> String {
    format!(
        "const e = document.querySelector({}); \
         if (document.readyState !== 'complete' || !e) return null; \
         const r = e.getBoundingClientRect(); \
         return r.width > 0 && r.height > 0 ? performance.timeOrigin : null;",
        json!(selector)
    )
}

async fn cold_start(rig: &Rig, app: &App) -> Result<ColdStart> {
    let (_home, driver) = launch(rig, app, "start").await?;
    let script = ready_script(app.ready_selector);
    let wall0 = SystemTime::now().duration_since(UNIX_EPOCH).context("clock")?.as_secs_f64() * 1000.0;
    let t0 = Instant::now();
    let session = driver.new_session(&app.binary).await?;
    let session_ms = t0.elapsed().as_secs_f64() * 1000.0;
    let mut polls = 0u32;
    let mut poll_total = Duration::ZERO;
    let origin = loop {
        let before = Instant::now();
        let value = session.js(&script).await;
        poll_total += before.elapsed();
        polls += 1;
        if let Ok(Value::Number(origin)) = &value {
            break origin.as_f64();
        }
        if t0.elapsed() > STEP {
            bail!("{} was not interactive within {STEP:?} (last poll: {value:?})", app.name);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let interactive_ms = t0.elapsed().as_secs_f64() * 1000.0;
    session.close().await.context("closing the session")?;
    Ok(ColdStart {
        interactive_ms,
        session_ms,
        navigation_ms: origin.map(|o| o - wall0),
        poll_ms: poll_total.as_secs_f64() * 1000.0 / f64::from(polls),
    })
}

/// What it takes to get Hearth from its first-run screen to a channel.
struct Login<'a> {
    url: &'a str,
    user: &'a Account,
    channel: ChannelId,
}

/// Signs in through the app's own screens: server URL, then username and password.
async fn sign_in(session: &Session, login: &Login<'_>) -> Result<()> {
    session.wait_js(&ready_check("input[name=server]"), "the first-run screen", STEP).await?;
    session.fill("input[name=server]", login.url).await?;
    session.click("form button[type=submit]").await?;
    session
        .wait_js("return document.querySelector('input[name=username]') !== null", "the login form", STEP)
        .await?;
    session.fill("input[name=username]", &login.user.username).await?;
    session.fill("input[name=password]", &login.user.password).await?;
    session.click("form button[type=submit]").await?;
    let button = channel_button(login.channel);
    session
        .wait_js(
            &format!("return document.querySelector({}) !== null", json!(button)),
            "the main view with the channel list",
            STEP,
        )
        .await
}

/// [`ready_script`] as a yes/no check for [`Session::wait_js`].
fn ready_check(selector: &str) -> String {
    format!("return (() => {{ {} }})() !== null", ready_script(selector))
}

fn channel_button(channel: ChannelId) -> String {
    format!("button[data-channel-id=\"{channel}\"]")
}

/// Starts `app`, waits until it is interactive (and, with `login`, signed in with the channel
/// open), leaves it alone for `idle_secs`, then reads its process tree's memory (median of 5
/// readings half a second apart, by RSS).
async fn idle_memory(rig: &Rig, app: &App, idle_secs: u64, login: Option<&Login<'_>>) -> Result<TreeMemory> {
    let (_home, driver) = launch(rig, app, "idle").await?;
    let session = driver.new_session(&app.binary).await?;
    session.wait_js(&ready_check(app.ready_selector), "the app to be interactive", STEP).await?;
    if let Some(login) = login {
        sign_in(&session, login).await?;
        session.click(&channel_button(login.channel)).await?;
        session
            .wait_js(
                "return document.querySelector('[data-testid=message-pane] [data-testid=message]') !== null",
                "the channel's latest messages",
                STEP,
            )
            .await?;
    }
    tokio::time::sleep(Duration::from_secs(idle_secs)).await;
    let app_pid = app_pid(&driver, app)?;
    let mut readings = Vec::new();
    for _ in 0..5 {
        readings.push(tree_memory(app_pid));
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    readings.sort_by_key(|m| m.rss_bytes);
    let memory = readings.swap_remove(2);
    session.close().await.context("closing the session")?;
    Ok(memory)
}

/// The app's pid: the process under tauri-driver (and WebKitWebDriver) running its binary.
fn app_pid(driver: &TauriDriver, app: &App) -> Result<u32> {
    crate::process::process_tree(driver.pid())
        .into_iter()
        .find(|pid| std::fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|exe| exe == app.binary))
        .with_context(|| format!("no process of {} under tauri-driver", app.binary.display()))
}

fn print_memory(what: &str, m: &TreeMemory) {
    let parts: Vec<String> =
        m.processes.iter().map(|(_, name, rss)| format!("{name} {:.1}", *rss as f64 / MB)).collect();
    println!(
        "  {what}: RSS {:.1} MB, PSS {:.1} MB [{}]",
        m.rss_bytes as f64 / MB,
        m.pss_bytes as f64 / MB,
        parts.join(", ")
    );
}

struct Render {
    total_ms: f64,
    first_page_ms: f64,
    /// Messages the pane holds for the channel (`data-loaded-count`).
    loaded: u64,
    /// Messages in the DOM at the end: the pane's window, not the whole history.
    dom_messages: u64,
    nudges: u64,
    /// The process tree when the beginning showed.
    memory: TreeMemory,
    /// The same, after the idle time.
    settled: TreeMemory,
}

/// The in-page side of the render step (see the module docs). Returns its own timings, taken
/// with `performance.now()`, so WebDriver round trips are not part of them.
const RENDER_SCRIPT: &str = r#"
const done = arguments[arguments.length - 1];
const button = document.querySelector(BUTTON);
if (!button) { done({ error: 'no channel button' }); return; }
const frame = () => new Promise((resolve) => {
  requestAnimationFrame(() => resolve());
  setTimeout(resolve, 100); // in case frames stall; the loop only polls
});
const t0 = performance.now();
let firstPage = null;
let nudges = 0;
button.click();
(async () => {
  try {
    for (;;) {
      const pane = document.querySelector('[data-testid=message-pane]');
      const loaded = () => Number(pane?.dataset.loadedCount ?? 0);
      const inDom = () => (pane ? pane.querySelectorAll('[data-testid=message]').length : 0);
      if (performance.now() - t0 > LIMIT_MS) {
        done({ error: 'timed out with ' + loaded() + ' messages loaded, ' + inDom() + ' in the DOM' });
        return;
      }
      if (pane && pane.querySelector('[data-testid=message]')) {
        if (firstPage === null) firstPage = performance.now() - t0;
        // The beginning is on screen once every message is loaded: done.
        if (pane.querySelector('.channel-start') && loaded() >= EXPECTED) {
          pane.scrollTop = 0;
          await new Promise((resolve) => requestAnimationFrame(() => resolve()));
          done({ ms: performance.now() - t0, firstPage, loaded: loaded(), domMessages: inDom(), nudges, top: pane.scrollTop });
          return;
        }
        // The user drags the scrollbar to the top and keeps it there.
        pane.scrollTop = 0;
        pane.dispatchEvent(new Event('scroll'));
        nudges += 1;
      }
      await frame();
    }
  } catch (e) {
    done({ error: String(e) });
  }
})();
"#;

async fn render_channel(
    rig: &Rig,
    app: &App,
    login: &Login<'_>,
    expected: usize,
    idle_secs: u64,
) -> Result<Render> {
    let (_home, driver) = launch(rig, app, "render").await?;
    let session = driver.new_session(&app.binary).await?;
    sign_in(&session, login).await?;
    let limit = Duration::from_secs(600);
    let script = RENDER_SCRIPT
        .replace("BUTTON", &json!(channel_button(login.channel)).to_string())
        .replace("LIMIT_MS", &limit.as_millis().to_string())
        .replace("EXPECTED", &expected.to_string());
    let result =
        session.js_async(&script, limit + Duration::from_secs(30)).await.context("the render script")?;
    if let Some(error) = result.get("error") {
        bail!("in the page: {error}");
    }
    let number =
        |key: &str| result.get(key).and_then(Value::as_f64).with_context(|| format!("no {key} in {result}"));
    let pid = app_pid(&driver, app)?;
    let memory = tree_memory(pid);
    tokio::time::sleep(Duration::from_secs(idle_secs)).await;
    let render = Render {
        total_ms: number("ms")?,
        first_page_ms: number("firstPage")?,
        loaded: number("loaded")? as u64,
        dom_messages: number("domMessages")? as u64,
        nudges: number("nudges")? as u64,
        memory,
        settled: tree_memory(pid),
    };
    session.close().await.context("closing the session")?;
    Ok(render)
}

/// Writes `count` messages into the group's channel through the gateway: three authors (the
/// admin and two members) sending at once, a window of messages in flight each, every message
/// acknowledged (its own `MessageCreate`) before this returns.
async fn seed(server: &HearthServer, group: &Group, count: usize) -> Result<()> {
    let accounts = group.accounts();
    let mut tasks = JoinSet::new();
    for (author, account) in accounts.iter().enumerate() {
        let mine: Vec<usize> = (0..count).filter(|i| (i / 4) % accounts.len() == author).collect();
        let session = gateway::identify(&server.gateway_url(), &account.access_token)
            .await
            .with_context(|| format!("identify {}", account.username))?;
        tasks.spawn(send_all(session, group.channel, author, mine, count));
    }
    while let Some(joined) = tasks.join_next().await {
        joined.context("a seeding task panicked")??;
    }
    Ok(())
}

const SENTENCES: &[&str] = &[
    "Did anyone see where I left the car keys?",
    "Dinner at seven, **don't be late** this time.",
    "The photos from the weekend are up, check the shared folder.",
    "Can someone pick up milk on the way home?",
    "I fixed the wifi, it was the router again: `sudo systemctl restart networking` did it.",
    "Happy birthday!! 🎂🎉",
    "Running 10 minutes late, start without me.",
    "Here is the recipe: https://example.org/recipes/lasagna",
    "> the best time to plant a tree was 20 years ago\nthe second best time is now",
    "ok",
    "Who is coming to the match on Saturday? We need to book the tickets by *Thursday*.",
    "Reminder: grandma's appointment is at 10:30 tomorrow.",
];

fn content(i: usize, count: usize) -> String {
    let sentence = SENTENCES[i % SENTENCES.len()];
    if i % 50 == 7 {
        format!(
            "Message {} of {count}: a snippet\n```rust\nfn main() {{\n    println!(\"hello {i}\");\n}}\n```",
            i + 1
        )
    } else {
        format!("Message {} of {count}. {sentence}", i + 1)
    }
}

async fn send_all(
    session: gateway::GatewaySession,
    channel: ChannelId,
    author: usize,
    indices: Vec<usize>,
    count: usize,
) -> Result<()> {
    const WINDOW: usize = 128;
    let mut ws = session.ws;
    let prefix = format!("seed-{author}-");
    let mut next = 0;
    let mut acked = 0;
    let mut heartbeat = tokio::time::interval(session.heartbeat_every);
    let mut last_seq = session.seq;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(300);
    while acked < indices.len() {
        while next < indices.len() && next - acked < WINDOW {
            let i = indices[next];
            ws.feed(gateway::send_message(channel, format!("{prefix}{i}"), content(i, count))?).await?;
            next += 1;
        }
        ws.flush().await.context("sending messages")?;
        let frame = tokio::select! {
            frame = ws.next() => frame,
            _ = heartbeat.tick() => {
                ws.send(gateway::heartbeat(last_seq)?).await.context("heartbeat")?;
                continue;
            }
            () = tokio::time::sleep_until(deadline) => bail!("seeding took over 300 s"),
        };
        let frame = frame.context("the server closed the connection")?.context("reading a frame")?;
        let WsMessage::Text(text) = frame else { continue };
        match gateway::parse_inbound(text.as_str())? {
            Inbound::MessageCreate { seq, nonce, .. } => {
                last_seq = seq;
                if nonce.is_some_and(|n| n.starts_with(&prefix)) {
                    acked += 1;
                }
            }
            Inbound::Error { code, .. } => bail!("the server refused a seeded message: {code}"),
            Inbound::Other { seq: Some(seq) } => last_seq = seq,
            Inbound::Other { seq: None } | Inbound::HeartbeatAck => {}
        }
    }
    let _closing = ws.close(None).await;
    Ok(())
}
