//! Test support: the real Hearth server run in-process on loopback with its own data
//! directory, engines with their own data directories, and waiting for session events.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hearth_client::backoff::BackoffConfig;
use hearth_client::{Engine, EngineOptions, SessionEvent, SessionHandle};
use hearth_protocol::ChannelId;
use hearth_protocol::gateway::Event;
use hearth_protocol::model::{ChannelKind, Message};
use hearth_server::config::{Config, Options};
use tokio::sync::broadcast;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

#[path = "../../../../signaling-server/tests/common/backends.rs"]
mod backends;
// Not every test binary runs on PostgreSQL.
#[allow(unused_imports)]
pub use backends::{Backend, postgres};

pub const PASSWORD: &str = "correct horse battery";
/// A 2x2 PNG (avatars, the server icon).
pub const PNG: &[u8] = &[
    137, 80, 78, 71, 13, 10, 26, 10, 0, 0, 0, 13, 73, 72, 68, 82, 0, 0, 0, 2, 0, 0, 0, 2, 8, 2, 0, 0, 0, 253,
    212, 154, 115, 0, 0, 0, 17, 73, 68, 65, 84, 120, 156, 99, 248, 207, 192, 0, 68, 96, 226, 63, 3, 0, 29,
    240, 3, 253, 160, 51, 9, 137, 0, 0, 0, 0, 73, 69, 78, 68, 174, 66, 96, 130,
];
/// How long a test waits for something that should happen.
pub const WAIT: Duration = Duration::from_secs(15);

/// A directory under the system temp dir, removed when the last clone of it goes.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _best_effort = std::fs::remove_dir_all(&self.0);
    }
}

pub fn temp_dir(what: &str) -> Arc<TempDir> {
    let dir = std::env::temp_dir().join(format!("hearth-client-test-{what}-{:016x}", rand::random::<u64>()));
    std::fs::create_dir_all(&dir).expect("creating a temp dir");
    Arc::new(TempDir(dir))
}

fn init_logs() {
    // HEARTH_LOG=debug shows what the engine and the server do.
    let filter = tracing_subscriber::EnvFilter::try_from_env("HEARTH_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _already_set = tracing_subscriber::fmt().with_env_filter(filter).with_test_writer().try_init();
}

/// The real server, run on a task of the test's runtime.
pub struct TestServer {
    pub data_dir: PathBuf,
    _dir: Arc<TempDir>,
    pub addr: SocketAddr,
    options: Box<dyn Fn() -> Options + Send + Sync>,
    shutdown: CancellationToken,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

impl TestServer {
    pub async fn start() -> TestServer {
        Self::start_with(Options::default).await
    }

    /// Starts with options (data dir and listen address are filled in here).
    pub async fn start_with(options: impl Fn() -> Options + Send + Sync + 'static) -> TestServer {
        init_logs();
        let dir = temp_dir("server");
        let mut server = TestServer {
            data_dir: dir.path().to_path_buf(),
            _dir: dir,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            options: Box::new(options),
            shutdown: CancellationToken::new(),
            task: None,
        };
        server.launch().await;
        server
    }

    async fn launch(&mut self) {
        let addr_file = self.data_dir.join("server.addr");
        match std::fs::remove_file(&addr_file) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => panic!("removing server.addr: {e}"),
        }
        let mut options = (self.options)();
        options.data_dir = Some(self.data_dir.clone());
        options.listen = Some(self.addr);
        options.argon2_concurrency = Some(2);
        let config = Config::resolve(options).expect("server config");
        self.shutdown = CancellationToken::new();
        self.task = Some(tokio::spawn(hearth_server::serve(config, self.shutdown.clone())));
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Ok(text) = std::fs::read_to_string(&addr_file)
                && let Ok(addr) = text.trim().parse()
            {
                self.addr = addr;
                return;
            }
            if self.task.as_ref().is_some_and(|t| t.is_finished()) {
                let task = self.task.take().expect("task");
                panic!("server ended during start: {:?}", task.await);
            }
            assert!(tokio::time::Instant::now() < deadline, "server did not start");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn setup_token(&self) -> String {
        std::fs::read_to_string(self.data_dir.join("setup-token")).expect("setup token").trim().to_string()
    }

    /// Graceful shutdown; returns once the server has stopped.
    pub async fn stop(&mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            task.await.expect("server task").expect("server ran");
        }
    }

    /// Starts again on the same data directory and the same port.
    pub async fn restart(&mut self) {
        self.stop().await;
        self.launch().await;
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

impl TestServer {
    /// Starts on `backend` (SQLite in the data directory, or the given PostgreSQL database).
    pub async fn start_on(backend: Backend) -> TestServer {
        Self::start_on_with(backend, Options::default).await
    }

    /// [`TestServer::start_on`] with options (the database URL is filled in here).
    pub async fn start_on_with(
        backend: Backend,
        options: impl Fn() -> Options + Send + Sync + 'static,
    ) -> TestServer {
        let url = match backend {
            Backend::Sqlite => None,
            Backend::Postgres(url) => Some(url),
        };
        Self::start_with(move || Options { database_url: url.clone(), ..options() }).await
    }
}

/// Quick reconnects so tests do not wait on production backoff.
pub fn fast() -> EngineOptions {
    EngineOptions {
        backoff: BackoffConfig {
            base: Duration::from_millis(50),
            cap: Duration::from_millis(400),
            stable_after: Duration::from_secs(5),
        },
        status: None,
        // Transfers on loopback: host candidates on 127.0.0.1 (see CallConfig::loopback).
        transfer: hearth_client::transfer::TransferOptions {
            link: hearth_client::transfer::LinkConfig {
                udp_bind: vec![SocketAddr::from(([127, 0, 0, 1], 0))],
                ..Default::default()
            },
            fault: None,
            pace: None,
        },
    }
}

/// An engine with its own data directory and a running session.
pub struct TestClient {
    pub engine: Engine,
    pub session: SessionHandle,
    pub events: broadcast::Receiver<SessionEvent>,
    pub dir: Arc<TempDir>,
}

impl TestClient {
    /// Registers the admin with the setup token and goes online.
    pub async fn admin(server: &TestServer) -> TestClient {
        let dir = temp_dir("admin");
        let engine = Engine::open_with(dir.path(), fast()).expect("engine");
        let account = engine
            .register(&server.url(), &server.setup_token(), "admin", PASSWORD)
            .await
            .expect("register admin");
        Self::online(engine, &account.id, dir).await
    }

    /// Registers `name` through a fresh invite link from `admin` and goes online.
    pub async fn member(admin: &TestClient, name: &str) -> TestClient {
        Self::member_with(admin, name, fast()).await
    }

    /// [`TestClient::member`] with engine options of its own.
    pub async fn member_with(admin: &TestClient, name: &str, options: EngineOptions) -> TestClient {
        let (_, link) = admin.engine.create_invite(Some(1), None).await.expect("invite");
        let dir = temp_dir(name);
        let engine = Engine::open_with(dir.path(), options).expect("engine");
        let account =
            engine.add_account_from_invite(&link, name, PASSWORD).await.expect("register via invite");
        Self::online(engine, &account.id, dir).await
    }

    pub async fn online(engine: Engine, account: &str, dir: Arc<TempDir>) -> TestClient {
        let session = engine.activate(account).await.expect("activate");
        let events = session.subscribe();
        tokio::time::timeout(WAIT, session.connected()).await.expect("connect in time").expect("connected");
        TestClient { engine, session, events, dir }
    }

    /// Waits for an event matching `pred`, skipping others.
    pub async fn wait_for<T>(&mut self, mut pred: impl FnMut(&SessionEvent) -> Option<T>) -> T {
        wait_for(&mut self.events, &mut pred).await
    }

    /// Waits for the `MessageCreate` of `nonce` (our own acknowledgement) or with `content`.
    pub async fn wait_message(&mut self, content: &str) -> Message {
        self.wait_for(|e| match e {
            SessionEvent::Event(Event::MessageCreate { message, .. }) if message.content == content => {
                Some(message.clone())
            }
            _ => None,
        })
        .await
    }

    /// Creates a text channel (admin) and waits until our cache has it.
    pub async fn text_channel(&mut self, name: &str) -> ChannelId {
        let channel = self.engine.create_channel(name, ChannelKind::Text).await.expect("create channel");
        let id = channel.id;
        self.wait_for(|e| match e {
            SessionEvent::Event(Event::ChannelCreate { channel }) if channel.id == id => Some(()),
            _ => None,
        })
        .await;
        id
    }
}

pub async fn wait_for<T>(
    events: &mut broadcast::Receiver<SessionEvent>,
    pred: &mut impl FnMut(&SessionEvent) -> Option<T>,
) -> T {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let event = match tokio::time::timeout_at(deadline, events.recv()).await {
            Err(_) => panic!("timed out waiting for an event"),
            Ok(Ok(e)) => e,
            Ok(Err(broadcast::error::RecvError::Lagged(n))) => panic!("missed {n} events"),
            Ok(Err(broadcast::error::RecvError::Closed)) => panic!("session ended"),
        };
        if let Some(t) = pred(&event) {
            return t;
        }
    }
}

/// Waits for an event matching `pred` on a call's or voice's event stream (`what` names it in
/// failures). Unlike [`wait_for`], a lagged receiver is fine here: levels and quality reports
/// come often, and the tests only look for the events they name.
pub async fn wait_event<E: Clone, T>(
    events: &mut broadcast::Receiver<E>,
    what: &str,
    mut pred: impl FnMut(&E) -> Option<T>,
) -> T {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Err(_) => panic!("timed out waiting for a {what} event"),
            Ok(Ok(e)) => {
                if let Some(t) = pred(&e) {
                    return t;
                }
            }
            Ok(Err(broadcast::error::RecvError::Lagged(_))) => {}
            Ok(Err(broadcast::error::RecvError::Closed)) => panic!("{what} ended"),
        }
    }
}
