//! A gateway session: the numbered stream of events for one device of one user. It outlives
//! its WebSocket connection for the resume window, keeping the last events in a bounded
//! replay buffer so that a client that reconnects gets exactly what it missed.
//!
//! Once its connection is live ([`GatewaySession::go_live`]), its events are written into the
//! connection's [`Outbox`] by a [`Flusher`] (one per core), not by the connection's task: a
//! dispatch numbers the event, keeps it in the replay buffer and, if the session is not queued
//! for writing yet, queues it. The flusher runs once the dispatching task yields, and writes
//! each queued session's new events with one `send`: a burst of events into a busy channel
//! costs one write per connection, and a fan-out wakes one task, not one per connection (the
//! connection's task is woken only when the socket did not take a write at once, to flush
//! it). A connection whose socket leaves more than [`MAX_QUEUED_BYTES`] waiting is detached
//! (too slow; it closes and the client resumes).
//!
//! Before that (between `Identify`/`Resume` and the end of the handshake) events wait in the
//! replay buffer, untaken: going live writes them first. A connection that falls
//! [`OUTBOUND_QUEUE`] events behind is detached too; until it takes them, its events stay in
//! the replay buffer even past the buffer's size.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use hearth_protocol::UserId;
use hearth_protocol::gateway::close;
use hearth_protocol::model::Status;

use super::outbox::{Outbox, Written};

/// How far an attached connection may fall behind (events dispatched but not written to it)
/// before it is detached as too slow. It may resume from the replay buffer.
pub const OUTBOUND_QUEUE: usize = 1024;

/// Bytes a live connection's socket may leave waiting in its outbox before the connection is
/// detached as too slow (a client that stopped reading).
pub const MAX_QUEUED_BYTES: usize = 4 * 1024 * 1024;

/// Events, with their sequence numbers (what a resume replays).
pub type Batch = Vec<(u64, Arc<Payload>)>;

/// A serialized `Event`, shared by every session it is dispatched to. Its text (pointer and
/// length) starts on a cache line of its own, apart from the reference counts: a fan-out
/// changes the counts once per session on the dispatching core while the connections, on
/// other cores, read the text; sharing one line would move it between the cores each time.
#[repr(align(64))]
#[derive(Debug, PartialEq, Eq)]
pub struct Payload(Box<str>);

impl Payload {
    pub fn new(text: String) -> Arc<Payload> {
        Arc::new(Payload(text.into_boxed_str()))
    }
}

impl std::ops::Deref for Payload {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

#[derive(Debug)]
pub struct GatewaySession {
    pub id: String,
    pub user_id: UserId,
    /// The login this session was identified with; logging it out ends the session.
    pub family: String,
    // A std mutex: held for a few pushes, never across an await. Per session, so fan-out to
    // many sessions does not contend.
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    seq: u64,
    replay: VecDeque<(u64, Arc<Payload>)>,
    replay_cap: usize,
    /// The attached connection, if any.
    conn: Option<Attached>,
    status: Status,
    detached_at: Option<Instant>,
    /// Set once the session ended: the close code its connection is closed with.
    ended: Option<u16>,
}

#[derive(Debug)]
struct Attached {
    id: ConnId,
    /// The last sequence number the connection took.
    taken: u64,
    /// The connection's task while it waits for events.
    waker: Option<Waker>,
    /// When the client last sent a frame (for the heartbeat sweep).
    heard: Instant,
    /// The heartbeat sweep found the client silent for too long.
    silent: bool,
    /// Woken to look at the server's state (see [`GatewaySession::kick`]) or to flush the
    /// outbox.
    kicked: bool,
    /// Once live: where its events are written, and who writes them.
    out: Option<(Arc<Outbox>, Arc<Flusher>)>,
    /// Queued on the flusher (events wait to be written).
    queued: bool,
}

/// Identifies one WebSocket connection, so that a connection can detach only itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnId(u64);

impl ConnId {
    pub fn next() -> ConnId {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        ConnId(NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
    }
}

/// Why a resume was refused.
#[derive(Debug, PartialEq, Eq)]
pub struct CannotResume;

/// Why a connection must stop writing this session's events and close.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// The session ended (logout, kick, ban...), with this close code.
    Ended(u16),
    /// Another connection resumed the session.
    TakenOver,
    /// The connection fell [`OUTBOUND_QUEUE`] events behind.
    TooSlow,
    /// The client sent nothing for the heartbeat timeout.
    Silent,
}

impl Stop {
    /// The close frame the client gets.
    pub fn close(self) -> (u16, &'static str) {
        match self {
            Stop::Ended(code) => (
                code,
                match code {
                    close::BANNED => "banned from the group",
                    close::KICKED => "removed from the group",
                    _ => "session ended",
                },
            ),
            Stop::TakenOver => (close::SESSION_TAKEN_OVER, "resumed elsewhere"),
            Stop::TooSlow => (close::TOO_SLOW, "too many unread events; resume"),
            Stop::Silent => (close::HEARTBEAT_TIMEOUT, "heartbeat timeout"),
        }
    }
}

impl Inner {
    /// Lets go of the attached connection, waking it so that it sees why.
    fn release(&mut self) -> Option<Waker> {
        let waker = self.conn.take().and_then(|c| c.waker);
        self.detached_at.get_or_insert_with(Instant::now);
        waker
    }

    fn attach(&mut self, id: ConnId) -> Option<Waker> {
        let old = self.conn.take().and_then(|c| c.waker);
        self.conn = Some(Attached {
            id,
            taken: self.seq,
            waker: None,
            heard: Instant::now(),
            silent: false,
            kicked: false,
            out: None,
            queued: false,
        });
        self.detached_at = None;
        old
    }
}

fn wake(waker: Option<Waker>) {
    if let Some(w) = waker {
        w.wake();
    }
}

/// Writes the events after `taken` into the live connection's outbox, with one write.
fn write_untaken(s: &mut Inner) -> Option<Waker> {
    let Some(c) = &mut s.conn else { return None };
    c.queued = false;
    let Some((out, _)) = &c.out else { return None };
    if c.taken == s.seq {
        return None;
    }
    // The events after `taken` are the last `seq - taken` of the replay buffer.
    let behind = (s.seq - c.taken) as usize;
    let first = s.replay.len() - behind.min(s.replay.len());
    let written = out.write_dispatches(s.replay.range(first..).map(|(seq, p)| (*seq, &***p)));
    c.taken = s.seq;
    match written {
        Written::Sent => None,
        Written::Queued(n) if n > MAX_QUEUED_BYTES => s.release(),
        // The connection flushes (or finds the socket failed).
        Written::Queued(_) | Written::Failed => {
            c.kicked = true;
            c.waker.take()
        }
    }
}

/// Writes the events of queued sessions into their connections, once the tasks that
/// dispatched them yield: events dispatched together reach each connection in one write. One
/// task, started with the first session it is given.
#[derive(Debug, Default)]
pub struct Flusher {
    queue: Mutex<Vec<Queued>>,
    wake: tokio::sync::Notify,
    started: std::sync::atomic::AtomicBool,
}

/// A session waiting for its flusher, with the addresses of its outbox and of its newest
/// replay entry, to prefetch (never read through): in a fan-out to thousands of connections,
/// each write would otherwise wait for that memory, cold since the dispatch.
#[derive(Debug)]
struct Queued {
    session: Arc<GatewaySession>,
    outbox: usize,
    newest: usize,
}

/// How many sessions ahead of its writes the flusher prefetches (a write is a `send`, several
/// microseconds: one or two ahead is time enough for the loads).
const PREFETCH_AHEAD: usize = 2;

impl Flusher {
    /// Queues `session`, whose outbox is at `outbox` and newest replay entry at `newest`.
    fn queue(self: &Arc<Self>, session: Arc<GatewaySession>, outbox: usize, newest: usize) {
        let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        let first = q.is_empty();
        q.push(Queued { session, outbox, newest });
        drop(q);
        if first {
            if !self.started.swap(true, std::sync::atomic::Ordering::AcqRel) {
                tokio::spawn(self.clone().run());
            }
            self.wake.notify_one();
        }
    }

    async fn run(self: Arc<Self>) {
        let mut batch = Vec::new();
        loop {
            self.wake.notified().await;
            self.write_all(&mut batch);
        }
    }

    /// Writes every queued session's events now.
    fn write_all(&self, batch: &mut Vec<Queued>) {
        std::mem::swap(&mut *self.queue.lock().unwrap_or_else(|p| p.into_inner()), batch);
        for i in 0..batch.len() {
            if let Some(next) = batch.get(i + PREFETCH_AHEAD) {
                next.session.prefetch();
                prefetch(next.outbox, std::mem::size_of::<Outbox>());
                prefetch(next.newest, 1);
            }
            batch[i].session.write_queued();
        }
        batch.clear();
    }
}

/// Asks the CPU to load the cache lines of the `len` bytes at `addr` ahead of their use. A
/// hint: it never faults and changes nothing the program reads, whatever the address.
#[inline]
fn prefetch(addr: usize, len: usize) {
    #[cfg(target_arch = "x86_64")]
    for line in (addr & !63..addr.saturating_add(len)).step_by(64) {
        // SAFETY: a prefetch reads nothing the program sees and does not fault on any address.
        unsafe { std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(line as *const i8) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (addr, len);
}

/// The process's flushers: one per core, so that writes to many connections run on every
/// core; each connection is given one for its life.
#[derive(Debug)]
pub struct Flushers(Vec<Arc<Flusher>>);

impl Default for Flushers {
    fn default() -> Self {
        let n = std::thread::available_parallelism().map_or(1, |n| n.get());
        Flushers((0..n).map(|_| Arc::default()).collect())
    }
}

impl Flushers {
    /// The flusher of connection `id`.
    pub fn of(&self, id: ConnId) -> &Arc<Flusher> {
        &self.0[(id.0 % self.0.len() as u64) as usize]
    }
}

/// The attached connection if it is `id`, or why `id` must stop.
fn attached(conn: &mut Option<Attached>, id: ConnId, ended: Option<u16>) -> Result<&mut Attached, Stop> {
    let other = conn.is_some();
    match conn {
        Some(c) if c.id == id => Ok(c),
        _ => Err(match ended {
            Some(code) => Stop::Ended(code),
            None if other => Stop::TakenOver,
            None => Stop::TooSlow,
        }),
    }
}

impl GatewaySession {
    pub fn new(id: String, user_id: UserId, family: String, status: Status, replay_cap: usize) -> Self {
        GatewaySession {
            id,
            user_id,
            family,
            inner: Mutex::new(Inner {
                seq: 0,
                replay: VecDeque::new(),
                replay_cap,
                conn: None,
                status,
                detached_at: Some(Instant::now()),
                ended: None,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Numbers the event, keeps it for replay and queues the session on the live connection's
    /// flusher. A connection too far behind is detached (it closes and the client resumes).
    pub fn dispatch(self: &Arc<Self>, payload: &Arc<Payload>) {
        let mut s = self.lock();
        if s.ended.is_some() {
            return;
        }
        s.seq += 1;
        let seq = s.seq;
        s.replay.push_back((seq, payload.clone()));
        let mut waker = None;
        let mut flusher = None;
        let mut outbox = 0;
        let too_slow = s.conn.as_ref().is_some_and(|c| seq - c.taken > OUTBOUND_QUEUE as u64);
        if too_slow {
            waker = s.release();
        } else if let Some(c) = &mut s.conn
            && let Some((o, f)) = &c.out
            && !c.queued
        {
            c.queued = true;
            outbox = Arc::as_ptr(o) as usize;
            flusher = Some(f.clone());
        }
        // The buffer keeps the last `replay_cap` events, and those the connection has not
        // taken yet (at most OUTBOUND_QUEUE more).
        let untaken = s.conn.as_ref().map_or(u64::MAX, |c| c.taken + 1);
        while s.replay.len() > s.replay_cap && s.replay.front().is_some_and(|(q, _)| *q < untaken) {
            s.replay.pop_front();
        }
        let newest = s.replay.back().map_or(0, |e| std::ptr::from_ref(e) as usize);
        drop(s);
        wake(waker);
        if let Some(f) = flusher {
            f.queue(self.clone(), outbox, newest);
        }
    }

    /// Asks the CPU to load this session's memory (its reference counts, lock and state): a
    /// fan-out calls it a few sessions ahead of the one it dispatches to or writes.
    #[inline]
    pub fn prefetch(self: &Arc<Self>) {
        // The reference counts are the two words before the data.
        let counts = 2 * std::mem::size_of::<usize>();
        prefetch(Arc::as_ptr(self) as usize - counts, counts + std::mem::size_of::<GatewaySession>());
    }

    /// Writes the events the live connection has not taken into its outbox, with one write.
    /// A connection whose socket leaves too much waiting is detached; one whose socket left
    /// some is woken to flush.
    pub fn write_queued(&self) {
        let mut s = self.lock();
        let waker = write_untaken(&mut s);
        drop(s);
        wake(waker);
    }

    /// Makes connection `id` live: the events it has not taken are written into `out` now, in
    /// order, and every event dispatched from now on by `flusher`. `Err` when the connection
    /// must close instead.
    pub fn go_live(&self, id: ConnId, out: &Arc<Outbox>, flusher: &Arc<Flusher>) -> Result<(), Stop> {
        let mut s = self.lock();
        let ended = s.ended;
        let c = attached(&mut s.conn, id, ended)?;
        c.out = Some((out.clone(), flusher.clone()));
        let waker = write_untaken(&mut s);
        drop(s);
        wake(waker);
        Ok(())
    }

    /// Waits for a reason for live connection `id` to act: `Ready(Ok)` to flush its outbox
    /// (the socket did not take a write at once) or to look at the server's state (a
    /// [`kick`](Self::kick)); `Ready(Err)` when it must close.
    pub fn poll_wake(&self, id: ConnId, cx: &mut Context<'_>) -> Poll<Result<(), Stop>> {
        let mut s = self.lock();
        let s = &mut *s;
        let c = match attached(&mut s.conn, id, s.ended) {
            Ok(c) => c,
            Err(stop) => return Poll::Ready(Err(stop)),
        };
        if c.silent {
            return Poll::Ready(Err(Stop::Silent));
        }
        if std::mem::take(&mut c.kicked) {
            return Poll::Ready(Ok(()));
        }
        match &mut c.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            w => *w = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    /// Wakes the attached connection without events, so that it looks at the server's state
    /// (e.g. shutdown). Connections wait for nothing but their session and their socket.
    pub fn kick(&self) {
        let mut s = self.lock();
        let waker = s.conn.as_mut().and_then(|c| {
            c.kicked = true;
            c.waker.take()
        });
        drop(s);
        wake(waker);
    }

    /// The client of connection `id` sent a frame: it is alive. The events dispatched before
    /// are written now if the flusher has not yet, so that any answer to the frame (a
    /// `HeartbeatAck`, an `Error`) comes after them, as a client syncing on a heartbeat expects.
    pub fn heard_from(&self, id: ConnId) {
        let mut s = self.lock();
        let Some(c) = s.conn.as_mut().filter(|c| c.id == id) else { return };
        c.heard = Instant::now();
        let waker = if c.queued { write_untaken(&mut s) } else { None };
        drop(s);
        wake(waker);
    }

    /// The heartbeat sweep: a connection whose client sent nothing for `timeout` is told to
    /// close (the session stays resumable).
    pub fn check_heartbeat(&self, now: Instant, timeout: Duration) {
        let mut s = self.lock();
        let waker = match &mut s.conn {
            Some(c) if !c.silent && now.saturating_duration_since(c.heard) >= timeout => {
                c.silent = true;
                c.waker.take()
            }
            _ => None,
        };
        drop(s);
        wake(waker);
    }

    /// Attaches a new connection; events dispatched from now on go to it.
    pub fn attach(&self, id: ConnId) {
        let old = self.lock().attach(id);
        wake(old);
    }

    /// Attaches a resuming connection and returns the events after `last_seq`, atomically, so
    /// that nothing is lost or doubled between the replay and the live stream. A connection
    /// attached before is told it was taken over.
    pub fn resume(&self, last_seq: u64, id: ConnId) -> Result<Batch, CannotResume> {
        let mut s = self.lock();
        let oldest_kept = s.replay.front().map(|(seq, _)| *seq).unwrap_or(s.seq + 1);
        if s.ended.is_some() || last_seq > s.seq || last_seq + 1 < oldest_kept {
            return Err(CannotResume);
        }
        let missed = s.replay.iter().filter(|(seq, _)| *seq > last_seq).cloned().collect();
        let old = s.attach(id);
        drop(s);
        wake(old);
        Ok(missed)
    }

    /// Detaches connection `id` if it is still the attached one (a resume may have replaced it).
    pub fn detach(&self, id: ConnId) -> bool {
        let mut s = self.lock();
        if s.conn.as_ref().is_some_and(|c| c.id == id) {
            s.conn = None;
            s.detached_at = Some(Instant::now());
            true
        } else {
            false
        }
    }

    /// Ends the session for good: its connection closes (with `SESSION_REVOKED`) and it
    /// cannot be resumed.
    pub fn end(&self) {
        self.end_with(close::SESSION_REVOKED);
    }

    /// Ends the session for good, its connection closing with `code` (e.g. `KICKED`,
    /// `BANNED`). The first reason given is kept.
    pub fn end_with(&self, code: u16) {
        let mut s = self.lock();
        s.ended.get_or_insert(code);
        let waker = s.release();
        drop(s);
        wake(waker);
    }

    pub fn is_attached(&self) -> bool {
        self.lock().conn.is_some()
    }

    pub fn is_ended(&self) -> bool {
        self.lock().ended.is_some()
    }

    /// When the connection went away, if it did.
    pub fn detached_at(&self) -> Option<Instant> {
        self.lock().detached_at
    }

    pub fn seq(&self) -> u64 {
        self.lock().seq
    }

    pub fn status(&self) -> Status {
        self.lock().status
    }

    pub fn set_status(&self, status: Status) {
        self.lock().status = status;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::outbox::ConnIo;
    use crate::gateway::outbox::tests::{pair, read_text, seq_of};
    use tokio::net::TcpStream;

    fn session(cap: usize) -> Arc<GatewaySession> {
        Arc::new(GatewaySession::new("s".into(), UserId(1), "f".into(), Status::Online, cap))
    }

    /// A flusher the test runs by hand ([`flush`]) instead of its task.
    fn flusher() -> Arc<Flusher> {
        let f = Arc::new(Flusher::default());
        f.started.store(true, std::sync::atomic::Ordering::SeqCst);
        f
    }

    /// Attaches a new connection to `s` and makes it live on `io`, written by `f`.
    fn live(s: &GatewaySession, io: &ConnIo, f: &Arc<Flusher>) -> ConnId {
        let conn = ConnId::next();
        s.attach(conn);
        s.go_live(conn, io.outbox(), f).unwrap();
        conn
    }

    /// Runs the flusher: how many sessions it wrote.
    fn flush(f: &Flusher) -> usize {
        let queued = f.queue.lock().unwrap().len();
        f.write_all(&mut Vec::new());
        queued
    }

    /// Reads `n` Dispatch frames, their sequence numbers.
    async fn read_seqs(client: &mut TcpStream, n: usize) -> Vec<u64> {
        let mut seqs = Vec::new();
        for _ in 0..n {
            seqs.push(seq_of(&read_text(client).await));
        }
        seqs
    }

    /// Counts wake-ups.
    struct Count(std::sync::atomic::AtomicUsize);
    impl std::task::Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }

    #[tokio::test]
    async fn resume_replays_exactly_what_was_missed() {
        let f = flusher();
        let s = session(16);
        let (io, mut client) = pair().await;
        let first = ConnId::next();
        s.attach(first);
        let ev = Payload::new("{}".into());
        s.dispatch(&ev);
        s.dispatch(&ev);
        assert_eq!(flush(&f), 0, "not live: nothing to write yet");
        s.go_live(first, io.outbox(), &f).unwrap();
        s.dispatch(&ev);
        flush(&f);
        assert_eq!(read_seqs(&mut client, 3).await, vec![1, 2, 3], "queued before going live, then live");
        // The client saw up to 2 when the socket dropped.
        assert!(s.detach(first));
        s.dispatch(&ev);
        s.dispatch(&ev);
        let second = ConnId::next();
        let missed: Vec<u64> = s.resume(2, second).unwrap().into_iter().map(|(seq, _)| seq).collect();
        assert_eq!(missed, vec![3, 4, 5]);
        s.dispatch(&ev);
        let (io, mut client) = pair().await;
        s.go_live(second, io.outbox(), &f).unwrap();
        s.dispatch(&ev);
        flush(&f);
        assert_eq!(read_seqs(&mut client, 2).await, vec![6, 7], "nothing replayed twice");
    }

    #[tokio::test]
    async fn events_dispatched_together_are_written_together_in_order() {
        let f = flusher();
        let (a, b) = (session(16), session(16));
        let (io_a, mut client_a) = pair().await;
        let (io_b, mut client_b) = pair().await;
        for (s, io) in [(&a, &io_a), (&b, &io_b)] {
            live(s, io, &f);
        }
        let ev = Payload::new("{}".into());
        for _ in 0..5 {
            a.dispatch(&ev);
            b.dispatch(&ev);
        }
        assert_eq!(flush(&f), 2, "each session queued once for its five events");
        assert_eq!(read_seqs(&mut client_a, 5).await, vec![1, 2, 3, 4, 5]);
        assert_eq!(read_seqs(&mut client_b, 5).await, vec![1, 2, 3, 4, 5]);
        a.dispatch(&ev);
        assert_eq!(flush(&f), 1);
        assert_eq!(read_seqs(&mut client_a, 1).await, vec![6]);
    }

    #[tokio::test]
    async fn a_frame_from_the_client_writes_the_events_dispatched_before_any_answer_to_it() {
        let f = flusher();
        let s = session(16);
        let (io, mut client) = pair().await;
        let conn = live(&s, &io, &f);
        let ev = Payload::new("{}".into());
        s.dispatch(&ev);
        s.dispatch(&ev);
        s.heard_from(conn);
        assert_eq!(read_seqs(&mut client, 2).await, vec![1, 2], "written before the flusher ran");
        assert_eq!(flush(&f), 1, "the flusher finds nothing left to write");
        s.dispatch(&ev);
        s.write_queued();
        assert_eq!(read_seqs(&mut client, 1).await, vec![3]);
    }

    #[tokio::test]
    async fn the_flusher_task_writes_once_the_dispatcher_yields() {
        let f = Arc::new(Flusher::default());
        let s = session(16);
        let (io, mut client) = pair().await;
        live(&s, &io, &f);
        s.dispatch(&Payload::new("{}".into()));
        assert_eq!(read_seqs(&mut client, 1).await, vec![1]);
    }

    #[test]
    fn resume_is_refused_when_events_were_dropped_or_seq_is_from_the_future() {
        let s = session(4);
        let ev = Payload::new("{}".into());
        for _ in 0..10 {
            s.dispatch(&ev);
        }
        assert_eq!(s.resume(2, ConnId::next()), Err(CannotResume));
        assert_eq!(s.resume(11, ConnId::next()), Err(CannotResume));
        assert_eq!(s.resume(6, ConnId::next()).unwrap().len(), 4);
        assert_eq!(s.resume(10, ConnId::next()).unwrap().len(), 0);
    }

    #[tokio::test]
    async fn a_connection_too_far_behind_is_detached_but_keeps_its_events() {
        let f = flusher();
        let s = session(4096);
        let (io, _client) = pair().await;
        let conn = ConnId::next();
        s.attach(conn);
        let ev = Payload::new("{}".into());
        for _ in 0..OUTBOUND_QUEUE {
            s.dispatch(&ev);
        }
        assert!(s.is_attached(), "exactly the queue's worth is not too slow");
        s.dispatch(&ev);
        assert!(!s.is_attached());
        assert_eq!(s.go_live(conn, io.outbox(), &f), Err(Stop::TooSlow));
        let missed = s.resume(0, ConnId::next()).unwrap();
        assert_eq!(missed.len(), OUTBOUND_QUEUE + 1);
    }

    #[tokio::test]
    async fn a_live_connection_whose_client_stops_reading_is_detached_and_can_resume() {
        let f = flusher();
        let s = session(64);
        let (io, _client_not_reading) = pair().await;
        let conn = live(&s, &io, &f);
        let big = Payload::new(format!(r#"{{"t":"x","pad":"{}"}}"#, "a".repeat(64 * 1024)));
        let mut sent = 0;
        while s.is_attached() {
            s.dispatch(&big);
            flush(&f);
            sent += 1;
            assert!(sent < 10_000, "never detached");
        }
        assert!(io.outbox().queued() > MAX_QUEUED_BYTES);
        let waker = Waker::noop();
        let mut cx = Context::from_waker(waker);
        assert_eq!(s.poll_wake(conn, &mut cx), Poll::Ready(Err(Stop::TooSlow)));
        // The events the socket did not take are still in the replay buffer.
        assert!(s.resume(sent - 60, ConnId::next()).is_ok());
    }

    #[tokio::test]
    async fn the_replay_buffer_keeps_what_the_connection_has_not_taken() {
        let f = flusher();
        let s = session(16);
        let (io, mut client) = pair().await;
        let conn = ConnId::next();
        s.attach(conn);
        let ev = Payload::new("{}".into());
        for _ in 0..100 {
            s.dispatch(&ev);
        }
        s.go_live(conn, io.outbox(), &f).unwrap();
        io.outbox().flush().await.unwrap();
        assert_eq!(
            read_seqs(&mut client, 100).await,
            (1..=100).collect::<Vec<_>>(),
            "a burst over the replay size arrives"
        );
        s.dispatch(&ev);
        assert_eq!(s.resume(85, ConnId::next()).unwrap().len(), 16, "taken events trimmed to the last 16");
        assert_eq!(s.resume(84, ConnId::next()), Err(CannotResume));
    }

    #[tokio::test]
    async fn a_live_connection_is_woken_to_flush_and_by_every_reason_to_stop_but_not_per_event() {
        let f = flusher();
        let ev = Payload::new("{}".into());
        let count = Arc::new(Count(0.into()));
        let waker = Waker::from(count.clone());
        let mut cx = Context::from_waker(&waker);
        let woken = || count.0.load(std::sync::atomic::Ordering::SeqCst);
        let (io, mut client) = pair().await;
        let s = session(16);
        let conn = live(&s, &io, &f);
        assert!(s.poll_wake(conn, &mut cx).is_pending());
        s.dispatch(&ev);
        s.dispatch(&ev);
        flush(&f);
        assert_eq!(read_seqs(&mut client, 2).await, vec![1, 2]);
        assert_eq!(woken(), 0, "events the socket takes wake nobody");

        s.kick();
        assert_eq!(woken(), 1);
        assert_eq!(s.poll_wake(conn, &mut cx), Poll::Ready(Ok(())), "kicked");
        assert!(s.poll_wake(conn, &mut cx).is_pending(), "a kick wakes once");
        s.check_heartbeat(Instant::now(), Duration::from_secs(60));
        assert_eq!(woken(), 1, "a client heard from just now is not silent");
        s.check_heartbeat(Instant::now() + Duration::from_secs(61), Duration::from_secs(60));
        assert_eq!(woken(), 2);
        assert_eq!(s.poll_wake(conn, &mut cx), Poll::Ready(Err(Stop::Silent)));

        let s = session(16);
        let (io, _client_not_reading) = pair().await;
        let conn = live(&s, &io, &f);
        assert!(s.poll_wake(conn, &mut cx).is_pending());
        let big = Payload::new(format!(r#"{{"t":"x","pad":"{}"}}"#, "a".repeat(64 * 1024)));
        while io.outbox().queued() == 0 {
            s.dispatch(&big);
            flush(&f);
        }
        assert_eq!(woken(), 3, "woken once the socket leaves bytes waiting");
        assert_eq!(s.poll_wake(conn, &mut cx), Poll::Ready(Ok(())), "to flush");

        let s = session(16);
        let conn = live(&s, &io, &f);
        assert!(s.poll_wake(conn, &mut cx).is_pending());
        s.resume(0, ConnId::next()).unwrap();
        assert_eq!(woken(), 4);
        assert_eq!(s.poll_wake(conn, &mut cx), Poll::Ready(Err(Stop::TakenOver)));

        let s = session(16);
        let conn = live(&s, &io, &f);
        assert!(s.poll_wake(conn, &mut cx).is_pending());
        s.end_with(close::KICKED);
        assert_eq!(woken(), 5);
        assert_eq!(s.poll_wake(conn, &mut cx), Poll::Ready(Err(Stop::Ended(close::KICKED))));
    }

    #[test]
    fn an_old_connection_cannot_detach_its_successor() {
        let s = session(8);
        let old_id = ConnId::next();
        s.attach(old_id);
        s.resume(0, ConnId::next()).unwrap();
        assert!(!s.detach(old_id));
        assert!(s.is_attached());
    }
}
