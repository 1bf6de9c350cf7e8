//! The gateway's WebSocket transport: the HTTP upgrade, reading frames under the transport
//! limit, and the one close path. Every way a connection ends goes through [`Socket::close`]
//! (or finds the peer already gone), so the client always gets a Close frame with an RFC 6455
//! or documented 4xxx code before the TCP connection ends.
//!
//! We upgrade ourselves (tokio-tungstenite over hyper's upgraded stream) rather than through
//! axum's `WebSocket` because closing well needs the raw stream: after a bad frame (say a
//! header announcing 1 GiB) the rest of the client's bytes are still unread, and a socket
//! closed with unread input sends a TCP reset, which makes the client's kernel throw away our
//! Close frame before the client reads it. So after the Close frame we shut our sending side
//! and drain what the client still sends, bounded in bytes and time ("lingering close").
//!
//! The codec's socket is a [`ConnIo`]: the TCP stream's reading half, and for writing the
//! connection's [`Outbox`], which the session writes events into directly (see [`super::outbox`]).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use hearth_protocol::ErrorCode;
use hearth_protocol::gateway::close;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::error::{CapacityError, Error as WsError, ProtocolError};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
pub use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

use super::outbox::{ConnIo, Outbox};
use crate::error::AppError;

/// After our Close frame: how long we keep reading (and discarding) what the client sends,
/// waiting for its Close reply and the end of its stream.
const LINGER: Duration = Duration::from_secs(2);
/// ... and how many bytes at most (a little over one frame at the transport limit).
const LINGER_BYTES: usize = 512 * 1024;

type Stream = WebSocketStream<ConnIo>;

/// What reading the socket gave.
pub enum Incoming {
    Text(Utf8Bytes),
    Binary,
    /// A ping or pong (answered by the library).
    Control,
    /// The client sent a Close frame. The reply (its code echoed, or 1002 for a code a peer
    /// may not send) is queued; [`Socket::close`] sends it.
    Closed,
    /// The client broke the protocol; the connection must close with this code.
    Violation {
        code: u16,
        reason: &'static str,
    },
    /// The stream ended or failed without a Close frame: nobody is left to tell anything.
    Gone,
}

/// The upgraded connection.
pub struct Socket {
    ws: Stream,
    out: Arc<Outbox>,
    /// The client sent a Close frame: only the library's queued reply may be written now.
    peer_closed: bool,
}

/// Limits of one gateway connection's WebSocket.
pub struct Limits {
    /// Frames (and messages) above this are refused with close 1009.
    pub max_frame: usize,
}

/// Checks the upgrade request (HTTP/1.1, RFC 6455 section 4.2.1) and answers it; the socket is
/// handed to `run` once hyper has switched protocols. A request that is not a WebSocket
/// upgrade gets a typed 400.
pub fn upgrade<F, Fut>(mut req: Request, limits: Limits, run: F) -> Response
where
    F: FnOnce(Socket) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let key = match check_upgrade(req.method(), req.headers()) {
        Ok(key) => key,
        Err(e) => return e.into_response(),
    };
    let Some(on_upgrade) = req.extensions_mut().remove::<hyper::upgrade::OnUpgrade>() else {
        return AppError::new(ErrorCode::MalformedRequest, "this connection cannot be upgraded")
            .into_response();
    };
    let mut config = WebSocketConfig::default();
    config.max_message_size = Some(limits.max_frame);
    config.max_frame_size = Some(limits.max_frame);
    // Small buffers: most connections are idle most of the time, and memory per idle
    // connection is what limits how many a small server can hold. The read size matters for
    // CPU too: tungstenite zero-fills this many bytes before every read attempt, and a
    // connection makes one each time it goes back to waiting, i.e. after every event it
    // writes. Client frames are small (a heartbeat, a message of a few KiB at most: a larger
    // frame's header makes the buffer grow to it), so 1 KiB costs a few more reads on a long
    // message and saves 3 KiB of zeroing per delivered event and 3 KiB per connection.
    config.read_buffer_size = 1024;
    // What the codec writes (all but events) goes to the outbox at each flush, which every
    // send does.
    config.write_buffer_size = 16 * 1024;
    config.max_write_buffer_size = 4 * 1024 * 1024;
    tokio::spawn(async move {
        let upgraded = match on_upgrade.await {
            Ok(upgraded) => upgraded,
            Err(e) => return tracing::debug!(error = %e, "gateway upgrade failed"),
        };
        // The listener serves plain TCP streams (`http::listen`); the session writes events
        // into the stream itself, so it needs it back from hyper.
        let parts = match upgraded.downcast::<TokioIo<TcpStream>>() {
            Ok(parts) => parts,
            Err(_) => return tracing::error!("gateway upgrade: the connection is not a TCP stream"),
        };
        let io = ConnIo::new(parts.io.into_inner(), parts.read_buf);
        let out = io.outbox().clone();
        let ws = WebSocketStream::from_raw_socket(io, Role::Server, Some(config)).await;
        run(Socket { ws, out, peer_closed: false }).await;
    });
    let mut response = StatusCode::SWITCHING_PROTOCOLS.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    if let Ok(accept) = HeaderValue::from_str(&derive_accept_key(key.as_bytes())) {
        headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    }
    response
}

/// The `Sec-WebSocket-Key` of a well-formed upgrade request.
fn check_upgrade(method: &Method, headers: &HeaderMap) -> Result<HeaderValue, AppError> {
    let bad =
        |why: &str| AppError::new(ErrorCode::MalformedRequest, format!("not a WebSocket upgrade: {why}"));
    if method != Method::GET {
        return Err(bad("the method must be GET"));
    }
    let has_token = |name: header::HeaderName, token: &str| {
        headers
            .get_all(name)
            .iter()
            .any(|v| v.to_str().is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token))))
    };
    if !has_token(header::CONNECTION, "upgrade") {
        return Err(bad("Connection must include \"upgrade\""));
    }
    if !has_token(header::UPGRADE, "websocket") {
        return Err(bad("Upgrade must be \"websocket\""));
    }
    if headers.get(header::SEC_WEBSOCKET_VERSION).is_none_or(|v| v.as_bytes() != b"13") {
        return Err(bad("Sec-WebSocket-Version must be 13"));
    }
    // The key is 16 random bytes in base64 (24 characters); anything else is not a client
    // that speaks RFC 6455.
    match headers.get(header::SEC_WEBSOCKET_KEY) {
        Some(key) if key.len() == 24 => Ok(key.clone()),
        _ => Err(bad("Sec-WebSocket-Key must be 16 bytes in base64")),
    }
}

impl Socket {
    /// The next frame, or why there is none.
    pub async fn recv(&mut self) -> Incoming {
        match self.ws.next().await {
            Some(Ok(Message::Text(text))) => Incoming::Text(text),
            Some(Ok(Message::Binary(_))) => Incoming::Binary,
            Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => Incoming::Control,
            Some(Ok(Message::Close(_))) => {
                self.peer_closed = true;
                Incoming::Closed
            }
            Some(Err(e)) => violation(&e),
            None => Incoming::Gone,
        }
    }

    /// Where events are written (after the frames the codec wrote, which every
    /// [`send`](Self::send) flushes there).
    pub fn outbox(&self) -> &Arc<Outbox> {
        &self.out
    }

    /// Writes one frame now.
    pub async fn send(&mut self, msg: Message) -> Result<(), WsError> {
        self.ws.send(msg).await
    }

    /// Ends the connection: sends a Close frame with `code` (or, when the client closed first,
    /// the reply to its Close), stops sending, and reads and discards what the client still
    /// sends until it ends its side, [`LINGER`] passes or [`LINGER_BYTES`] arrived.
    pub async fn close(mut self, code: u16, reason: &'static str) {
        // When the client closed first, the library has queued its reply (the client's code,
        // or 1002 for one a peer may not send) and a flush writes it; otherwise ours goes.
        // Errors mean the peer is gone. A client that stopped reading gets [`LINGER`] to take
        // what waits before the Close frame (a connection too slow for its events ends so).
        let sent = tokio::time::timeout(LINGER, async {
            if self.peer_closed {
                self.ws.flush().await
            } else {
                let frame =
                    CloseFrame { code: CloseCode::from(code), reason: Utf8Bytes::from_static(reason) };
                self.ws.close(Some(frame)).await
            }
        })
        .await;
        match sent {
            Err(_) => return tracing::debug!("close frame not sent: the client does not read"),
            Ok(Err(e)) if !matches!(e, WsError::ConnectionClosed | WsError::AlreadyClosed) => {
                tracing::debug!(error = %e, "close frame not sent");
            }
            Ok(_) => {}
        }
        let stream = self.ws.get_mut();
        // Our side is done: a FIN after the Close frame.
        let _ = stream.shutdown().await;
        let drain = async {
            let mut buf = [0u8; 4096];
            let mut total = 0;
            while total < LINGER_BYTES {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => total += n,
                }
            }
        };
        let _ = tokio::time::timeout(LINGER, drain).await;
    }
}

/// The close code for a read error: what the client did wrong, per RFC 6455 section 7.4.1.
fn violation(e: &WsError) -> Incoming {
    match e {
        WsError::Capacity(CapacityError::MessageTooLong { .. }) => {
            Incoming::Violation { code: close::MESSAGE_TOO_BIG, reason: "frame too large" }
        }
        WsError::Capacity(_) => {
            Incoming::Violation { code: close::PROTOCOL_ERROR, reason: "bad frame header" }
        }
        WsError::Utf8(_) => Incoming::Violation { code: close::INVALID_PAYLOAD, reason: "text is not UTF-8" },
        WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => Incoming::Gone,
        WsError::Protocol(_) => {
            Incoming::Violation { code: close::PROTOCOL_ERROR, reason: "protocol violation" }
        }
        WsError::WriteBufferFull(_) => {
            Incoming::Violation { code: close::TOO_SLOW, reason: "too many unread events; resume" }
        }
        // I/O errors, a closed connection: the peer is gone.
        _ => Incoming::Gone,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    const GOOD: &[(&str, &str)] = &[
        ("connection", "keep-alive, Upgrade"),
        ("upgrade", "WebSocket"),
        ("sec-websocket-version", "13"),
        ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ];

    #[test]
    fn a_well_formed_upgrade_is_accepted_and_anything_else_is_a_typed_400() {
        assert!(check_upgrade(&Method::GET, &headers(GOOD)).is_ok());
        assert!(check_upgrade(&Method::POST, &headers(GOOD)).is_err());
        for (skip, (missing, _)) in GOOD.iter().enumerate() {
            let partial: Vec<_> =
                GOOD.iter().enumerate().filter(|(i, _)| *i != skip).map(|(_, p)| *p).collect();
            let e = check_upgrade(&Method::GET, &headers(&partial)).unwrap_err().to_api();
            assert_eq!(e.code, ErrorCode::MalformedRequest, "without {missing}");
        }
        let mut old = headers(GOOD);
        old.insert("sec-websocket-version", HeaderValue::from_static("8"));
        assert!(check_upgrade(&Method::GET, &old).is_err());
    }

    #[test]
    fn read_errors_map_to_rfc_6455_codes() {
        let code = |e: WsError| match violation(&e) {
            Incoming::Violation { code, .. } => Some(code),
            _ => None,
        };
        assert_eq!(
            code(WsError::Capacity(CapacityError::MessageTooLong { size: 2, max_size: 1 })),
            Some(1009)
        );
        assert_eq!(code(WsError::Utf8("bad".into())), Some(1007));
        assert_eq!(code(WsError::Protocol(ProtocolError::UnmaskedFrameFromClient)), Some(1002));
        assert_eq!(code(WsError::Protocol(ProtocolError::InvalidCloseSequence)), Some(1002));
        assert_eq!(code(WsError::ConnectionClosed), None);
        assert_eq!(code(WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake)), None);
    }
}
