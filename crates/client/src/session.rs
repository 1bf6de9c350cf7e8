//! The gateway session: one task owns the WebSocket (identify or resume, heartbeats, sequence
//! numbers, reconnect with backoff, token refresh, outbox delivery) and talks to the rest of
//! the app only through a command channel in and an event broadcast out.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use hearth_protocol::api::HistoryQuery;
use hearth_protocol::gateway::{ClientMsg, Event, Ready, ServerMsg, close};
use hearth_protocol::ids::SEQUENCE_BITS;
use hearth_protocol::model::{ChannelKind, Signal, Status, TransferSignal, User};
use hearth_protocol::{
    ApiError, AttachmentId, ChannelId, ErrorCode, MAX_MESSAGE_CHARS, MessageId, PROTOCOL_VERSION, UserId,
};
use tokio::net::TcpStream;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep_until, timeout};
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::api::Api;
use crate::backoff::{Backoff, BackoffConfig, Jitter, RandomJitter};
use crate::credentials::{Access, Credentials};
use crate::error::{Error, Result};
use crate::store::{OutboxEntry, OutboxState, Store};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How long connecting plus the handshake may take before we count the attempt as failed.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(20);
/// Events buffered for slow subscribers before they start missing some.
const EVENT_BUFFER: usize = 1024;
/// History page size used to catch up after a fresh identify.
const SYNC_PAGE: u32 = 100;
/// How far before the newest cached message a catch-up starts (see `catch_up`).
const CATCH_UP_OVERLAP_MS: i64 = 10_000;

/// Whether the session is live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectionStatus {
    Connected,
    /// Connection lost (or not made yet); the next attempt is number `attempt` in `retry_in`.
    Reconnecting {
        attempt: u32,
        retry_in: Duration,
    },
    /// Not trying: shut down, logged out or refused by the server for good.
    Offline,
}

/// What the session tells the app.
#[derive(Debug, Clone)]
pub enum SessionEvent {
    ConnectionStatus(ConnectionStatus),
    /// A fresh snapshot after identifying (first connect, or a resume that was refused).
    /// The cache has been updated and caught up with history before this is sent.
    Ready(Box<Ready>),
    /// A dropped connection was resumed; `replayed` missed events came before this.
    Resumed {
        replayed: u64,
    },
    /// Something happened; the cache has already taken it in.
    Event(Event),
    /// The server refused an outbox message for good; it stays in the outbox as failed.
    MessageFailed {
        nonce: String,
        error: ApiError,
    },
    /// The server refused an op other than a message send.
    OpFailed {
        op: Option<String>,
        error: ApiError,
        /// What the refused op named, when it named something (a transfer's id).
        nonce: Option<String>,
    },
    /// The login is gone: the app should ask for the password again.
    LoggedOut,
    /// The server closed the connection with a Close frame: its code and reason, and whether
    /// the session will try again (a ban, a kick or an unsupported protocol do not).
    Closed {
        code: u16,
        reason: String,
        reconnecting: bool,
    },
}

/// What the session needs to run.
pub struct SessionConfig {
    pub api: Api,
    pub credentials: Credentials,
    pub store: Store,
    pub backoff: BackoffConfig,
    /// Status to identify with (`None`: online).
    pub status: Option<Status>,
    pub jitter: Box<dyn Jitter>,
}

impl SessionConfig {
    pub fn new(api: Api, credentials: Credentials, store: Store) -> SessionConfig {
        SessionConfig {
            api,
            credentials,
            store,
            backoff: BackoffConfig::default(),
            status: None,
            jitter: Box::new(RandomJitter::default()),
        }
    }
}

enum Command {
    Op {
        msg: ClientMsg,
        reply: oneshot::Sender<Result<()>>,
    },
    /// Send whatever the outbox holds.
    Flush,
    /// Drop the connection as a failing network would and stay away at least this long.
    Outage(Duration),
    /// Skip the rest of the backoff wait.
    ReconnectNow,
}

/// The owner of a running session: dropping it stops the task.
pub struct Session {
    handle: SessionHandle,
    /// Subscribed before the task started, so it has every event; see [`Session::take_events`].
    first_events: Mutex<Option<broadcast::Receiver<SessionEvent>>>,
    task: Mutex<Option<JoinHandle<()>>>,
    _stop_on_drop: DropGuard,
}

impl Session {
    /// Spawns the session task on the current tokio runtime; it connects at once.
    pub fn start(config: SessionConfig) -> Session {
        let (cmd_tx, cmd_rx) = mpsc::channel(256);
        let (events, first_events) = broadcast::channel(EVENT_BUFFER);
        let initial = ConnectionStatus::Reconnecting { attempt: 0, retry_in: Duration::ZERO };
        let (status_tx, status_rx) = watch::channel(initial);
        let (user_tx, user_rx) = watch::channel(None);
        let cancel = CancellationToken::new();
        let handle = SessionHandle {
            cmds: cmd_tx,
            events: events.clone(),
            status: status_rx,
            user: user_rx,
            store: config.store.clone(),
            cancel: cancel.clone(),
        };
        let worker = Worker {
            backoff: Backoff::new(config.backoff),
            jitter: config.jitter,
            api: config.api,
            credentials: config.credentials,
            store: config.store,
            desired_status: config.status,
            events,
            status_tx,
            user_tx,
            cmds: cmd_rx,
            cancel: cancel.clone(),
            session_id: None,
            last_seq: 0,
            me: None,
            auth_failures: 0,
            in_flight: HashSet::new(),
        };
        let task = tokio::spawn(worker.run());
        Session {
            handle,
            first_events: Mutex::new(Some(first_events)),
            task: Mutex::new(Some(task)),
            _stop_on_drop: cancel.drop_guard(),
        }
    }

    /// The one subscription that starts before the session connected: it misses nothing, not
    /// even a `Ready` that came before the caller got round to [`SessionHandle::subscribe`].
    /// `None` once taken.
    pub fn take_events(&self) -> Option<broadcast::Receiver<SessionEvent>> {
        self.first_events.lock().unwrap_or_else(|p| p.into_inner()).take()
    }

    pub fn handle(&self) -> SessionHandle {
        self.handle.clone()
    }

    /// Closes the connection cleanly (close frame) and waits for the task to end.
    pub async fn shutdown(&self) {
        self.handle.cancel.cancel();
        let task = self.task.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(task) = task
            && let Err(e) = task.await
        {
            tracing::error!(error = %e, "session task ended abnormally");
        }
    }
}

/// A cheap-clone handle for talking to the session task.
#[derive(Clone)]
pub struct SessionHandle {
    cmds: mpsc::Sender<Command>,
    events: broadcast::Sender<SessionEvent>,
    status: watch::Receiver<ConnectionStatus>,
    user: watch::Receiver<Option<User>>,
    store: Store,
    cancel: CancellationToken,
}

impl SessionHandle {
    /// A new stream of events, starting now. A subscriber that falls more than 1024 events
    /// behind gets `RecvError::Lagged` and should re-read what it shows from the cache.
    pub fn subscribe(&self) -> broadcast::Receiver<SessionEvent> {
        self.events.subscribe()
    }

    pub fn status(&self) -> ConnectionStatus {
        self.status.borrow().clone()
    }

    /// Who we are, once the first `Ready` has arrived.
    pub fn user(&self) -> Option<User> {
        self.user.borrow().clone()
    }

    /// Waits until the session is connected (or has stopped for good: then `Err`).
    pub async fn connected(&self) -> Result<()> {
        let mut status = self.status.clone();
        loop {
            match &*status.borrow_and_update() {
                ConnectionStatus::Connected => return Ok(()),
                ConnectionStatus::Offline => return Err(Error::Closed),
                ConnectionStatus::Reconnecting { .. } => {}
            }
            status.changed().await.map_err(|_| Error::Closed)?;
        }
    }

    /// Queues a message: it is written to the outbox first (so it survives a crash), then
    /// sent when connected and again on every reconnect until the server acknowledges it.
    /// Returns the nonce, which the acknowledging `MessageCreate` carries.
    pub async fn send_message(
        &self,
        channel_id: ChannelId,
        content: &str,
        reply_to: Option<MessageId>,
    ) -> Result<String> {
        let nonce = new_nonce();
        self.send_message_with_nonce(channel_id, content, reply_to, &nonce).await?;
        Ok(nonce)
    }

    /// [`SessionHandle::send_message`] with the caller's nonce (the UI shows the message as
    /// pending under it). Sending the same nonce again puts a failed message back in line and
    /// never queues a second copy.
    pub async fn send_message_with_nonce(
        &self,
        channel_id: ChannelId,
        content: &str,
        reply_to: Option<MessageId>,
        nonce: &str,
    ) -> Result<()> {
        self.send_message_with_attachments(channel_id, content, reply_to, nonce, Vec::new()).await
    }

    /// [`SessionHandle::send_message_with_nonce`] carrying finished uploads (see
    /// [`crate::attachments`]); with attachments the text may be empty. The outbox keeps the
    /// ids, so a message with attachments waits offline like any other.
    pub async fn send_message_with_attachments(
        &self,
        channel_id: ChannelId,
        content: &str,
        reply_to: Option<MessageId>,
        nonce: &str,
        attachments: Vec<AttachmentId>,
    ) -> Result<()> {
        if attachments.is_empty() || !content.is_empty() {
            check_content(content)?;
        }
        if attachments.len() > hearth_protocol::MAX_ATTACHMENTS_PER_MESSAGE {
            return Err(Error::Api(ApiError::new(
                ErrorCode::InvalidField,
                format!("at most {} attachments a message", hearth_protocol::MAX_ATTACHMENTS_PER_MESSAGE),
            )));
        }
        let entry = OutboxEntry {
            nonce: nonce.to_string(),
            channel_id,
            content: content.to_string(),
            reply_to,
            created_at: now_ms(),
            state: OutboxState::Pending,
            error: None,
            attachments,
        };
        self.store.outbox_add(&entry).await?;
        self.store.outbox_retry(nonce).await?;
        self.wake().await;
        Ok(())
    }

    /// Puts a failed outbox message back in line.
    pub async fn retry_message(&self, nonce: &str) -> Result<()> {
        self.store.outbox_retry(nonce).await?;
        self.wake().await;
        Ok(())
    }

    /// Gives up on an outbox message.
    pub async fn discard_message(&self, nonce: &str) -> Result<()> {
        self.store.outbox_remove(nonce).await?;
        Ok(())
    }

    pub async fn edit_message(
        &self,
        channel_id: ChannelId,
        message_id: MessageId,
        content: &str,
    ) -> Result<()> {
        check_content(content)?;
        self.op(ClientMsg::EditMessage { channel_id, message_id, content: content.into() }).await
    }

    pub async fn delete_message(&self, channel_id: ChannelId, message_id: MessageId) -> Result<()> {
        self.op(ClientMsg::DeleteMessage { channel_id, message_id }).await
    }

    pub async fn add_reaction(
        &self,
        channel_id: ChannelId,
        message_id: MessageId,
        emoji: &str,
    ) -> Result<()> {
        self.op(ClientMsg::AddReaction { channel_id, message_id, emoji: emoji.into() }).await
    }

    pub async fn remove_reaction(
        &self,
        channel_id: ChannelId,
        message_id: MessageId,
        emoji: &str,
    ) -> Result<()> {
        self.op(ClientMsg::RemoveReaction { channel_id, message_id, emoji: emoji.into() }).await
    }

    pub async fn typing(&self, channel_id: ChannelId) -> Result<()> {
        self.op(ClientMsg::Typing { channel_id }).await
    }

    pub async fn mark_read(&self, channel_id: ChannelId, message_id: MessageId) -> Result<()> {
        self.op(ClientMsg::MarkRead { channel_id, message_id }).await
    }

    pub async fn set_status(&self, status: Status) -> Result<()> {
        self.op(ClientMsg::SetStatus { status }).await
    }

    pub async fn voice_join(&self, channel_id: ChannelId, muted: bool, deafened: bool) -> Result<()> {
        self.op(ClientMsg::VoiceJoin { channel_id, muted, deafened }).await
    }

    pub async fn voice_leave(&self) -> Result<()> {
        self.op(ClientMsg::VoiceLeave).await
    }

    pub async fn voice_update(&self, muted: bool, deafened: bool, speaking: bool) -> Result<()> {
        self.op(ClientMsg::VoiceUpdate { muted, deafened, speaking }).await
    }

    pub async fn voice_signal(&self, to: UserId, signal: Signal) -> Result<()> {
        self.op(ClientMsg::VoiceSignal { to, signal }).await
    }

    /// Direct-transfer signalling (see `ClientMsg::TransferSignal`). A refusal arrives as
    /// [`SessionEvent::OpFailed`] whose `nonce` is `transfer_id`.
    pub async fn transfer_signal(
        &self,
        to: UserId,
        device: Option<String>,
        transfer_id: &str,
        signal: TransferSignal,
    ) -> Result<()> {
        self.op(ClientMsg::TransferSignal { to, device, transfer_id: transfer_id.to_string(), signal }).await
    }

    /// Sends an op on the live connection; [`Error::Offline`] when there is none. The
    /// server's refusal, if any, arrives later as [`SessionEvent::OpFailed`].
    async fn op(&self, msg: ClientMsg) -> Result<()> {
        let (reply, answer) = oneshot::channel();
        self.cmds.send(Command::Op { msg, reply }).await.map_err(|_| Error::Closed)?;
        answer.await.map_err(|_| Error::Closed)?
    }

    /// Drops the connection without a close frame, as a failing network would, and stays
    /// away for at least `hold`; then reconnects and resumes as usual.
    pub async fn simulate_outage(&self, hold: Duration) -> Result<()> {
        self.cmds.send(Command::Outage(hold)).await.map_err(|_| Error::Closed)
    }

    /// Skips the rest of the current backoff wait ("reconnect now").
    pub fn reconnect_now(&self) {
        self.nudge(Command::ReconnectNow);
    }

    /// The cache the session writes to.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Asks the task to close the connection cleanly and stop.
    pub fn shutdown(&self) {
        self.cancel.cancel();
    }

    /// Tells the task to look at the outbox. When the task is gone the row simply waits in
    /// the outbox for the next start.
    async fn wake(&self) {
        if self.cmds.send(Command::Flush).await.is_err() {
            tracing::debug!("session task gone; the message waits in the outbox");
        }
    }

    fn nudge(&self, cmd: Command) {
        // A full queue means the task is busy and will get to its commands; a closed one
        // means it is gone. Either way there is nothing to wait for.
        if let Err(e) = self.cmds.try_send(cmd) {
            tracing::debug!(reason = %e, "session task not nudged");
        }
    }
}

fn check_content(content: &str) -> Result<()> {
    if content.trim().is_empty() {
        return Err(Error::Api(ApiError::new(ErrorCode::InvalidField, "a message cannot be empty")));
    }
    if content.chars().count() > MAX_MESSAGE_CHARS {
        return Err(Error::Api(ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!("messages are limited to {MAX_MESSAGE_CHARS} characters"),
        )));
    }
    Ok(())
}

fn new_nonce() -> String {
    format!("{:032x}", rand::random::<u128>())
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// How one connection ended.
enum Ended {
    Shutdown,
    LoggedOut,
    /// Refused for good (e.g. protocol version): stop trying.
    Fatal(String),
    /// Try again: at once (after a token refresh), or after the backoff delay, or not before
    /// `hold` has passed.
    Retry {
        now: bool,
        hold: Option<Duration>,
    },
}

impl Ended {
    fn backoff() -> Ended {
        Ended::Retry { now: false, hold: None }
    }
}

/// After the server closed with 1008 (we ignored its rate limit): how long to stay away.
const POLICY_HOLD: Duration = Duration::from_secs(10);

/// What a close code asks of us: refresh the token and retry at once (4004, 4011), stop for
/// good (4013 unsupported protocol, 4014 banned, 4015 kicked), stay away a while (1008), or
/// resume after the backoff (everything else: restarts, timeouts, too slow, and the protocol
/// errors 1002/1007/1009, whose session the server keeps).
fn after_close(code: Option<u16>) -> Ended {
    match code {
        Some(close::AUTHENTICATION_FAILED | close::SESSION_REVOKED) => Ended::Retry { now: true, hold: None },
        Some(close::UNSUPPORTED_PROTOCOL) => {
            Ended::Fatal("the server speaks another protocol version".into())
        }
        Some(close::BANNED) => Ended::Fatal("banned from the group".into()),
        Some(close::KICKED) => Ended::Fatal("removed from the group".into()),
        Some(close::POLICY_VIOLATION) => Ended::Retry { now: false, hold: Some(POLICY_HOLD) },
        _ => Ended::backoff(),
    }
}

struct Worker {
    api: Api,
    credentials: Credentials,
    store: Store,
    desired_status: Option<Status>,
    backoff: Backoff,
    jitter: Box<dyn Jitter>,
    events: broadcast::Sender<SessionEvent>,
    status_tx: watch::Sender<ConnectionStatus>,
    user_tx: watch::Sender<Option<User>>,
    cmds: mpsc::Receiver<Command>,
    cancel: CancellationToken,
    /// The server-side session to resume after a drop.
    session_id: Option<String>,
    /// The last `Dispatch.seq` seen in that session.
    last_seq: u64,
    me: Option<UserId>,
    /// Auth refusals in a row; a login the server keeps refusing after a refresh is over.
    auth_failures: u32,
    /// Outbox nonces sent on the current connection and not yet answered.
    in_flight: HashSet<String>,
}

impl Worker {
    /// The server's Close frame: logged, told to the app with what happens next, and its code.
    /// A session taken over elsewhere (4012) is not resumed again: that would take it back and
    /// the two connections would take turns; we identify afresh instead.
    fn closed_by_server(&mut self, frame: Option<&CloseFrame>) -> Option<u16> {
        let code = frame.map(|f| u16::from(f.code));
        let reason = frame.map(|f| f.reason.as_str().to_string()).unwrap_or_default();
        tracing::info!(?code, %reason, "gateway closed the connection");
        if code == Some(close::SESSION_TAKEN_OVER) {
            self.session_id = None;
        }
        if let Some(code) = code {
            let reconnecting = !matches!(after_close(Some(code)), Ended::Fatal(_));
            self.emit(SessionEvent::Closed { code, reason, reconnecting });
        }
        code
    }

    fn emit(&self, event: SessionEvent) {
        // No subscriber is fine: the cache has the state anyway.
        let _no_subscribers = self.events.send(event);
    }

    fn set_status(&self, status: ConnectionStatus) {
        self.status_tx.send_replace(status.clone());
        self.emit(SessionEvent::ConnectionStatus(status));
    }

    async fn run(mut self) {
        loop {
            let ended = self.connect_and_run().await;
            self.in_flight.clear();
            let (now, hold) = match ended {
                Ended::Shutdown => break,
                Ended::LoggedOut => {
                    self.emit(SessionEvent::LoggedOut);
                    break;
                }
                Ended::Fatal(reason) => {
                    tracing::warn!(%reason, "gateway refused us for good");
                    break;
                }
                Ended::Retry { now, hold } => (now, hold),
            };
            let mut delay = if now {
                Duration::ZERO
            } else {
                self.backoff.next_delay(std::time::Instant::now(), &mut *self.jitter)
            };
            if let Some(hold) = hold {
                delay = delay.max(hold);
            }
            self.set_status(ConnectionStatus::Reconnecting {
                attempt: self.backoff.failures().max(1),
                retry_in: delay,
            });
            if !self.wait_offline(delay).await {
                break;
            }
        }
        self.set_status(ConnectionStatus::Offline);
    }

    /// Waits out a backoff delay while answering commands. False: shut down.
    async fn wait_offline(&mut self, delay: Duration) -> bool {
        let deadline = Instant::now() + delay;
        loop {
            tokio::select! {
                _ = self.cancel.cancelled() => return false,
                _ = sleep_until(deadline) => return true,
                cmd = self.cmds.recv() => match cmd {
                    None => return false,
                    Some(Command::Op { reply, .. }) => {
                        let _receiver_may_be_gone = reply.send(Err(Error::Offline));
                    }
                    Some(Command::ReconnectNow) => {
                        self.backoff.reset();
                        return true;
                    }
                    Some(Command::Flush | Command::Outage(_)) => {}
                },
            }
        }
    }

    /// The current access token, refreshing when there is none.
    async fn token(&mut self) -> Result<(String, Access)> {
        let access = self.credentials.access();
        match &access.token {
            Some(t) => Ok((t.clone(), access)),
            None => {
                let t = self.credentials.refresh(&self.api, &access).await?;
                let access = self.credentials.access();
                Ok((t, access))
            }
        }
    }

    /// After the server refused our token: refresh, or give up when that fails.
    async fn refused_auth(&mut self, seen: &Access) -> Ended {
        self.auth_failures += 1;
        if self.auth_failures > 3 {
            return Ended::LoggedOut;
        }
        let stale = Access { token: None, generation: seen.generation };
        match self.credentials.refresh(&self.api, &stale).await {
            Ok(_) => Ended::Retry { now: self.auth_failures == 1, hold: None },
            Err(Error::LoggedOut) => Ended::LoggedOut,
            Err(e) => {
                tracing::info!(error = %e, "could not refresh the access token");
                Ended::backoff()
            }
        }
    }

    async fn connect_and_run(&mut self) -> Ended {
        let (token, access) = match self.token().await {
            Ok(t) => t,
            Err(Error::LoggedOut) => return Ended::LoggedOut,
            Err(e) => {
                tracing::info!(error = %e, "cannot get an access token");
                return Ended::backoff();
            }
        };
        let cancel = self.cancel.clone();
        let handshake = tokio::select! {
            _ = cancel.cancelled() => return Ended::Shutdown,
            r = timeout(HANDSHAKE_TIMEOUT, self.connect(&token)) => r,
        };
        let (mut ws, heartbeat, identified) = match handshake {
            Err(_) => {
                tracing::info!("gateway handshake timed out");
                return Ended::backoff();
            }
            Ok(Err(HandshakeEnd::Ended(e))) => return e,
            Ok(Err(HandshakeEnd::AuthRefused)) => return self.refused_auth(&access).await,
            Ok(Ok(done)) => done,
        };
        self.auth_failures = 0;
        if let Some(ready) = identified {
            // Bounded by the heartbeat interval: the socket is not served meanwhile, and the
            // server gives up on a silent connection after two intervals.
            let caught_up = match timeout(heartbeat, self.catch_up(&ready)).await {
                Ok(r) => r,
                Err(_) => Err(Error::Network("catching up took too long".into())),
            };
            if let Err(e) = caught_up {
                tracing::warn!(error = %e, "could not catch up on history");
                // The cache now has a gap of unknown size below the live events.
                if let Err(e) = self.store.forget_synced(None).await {
                    tracing::error!(error = %e, "cannot update the cache's sync marks");
                }
            }
            self.emit(SessionEvent::Ready(ready));
        }
        self.backoff.connected(std::time::Instant::now());
        tracing::info!(session = ?self.session_id, seq = self.last_seq, "connected to the gateway");
        self.set_status(ConnectionStatus::Connected);
        let ended = self.live(&mut ws, heartbeat, &access).await;
        if matches!(ended, Ended::Shutdown) {
            let frame = CloseFrame { code: CloseCode::Normal, reason: "bye".into() };
            if let Err(e) = ws.close(Some(frame)).await {
                tracing::debug!(error = %e, "close frame not sent");
            }
        }
        ended
    }

    /// Connects, reads `Hello`, identifies or resumes. Ok: the socket, the heartbeat
    /// interval, and the snapshot when we identified afresh.
    async fn connect(&mut self, token: &str) -> Result<(Ws, Duration, Option<Box<Ready>>), HandshakeEnd> {
        let url = self.api.gateway_url();
        let connector = if url.starts_with("wss://") {
            match crate::tls::websocket_config() {
                Ok(c) => Some(tokio_tungstenite::Connector::Rustls(c)),
                Err(e) => return Err(HandshakeEnd::Ended(Ended::Fatal(e.to_string()))),
            }
        } else {
            None
        };
        let (mut ws, _) =
            tokio_tungstenite::connect_async_tls_with_config(url.as_str(), None, false, connector)
                .await
                .map_err(|e| {
                    tracing::info!(error = %e, "cannot open the gateway");
                    HandshakeEnd::Ended(Ended::backoff())
                })?;
        let heartbeat = match read(&mut ws).await? {
            ServerMsg::Hello { heartbeat_interval_ms, .. } => {
                Duration::from_millis(heartbeat_interval_ms.max(100))
            }
            _ => {
                // Not logged whole: server frames can carry TURN credentials.
                tracing::warn!("gateway did not start with Hello");
                return Err(HandshakeEnd::Ended(Ended::backoff()));
            }
        };
        let first = match &self.session_id {
            Some(session_id) => ClientMsg::Resume {
                token: token.into(),
                session_id: session_id.clone(),
                last_seq: self.last_seq,
                protocol_version: PROTOCOL_VERSION,
            },
            None => self.identify(token),
        };
        write(&mut ws, &first).await?;
        let mut auth_refused = false;
        loop {
            let msg = match read(&mut ws).await {
                Ok(m) => m,
                // The `unauthorized` error frame comes first, then the close.
                Err(_) if auth_refused => return Err(HandshakeEnd::AuthRefused),
                Err(e) => return Err(e),
            };
            match msg {
                ServerMsg::Dispatch { seq, event } => self.on_dispatch(seq, event).await,
                ServerMsg::Resumed { seq, replayed } => {
                    self.last_seq = self.last_seq.max(seq);
                    self.emit(SessionEvent::Resumed { replayed });
                    return Ok((ws, heartbeat, None));
                }
                ServerMsg::Ready { seq, ready } => {
                    self.session_id = Some(ready.session_id.clone());
                    self.last_seq = seq;
                    self.me = Some(ready.user.id);
                    self.user_tx.send_replace(Some(ready.user.clone()));
                    if let Err(e) = self.store.apply_ready(&ready).await {
                        tracing::warn!(error = %e, "could not cache the Ready snapshot");
                    }
                    return Ok((ws, heartbeat, Some(ready)));
                }
                ServerMsg::InvalidSession => {
                    // The server forgot us (or dropped events we needed): start afresh on
                    // the same socket and catch up over HTTP.
                    self.session_id = None;
                    self.last_seq = 0;
                    write(&mut ws, &self.identify(token)).await?;
                }
                ServerMsg::Error { error, failed_op, .. } => {
                    if error.code == ErrorCode::Unauthorized {
                        auth_refused = true;
                    } else {
                        tracing::warn!(code = ?error.code, op = ?failed_op, "gateway refused the handshake");
                    }
                }
                ServerMsg::Hello { .. } | ServerMsg::HeartbeatAck => {}
            }
        }
    }

    fn identify(&self, token: &str) -> ClientMsg {
        ClientMsg::Identify {
            token: token.into(),
            protocol_version: PROTOCOL_VERSION,
            status: self.desired_status,
        }
    }

    /// After a fresh identify: fetches, per channel, what came after the newest cached message.
    async fn catch_up(&mut self, ready: &Ready) -> Result<()> {
        for channel in ready.channels.iter().filter(|c| c.kind != ChannelKind::Voice) {
            let Some(newest) = self.store.newest_message(channel.id).await? else {
                // Nothing cached to continue from; anything the channel got while we were
                // away is unknown to the cache.
                if channel.last_message_id.is_some() {
                    self.store.forget_synced(Some(channel.id)).await?;
                }
                continue;
            };
            // With several server processes, a message can be committed (and fanned out) a
            // little after one with a larger id from another process: continue from a while
            // before the newest cached message. Upserts make the overlap harmless.
            let mut after = MessageId(newest.0.saturating_sub(CATCH_UP_OVERLAP_MS << SEQUENCE_BITS));
            if channel.last_message_id.is_some_and(|last| last <= after) {
                continue;
            }
            loop {
                let query =
                    HistoryQuery { before: None, after: Some(after), around: None, limit: Some(SYNC_PAGE) };
                let id = channel.id;
                let page = self
                    .credentials
                    .call(&self.api, |api, token| {
                        let query = query.clone();
                        async move { api.history(&token, id, &query).await }
                    })
                    .await?;
                self.store.upsert_messages(&page).await?;
                match page.iter().map(|m| m.id).max() {
                    Some(newest) if page.len() == SYNC_PAGE as usize => after = newest,
                    _ => break,
                }
            }
        }
        Ok(())
    }

    /// The connected loop: commands, frames, heartbeats, outbox retries.
    async fn live(&mut self, ws: &mut Ws, heartbeat: Duration, access: &Access) -> Ended {
        if let Err(e) = self.flush(ws).await {
            return e;
        }
        let mut beat = tokio::time::interval_at(Instant::now() + heartbeat, heartbeat);
        beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut awaiting_ack = false;
        let mut retry_at: Option<Instant> = None;
        loop {
            tokio::select! {
                _ = self.cancel.cancelled() => return Ended::Shutdown,
                cmd = self.cmds.recv() => match cmd {
                    None => return Ended::Shutdown,
                    Some(Command::Op { msg, reply }) => {
                        let sent = write(ws, &msg).await;
                        let failed = sent.is_err();
                        let _receiver_may_be_gone = reply.send(sent.map_err(|_| Error::Offline));
                        if failed {
                            return Ended::backoff();
                        }
                    }
                    Some(Command::Flush) => {
                        if let Err(e) = self.flush(ws).await {
                            return e;
                        }
                    }
                    Some(Command::Outage(hold)) => return Ended::Retry { now: false, hold: Some(hold) },
                    Some(Command::ReconnectNow) => {}
                },
                frame = ws.next() => {
                    let text = match frame {
                        Some(Ok(WsMessage::Text(text))) => text,
                        Some(Ok(WsMessage::Close(frame))) => {
                            let code = self.closed_by_server(frame.as_ref());
                            return match after_close(code) {
                                Ended::Retry { now: true, .. } => {
                                    self.session_id = None;
                                    self.refused_auth(access).await
                                }
                                other => other,
                            };
                        }
                        Some(Ok(_)) => continue,
                        Some(Err(e)) => {
                            tracing::info!(error = %e, "gateway connection broke");
                            return Ended::backoff();
                        }
                        None => return Ended::backoff(),
                    };
                    let msg = match serde_json::from_str::<ServerMsg>(text.as_str()) {
                        Ok(m) => m,
                        Err(e) => {
                            tracing::warn!(error = %e, "gateway sent a frame we cannot read");
                            continue;
                        }
                    };
                    match msg {
                        ServerMsg::Dispatch { seq, event } => self.on_dispatch(seq, event).await,
                        ServerMsg::HeartbeatAck => awaiting_ack = false,
                        ServerMsg::Error { error, nonce: Some(nonce), failed_op }
                            if failed_op.as_deref() != Some("TransferSignal") =>
                        {
                            if let Some(wait) = self.on_send_refused(&nonce, error).await {
                                let at = Instant::now() + wait;
                                retry_at = Some(retry_at.map_or(at, |r| r.max(at)));
                            }
                        }
                        ServerMsg::Error { error, failed_op, nonce } => {
                            self.emit(SessionEvent::OpFailed { op: failed_op, error, nonce });
                        }
                        ServerMsg::InvalidSession => {
                            self.session_id = None;
                            return Ended::Retry { now: true, hold: None };
                        }
                        ServerMsg::Hello { .. } | ServerMsg::Ready { .. } | ServerMsg::Resumed { .. } => {
                            tracing::warn!("unexpected handshake frame on a live connection");
                        }
                    }
                }
                _ = beat.tick() => {
                    if awaiting_ack {
                        tracing::info!("no heartbeat ack for a whole interval: the connection is dead");
                        return Ended::backoff();
                    }
                    if write(ws, &ClientMsg::Heartbeat { last_seq: Some(self.last_seq) }).await.is_err() {
                        return Ended::backoff();
                    }
                    awaiting_ack = true;
                }
                _ = async { if let Some(at) = retry_at { sleep_until(at).await } }, if retry_at.is_some() => {
                    retry_at = None;
                    if let Err(e) = self.flush(ws).await {
                        return e;
                    }
                }
            }
        }
    }

    /// Sends every pending outbox row not already on its way, with its original nonce.
    async fn flush(&mut self, ws: &mut Ws) -> Result<(), Ended> {
        let pending = match self.store.outbox_pending().await {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the outbox");
                return Ok(());
            }
        };
        for entry in pending {
            if self.in_flight.contains(&entry.nonce) {
                continue;
            }
            let msg = ClientMsg::SendMessage {
                channel_id: entry.channel_id,
                nonce: entry.nonce.clone(),
                content: entry.content,
                reply_to: entry.reply_to,
                attachments: entry.attachments,
            };
            if write(ws, &msg).await.is_err() {
                return Err(Ended::backoff());
            }
            self.in_flight.insert(entry.nonce);
        }
        Ok(())
    }

    /// The server refused an outbox message: mark it failed for good, or return how long to
    /// wait before sending it again.
    async fn on_send_refused(&mut self, nonce: &str, error: ApiError) -> Option<Duration> {
        self.in_flight.remove(nonce);
        match error.code {
            ErrorCode::RateLimited | ErrorCode::Unavailable | ErrorCode::Internal => {
                Some(Duration::from_millis(error.retry_after_ms.unwrap_or(1000).clamp(50, 60_000)))
            }
            _ => {
                if let Err(e) = self.store.outbox_mark_failed(nonce, &error).await {
                    tracing::error!(error = %e, "cannot mark an outbox message failed");
                }
                self.emit(SessionEvent::MessageFailed { nonce: nonce.to_string(), error });
                None
            }
        }
    }

    async fn on_dispatch(&mut self, seq: u64, event: Event) {
        if seq <= self.last_seq {
            // Already seen (a replay overlapping what we had): applying it twice would
            // duplicate it for the app.
            return;
        }
        if seq != self.last_seq + 1 {
            tracing::warn!(expected = self.last_seq + 1, got = seq, "gap in the event sequence");
        }
        self.last_seq = seq;
        if let Err(e) = self.store.apply_event(&event).await {
            tracing::error!(error = %e, "cannot cache an event");
        }
        if let Event::MessageCreate { message, nonce: Some(nonce) } = &event
            && Some(message.author_id) == self.me
        {
            self.in_flight.remove(nonce);
            if let Err(e) = self.store.outbox_remove(nonce).await {
                tracing::error!(error = %e, "cannot clear an outbox message");
            }
        }
        if let Event::MemberUpdate { user } = &event
            && Some(user.id) == self.me
        {
            self.user_tx.send_replace(Some(user.clone()));
        }
        self.emit(SessionEvent::Event(event));
    }
}

enum HandshakeEnd {
    Ended(Ended),
    /// The server refused the token (an `unauthorized` error, close 4004 or 4011).
    AuthRefused,
}

async fn write(ws: &mut Ws, msg: &ClientMsg) -> Result<(), HandshakeEnd> {
    let text = serde_json::to_string(msg).map_err(|e| HandshakeEnd::Ended(Ended::Fatal(e.to_string())))?;
    ws.send(WsMessage::text(text)).await.map_err(|e| {
        tracing::info!(error = %e, op = msg.op(), "gateway write failed");
        HandshakeEnd::Ended(Ended::backoff())
    })
}

/// Reads the next protocol frame; a close or a broken socket ends the handshake.
async fn read(ws: &mut Ws) -> Result<ServerMsg, HandshakeEnd> {
    loop {
        match ws.next().await {
            Some(Ok(WsMessage::Text(text))) => match serde_json::from_str::<ServerMsg>(text.as_str()) {
                Ok(m) => return Ok(m),
                Err(e) => tracing::warn!(error = %e, "gateway sent a frame we cannot read"),
            },
            Some(Ok(WsMessage::Close(frame))) => {
                let code = frame.as_ref().map(|f| u16::from(f.code));
                tracing::info!(
                    ?code,
                    reason = frame.as_ref().map(|f| f.reason.as_str()),
                    "gateway closed during the handshake"
                );
                return Err(match after_close(code) {
                    Ended::Retry { now: true, .. } => HandshakeEnd::AuthRefused,
                    other => HandshakeEnd::Ended(other),
                });
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => {
                tracing::info!(error = %e, "gateway connection broke during the handshake");
                return Err(HandshakeEnd::Ended(Ended::backoff()));
            }
            None => return Err(HandshakeEnd::Ended(Ended::backoff())),
        }
    }
}

impl std::fmt::Debug for SessionHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionHandle").field("status", &*self.status.borrow()).finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_codes_decide_between_refresh_resume_and_giving_up() {
        assert!(matches!(after_close(Some(close::AUTHENTICATION_FAILED)), Ended::Retry { now: true, .. }));
        assert!(matches!(after_close(Some(close::SESSION_REVOKED)), Ended::Retry { now: true, .. }));
        assert!(matches!(after_close(Some(close::UNSUPPORTED_PROTOCOL)), Ended::Fatal(_)));
        for code in
            [close::SERVER_RESTART, close::TOO_SLOW, close::HEARTBEAT_TIMEOUT, close::SESSION_TAKEN_OVER]
        {
            assert!(matches!(after_close(Some(code)), Ended::Retry { now: false, hold: None }), "{code}");
        }
        assert!(matches!(after_close(None), Ended::Retry { now: false, hold: None }));
        for code in [close::BANNED, close::KICKED] {
            assert!(matches!(after_close(Some(code)), Ended::Fatal(_)), "{code}");
        }
        assert!(matches!(after_close(Some(close::POLICY_VIOLATION)), Ended::Retry { hold: Some(_), .. }));
        for code in
            [close::PROTOCOL_ERROR, close::INVALID_PAYLOAD, close::MESSAGE_TOO_BIG, close::INTERNAL_ERROR]
        {
            assert!(matches!(after_close(Some(code)), Ended::Retry { now: false, hold: None }), "{code}");
        }
    }

    #[test]
    fn message_content_is_checked_before_it_reaches_the_outbox() {
        assert!(check_content("hi").is_ok());
        assert_eq!(check_content(" \n ").unwrap_err().api_code(), Some(ErrorCode::InvalidField));
        let long = "x".repeat(MAX_MESSAGE_CHARS + 1);
        assert_eq!(check_content(&long).unwrap_err().api_code(), Some(ErrorCode::PayloadTooLarge));
        assert_ne!(new_nonce(), new_nonce());
    }
}
