//! Starting and stopping `hearth-server` on loopback, and giving it a group to serve: an admin
//! (made with the setup token), members registered with an invite, and one text channel.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use futures_util::{StreamExt, TryStreamExt, stream};
use hearth_protocol::ChannelId;

use crate::api::Api;
use crate::process::{ScratchDir, ServerProcess, cpu_seconds, rss_bytes};

/// Where the harness finds things, shared by every bench.
#[derive(Debug, Clone)]
pub struct Paths {
    pub server_bin: PathBuf,
    pub out_dir: PathBuf,
    pub node: PathBuf,
    pub socketio_dir: PathBuf,
}

/// Limits high enough that no bench is measuring the rate limiter.
const UNLIMITED: &str = "1000000";

/// A running `hearth-server` with a fresh data directory.
pub struct HearthServer {
    process: ServerProcess,
    pub addr: SocketAddr,
    pub api: Api,
    setup_token: Option<String>,
    // Declared last: dropped after the process is killed, so the server never sees its
    // database vanish while running.
    _data_dir: ScratchDir,
}

/// One account of the bench's group.
#[derive(Debug, Clone)]
pub struct Account {
    pub id: hearth_protocol::UserId,
    pub username: String,
    pub password: String,
    pub access_token: String,
}

/// What [`HearthServer::bootstrap`] made.
#[derive(Debug, Clone)]
pub struct Group {
    pub admin: Account,
    pub members: Vec<Account>,
    pub channel: ChannelId,
}

impl Group {
    /// Admin first, then members: handy to spread sessions over every account.
    pub fn accounts(&self) -> Vec<&Account> {
        std::iter::once(&self.admin).chain(self.members.iter()).collect()
    }
}

impl HearthServer {
    /// Starts the server with every rate limit set out of the way, plus `extra_args`.
    /// `label` names its log file in `out_dir` (kept after the run, for post-mortems).
    pub async fn start(paths: &Paths, label: &str, extra_args: &[String]) -> Result<Self> {
        let data_dir = ScratchDir::new(label)?;
        let mut args: Vec<String> = vec![
            "--data-dir".into(),
            data_dir.path().display().to_string(),
            "--listen".into(),
            "127.0.0.1:0".into(),
            "--limit-login-per-ip".into(),
            UNLIMITED.into(),
            "--limit-login-per-account".into(),
            UNLIMITED.into(),
            "--limit-messages-per-sec".into(),
            UNLIMITED.into(),
            "--limit-message-burst".into(),
            UNLIMITED.into(),
        ];
        args.extend(extra_args.iter().cloned());
        let mut envs = Vec::new();
        // Per-connection info logs would be part of what we measure; keep the server quiet
        // unless the caller asked for something else.
        if std::env::var_os("HEARTH_LOG").is_none() {
            envs.push(("HEARTH_LOG".to_owned(), "warn".to_owned()));
        }
        // A per-connection frame limit the server has beyond the contracted flags; set through
        // the environment so that a server without it still starts.
        if std::env::var_os("HEARTH_LIMIT_FRAMES_PER_SEC").is_none() {
            envs.push(("HEARTH_LIMIT_FRAMES_PER_SEC".to_owned(), UNLIMITED.to_owned()));
        }
        std::fs::create_dir_all(&paths.out_dir)
            .with_context(|| format!("creating {}", paths.out_dir.display()))?;
        let log_path = paths.out_dir.join(format!("{label}.hearth-server.log"));
        if !paths.server_bin.exists() {
            anyhow::bail!(
                "{} does not exist: build it with `cargo build --release -p hearth-server`",
                paths.server_bin.display()
            );
        }
        let mut process = ServerProcess::spawn("hearth-server", &paths.server_bin, &args, &envs, &log_path)?;
        let addr_text =
            process.wait_for_file(&data_dir.path().join("server.addr"), Duration::from_secs(60)).await?;
        let addr: SocketAddr =
            addr_text.parse().with_context(|| format!("server.addr holds {addr_text:?}, not host:port"))?;
        let api = Api::new(addr)?;
        api.healthz().await.context("hearth-server is not healthy after start")?;
        let setup_token = tokio::fs::read_to_string(data_dir.path().join("setup-token"))
            .await
            .ok()
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty());
        Ok(HearthServer { process, addr, api, setup_token, _data_dir: data_dir })
    }

    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// The server's data directory (its SQLite database, when it uses one).
    pub fn data_dir(&self) -> Option<&Path> {
        Some(self._data_dir.path())
    }

    /// The first-start setup token (for a client that registers the admin itself).
    pub fn setup_token(&self) -> Option<&str> {
        self.setup_token.as_deref()
    }

    pub fn gateway_url(&self) -> String {
        format!("ws://{}/api/v1/gateway", self.addr)
    }

    pub fn cpu_seconds(&self) -> Result<f64> {
        cpu_seconds(self.pid())
    }

    pub fn rss_bytes(&self) -> Result<u64> {
        rss_bytes(self.pid())
    }

    pub fn check_alive(&mut self) -> Result<()> {
        self.process.check_alive()
    }

    /// Makes the admin with the setup token, `members` more accounts through one invite, and a
    /// text channel named `channel_name`. Registrations run a few at a time: each is an argon2
    /// hash on the server.
    pub async fn bootstrap(&self, members: usize, channel_name: &str) -> Result<Group> {
        let setup_token =
            self.setup_token.as_deref().context("the server wrote no setup-token file on first start")?;
        let admin_name = "benchadmin";
        let admin = self
            .register(setup_token, admin_name)
            .await
            .context("registering the admin with the setup token")?;
        let invite = self.api.create_invite(&admin.access_token).await.context("creating an invite")?;
        let channel = self
            .api
            .create_channel(&admin.access_token, channel_name)
            .await
            .context("creating the bench channel")?;
        let invite_code = invite.code;
        let members: Vec<Account> = stream::iter(0..members)
            .map(|i| {
                let invite_code = invite_code.clone();
                async move {
                    let name = format!("benchuser{i:03}");
                    self.register(&invite_code, &name)
                        .await
                        .with_context(|| format!("registering member {i}"))
                }
            })
            .buffer_unordered(4)
            .try_collect()
            .await?;
        Ok(Group { admin, members, channel: channel.id })
    }

    async fn register(&self, invite: &str, username: &str) -> Result<Account> {
        let password = format!("bench-password-{username}");
        let session = self.api.register(invite, username, &password).await?;
        Ok(Account {
            id: session.user.id,
            username: username.to_owned(),
            password,
            access_token: session.access_token,
        })
    }

    pub async fn stop(self) -> Result<()> {
        self.process.stop().await
    }
}

/// The repository root, found from the harness's own location or the current directory.
pub fn workspace_root() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    match here.parent().and_then(Path::parent) {
        Some(root) if root.join("Cargo.toml").exists() => root.to_owned(),
        _ => PathBuf::from("."),
    }
}
