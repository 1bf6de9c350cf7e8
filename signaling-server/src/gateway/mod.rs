//! The gateway: one task per WebSocket connection. It says `Hello`, waits (with a deadline)
//! for `Identify` or `Resume`, then runs one loop that reads client frames, writes the
//! session's events, answers heartbeats and watches for shutdown. Ops that touch the database
//! run as futures beside the loop (see [`ops`]), so a slow commit never stops the connection
//! from reading or writing; their errors come back as `Error` frames.
//!
//! Invariant: nothing a client sends can end the task except closing the socket, a heartbeat
//! timeout or an authentication failure; bad frames get an `Error` frame with a code.

mod ops;
pub mod session;

pub use ops::{commit, prepare_message, publish, text_channel};

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::response::{IntoResponse, Response};
use futures_util::stream::FuturesUnordered;
use futures_util::{SinkExt, StreamExt};
use hearth_protocol::gateway::{ClientMsg, Ready, ServerMsg, close};
use hearth_protocol::model::{ChannelKind, Status};
use hearth_protocol::{ApiError, ErrorCode, MAX_FRAME_BYTES, PROTOCOL_VERSION};
use tokio::sync::mpsc;
use tokio::time::timeout_at;

use crate::auth::random_token;
use crate::error::AppError;
use crate::ratelimit::TokenBucket;
use crate::state::AppState;
use session::{ConnId, GatewaySession, OUTBOUND_QUEUE, Outbound};

/// Frames above this are refused by the transport itself (close 1009); frames between
/// [`MAX_FRAME_BYTES`] and this get a `PayloadTooLarge` error and the connection stays.
const TRANSPORT_LIMIT: usize = 4 * MAX_FRAME_BYTES;
/// Ops of one connection waiting on the database at once; past this the connection stops
/// reading until some finish (backpressure instead of unbounded memory).
const MAX_IN_FLIGHT: usize = 256;

pub async fn upgrade(State(state): State<AppState>, ws: WebSocketUpgrade) -> Response {
    if state.shutdown.is_cancelled() {
        return AppError::new(ErrorCode::Unavailable, "the server is shutting down").into_response();
    }
    let tasks = state.tasks.clone();
    // Small buffers: most connections are idle most of the time, and memory per idle
    // connection is what limits how many a small server can hold.
    ws.max_message_size(TRANSPORT_LIMIT)
        .max_frame_size(TRANSPORT_LIMIT)
        .read_buffer_size(4 * 1024)
        // Events queued together are written with one syscall at the flush that ends a batch.
        .write_buffer_size(16 * 1024)
        .max_write_buffer_size(4 * 1024 * 1024)
        .on_upgrade(move |socket| tasks.track_future(connection(socket, state)))
}

/// Counts a live connection for as long as it lives.
struct Live(AppState);
impl Drop for Live {
    fn drop(&mut self) {
        self.0.connections.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn connection(mut socket: WebSocket, state: AppState) {
    state.connections.fetch_add(1, Ordering::Relaxed);
    let _live = Live(state.clone());
    let hello = ServerMsg::Hello {
        heartbeat_interval_ms: state.config.heartbeat_interval.as_millis() as u64,
        identify_timeout_ms: state.config.identify_timeout.as_millis() as u64,
        protocol_version: PROTOCOL_VERSION,
    };
    if send(&mut socket, &hello).await.is_err() {
        return;
    }
    let conn_id = ConnId::next();
    let (tx, rx) = mpsc::channel(OUTBOUND_QUEUE);
    let Some(session) = handshake(&mut socket, &state, conn_id, &tx).await else {
        return;
    };
    // From here the session holds the only sender: when it drops it (session ended, resumed
    // elsewhere, reader too slow) the queue closes and the loop closes the socket.
    drop(tx);
    let mut conn = Connection {
        state: state.clone(),
        frames: TokenBucket::new(
            state.config.limits.frames_per_sec * 2,
            f64::from(state.config.limits.frames_per_sec),
            Instant::now(),
        ),
        session: session.clone(),
        socket,
        pending: FuturesUnordered::new(),
        last_seen: Instant::now(),
    };
    conn.run(rx).await;
    // The session may already have let go of this connection (too slow, resumed elsewhere,
    // ended); either way presence and voice state follow what is attached now.
    session.detach(conn_id);
    state.hub.connection_changed(&session);
}

async fn send(socket: &mut WebSocket, msg: &ServerMsg) -> Result<(), axum::Error> {
    // Serializing our own types cannot fail; an empty object would be the harmless fallback.
    let text = serde_json::to_string(msg).unwrap_or_else(|_| "{}".into());
    socket.send(Message::Text(text.into())).await
}

async fn send_error(
    socket: &mut WebSocket,
    error: ApiError,
    op: Option<&str>,
    nonce: Option<String>,
) -> Result<(), axum::Error> {
    send(socket, &ServerMsg::Error { error, failed_op: op.map(str::to_string), nonce }).await
}

async fn close_with(socket: &mut WebSocket, code: u16, reason: &'static str) {
    // The peer may already be gone; there is nothing more to do for it either way.
    let _ =
        socket.send(Message::Close(Some(CloseFrame { code, reason: Utf8Bytes::from_static(reason) }))).await;
}

fn dispatch_frame(seq: u64, payload: &str) -> Message {
    Message::Text(format!("{{\"op\":\"Dispatch\",\"seq\":{seq},\"event\":{payload}}}").into())
}

/// A frame that could not be taken as a `ClientMsg`: what to tell the client.
struct Refused {
    error: ApiError,
    op: Option<String>,
    nonce: Option<String>,
}

/// Parses a text frame, telling apart unknown ops from malformed ones for a clear error.
fn parse(text: &str) -> Result<ClientMsg, Refused> {
    if text.len() > MAX_FRAME_BYTES {
        return Err(Refused {
            error: ApiError::new(
                ErrorCode::PayloadTooLarge,
                format!("frames are limited to {MAX_FRAME_BYTES} bytes"),
            ),
            op: None,
            nonce: None,
        });
    }
    serde_json::from_str::<ClientMsg>(text).map_err(|e| {
        let value: Option<serde_json::Value> = serde_json::from_str(text).ok();
        let op = value.as_ref().and_then(|v| v.get("op")).and_then(|v| v.as_str()).map(str::to_string);
        let nonce = value.as_ref().and_then(|v| v.get("nonce")).and_then(|v| v.as_str()).map(str::to_string);
        let error = match &op {
            None => ApiError::new(ErrorCode::MalformedRequest, "expected a JSON object with an \"op\""),
            Some(op) if e.to_string().contains("unknown variant") => {
                ApiError::new(ErrorCode::UnknownOp, format!("unknown op {op:?}"))
            }
            // serde's message names the field and type, never anything of ours.
            Some(op) => ApiError::new(ErrorCode::MalformedRequest, format!("malformed {op}: {e}")),
        };
        Refused { error, op, nonce }
    })
}

/// Reads frames until the client identifies or resumes, within the deadline.
async fn handshake(
    socket: &mut WebSocket,
    state: &AppState,
    conn_id: ConnId,
    tx: &mpsc::Sender<Outbound>,
) -> Option<Arc<GatewaySession>> {
    let deadline = tokio::time::Instant::now() + state.config.identify_timeout;
    loop {
        let frame = match timeout_at(deadline, socket.recv()).await {
            Err(_) => {
                close_with(socket, close::IDENTIFY_TIMEOUT, "identify timeout").await;
                return None;
            }
            Ok(None) | Ok(Some(Err(_))) => return None,
            Ok(Some(Ok(frame))) => frame,
        };
        let text = match frame {
            Message::Text(t) => t,
            Message::Close(_) => return None,
            Message::Ping(_) | Message::Pong(_) => continue,
            Message::Binary(_) => {
                let e = ApiError::new(ErrorCode::MalformedRequest, "frames must be JSON text");
                send_error(socket, e, None, None).await.ok()?;
                continue;
            }
        };
        let msg = match parse(text.as_str()) {
            Ok(m) => m,
            Err(r) => {
                send_error(socket, r.error, r.op.as_deref(), r.nonce).await.ok()?;
                continue;
            }
        };
        let (token, version) = match &msg {
            ClientMsg::Identify { token, protocol_version, .. } => (token, *protocol_version),
            ClientMsg::Resume { token, protocol_version, .. } => (token, *protocol_version),
            other => {
                let e = ApiError::new(ErrorCode::NotIdentified, "send Identify or Resume first");
                send_error(socket, e, Some(other.op()), None).await.ok()?;
                continue;
            }
        };
        if version != PROTOCOL_VERSION {
            let e = ApiError::new(
                ErrorCode::UnsupportedProtocol,
                format!("this server speaks protocol {PROTOCOL_VERSION}"),
            );
            let _ = send_error(socket, e, Some(msg.op()), None).await;
            close_with(socket, close::UNSUPPORTED_PROTOCOL, "unsupported protocol").await;
            return None;
        }
        let auth = match state.authenticate(token) {
            Ok(a) => a,
            Err(e) => {
                let _ = send_error(socket, e.to_api(), Some(msg.op()), None).await;
                close_with(socket, close::AUTHENTICATION_FAILED, "authentication failed").await;
                return None;
            }
        };
        match msg {
            ClientMsg::Identify { status, .. } => {
                let status = match status {
                    Some(Status::Offline) | None => Status::Online,
                    Some(s) => s,
                };
                let session = Arc::new(GatewaySession::new(
                    random_token(16),
                    auth.id,
                    auth.family,
                    status,
                    state.config.replay_buffer,
                ));
                session.attach(conn_id, tx.clone());
                let Some(snapshot) = state.hub.register(session.clone()) else {
                    close_with(socket, close::AUTHENTICATION_FAILED, "not a member").await;
                    return None;
                };
                let mut read_states = Vec::with_capacity(snapshot.channels.len());
                for c in snapshot.channels.iter().filter(|c| c.kind != ChannelKind::Voice) {
                    match state.db.read_state(auth.id, c.id, c.kind.is_direct(), c.last_message_id).await {
                        Ok(rs) => read_states.push(rs),
                        Err(e) => {
                            let _ =
                                send_error(socket, AppError::from(e).to_api(), Some("Identify"), None).await;
                            close_with(socket, 1011, "internal error").await;
                            session.end();
                            return None;
                        }
                    }
                }
                let ready = Ready {
                    session_id: session.id.clone(),
                    user: snapshot.user,
                    channels: snapshot.channels,
                    members: snapshot.members,
                    presences: snapshot.presences,
                    read_states,
                    voice_states: snapshot.voice_states,
                    ice_servers: state.ice_servers(auth.id),
                    server: snapshot.server,
                    blocked: snapshot.blocked,
                };
                send(socket, &ServerMsg::Ready { seq: 0, ready: Box::new(ready) }).await.ok()?;
                return Some(session);
            }
            ClientMsg::Resume { session_id, last_seq, .. } => {
                let resumed = state
                    .hub
                    .session(&session_id)
                    .filter(|s| s.user_id == auth.id && s.family == auth.family)
                    .and_then(|s| s.resume(last_seq, conn_id, tx.clone()).ok().map(|missed| (s, missed)));
                let Some((session, missed)) = resumed else {
                    send(socket, &ServerMsg::InvalidSession).await.ok()?;
                    continue;
                };
                state.hub.connection_changed(&session);
                let replayed = missed.len() as u64;
                for (seq, payload) in &missed {
                    socket.feed(dispatch_frame(*seq, payload)).await.ok()?;
                }
                send(socket, &ServerMsg::Resumed { seq: last_seq + replayed, replayed }).await.ok()?;
                return Some(session);
            }
            _ => unreachable!("only Identify and Resume pass the match above"),
        }
    }
}

type OpFuture = futures_util::future::BoxFuture<'static, Option<ServerMsg>>;

struct Connection {
    state: AppState,
    session: Arc<GatewaySession>,
    socket: WebSocket,
    frames: TokenBucket,
    pending: FuturesUnordered<OpFuture>,
    last_seen: Instant,
}

impl Connection {
    async fn run(&mut self, mut rx: mpsc::Receiver<Outbound>) {
        let shutdown = self.state.shutdown.clone();
        // Made once, not per loop turn: each turn of a busy fan-out would otherwise register
        // and drop a waiter on the shutdown token and a timer in the runtime's timer wheel.
        let cancelled = shutdown.cancelled();
        tokio::pin!(cancelled);
        let timeout = self.state.config.heartbeat_interval * 2;
        let mut heartbeat_check = tokio::time::interval(self.state.config.heartbeat_interval / 2);
        heartbeat_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut draining = false;
        loop {
            tokio::select! {
                biased;
                _ = &mut cancelled, if !draining => draining = true,
                Some(reply) = self.pending.next(), if !self.pending.is_empty() => {
                    if let Some(msg) = reply
                        && send(&mut self.socket, &msg).await.is_err() { return; }
                }
                out = rx.recv() => match out {
                    Some(first) => {
                        if self.write_events(first, &mut rx).await.is_err() { return; }
                    }
                    None => {
                        let (code, reason) = if let Some(code) = self.session.ended_with() {
                            (code, match code {
                                close::BANNED => "banned from the group",
                                close::KICKED => "removed from the group",
                                _ => "session ended",
                            })
                        } else if self.session.is_attached() {
                            (close::SESSION_TAKEN_OVER, "resumed elsewhere")
                        } else {
                            (close::TOO_SLOW, "too many unread events; resume")
                        };
                        close_with(&mut self.socket, code, reason).await;
                        return;
                    }
                },
                frame = self.socket.recv(), if !draining && self.pending.len() < MAX_IN_FLIGHT => {
                    match frame {
                        Some(Ok(frame)) => {
                            self.last_seen = Instant::now();
                            if self.on_frame(frame).await.is_err() { return; }
                        }
                        Some(Err(e)) => {
                            tracing::debug!(error = %e, "gateway read failed");
                            close_with(&mut self.socket, close::MESSAGE_TOO_BIG, "frame too large or invalid").await;
                            return;
                        }
                        None => return,
                    }
                }
                _ = heartbeat_check.tick(), if !draining => {
                    if self.last_seen.elapsed() >= timeout {
                        close_with(&mut self.socket, close::HEARTBEAT_TIMEOUT, "heartbeat timeout").await;
                        return;
                    }
                }
            }
            if draining && self.pending.is_empty() {
                // Every acknowledged op has been dispatched; flush what is queued and go.
                while let Ok(out) = rx.try_recv() {
                    if self.write_events(out, &mut rx).await.is_err() {
                        return;
                    }
                }
                close_with(&mut self.socket, close::SERVER_RESTART, "server restarting").await;
                return;
            }
        }
    }

    /// Writes `first` and whatever else is queued, then flushes once.
    async fn write_events(
        &mut self,
        first: Outbound,
        rx: &mut mpsc::Receiver<Outbound>,
    ) -> Result<(), axum::Error> {
        let Outbound::Event { seq, payload } = first;
        self.socket.feed(dispatch_frame(seq, &payload)).await?;
        for _ in 0..64 {
            match rx.try_recv() {
                Ok(Outbound::Event { seq, payload }) => {
                    self.socket.feed(dispatch_frame(seq, &payload)).await?
                }
                Err(_) => break,
            }
        }
        self.socket.flush().await
    }

    async fn on_frame(&mut self, frame: Message) -> Result<(), axum::Error> {
        let text = match frame {
            Message::Text(t) => t,
            Message::Close(_) => return Err(axum::Error::new(std::io::Error::other("closed"))),
            Message::Ping(_) | Message::Pong(_) => return Ok(()),
            Message::Binary(_) => {
                let e = ApiError::new(ErrorCode::MalformedRequest, "frames must be JSON text");
                return send_error(&mut self.socket, e, None, None).await;
            }
        };
        if let Err(wait) = self.frames.take(Instant::now()) {
            self.state.metrics.rate_limited.fetch_add(1, Ordering::Relaxed);
            let e = crate::error::rate_limited(wait.as_millis() as u64);
            return send_error(&mut self.socket, e, None, None).await;
        }
        let msg = match parse(text.as_str()) {
            Ok(m) => m,
            Err(r) => {
                self.state.metrics.gateway_errors.fetch_add(1, Ordering::Relaxed);
                return send_error(&mut self.socket, r.error, r.op.as_deref(), r.nonce).await;
            }
        };
        match msg {
            ClientMsg::Heartbeat { .. } => send(&mut self.socket, &ServerMsg::HeartbeatAck).await,
            ClientMsg::Identify { .. } | ClientMsg::Resume { .. } => {
                let e = ApiError::new(ErrorCode::InvalidField, "already identified");
                send_error(&mut self.socket, e, Some(msg.op()), None).await
            }
            op => {
                let name = op.op();
                let nonce = match &op {
                    ClientMsg::SendMessage { nonce, .. } => Some(nonce.clone()),
                    _ => None,
                };
                let ctx = ops::Ctx {
                    state: self.state.clone(),
                    session: self.session.clone(),
                    received: Instant::now(),
                };
                match ops::handle(ctx, op) {
                    ops::Handled::Done(Ok(())) => Ok(()),
                    ops::Handled::Done(Err(e)) => {
                        self.state.metrics.gateway_errors.fetch_add(1, Ordering::Relaxed);
                        send_error(&mut self.socket, e.to_api(), Some(name), nonce).await
                    }
                    ops::Handled::Later(fut) => {
                        let metrics_state = self.state.clone();
                        self.pending.push(Box::pin(async move {
                            match fut.await {
                                Ok(()) => None,
                                Err(e) => {
                                    metrics_state.metrics.gateway_errors.fetch_add(1, Ordering::Relaxed);
                                    Some(ServerMsg::Error {
                                        error: e.to_api(),
                                        failed_op: Some(name.to_string()),
                                        nonce,
                                    })
                                }
                            }
                        }));
                        Ok(())
                    }
                }
            }
        }
    }
}
