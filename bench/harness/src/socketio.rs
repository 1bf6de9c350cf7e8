//! The Socket.IO 4 peer: its node server process (`bench/peers/socketio/server.js`) and a
//! client speaking Engine.IO v4 / Socket.IO v5 directly over a WebSocket, so that both servers
//! face the very same load generator.
//!
//! The client side of that protocol, as far as the benches need it:
//! - connect to `/socket.io/?EIO=4&transport=websocket`; the server sends `0{json}` (open);
//! - send `40{auth json}` (connect to namespace `/`); the server answers `40{"sid":..}`, or
//!   `44{..}` when the auth middleware refused;
//! - the server sends `2` (ping) every `pingInterval`; the client answers `3` (pong);
//! - an event is `42["name",arg]` both ways.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use tokio_tungstenite::tungstenite::Message;

use crate::gateway::{Ws, connect_ws, preview};
use crate::process::{ScratchDir, ServerProcess, rss_bytes};
use crate::server::Paths;

/// Must match `HEARTH_BENCH_SIO_TOKEN` given to the server.
const TOKEN: &str = "bench-token";

/// The node Socket.IO server, running.
pub struct SocketIoServer {
    process: ServerProcess,
    pub addr: SocketAddr,
    http: reqwest::Client,
    pub version: String,
    _dir: ScratchDir,
}

#[derive(Debug, Deserialize)]
pub struct PeerStats {
    pub sockets: u64,
}

impl SocketIoServer {
    pub async fn start(paths: &Paths, label: &str) -> Result<Self> {
        let dir = ScratchDir::new(label)?;
        let script = paths.socketio_dir.join("server.js");
        let addr_file = dir.path().join("server.addr");
        std::fs::create_dir_all(&paths.out_dir)
            .with_context(|| format!("creating {}", paths.out_dir.display()))?;
        let log_path = paths.out_dir.join(format!("{label}.socketio.log"));
        let args = vec![
            // Lets the harness ask for a full GC before reading the RSS (see `gc`).
            "--expose-gc".to_owned(),
            script.display().to_string(),
            "--addr-file".to_owned(),
            addr_file.display().to_string(),
        ];
        let envs = vec![
            ("HEARTH_BENCH_SIO_TOKEN".to_owned(), TOKEN.to_owned()),
            ("NODE_ENV".to_owned(), "production".to_owned()),
        ];
        let mut process = ServerProcess::spawn("socket.io server", &paths.node, &args, &envs, &log_path)
            .context("is node installed and `npm install` done at the repository root?")?;
        let addr_text = process.wait_for_file(&addr_file, Duration::from_secs(30)).await?;
        let addr: SocketAddr =
            addr_text.parse().with_context(|| format!("socket.io addr file holds {addr_text:?}"))?;
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(30))
            .build()
            .context("building HTTP client")?;
        let version = socketio_version(paths);
        Ok(SocketIoServer { process, addr, http, version, _dir: dir })
    }

    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    pub fn url(&self) -> String {
        format!("ws://{}/socket.io/?EIO=4&transport=websocket", self.addr)
    }

    pub fn rss_bytes(&self) -> Result<u64> {
        rss_bytes(self.pid())
    }

    pub async fn stats(&self) -> Result<PeerStats> {
        let url = format!("http://{}/stats", self.addr);
        let resp = self.http.get(&url).send().await.with_context(|| format!("GET {url}"))?;
        if !resp.status().is_success() {
            bail!("GET {url}: HTTP {}", resp.status());
        }
        resp.json().await.with_context(|| format!("decoding {url}"))
    }

    /// A full V8 garbage collection, so the RSS we read is not inflated by garbage.
    pub async fn gc(&self) -> Result<()> {
        let url = format!("http://{}/gc", self.addr);
        let resp = self.http.get(&url).send().await.with_context(|| format!("GET {url}"))?;
        if !resp.status().is_success() {
            bail!("GET {url}: HTTP {}", resp.status());
        }
        Ok(())
    }

    pub async fn stop(self) -> Result<()> {
        self.process.stop().await
    }
}

/// "socket.io 4.x.y" as installed, for the `peer` field.
fn socketio_version(paths: &Paths) -> String {
    let candidates = [
        paths.socketio_dir.join("node_modules/socket.io/package.json"),
        paths.socketio_dir.join("../../../node_modules/socket.io/package.json"),
    ];
    #[derive(Deserialize)]
    struct Pkg {
        version: String,
    }
    for path in candidates {
        if let Ok(text) = std::fs::read_to_string(&path)
            && let Ok(pkg) = serde_json::from_str::<Pkg>(&text)
        {
            return format!("socket.io {}", pkg.version);
        }
    }
    "socket.io 4".to_owned()
}

/// Connects and joins the default namespace (which makes the server join us to the room).
pub async fn connect(url: &str) -> Result<Ws> {
    tokio::time::timeout(Duration::from_secs(60), connect_inner(url))
        .await
        .context("socket.io handshake took over 60 s")?
}

async fn connect_inner(url: &str) -> Result<Ws> {
    let mut ws = connect_ws(url).await?;
    let open = next_text(&mut ws).await.context("waiting for the Engine.IO open packet")?;
    if !open.starts_with('0') {
        bail!("expected an Engine.IO open packet, got {}", preview(&open));
    }
    let auth = serde_json::json!({ "token": TOKEN });
    ws.send(Message::text(format!("40{auth}"))).await.context("sending namespace connect")?;
    loop {
        let text = next_text(&mut ws).await.context("waiting for namespace connect ack")?;
        if text.starts_with("40") {
            return Ok(ws);
        }
        if text.starts_with("44") {
            bail!("socket.io refused the connection: {}", preview(&text));
        }
        if text == "2" {
            ws.send(pong()).await.context("answering ping")?;
        }
    }
}

async fn next_text(ws: &mut Ws) -> Result<String> {
    loop {
        let msg = ws.next().await.context("connection closed")?.context("reading a frame")?;
        match msg {
            Message::Text(text) => return Ok(text.as_str().to_owned()),
            Message::Close(close) => bail!("server closed the connection: {close:?}"),
            Message::Binary(_) => bail!("unexpected binary frame"),
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => continue,
        }
    }
}

pub fn pong() -> Message {
    Message::text("3")
}

/// `42["name",arg]`.
pub fn emit(event: &str, arg: &str) -> Result<Message> {
    let body = serde_json::to_string(&(event, arg)).context("encoding an event")?;
    Ok(Message::text(format!("42{body}")))
}

/// What a bench cares about in a frame from the Socket.IO server.
#[derive(Debug)]
pub enum Inbound<'a> {
    /// Engine.IO ping: answer with [`pong`].
    Ping,
    Event {
        name: Cow<'a, str>,
        arg: Cow<'a, str>,
    },
    Other,
}

#[derive(Deserialize)]
struct RawEvent<'a>(#[serde(borrow)] Cow<'a, str>, #[serde(borrow)] Cow<'a, str>);

pub fn parse_inbound(text: &str) -> Result<Inbound<'_>> {
    if text == "2" {
        return Ok(Inbound::Ping);
    }
    if let Some(body) = text.strip_prefix("42") {
        let RawEvent(name, arg) = serde_json::from_str(body)
            .with_context(|| format!("undecodable socket.io event: {}", preview(text)))?;
        return Ok(Inbound::Event { name, arg });
    }
    Ok(Inbound::Other)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_round_trip() {
        let Message::Text(t) = emit("msg", "fanout 1 2").unwrap() else { panic!("not text") };
        assert_eq!(t.as_str(), r#"42["msg","fanout 1 2"]"#);
        match parse_inbound(t.as_str()).unwrap() {
            Inbound::Event { name, arg } => {
                assert_eq!(name, "msg");
                assert_eq!(arg, "fanout 1 2");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn ping_and_garbage() {
        assert!(matches!(parse_inbound("2").unwrap(), Inbound::Ping));
        assert!(matches!(parse_inbound("40{}").unwrap(), Inbound::Other));
        assert!(parse_inbound("42[oops").is_err());
    }
}
