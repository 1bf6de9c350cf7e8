//! Several `hearth-server` processes on one PostgreSQL: what crosses between them and how
//! each knows the others are alive. No broker: PostgreSQL `LISTEN`/`NOTIFY` carries
//! [`note::Note`]s, the `nodes` table holds each process's leased worker id and heartbeat.
//!
//! - Start ([`join`]): listen first (nothing sent after our snapshot is missed), lease a
//!   worker id (the worker bits of every id we make, so two processes never make the same
//!   id), adopt the group's shared secrets (token signing key, TURN secret).
//! - Out: the hub hands every shared change and announcement to a [`BusSender`]; one publisher
//!   task sends them in order, batched. New messages are announced by the writer inside their
//!   commit (`Db::store_messages_announced`), after everything the hub queued before it
//!   ([`PublishOrder`]), so a message never overtakes the channel it was sent in.
//! - In: one listener task applies the others' notes to the hub in the order they were sent;
//!   message ids are read back from `messages`.
//! - Liveness: every process beats its heart in `nodes` (database clock); one silent longer than
//!   `node_timeout`, or gone from the table, is dead: its members' presence and calls end
//!   here. A process that finds its own lease taken stops; one whose notes may have been lost
//!   (the listening connection broke, or its own heartbeats stalled) rejoins: reloads the
//!   shared state, ends its sessions (clients identify afresh and catch up from history) and
//!   says `Hello` so the others announce their state again.
//!
//! Gateway sessions stay with the process they were opened on: a `Resume` elsewhere is
//! answered `InvalidSession` (see ARCHITECTURE.md, "Several processes").

pub mod note;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use hearth_protocol::gateway::{Event, close};
use sqlx::postgres::PgListener;
use tokio::sync::{mpsc, watch};

use crate::db::Db;
use crate::secrets::Secrets;
use crate::state::AppState;
use note::{Body, CHANNEL, Envelope, NodeId, Note};

/// Spilled notes older than this are deleted (every listener has read them long before).
const SPILL_KEEP_MS: i64 = 60_000;

/// Where the hub sends notes for the other processes.
#[derive(Clone)]
pub struct BusSender {
    tx: mpsc::UnboundedSender<Note>,
    queued: Arc<AtomicU64>,
}

impl BusSender {
    pub fn send(&self, note: Note) {
        self.queued.fetch_add(1, Ordering::SeqCst);
        // The publisher runs until the bus is detached at shutdown.
        let _ = self.tx.send(note);
    }
}

/// Lets the message writer wait until every note queued so far has been sent.
#[derive(Clone)]
pub struct PublishOrder {
    pub node: NodeId,
    queued: Arc<AtomicU64>,
    published: watch::Receiver<u64>,
}

impl PublishOrder {
    /// Returns once everything the hub queued before this call has been notified (at once
    /// when the publisher is idle).
    pub async fn caught_up(&self) {
        let target = self.queued.load(Ordering::SeqCst);
        let mut published = self.published.clone();
        // An error means the publisher stopped (shutdown): nothing more to wait for.
        let _ = published.wait_for(|p| *p >= target).await;
    }
}

/// This process's place among the others, from [`join`] until [`Member::start`].
pub struct Member {
    pub node: NodeId,
    token: String,
    listener: PgListener,
    /// The secrets every process shares.
    pub secrets: Secrets,
    /// What the hub sends on; attach it once the hub is loaded.
    pub bus: BusSender,
    /// What the message writer waits on.
    pub order: PublishOrder,
    notes: mpsc::UnboundedReceiver<Note>,
    published: watch::Sender<u64>,
}

/// Listens, leases a worker id and adopts the shared secrets (`local` when we are the first).
pub async fn join(db: &Db, timeout: Duration, local: &Secrets) -> anyhow::Result<Member> {
    let mut listener = PgListener::connect(&db.url).await.context("connecting the PostgreSQL listener")?;
    listener.listen(CHANNEL).await.context("LISTEN for the other server processes")?;
    let token = crate::auth::random_token(16);
    let reuse_after = 3 * timeout.as_millis() as i64;
    let node = db.lease_worker(&token, reuse_after).await.context("leasing a worker id")?;
    let proposed = serde_json::to_string(local)?;
    let shared = db.shared_secrets(&proposed).await.context("reading the shared secrets")?;
    let secrets: Secrets = serde_json::from_str(&shared).context("parsing the shared secrets")?;
    let (tx, notes) = mpsc::unbounded_channel();
    let queued = Arc::new(AtomicU64::new(0));
    let (published, published_rx) = watch::channel(0);
    tracing::info!(node, "joined the other server processes on this database");
    Ok(Member {
        node,
        token,
        listener,
        secrets,
        bus: BusSender { tx, queued: queued.clone() },
        order: PublishOrder { node, queued, published: published_rx },
        notes,
        published,
    })
}

/// The running bus; [`Running::stop`] at shutdown.
pub struct Running {
    node: NodeId,
    token: String,
    db: Db,
    listener: tokio::task::JoinHandle<()>,
    liveness: tokio::task::JoinHandle<()>,
    publisher: tokio::task::JoinHandle<()>,
}

impl Member {
    /// Starts the publisher, the listener and the heartbeat; the hub must be loaded and its
    /// bus attached. Says `Hello`, so the others announce what only they know.
    pub fn start(self, state: &AppState) -> Running {
        let Member { node, token, listener, bus, notes, published, .. } = self;
        let publisher = tokio::spawn(publish(state.db.clone(), node, notes, published));
        bus.send(Note::Hello);
        let listener = tokio::spawn(listen(state.clone(), node, listener));
        let liveness = tokio::spawn(beat(state.clone(), node, token.clone()));
        Running { node, token, db: state.db.clone(), listener, liveness, publisher }
    }
}

impl Running {
    /// A clean stop, once the sessions are gone (their presence and calls announced): the
    /// queued notes go out, then the lease is given up so the others see us gone at once.
    pub async fn stop(self, state: &AppState) {
        self.listener.abort();
        self.liveness.abort();
        state.hub.detach_bus();
        if let Err(e) = self.publisher.await {
            tracing::warn!(error = %e, "bus publisher");
        }
        if let Err(e) = self.db.release_worker(self.node, &self.token).await {
            tracing::warn!(error = %e, "could not give up the worker id");
        }
    }
}

/// Sends the hub's notes in order, as many per transaction as are queued.
async fn publish(
    db: Db,
    node: NodeId,
    mut notes: mpsc::UnboundedReceiver<Note>,
    published: watch::Sender<u64>,
) {
    let mut batch = Vec::new();
    let mut sent: u64 = 0;
    while notes.recv_many(&mut batch, 256).await > 0 {
        let mut tries = 0;
        loop {
            match db.notify(node, &batch).await {
                Ok(()) => break,
                Err(e) if tries < 5 => {
                    tries += 1;
                    tracing::warn!(error = %e, "could not notify the other processes; trying again");
                    tokio::time::sleep(Duration::from_millis(100 << tries)).await;
                }
                Err(e) => {
                    // They will see us as silent (our heartbeats fail the same way) or rejoin.
                    tracing::error!(error = %e, lost = batch.len(), "notes to the other processes were lost");
                    break;
                }
            }
        }
        sent += batch.len() as u64;
        published.send_replace(sent);
        batch.clear();
    }
    tracing::debug!("bus publisher stopped");
}

/// Applies the other processes' notes in the order they were sent.
async fn listen(state: AppState, node: NodeId, mut listener: PgListener) {
    loop {
        match listener.try_recv().await {
            Ok(Some(notification)) => {
                if let Err(e) = receive(&state, node, notification.payload()).await {
                    tracing::error!(error = %format!("{e:#}"), "a note from another process was lost; starting over");
                    rejoin(&state).await;
                }
            }
            Ok(None) => {
                // The connection broke and was made again: what was sent meanwhile is lost.
                tracing::warn!("the PostgreSQL listener reconnected; starting over");
                rejoin(&state).await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "the PostgreSQL listener failed");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}

async fn receive(state: &AppState, node: NodeId, payload: &str) -> anyhow::Result<()> {
    let mut envelope: Envelope = serde_json::from_str(payload).context("reading a note")?;
    if envelope.from == node {
        return Ok(());
    }
    if let Body::Spill(id) = envelope.body {
        let text = state.db.spilled(id).await?.with_context(|| format!("spilled note {id} is gone"))?;
        envelope = serde_json::from_str(&text).context("reading a spilled note")?;
    }
    match envelope.body {
        Body::Note(Note::Messages { ids }) => {
            for (message, nonce) in state.db.messages_by_id(&ids).await? {
                state.hub.message_stored(&Event::MessageCreate { message, nonce: Some(nonce) });
            }
        }
        Body::Note(note) => state.hub.apply(envelope.from, note),
        Body::Spill(_) => anyhow::bail!("a spilled note names another"),
    }
    Ok(())
}

/// Starts over with what the database says and what the others announce again.
async fn rejoin(state: &AppState) {
    loop {
        match crate::durable_state(&state.db, &state.config).await {
            Ok(durable) => {
                state.hub.rejoin(durable, close::SERVER_RESTART);
                state.hub.announce_hello();
                return;
            }
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "cannot reload the group; trying again");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// Beats our heart and watches the others'.
async fn beat(state: AppState, node: NodeId, token: String) {
    let timeout = state.config.node_timeout;
    let mut tick = tokio::time::interval((timeout / 4).max(Duration::from_millis(100)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_beat = Instant::now();
    let mut last_prune = Instant::now();
    loop {
        tick.tick().await;
        match state.db.heartbeat(node, &token).await {
            Ok(true) => {
                if last_beat.elapsed() > timeout {
                    // The others may have counted us dead and dropped what we announced.
                    tracing::warn!(node, "our heartbeats stalled; starting over");
                    rejoin(&state).await;
                }
                last_beat = Instant::now();
            }
            Ok(false) => {
                tracing::error!(node, "another process took over our worker id: stopping");
                state.shutdown.cancel();
                return;
            }
            Err(e) => tracing::warn!(error = %e, "heartbeat failed"),
        }
        match state.db.nodes().await {
            Ok(rows) => {
                let limit = timeout.as_millis() as i64;
                for other in state.hub.remote_nodes() {
                    if !rows.iter().any(|r| r.id == other && r.age_ms <= limit) {
                        tracing::info!(node = other, "another server process is gone");
                        state.hub.node_gone(other);
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot read the other processes' heartbeats"),
        }
        if last_prune.elapsed() > Duration::from_millis(SPILL_KEEP_MS as u64 / 2) {
            last_prune = Instant::now();
            if let Err(e) = state.db.prune_spill(SPILL_KEEP_MS).await {
                tracing::warn!(error = %e, "cannot prune spilled notes");
            }
        }
    }
}
