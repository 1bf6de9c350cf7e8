//! A bench client of Hearth's gateway WebSocket: connect, `Hello`, `Identify`, `Ready`; then
//! frames out built from the protocol crate's `ClientMsg`, and a lean reading of frames in.
//!
//! The handshake frames are decoded into the full `ServerMsg`, which checks the server against
//! the wire contract. The hot path (thousands of `MessageCreate` a second) is decoded into
//! borrowed views that pick out only the fields a bench needs, so that the load generator's
//! own CPU stays small next to the server's.

use std::borrow::Cow;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use futures_util::{SinkExt, StreamExt};
use hearth_protocol::gateway::{ClientMsg, ServerMsg};
use hearth_protocol::{ChannelId, PROTOCOL_VERSION};
use serde::Deserialize;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Opens a WebSocket with small read buffers (thousands of them live in one harness).
pub async fn connect_ws(url: &str) -> Result<Ws> {
    let config = WebSocketConfig::default().read_buffer_size(16 * 1024);
    let (ws, _response) = tokio_tungstenite::connect_async_with_config(url, Some(config), true)
        .await
        .with_context(|| format!("WebSocket connect to {url}"))?;
    Ok(ws)
}

/// An identified gateway connection, `Ready` received.
pub struct GatewaySession {
    pub ws: Ws,
    /// How often the server wants a `Heartbeat` (from `Hello`).
    pub heartbeat_every: Duration,
    /// The `seq` of `Ready`; dispatches continue from here.
    pub seq: u64,
}

/// Connects and identifies with `token`, returning once `Ready` arrived.
pub async fn identify(url: &str, token: &str) -> Result<GatewaySession> {
    tokio::time::timeout(Duration::from_secs(60), identify_inner(url, token))
        .await
        .context("gateway handshake took over 60 s")?
}

async fn identify_inner(url: &str, token: &str) -> Result<GatewaySession> {
    let mut ws = connect_ws(url).await?;
    let heartbeat_every = match next_server_msg(&mut ws).await.context("waiting for Hello")? {
        ServerMsg::Hello { heartbeat_interval_ms, protocol_version, .. } => {
            if protocol_version != PROTOCOL_VERSION {
                bail!("server speaks protocol {protocol_version}, harness {PROTOCOL_VERSION}");
            }
            Duration::from_millis(heartbeat_interval_ms.max(1000))
        }
        other => bail!("expected Hello as the first frame, got {}", server_op(&other)),
    };
    let identify =
        ClientMsg::Identify { token: token.to_owned(), protocol_version: PROTOCOL_VERSION, status: None };
    ws.send(frame(&identify)?).await.context("sending Identify")?;
    loop {
        match next_server_msg(&mut ws).await.context("waiting for Ready")? {
            ServerMsg::Ready { seq, .. } => {
                return Ok(GatewaySession { ws, heartbeat_every, seq });
            }
            ServerMsg::Error { error, .. } => bail!("Identify refused: {error}"),
            ServerMsg::InvalidSession => bail!("Identify answered with InvalidSession"),
            // Anything else before Ready is out of contract, but harmless to a bench.
            other => eprintln!("note: {} arrived before Ready", server_op(&other)),
        }
    }
}

/// Reads the next text frame as a full `ServerMsg`, skipping WebSocket pings and pongs.
async fn next_server_msg(ws: &mut Ws) -> Result<ServerMsg> {
    loop {
        let msg = ws.next().await.context("connection closed")?.context("reading a frame")?;
        match msg {
            Message::Text(text) => {
                return serde_json::from_str(text.as_str())
                    .with_context(|| format!("frame does not match ServerMsg: {}", preview(text.as_str())));
            }
            Message::Close(close) => bail!("server closed the connection: {close:?}"),
            Message::Binary(_) => bail!("unexpected binary frame"),
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => continue,
        }
    }
}

fn server_op(msg: &ServerMsg) -> &'static str {
    match msg {
        ServerMsg::Hello { .. } => "Hello",
        ServerMsg::Ready { .. } => "Ready",
        ServerMsg::Resumed { .. } => "Resumed",
        ServerMsg::InvalidSession => "InvalidSession",
        ServerMsg::HeartbeatAck => "HeartbeatAck",
        ServerMsg::Dispatch { .. } => "Dispatch",
        ServerMsg::Error { .. } => "Error",
    }
}

/// The first 200 characters of a frame, for error messages.
pub fn preview(text: &str) -> &str {
    match text.char_indices().nth(200) {
        Some((i, _)) => &text[..i],
        None => text,
    }
}

pub fn frame(msg: &ClientMsg) -> Result<Message> {
    let json = serde_json::to_string(msg).context("encoding a ClientMsg")?;
    Ok(Message::text(json))
}

pub fn heartbeat(last_seq: u64) -> Result<Message> {
    frame(&ClientMsg::Heartbeat { last_seq: Some(last_seq) })
}

pub fn send_message(channel_id: ChannelId, nonce: String, content: String) -> Result<Message> {
    frame(&ClientMsg::SendMessage { channel_id, nonce, content, reply_to: None, attachments: Vec::new() })
}

/// What a bench cares about in a frame from the server.
#[derive(Debug)]
pub enum Inbound<'a> {
    MessageCreate {
        seq: u64,
        content: Cow<'a, str>,
        nonce: Option<Cow<'a, str>>,
    },
    HeartbeatAck,
    Error {
        code: Cow<'a, str>,
        nonce: Option<Cow<'a, str>>,
    },
    /// Any other frame; `seq` is set for other dispatches.
    Other {
        seq: Option<u64>,
    },
}

#[derive(Deserialize)]
struct RawFrame<'a> {
    #[serde(borrow)]
    op: Cow<'a, str>,
    #[serde(default)]
    seq: Option<u64>,
    #[serde(default, borrow)]
    event: Option<RawEvent<'a>>,
    #[serde(default, borrow)]
    code: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    nonce: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct RawEvent<'a> {
    #[serde(borrow)]
    t: Cow<'a, str>,
    #[serde(default, borrow)]
    message: Option<RawMessage<'a>>,
    #[serde(default, borrow)]
    nonce: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct RawMessage<'a> {
    #[serde(borrow)]
    content: Cow<'a, str>,
}

/// Decodes a text frame into the few fields a bench reads.
pub fn parse_inbound(text: &str) -> Result<Inbound<'_>> {
    let raw: RawFrame<'_> = serde_json::from_str(text)
        .with_context(|| format!("undecodable gateway frame: {}", preview(text)))?;
    Ok(match raw.op.as_ref() {
        "Dispatch" => {
            let seq = raw.seq.with_context(|| format!("Dispatch without seq: {}", preview(text)))?;
            let event = raw.event.with_context(|| format!("Dispatch without event: {}", preview(text)))?;
            match (event.t.as_ref(), event.message) {
                ("MessageCreate", Some(message)) => {
                    Inbound::MessageCreate { seq, content: message.content, nonce: event.nonce }
                }
                ("MessageCreate", None) => {
                    bail!("MessageCreate without message: {}", preview(text))
                }
                _ => Inbound::Other { seq: Some(seq) },
            }
        }
        "HeartbeatAck" => Inbound::HeartbeatAck,
        "Error" => Inbound::Error { code: raw.code.unwrap_or(Cow::Borrowed("(no code)")), nonce: raw.nonce },
        _ => Inbound::Other { seq: raw.seq },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_create_is_read_from_a_dispatch() {
        let text = r#"{"op":"Dispatch","seq":7,"event":{"t":"MessageCreate","message":{"id":"1","channel_id":"2","author_id":"3","content":"fanout 4 5","created_at":1,"edited_at":null,"reply_to":null},"nonce":"n1"}}"#;
        match parse_inbound(text).unwrap() {
            Inbound::MessageCreate { seq, content, nonce } => {
                assert_eq!(seq, 7);
                assert_eq!(content, "fanout 4 5");
                assert_eq!(nonce.as_deref(), Some("n1"));
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn errors_carry_code_and_nonce() {
        let text =
            r#"{"op":"Error","code":"rate_limited","message":"slow down","retry_after_ms":5,"nonce":"x"}"#;
        match parse_inbound(text).unwrap() {
            Inbound::Error { code, nonce } => {
                assert_eq!(code, "rate_limited");
                assert_eq!(nonce.as_deref(), Some("x"));
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(parse_inbound("{not json").is_err());
        assert!(parse_inbound(r#"{"op":"Dispatch"}"#).is_err());
    }

    #[test]
    fn frames_out_match_the_protocol() {
        let Message::Text(t) = heartbeat(3).unwrap() else { panic!("not text") };
        assert_eq!(t.as_str(), r#"{"op":"Heartbeat","last_seq":3}"#);
    }
}
