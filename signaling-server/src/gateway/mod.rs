//! The gateway: one task per WebSocket connection. It says `Hello`, waits (with a deadline)
//! for `Identify` or `Resume`, then runs one loop that reads client frames, flushes what the
//! socket did not take of the session's events (which the session writes itself, see
//! [`outbox`]), answers heartbeats and watches for shutdown. Ops that touch the database
//! run as futures beside the loop (see [`ops`]), so a slow commit never stops the connection
//! from reading or writing; their errors come back as `Error` frames.
//!
//! Invariant: nothing a client sends can end the task except closing the socket, a heartbeat
//! timeout, an authentication failure, ignoring rate limits, or breaking the WebSocket protocol;
//! bad frames get an `Error` frame with a code ([`decode`]). Every end goes through one close
//! path ([`transport::Socket::close`]): a Close frame with its code before the TCP connection
//! ends, before `Identify` as after it.

pub mod decode;
mod ops;
pub mod outbox;
pub mod session;
pub mod transport;

pub use ops::{bad_attachment, commit, prepare_message, publish, text_channel};

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use hearth_protocol::gateway::{ClientMsg, Ready, ServerMsg, close};
use hearth_protocol::model::{ChannelKind, Status};
use hearth_protocol::{ApiError, ErrorCode, MAX_FRAME_BYTES, PROTOCOL_VERSION};
use tokio::time::timeout_at;

use crate::auth::random_token;
use crate::error::AppError;
use crate::ratelimit::TokenBucket;
use crate::state::AppState;
use session::{ConnId, GatewaySession};
use transport::{Incoming, Message, Socket};

/// Frames above this are refused by the transport itself (close 1009); frames between
/// [`MAX_FRAME_BYTES`] and this get a `PayloadTooLarge` error and the connection stays.
const TRANSPORT_LIMIT: usize = 4 * MAX_FRAME_BYTES;
/// Ops of one connection waiting on the database at once; past this the connection stops
/// reading until some finish (backpressure instead of unbounded memory).
const MAX_IN_FLIGHT: usize = 256;

pub async fn upgrade(State(state): State<AppState>, req: Request) -> Response {
    if state.shutdown.is_cancelled() {
        return AppError::new(ErrorCode::Unavailable, "the server is shutting down").into_response();
    }
    let tasks = state.tasks.clone();
    let limits = transport::Limits { max_frame: TRANSPORT_LIMIT };
    transport::upgrade(req, limits, move |socket| tasks.track_future(connection(socket, state)))
}

/// How a connection ends: the Close frame it gets, or nothing when the peer is gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Close(u16, &'static str),
    Gone,
}

impl End {
    /// A write failed: the peer is gone.
    fn gone<E>(_: E) -> End {
        End::Gone
    }
}

/// What a frame the client sent means for the connection, for both the handshake and the
/// live loop: `Ok(Some(text))` to decode, `Ok(None)` to go on reading, `Err` to end.
fn incoming(frame: Incoming) -> Result<Option<transport::Utf8Bytes>, End> {
    match frame {
        Incoming::Text(text) => Ok(Some(text)),
        Incoming::Binary | Incoming::Control => Ok(None),
        // The code is ignored: the reply to the client's own Close goes out.
        Incoming::Closed => Err(End::Close(1000, "")),
        Incoming::Violation { code, reason } => Err(End::Close(code, reason)),
        Incoming::Gone => Err(End::Gone),
    }
}

/// Counts a live connection for as long as it lives.
struct Live(AppState);
impl Drop for Live {
    fn drop(&mut self) {
        self.0.connections.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn connection(mut socket: Socket, state: AppState) {
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
    let session = match handshake(&mut socket, &state, conn_id).await {
        Ok(session) => session,
        Err(end) => return finish(socket, end).await,
    };
    let mut conn = Connection {
        id: conn_id,
        state: state.clone(),
        frames: TokenBucket::new(
            state.config.limits.frames_per_sec * 2,
            f64::from(state.config.limits.frames_per_sec),
            Instant::now(),
        ),
        session: session.clone(),
        socket,
        pending: FuturesUnordered::new(),
        refused_in_a_row: 0,
    };
    let end = conn.run().await;
    // The session may already have let go of this connection (too slow, resumed elsewhere,
    // ended); either way presence and voice state follow what is attached now.
    session.detach(conn_id);
    state.hub.connection_changed(&session);
    finish(conn.socket, end).await;
}

/// The one way a connection ends.
async fn finish(socket: Socket, end: End) {
    match end {
        End::Close(code, reason) => socket.close(code, reason).await,
        // Nobody to tell; dropping the socket releases it.
        End::Gone => {}
    }
}

async fn send(socket: &mut Socket, msg: &ServerMsg) -> Result<(), End> {
    // Serializing our own types cannot fail; an empty object would be the harmless fallback.
    let text = serde_json::to_string(msg).unwrap_or_else(|_| "{}".into());
    socket.send(Message::Text(text.into())).await.map_err(End::gone)
}

async fn send_error(
    socket: &mut Socket,
    error: ApiError,
    op: Option<&str>,
    nonce: Option<String>,
) -> Result<(), End> {
    send(socket, &ServerMsg::Error { error, failed_op: op.map(str::to_string), nonce }).await
}

/// Reads frames until the client identifies or resumes, within the deadline.
async fn handshake(
    socket: &mut Socket,
    state: &AppState,
    conn_id: ConnId,
) -> Result<Arc<GatewaySession>, End> {
    let deadline = tokio::time::Instant::now() + state.config.identify_timeout;
    loop {
        let frame = match timeout_at(deadline, socket.recv()).await {
            Err(_) => return Err(End::Close(close::IDENTIFY_TIMEOUT, "identify timeout")),
            Ok(frame) => frame,
        };
        let binary = matches!(frame, Incoming::Binary);
        let Some(text) = incoming(frame)? else {
            if binary {
                send_error(socket, binary_refused(), None, None).await?;
            }
            continue;
        };
        let msg = match decode::decode(text.as_str()) {
            Ok(m) => m,
            Err(r) => {
                send_error(socket, r.error, r.op.as_deref(), r.nonce).await?;
                continue;
            }
        };
        let (token, version) = match &msg {
            ClientMsg::Identify { token, protocol_version, .. } => (token, *protocol_version),
            ClientMsg::Resume { token, protocol_version, .. } => (token, *protocol_version),
            other => {
                let e = ApiError::new(ErrorCode::NotIdentified, "send Identify or Resume first");
                send_error(socket, e, Some(other.op()), None).await?;
                continue;
            }
        };
        if version != PROTOCOL_VERSION {
            let e = ApiError::new(
                ErrorCode::UnsupportedProtocol,
                format!("this server speaks protocol {PROTOCOL_VERSION}"),
            );
            send_error(socket, e, Some(msg.op()), None).await?;
            return Err(End::Close(close::UNSUPPORTED_PROTOCOL, "unsupported protocol"));
        }
        let auth = match state.authenticate(token) {
            Ok(a) => a,
            Err(e) => {
                send_error(socket, e.to_api(), Some(msg.op()), None).await?;
                return Err(End::Close(close::AUTHENTICATION_FAILED, "authentication failed"));
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
                session.attach(conn_id);
                let Some(snapshot) = state.hub.register(session.clone()) else {
                    return Err(End::Close(close::AUTHENTICATION_FAILED, "not a member"));
                };
                let mut read_states = Vec::with_capacity(snapshot.channels.len());
                for c in snapshot.channels.iter().filter(|c| c.kind != ChannelKind::Voice) {
                    match state.db.read_state(auth.id, c.id, c.kind.is_direct(), c.last_message_id).await {
                        Ok(rs) => read_states.push(rs),
                        Err(e) => {
                            session.end();
                            send_error(socket, AppError::from(e).to_api(), Some("Identify"), None).await?;
                            return Err(End::Close(close::INTERNAL_ERROR, "internal error"));
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
                send(socket, &ServerMsg::Ready { seq: 0, ready: Box::new(ready) }).await?;
                return Ok(session);
            }
            ClientMsg::Resume { session_id, last_seq, .. } => {
                let resumed = state
                    .hub
                    .session(&session_id)
                    .filter(|s| s.user_id == auth.id && s.family == auth.family)
                    .and_then(|s| s.resume(last_seq, conn_id).ok().map(|missed| (s, missed)));
                let Some((session, missed)) = resumed else {
                    send(socket, &ServerMsg::InvalidSession).await?;
                    continue;
                };
                state.hub.connection_changed(&session);
                let replayed = missed.len() as u64;
                // Every frame before was flushed into the outbox: these go after them.
                socket.outbox().write_dispatches(missed.iter().map(|(seq, payload)| (*seq, &***payload)));
                send(socket, &ServerMsg::Resumed { seq: last_seq + replayed, replayed }).await?;
                return Ok(session);
            }
            _ => unreachable!("only Identify and Resume pass the match above"),
        }
    }
}

type OpFuture = futures_util::future::BoxFuture<'static, Option<ServerMsg>>;

fn binary_refused() -> ApiError {
    ApiError::new(ErrorCode::MalformedRequest, "frames must be JSON text")
}

struct Connection {
    id: ConnId,
    state: AppState,
    session: Arc<GatewaySession>,
    socket: Socket,
    frames: TokenBucket,
    pending: FuturesUnordered<OpFuture>,
    /// Frames refused by the rate limit since the last one accepted: a client that goes on
    /// sending a whole burst more after being told to wait is closed (1008).
    refused_in_a_row: u32,
}

impl Connection {
    /// The live loop. Events do not pass through it: once live, a flusher writes them into the
    /// connection's outbox (see [`session`]), and the session wakes the loop only when the
    /// socket left some waiting (the loop flushes them) or when it must stop. It waits on nothing
    /// else than its session, its socket and its own ops: no timer (one sweep over all
    /// sessions checks heartbeats, `reap_sessions`, and tells a silent client's connection
    /// through its session) and no shutdown waiter (at shutdown every session is kicked, and
    /// the loop reads the token when it wakes).
    async fn run(&mut self) -> End {
        let mut draining = false;
        let (id, session) = (self.id, self.session.clone());
        if let Err(stop) = session.go_live(id, self.socket.outbox(), self.state.flushers.of(id)) {
            let (code, reason) = stop.close();
            return End::Close(code, reason);
        }
        // The events that waited for the handshake may not all have fit in the socket.
        if let Err(e) = self.socket.outbox().flush().await {
            return End::gone(e);
        }
        loop {
            if !draining && self.state.shutdown.is_cancelled() {
                draining = true;
            }
            if draining && self.pending.is_empty() {
                // Every acknowledged op has been dispatched: its events go into the outbox
                // now (the flusher may not have run yet), and the close flushes them before
                // the Close frame.
                session.write_queued();
                return End::Close(close::SERVER_RESTART, "server restarting");
            }
            tokio::select! {
                biased;
                Some(reply) = self.pending.next(), if !self.pending.is_empty() => {
                    // What the op dispatched to this session is written now, by this
                    // connection, not after the flusher's writes to everyone (a sent
                    // message's own copy is the sender's acknowledgement), and before the
                    // op's reply, as the client expects.
                    session.write_queued();
                    if let Some(msg) = reply
                        && let Err(end) = send(&mut self.socket, &msg).await { return end; }
                }
                woke = std::future::poll_fn(|cx| session.poll_wake(id, cx)) => match woke {
                    Ok(()) => {
                        if let Err(e) = self.socket.outbox().flush().await { return End::gone(e); }
                    }
                    Err(stop) => {
                        let (code, reason) = stop.close();
                        return End::Close(code, reason);
                    }
                },
                frame = self.socket.recv(), if !draining && self.pending.len() < MAX_IN_FLIGHT => {
                    self.session.heard_from(id);
                    if let Err(end) = self.on_frame(frame).await { return end; }
                }
            }
        }
    }

    async fn on_frame(&mut self, frame: Incoming) -> Result<(), End> {
        let binary = matches!(frame, Incoming::Binary);
        let Some(text) = incoming(frame)? else {
            if binary {
                return send_error(&mut self.socket, binary_refused(), None, None).await;
            }
            return Ok(());
        };
        if let Err(wait) = self.frames.take(Instant::now()) {
            self.state.metrics.rate_limited.fetch_add(1, Ordering::Relaxed);
            self.refused_in_a_row += 1;
            if self.refused_in_a_row > self.state.config.limits.frames_per_sec.saturating_mul(2) {
                return Err(End::Close(close::POLICY_VIOLATION, "rate limit ignored"));
            }
            let e = crate::error::rate_limited(wait.as_millis() as u64);
            return send_error(&mut self.socket, e, None, None).await;
        }
        self.refused_in_a_row = 0;
        let msg = match decode::decode(text.as_str()) {
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
                    // A transfer's refusal names the transfer, so the engine knows which failed.
                    ClientMsg::TransferSignal { transfer_id, .. } => Some(transfer_id.clone()),
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
