//! A gateway session: the numbered stream of events for one device of one user. It outlives
//! its WebSocket connection for the resume window, keeping the last events in a bounded
//! replay buffer so that a client that reconnects gets exactly what it missed.
//!
//! The replay buffer is also the queue to the attached connection: the connection takes the
//! events after the last one it took ([`GatewaySession::poll_take`]) and a dispatch wakes it.
//! No channel in between: one lock per dispatch and one per batch taken, and each event is
//! stored once. A connection that falls [`OUTBOUND_QUEUE`] events behind is detached (too
//! slow; it closes and the client resumes); until it takes them, its events stay in the
//! replay buffer even past the buffer's size.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use hearth_protocol::UserId;
use hearth_protocol::gateway::close;
use hearth_protocol::model::Status;

/// How far an attached connection may fall behind (events dispatched but not taken) before it
/// is detached as too slow. It may resume from the replay buffer.
pub const OUTBOUND_QUEUE: usize = 1024;

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
    /// Woken for another reason than events (see [`GatewaySession::kick`]).
    kicked: bool,
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
            Stop::Ended(code) => (code, match code {
                close::BANNED => "banned from the group",
                close::KICKED => "removed from the group",
                _ => "session ended",
            }),
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

    /// Numbers the event, keeps it for replay and wakes the attached connection. A connection
    /// too far behind is detached (it closes and the client resumes).
    pub fn dispatch(&self, payload: &Arc<Payload>) {
        let mut s = self.lock();
        if s.ended.is_some() {
            return;
        }
        s.seq += 1;
        let seq = s.seq;
        s.replay.push_back((seq, payload.clone()));
        let too_slow = s.conn.as_ref().is_some_and(|c| seq - c.taken > OUTBOUND_QUEUE as u64);
        let waker = if too_slow { s.release() } else { s.conn.as_mut().and_then(|c| c.waker.take()) };
        // The buffer keeps the last `replay_cap` events, and those the connection has not
        // taken yet (at most OUTBOUND_QUEUE more).
        let untaken = s.conn.as_ref().map_or(u64::MAX, |c| c.taken + 1);
        while s.replay.len() > s.replay_cap && s.replay.front().is_some_and(|(q, _)| *q < untaken) {
            s.replay.pop_front();
        }
        drop(s);
        wake(waker);
    }

    /// Hands up to `max` events that connection `id` has not taken yet to `take`, in order;
    /// when there are none, the connection is woken by the next dispatch (or a
    /// [`kick`](Self::kick): then `Ready(Ok)` with nothing taken). `Ready(Err)` when the
    /// connection must close. `take` runs under the session's lock: the connection builds its
    /// frames there, from the shared payload, without a reference count of its own.
    pub fn poll_take(
        &self,
        id: ConnId,
        cx: &mut Context<'_>,
        max: usize,
        mut take: impl FnMut(u64, &str),
    ) -> Poll<Result<(), Stop>> {
        let mut s = self.lock();
        let s = &mut *s;
        let c = match &mut s.conn {
            Some(c) if c.id == id => c,
            _ => {
                return Poll::Ready(Err(match s.ended {
                    Some(code) => Stop::Ended(code),
                    None if s.conn.is_some() => Stop::TakenOver,
                    None => Stop::TooSlow,
                }));
            }
        };
        if c.silent {
            return Poll::Ready(Err(Stop::Silent));
        }
        if std::mem::take(&mut c.kicked) {
            return Poll::Ready(Ok(()));
        }
        if c.taken == s.seq {
            match &mut c.waker {
                Some(w) if w.will_wake(cx.waker()) => {}
                w => *w = Some(cx.waker().clone()),
            }
            return Poll::Pending;
        }
        // The events after `taken` are the last `seq - taken` of the replay buffer.
        let behind = (s.seq - c.taken) as usize;
        let first = s.replay.len() - behind.min(s.replay.len());
        for (seq, payload) in s.replay.range(first..).take(max) {
            take(*seq, payload);
            c.taken = *seq;
        }
        Poll::Ready(Ok(()))
    }

    /// [`poll_take`](Self::poll_take) without waiting: `Ok` with nothing taken when nothing
    /// is queued.
    pub fn take(&self, id: ConnId, max: usize, take: impl FnMut(u64, &str)) -> Result<(), Stop> {
        let mut cx = Context::from_waker(Waker::noop());
        match self.poll_take(id, &mut cx, max, take) {
            Poll::Ready(r) => r,
            Poll::Pending => Ok(()),
        }
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

    /// The client of connection `id` sent a frame: it is alive.
    pub fn heard_from(&self, id: ConnId) {
        if let Some(c) = self.lock().conn.as_mut().filter(|c| c.id == id) {
            c.heard = Instant::now();
        }
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

    fn session(cap: usize) -> GatewaySession {
        GatewaySession::new("s".into(), UserId(1), "f".into(), Status::Online, cap)
    }

    fn drain(s: &GatewaySession, id: ConnId) -> Result<Vec<u64>, Stop> {
        let mut out = Vec::new();
        s.take(id, usize::MAX, |seq, _| out.push(seq))?;
        Ok(out)
    }

    /// Counts wake-ups.
    struct Count(std::sync::atomic::AtomicUsize);
    impl std::task::Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }

    #[test]
    fn resume_replays_exactly_what_was_missed() {
        let s = session(16);
        let first = ConnId::next();
        s.attach(first);
        let ev = Payload::new("{}".into());
        for _ in 0..3 {
            s.dispatch(&ev);
        }
        assert_eq!(drain(&s, first), Ok(vec![1, 2, 3]));
        // The client saw up to 2 when the socket dropped.
        assert!(s.detach(first));
        s.dispatch(&ev);
        s.dispatch(&ev);
        let second = ConnId::next();
        let missed: Vec<u64> = s.resume(2, second).unwrap().into_iter().map(|(seq, _)| seq).collect();
        assert_eq!(missed, vec![3, 4, 5]);
        s.dispatch(&ev);
        assert_eq!(drain(&s, second), Ok(vec![6]));
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

    #[test]
    fn a_connection_too_far_behind_is_detached_but_keeps_its_events() {
        let s = session(4096);
        let conn = ConnId::next();
        s.attach(conn);
        let ev = Payload::new("{}".into());
        for _ in 0..OUTBOUND_QUEUE {
            s.dispatch(&ev);
        }
        assert!(s.is_attached(), "exactly the queue's worth is not too slow");
        s.dispatch(&ev);
        assert!(!s.is_attached());
        assert_eq!(drain(&s, conn), Err(Stop::TooSlow));
        let missed = s.resume(0, ConnId::next()).unwrap();
        assert_eq!(missed.len(), OUTBOUND_QUEUE + 1);
    }

    #[test]
    fn the_replay_buffer_keeps_what_the_connection_has_not_taken() {
        let s = session(16);
        let conn = ConnId::next();
        s.attach(conn);
        let ev = Payload::new("{}".into());
        for _ in 0..100 {
            s.dispatch(&ev);
        }
        assert_eq!(drain(&s, conn), Ok((1..=100).collect::<Vec<_>>()), "a burst over the replay size arrives");
        s.dispatch(&ev);
        assert_eq!(s.resume(85, ConnId::next()).unwrap().len(), 16, "taken events trimmed to the last 16");
        assert_eq!(s.resume(84, ConnId::next()), Err(CannotResume));
    }

    #[test]
    fn a_waiting_connection_is_woken_by_a_dispatch_and_by_every_reason_to_stop() {
        let ev = Payload::new("{}".into());
        let count = Arc::new(Count(0.into()));
        let waker = Waker::from(count.clone());
        let mut cx = Context::from_waker(&waker);
        let woken = || count.0.load(std::sync::atomic::Ordering::SeqCst);
        let s = session(16);
        let conn = ConnId::next();
        s.attach(conn);
        let mut out = Vec::new();
        assert!(s.poll_take(conn, &mut cx, 64, |seq, _| out.push(seq)).is_pending());
        s.dispatch(&ev);
        s.dispatch(&ev);
        assert_eq!(woken(), 1, "one wake-up for events dispatched before the connection ran");
        assert_eq!(s.poll_take(conn, &mut cx, 1, |seq, _| out.push(seq)), Poll::Ready(Ok(())));
        assert_eq!(s.poll_take(conn, &mut cx, 64, |seq, _| out.push(seq)), Poll::Ready(Ok(())));
        assert_eq!(out, vec![1, 2], "in order, max respected");

        assert!(s.poll_take(conn, &mut cx, 64, |seq, _| out.push(seq)).is_pending());
        s.kick();
        assert_eq!(woken(), 2);
        assert_eq!(s.poll_take(conn, &mut cx, 64, |seq, _| out.push(seq)), Poll::Ready(Ok(())), "kicked");
        assert_eq!(out.len(), 2, "nothing taken on a kick");
        assert!(s.poll_take(conn, &mut cx, 64, |seq, _| out.push(seq)).is_pending(), "a kick wakes once");
        s.check_heartbeat(Instant::now(), Duration::from_secs(60));
        assert_eq!(woken(), 2, "a client heard from just now is not silent");
        s.check_heartbeat(Instant::now() + Duration::from_secs(61), Duration::from_secs(60));
        assert_eq!(woken(), 3);
        assert_eq!(s.poll_take(conn, &mut cx, 64, |seq, _| out.push(seq)), Poll::Ready(Err(Stop::Silent)));

        let s = session(16);
        s.attach(conn);
        assert!(s.poll_take(conn, &mut cx, 64, |seq, _| out.push(seq)).is_pending());
        s.resume(0, ConnId::next()).unwrap();
        assert_eq!(woken(), 4);
        assert_eq!(s.poll_take(conn, &mut cx, 64, |seq, _| out.push(seq)), Poll::Ready(Err(Stop::TakenOver)));

        let s = session(16);
        s.attach(conn);
        assert!(s.poll_take(conn, &mut cx, 64, |seq, _| out.push(seq)).is_pending());
        s.end_with(close::KICKED);
        assert_eq!(woken(), 5);
        assert_eq!(s.poll_take(conn, &mut cx, 64, |seq, _| out.push(seq)), Poll::Ready(Err(Stop::Ended(close::KICKED))));
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
