//! Test support: the real `hearth-server` binary started on 127.0.0.1:0 with its own data
//! directory (and its own PostgreSQL database when asked), an HTTP client and a gateway
//! client that speak the protocol crate's types.
#![allow(dead_code)]

mod backends;
pub mod files;

// Not every test binary runs on PostgreSQL.
#[allow(unused_imports)]
pub use backends::{Backend, postgres};

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use hearth_protocol::api::{Invite, Session};
use hearth_protocol::gateway::{ClientMsg, Event, Ready, ServerMsg};
use hearth_protocol::model::Channel;
use hearth_protocol::{ChannelId, PROTOCOL_VERSION};
use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// A reqwest client. The TLS provider is chosen first because, in a whole-workspace build, the
/// client engine's reqwest features (rustls without a provider) apply here too.
pub fn http_client() -> reqwest::Client {
    // Err only means another test already installed it.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

pub const PASSWORD: &str = "correct horse battery";
/// Message and frame limits high enough that a test's stream of sends is never refused.
pub const UNLIMITED: [&str; 6] = [
    "--limit-message-burst",
    "100000",
    "--limit-messages-per-sec",
    "100000",
    "--limit-frames-per-sec",
    "100000",
];
/// How long a test waits for something that should happen.
pub const WAIT: Duration = Duration::from_secs(10);

fn random_suffix() -> String {
    use rand::Rng;
    let n: u64 = rand::rng().random();
    format!("{n:016x}")
}

pub struct TestServer {
    child: Option<Child>,
    pub data_dir: PathBuf,
    pub backend: Backend,
    pub args: Vec<String>,
    pub base: String,
    pub addr: String,
}

impl TestServer {
    pub async fn start(backend: Backend) -> TestServer {
        Self::start_with(backend, &[]).await
    }

    /// Starts with extra command-line options (e.g. limits).
    pub async fn start_with(backend: Backend, args: &[&str]) -> TestServer {
        let data_dir = std::env::temp_dir().join(format!("hearth-test-{}", random_suffix()));
        Self::start_on(backend, data_dir, args).await
    }

    /// Starts on a data directory the test prepared (an older release's database, say).
    pub async fn start_on(backend: Backend, data_dir: PathBuf, args: &[&str]) -> TestServer {
        std::fs::create_dir_all(&data_dir).expect("creating a data dir");
        let mut server = TestServer {
            child: None,
            data_dir,
            backend,
            args: args.iter().map(|s| s.to_string()).collect(),
            base: String::new(),
            addr: String::new(),
        };
        server.launch().await;
        server
    }

    async fn launch(&mut self) {
        let addr_file = self.data_dir.join("server.addr");
        let _ = std::fs::remove_file(&addr_file);
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_hearth-server"));
        cmd.arg("--data-dir").arg(&self.data_dir).arg("--listen").arg("127.0.0.1:0");
        if let Backend::Postgres(url) = &self.backend {
            cmd.arg("--database-url").arg(url);
        }
        cmd.args(&self.args)
            .env("HEARTH_LOG", std::env::var("HEARTH_LOG").unwrap_or_else(|_| "warn".into()))
            .stdin(Stdio::null())
            .kill_on_drop(true);
        let child = cmd.spawn().expect("starting hearth-server");
        self.child = Some(child);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(addr) = std::fs::read_to_string(&addr_file) {
                self.addr = addr.trim().to_string();
                break;
            }
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                panic!("hearth-server exited during start: {status}");
            }
            assert!(tokio::time::Instant::now() < deadline, "hearth-server did not start");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.base = format!("http://{}", self.addr);
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}/api/v1/gateway", self.addr)
    }

    pub fn setup_token(&self) -> String {
        std::fs::read_to_string(self.data_dir.join("setup-token"))
            .expect("setup token file")
            .trim()
            .to_string()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().and_then(|c| c.id()).expect("server running")
    }

    /// kill -9: no chance to flush or drain.
    pub async fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.start_kill().expect("killing the server");
            child.wait().await.expect("reaping the server");
        }
    }

    /// SIGTERM, then waits for the process to exit; returns whether it exited cleanly.
    pub async fn terminate(&mut self) -> bool {
        let Some(mut child) = self.child.take() else {
            return false;
        };
        let pid = child.id().expect("running") as i32;
        // SAFETY: sending a signal to our own child process.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
            .await
            .expect("server did not stop after SIGTERM")
            .expect("waiting for the server");
        status.success()
    }

    /// Starts again on the same data directory and database (on a new port).
    pub async fn restart(&mut self) {
        if self.child.is_some() {
            self.kill9().await;
        }
        self.launch().await;
    }

    pub fn client(&self) -> Client {
        Client { http: http_client(), base: self.base.clone(), token: None, session: None }
    }

    /// Registers the first account with the setup token: the admin.
    pub async fn admin(&self) -> Client {
        let mut c = self.client();
        c.register(&self.setup_token(), "admin").await;
        c
    }

    /// Registers a member with a fresh single-use invite from `admin`.
    pub async fn member(&self, admin: &Client, username: &str) -> Client {
        let invite = admin.invite().await;
        let mut c = self.client();
        c.register(&invite.code, username).await;
        c
    }

    pub async fn gateway(&self, client: &Client) -> Gateway {
        Gateway::identify(&self.ws_url(), client.token()).await
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.start_kill();
        }
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

/// An HTTP client, optionally logged in.
#[derive(Clone)]
pub struct Client {
    pub http: reqwest::Client,
    pub base: String,
    pub token: Option<String>,
    pub session: Option<Session>,
}

impl Client {
    pub fn token(&self) -> &str {
        self.token.as_deref().expect("logged in")
    }

    pub fn session(&self) -> &Session {
        self.session.as_ref().expect("logged in")
    }

    pub fn with_token(&self, token: &str) -> Client {
        Client { token: Some(token.to_string()), ..self.clone() }
    }

    pub async fn request(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let (status, _, value) = self.request_with_headers(method, path, body).await;
        (status, value)
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.request(Method::GET, path, None).await
    }
    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.request(Method::POST, path, Some(body)).await
    }
    pub async fn patch(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.request(Method::PATCH, path, Some(body)).await
    }
    pub async fn delete(&self, path: &str) -> (StatusCode, Value) {
        self.request(Method::DELETE, path, None).await
    }
    pub async fn put(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.request(Method::PUT, path, Some(body)).await
    }

    /// A request that must answer 204 No Content.
    pub async fn no_content(&self, method: Method, path: &str, body: Option<Value>) {
        let (status, value) = self.request(method.clone(), path, body).await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{method} {path} answered {value}");
    }

    /// This client's user id.
    pub fn id(&self) -> hearth_protocol::UserId {
        self.session().user.id
    }

    /// A request that must succeed with `status`, decoded as `T`.
    pub async fn ok<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        status: StatusCode,
    ) -> T {
        let (got, value) = self.request(method.clone(), path, body).await;
        assert_eq!(got, status, "{method} {path} answered {value}");
        serde_json::from_value(value).expect("response of the expected shape")
    }

    pub async fn register(&mut self, invite: &str, username: &str) -> Session {
        let body = serde_json::json!({"invite": invite, "username": username, "password": PASSWORD});
        let session: Session = self.ok(Method::POST, "/auth/register", Some(body), StatusCode::CREATED).await;
        self.token = Some(session.access_token.clone());
        self.session = Some(session.clone());
        session
    }

    pub async fn login(&mut self, username: &str, password: &str) -> (StatusCode, Value) {
        let (status, value) =
            self.post("/auth/login", serde_json::json!({"username": username, "password": password})).await;
        if status == StatusCode::OK {
            let session: Session = serde_json::from_value(value.clone()).expect("session");
            self.token = Some(session.access_token.clone());
            self.session = Some(session);
        }
        (status, value)
    }

    pub async fn invite(&self) -> Invite {
        self.ok(Method::POST, "/invites", Some(serde_json::json!({"max_uses": 1})), StatusCode::CREATED).await
    }

    pub async fn text_channel(&self, name: &str) -> Channel {
        let body = serde_json::json!({"name": name, "kind": "text"});
        self.ok(Method::POST, "/channels", Some(body), StatusCode::CREATED).await
    }

    pub async fn dm(&self, recipients: &[hearth_protocol::UserId]) -> Channel {
        let (status, value) = self.post("/dms", serde_json::json!({"recipients": recipients})).await;
        assert!(status.is_success(), "opening a DM answered {status} {value}");
        serde_json::from_value(value).expect("channel")
    }

    pub async fn history(&self, channel: ChannelId, query: &str) -> Vec<hearth_protocol::model::Message> {
        self.ok(Method::GET, &format!("/channels/{channel}/messages{query}"), None, StatusCode::OK).await
    }
}

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A gateway connection that keeps track of `seq` like a real client.
pub struct Gateway {
    pub ws: Ws,
    pub ready: Option<Ready>,
    pub session_id: String,
    pub last_seq: u64,
    pub token: String,
}

/// What the server closed a connection with.
#[derive(Debug, PartialEq, Eq)]
pub struct Closed(pub Option<u16>);

impl Gateway {
    pub async fn open(url: &str) -> Ws {
        let (mut ws, _) = tokio_tungstenite::connect_async(url).await.expect("gateway connect");
        let hello = next_frame(&mut ws).await.expect("hello");
        assert!(matches!(hello, ServerMsg::Hello { .. }), "first frame was {hello:?}");
        ws
    }

    pub async fn identify(url: &str, token: &str) -> Gateway {
        Self::identify_on(Self::open(url).await, token).await
    }

    /// Resumes this gateway's session on a new connection; returns the replayed events.
    pub async fn resume(&mut self, url: &str) -> Result<Vec<Event>, ServerMsg> {
        let mut ws = Self::open(url).await;
        let msg = ClientMsg::Resume {
            token: self.token.clone(),
            session_id: self.session_id.clone(),
            last_seq: self.last_seq,
            protocol_version: PROTOCOL_VERSION,
        };
        send_on(&mut ws, &msg).await;
        let mut events = Vec::new();
        loop {
            match next_frame(&mut ws).await.expect("resume answer") {
                ServerMsg::Dispatch { seq, event } => {
                    assert_eq!(seq, self.last_seq + 1, "replay out of order");
                    self.last_seq = seq;
                    events.push(event);
                }
                ServerMsg::Resumed { seq, .. } => {
                    assert_eq!(seq, self.last_seq);
                    self.ws = ws;
                    return Ok(events);
                }
                other => return Err(other),
            }
        }
    }

    pub async fn send(&mut self, msg: &ClientMsg) {
        send_on(&mut self.ws, msg).await;
    }

    pub async fn send_raw(&mut self, text: String) {
        self.ws.send(WsMessage::Text(text.into())).await.expect("sending a frame");
    }

    /// The next frame; `Dispatch` seqs are checked to be consecutive.
    pub async fn next(&mut self) -> Result<ServerMsg, Closed> {
        let msg = next_frame(&mut self.ws).await?;
        if let ServerMsg::Dispatch { seq, .. } = &msg {
            assert_eq!(*seq, self.last_seq + 1, "gap or duplicate in the event stream");
            self.last_seq = *seq;
        }
        Ok(msg)
    }

    /// The next event for which `pick` returns something, skipping others.
    pub async fn event<T>(&mut self, mut pick: impl FnMut(&Event) -> Option<T>) -> T {
        loop {
            match self.next().await {
                Ok(ServerMsg::Dispatch { event, .. }) => {
                    if let Some(t) = pick(&event) {
                        return t;
                    }
                }
                Ok(_) => {}
                Err(closed) => panic!("connection closed while waiting for an event: {closed:?}"),
            }
        }
    }

    /// The next `Error` frame, skipping events.
    pub async fn error(&mut self) -> ServerMsg {
        loop {
            match self.next().await.expect("connection open") {
                e @ ServerMsg::Error { .. } => return e,
                ServerMsg::Dispatch { .. } => {}
                other => panic!("expected an error, got {other:?}"),
            }
        }
    }

    /// Events that arrive before the answer to a heartbeat. The server writes every event
    /// already queued for this session before it answers, so after `sync` nothing
    /// dispatched earlier is still on its way.
    pub async fn sync(&mut self) -> Vec<Event> {
        self.send(&ClientMsg::Heartbeat { last_seq: Some(self.last_seq) }).await;
        let mut events = Vec::new();
        loop {
            match self.next().await.expect("connection open") {
                ServerMsg::HeartbeatAck => return events,
                ServerMsg::Dispatch { event, .. } => events.push(event),
                other => panic!("unexpected frame during sync: {other:?}"),
            }
        }
    }

    /// Waits for the server to close the connection; returns the close code.
    pub async fn closed(&mut self) -> Option<u16> {
        loop {
            match self.next().await {
                Ok(_) => {}
                Err(Closed(code)) => return code,
            }
        }
    }
}

pub async fn send_on(ws: &mut Ws, msg: &ClientMsg) {
    let text = serde_json::to_string(msg).expect("serializing");
    ws.send(WsMessage::Text(text.into())).await.expect("sending a frame");
}

pub async fn next_frame(ws: &mut Ws) -> Result<ServerMsg, Closed> {
    loop {
        let frame = tokio::time::timeout(WAIT, ws.next()).await.expect("timed out waiting for a frame");
        match frame {
            Some(Ok(WsMessage::Text(text))) => {
                return Ok(serde_json::from_str(text.as_str())
                    .unwrap_or_else(|e| panic!("server sent a frame we cannot parse ({e}): {text}")));
            }
            Some(Ok(WsMessage::Close(frame))) => {
                return Err(Closed(frame.map(|f| u16::from(f.code))));
            }
            Some(Ok(_)) => continue,
            Some(Err(_)) | None => return Err(Closed(None)),
        }
    }
}

/// A message to send with a fresh nonce.
pub fn say(channel: ChannelId, content: &str) -> ClientMsg {
    ClientMsg::SendMessage {
        channel_id: channel,
        nonce: random_suffix(),
        content: content.into(),
        reply_to: None,
        attachments: Vec::new(),
    }
}

pub fn json<T: Serialize>(t: &T) -> Value {
    serde_json::to_value(t).expect("serializing")
}

// ---- Errors, headers, refresh and refused handshakes (tests/auth.rs, tests/authorization.rs) ----

/// Asserts that an HTTP answer is the error `code` with the status that goes with it, and
/// returns the error.
pub fn expect_api_error(
    answer: &(StatusCode, Value),
    code: hearth_protocol::ErrorCode,
) -> hearth_protocol::ApiError {
    let (status, body) = answer;
    let error: hearth_protocol::ApiError = serde_json::from_value(body.clone())
        .unwrap_or_else(|e| panic!("expected the error {code:?}, got {status} {body} ({e})"));
    assert_eq!(error.code, code, "expected {code:?}, got {status} {body}");
    assert_eq!(status.as_u16(), code.http_status(), "status for {code:?}; body {body}");
    error
}

impl Client {
    /// Like [`Client::request`], but keeps the response headers (e.g. `Retry-After`).
    pub async fn request_with_headers(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        let mut req = self.http.request(method, format!("{}/api/v1{path}", self.base));
        if let Some(token) = &self.token {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().await.expect("HTTP request");
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await.expect("HTTP body");
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, headers, value)
    }

    /// `POST /auth/refresh`; on success this client takes the new session.
    pub async fn refresh_session(&mut self, refresh_token: &str) -> (StatusCode, Value) {
        let (status, value) =
            self.post("/auth/refresh", serde_json::json!({"refresh_token": refresh_token})).await;
        if status == StatusCode::OK {
            let session: Session = serde_json::from_value(value.clone()).expect("session");
            self.token = Some(session.access_token.clone());
            self.session = Some(session);
        }
        (status, value)
    }
}

impl Gateway {
    /// Opens a connection and sends `first`, which the server must refuse and then close:
    /// returns the refusal's error, the op it names, and the close code.
    pub async fn refused(
        url: &str,
        first: &ClientMsg,
    ) -> (hearth_protocol::ApiError, Option<String>, Option<u16>) {
        let mut ws = Self::open(url).await;
        send_on(&mut ws, first).await;
        let (error, failed_op) = match next_frame(&mut ws).await {
            Ok(ServerMsg::Error { error, failed_op, .. }) => (error, failed_op),
            other => panic!("expected an Error frame for {}, got {other:?}", first.op()),
        };
        let code = match next_frame(&mut ws).await {
            Ok(other) => panic!("expected the connection to close, got {other:?}"),
            Err(Closed(code)) => code,
        };
        (error, failed_op, code)
    }
}

// ---- Resume, raw HTTP, metrics and paging (tests/gateway.rs, tests/durability.rs,
// ---- tests/dms_presence_voice.rs, tests/operations.rs) ----

/// What a client keeps of a session whose connection is gone, so that it can resume it.
#[derive(Debug, Clone)]
pub struct Detached {
    pub token: String,
    pub session_id: String,
    pub last_seq: u64,
}

impl Gateway {
    /// Drops the TCP connection without a close frame, as a failing network would.
    pub fn drop_connection(self) -> Detached {
        Detached { token: self.token, session_id: self.session_id, last_seq: self.last_seq }
    }

    /// Identifies on a socket that has already had its `Hello` (e.g. after a refused resume).
    pub async fn identify_on(mut ws: Ws, token: &str) -> Gateway {
        send_on(
            &mut ws,
            &ClientMsg::Identify { token: token.into(), protocol_version: PROTOCOL_VERSION, status: None },
        )
        .await;
        match next_frame(&mut ws).await.expect("ready") {
            ServerMsg::Ready { seq, ready } => Gateway {
                ws,
                session_id: ready.session_id.clone(),
                ready: Some(*ready),
                last_seq: seq,
                token: token.to_string(),
            },
            other => panic!("expected Ready, got {other:?}"),
        }
    }

    /// Sends a close frame and waits until the server has let go of the socket. The server
    /// drops its end only after it has detached the session, so presence and voice state
    /// already reflect the close when this returns.
    pub async fn close_and_wait(mut self) {
        if self.ws.send(WsMessage::Close(None)).await.is_err() {
            // Already closed by the server: nothing left to wait for.
            return;
        }
        loop {
            match tokio::time::timeout(WAIT, self.ws.next()).await.expect("server did not close the socket") {
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return,
            }
        }
    }
}

impl Detached {
    /// Resumes on `ws` (which has had its `Hello`). Ok: the gateway and the replayed events,
    /// checked to be numbered right after `last_seq` and ending at `Resumed.seq`. Err: the
    /// socket back, with the frame that refused the resume.
    pub async fn resume_on(self, mut ws: Ws) -> Result<(Gateway, Vec<Event>), (Ws, ServerMsg)> {
        let msg = ClientMsg::Resume {
            token: self.token.clone(),
            session_id: self.session_id.clone(),
            last_seq: self.last_seq,
            protocol_version: PROTOCOL_VERSION,
        };
        send_on(&mut ws, &msg).await;
        let mut last_seq = self.last_seq;
        let mut events = Vec::new();
        loop {
            match next_frame(&mut ws).await.expect("resume answer") {
                ServerMsg::Dispatch { seq, event } => {
                    assert_eq!(seq, last_seq + 1, "replay has a gap or a duplicate");
                    last_seq = seq;
                    events.push(event);
                }
                ServerMsg::Resumed { seq, replayed } => {
                    assert_eq!(seq, last_seq, "Resumed.seq is not the last replayed seq");
                    assert_eq!(replayed, events.len() as u64, "Resumed.replayed miscounts the replay");
                    let gateway =
                        Gateway { ws, ready: None, session_id: self.session_id, last_seq, token: self.token };
                    return Ok((gateway, events));
                }
                other => return Err((ws, other)),
            }
        }
    }

    /// Resumes on a new connection.
    pub async fn resume(self, url: &str) -> Result<(Gateway, Vec<Event>), ServerMsg> {
        let ws = Gateway::open(url).await;
        self.resume_on(ws).await.map_err(|(_, refusal)| refusal)
    }
}

impl TestServer {
    /// A GET outside `/api/v1` (health, metrics): status and body text.
    pub async fn get_text(&self, path: &str) -> (StatusCode, String) {
        let resp = reqwest::get(format!("{}{path}", self.base)).await.expect("HTTP request");
        let status = resp.status();
        (status, resp.text().await.expect("HTTP body"))
    }

    /// The value of an unlabelled sample in `/metrics`.
    pub async fn metric(&self, name: &str) -> f64 {
        let (status, text) = self.get_text("/metrics").await;
        assert_eq!(status, StatusCode::OK, "/metrics answered {text}");
        metric_value(&text, name).unwrap_or_else(|| panic!("no sample {name} in /metrics:\n{text}"))
    }
}

/// Finds `name value` in the Prometheus text format.
pub fn metric_value(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once(' '))
        .find(|(n, _)| *n == name)
        .and_then(|(_, v)| v.trim().parse().ok())
}

impl Client {
    /// The same login against a restarted server (which listens on a new port).
    pub fn at(&self, server: &TestServer) -> Client {
        Client { base: server.base.clone(), ..self.clone() }
    }

    pub async fn voice_channel(&self, name: &str) -> Channel {
        let body = serde_json::json!({"name": name, "kind": "voice"});
        self.ok(Method::POST, "/channels", Some(body), StatusCode::CREATED).await
    }

    /// Every message of a channel, oldest first, read page by page.
    pub async fn whole_history(&self, channel: ChannelId) -> Vec<hearth_protocol::model::Message> {
        let mut all = Vec::new();
        let mut query = "?limit=100".to_string();
        loop {
            let page = self.history(channel, &query).await;
            let Some(oldest) = page.last() else { break };
            query = format!("?limit=100&before={}", oldest.id);
            let full = page.len() == 100;
            all.extend(page);
            if !full {
                break;
            }
        }
        all.reverse();
        all
    }

    /// A request with a raw body (e.g. an image upload): status and JSON (or text) answer.
    pub async fn send_bytes(&self, method: Method, path: &str, body: Vec<u8>) -> (StatusCode, Value) {
        let mut req = self.http.request(method, format!("{}/api/v1{path}", self.base)).body(body);
        if let Some(token) = &self.token {
            req = req.bearer_auth(token);
        }
        let resp = req.send().await.expect("HTTP request");
        let status = resp.status();
        let text = resp.text().await.expect("HTTP body");
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, value)
    }

    /// A GET whose body is bytes (e.g. an avatar): status, content type and body.
    pub async fn get_bytes(&self, path: &str) -> (StatusCode, Option<String>, Vec<u8>) {
        let mut req = self.http.get(format!("{}/api/v1{path}", self.base));
        if let Some(token) = &self.token {
            req = req.bearer_auth(token);
        }
        let resp = req.send().await.expect("HTTP request");
        let status = resp.status();
        let kind = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        (status, kind, resp.bytes().await.expect("HTTP body").to_vec())
    }
}

/// Opens a gateway connection whose socket has a small, fixed receive buffer, so that a
/// client which stops reading backs the server up quickly (a slow consumer).
pub async fn open_with_receive_buffer(url: &str, bytes: u32) -> Ws {
    let addr = url.trim_start_matches("ws://").split('/').next().expect("host:port in the URL");
    let socket = tokio::net::TcpSocket::new_v4().expect("a TCP socket");
    socket.set_recv_buffer_size(bytes).expect("setting SO_RCVBUF");
    let stream = socket.connect(addr.parse().expect("a socket address")).await.expect("connecting");
    let (mut ws, _) = tokio_tungstenite::client_async(url, MaybeTlsStream::Plain(stream))
        .await
        .expect("WebSocket handshake");
    let hello = next_frame(&mut ws).await.expect("hello");
    assert!(matches!(hello, ServerMsg::Hello { .. }), "first frame was {hello:?}");
    ws
}

/// `GET /search?q=…`, which must succeed.
pub async fn search(client: &Client, q: &str) -> hearth_protocol::api::SearchResults {
    let resp = client
        .http
        .get(format!("{}/api/v1/search", client.base))
        .bearer_auth(client.token())
        .query(&[("q", q)])
        .send()
        .await
        .expect("GET /search");
    let status = resp.status();
    let text = resp.text().await.expect("body");
    assert_eq!(status, StatusCode::OK, "search {q:?}: {text}");
    serde_json::from_str(&text).expect("search results")
}
