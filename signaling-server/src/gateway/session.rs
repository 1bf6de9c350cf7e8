//! A gateway session: the numbered stream of events for one device of one user. It outlives
//! its WebSocket connection for the resume window, keeping the last events in a bounded
//! replay buffer so that a client that reconnects gets exactly what it missed.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use hearth_protocol::UserId;
use hearth_protocol::gateway::close;
use hearth_protocol::model::Status;
use tokio::sync::mpsc;

/// What the session hands its connection task to write.
#[derive(Debug)]
pub enum Outbound {
    /// A serialized `Event`, written as a `Dispatch` frame with this `seq`.
    Event { seq: u64, payload: Arc<str> },
}

/// Capacity of the queue between a session and its connection. A client that lets this many
/// events pile up is too slow: it is disconnected and may resume from the replay buffer.
pub const OUTBOUND_QUEUE: usize = 1024;

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
    replay: VecDeque<(u64, Arc<str>)>,
    replay_cap: usize,
    /// The attached connection: its queue and its id. The session holds the only sender, so
    /// dropping it here (end, take-over, slow reader) is what tells the connection to close.
    conn: Option<(ConnId, mpsc::Sender<Outbound>)>,
    status: Status,
    detached_at: Option<Instant>,
    /// Set once the session ended: the close code its connection is closed with.
    ended: Option<u16>,
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

    /// Numbers the event, keeps it for replay and passes it to the connection if one is
    /// attached. A full queue detaches the connection (it closes and the client resumes).
    pub fn dispatch(&self, payload: &Arc<str>) {
        let mut s = self.lock();
        if s.ended.is_some() {
            return;
        }
        s.seq += 1;
        let seq = s.seq;
        if s.replay.len() == s.replay_cap {
            s.replay.pop_front();
        }
        s.replay.push_back((seq, payload.clone()));
        if let Some((_, conn)) = &s.conn
            && conn.try_send(Outbound::Event { seq, payload: payload.clone() }).is_err()
        {
            s.conn = None;
            s.detached_at = Some(Instant::now());
        }
    }

    /// Attaches a new connection; events dispatched from now on go to it.
    pub fn attach(&self, id: ConnId, conn: mpsc::Sender<Outbound>) {
        let mut s = self.lock();
        s.conn = Some((id, conn));
        s.detached_at = None;
    }

    /// Attaches a resuming connection and returns the events after `last_seq`, atomically, so
    /// that nothing is lost or doubled between the replay and the live stream.
    pub fn resume(
        &self,
        last_seq: u64,
        id: ConnId,
        conn: mpsc::Sender<Outbound>,
    ) -> Result<Vec<(u64, Arc<str>)>, CannotResume> {
        let mut s = self.lock();
        let oldest_kept = s.replay.front().map(|(seq, _)| *seq).unwrap_or(s.seq + 1);
        if s.ended.is_some() || last_seq > s.seq || last_seq + 1 < oldest_kept {
            return Err(CannotResume);
        }
        let missed = s.replay.iter().filter(|(seq, _)| *seq > last_seq).cloned().collect();
        s.conn = Some((id, conn));
        s.detached_at = None;
        Ok(missed)
    }

    /// Detaches connection `id` if it is still the attached one (a resume may have replaced it).
    pub fn detach(&self, id: ConnId) -> bool {
        let mut s = self.lock();
        if s.conn.as_ref().is_some_and(|(c, _)| *c == id) {
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
        s.conn = None;
        s.detached_at.get_or_insert_with(Instant::now);
    }

    pub fn is_attached(&self) -> bool {
        self.lock().conn.is_some()
    }

    pub fn is_ended(&self) -> bool {
        self.lock().ended.is_some()
    }

    /// The close code the session ended with, if it ended.
    pub fn ended_with(&self) -> Option<u16> {
        self.lock().ended
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

    fn drain(rx: &mut mpsc::Receiver<Outbound>) -> Vec<u64> {
        let mut seqs = Vec::new();
        while let Ok(Outbound::Event { seq, .. }) = rx.try_recv() {
            seqs.push(seq);
        }
        seqs
    }

    #[test]
    fn resume_replays_exactly_what_was_missed() {
        let s = session(16);
        let (tx, mut rx) = mpsc::channel(16);
        let first = ConnId::next();
        s.attach(first, tx);
        let ev: Arc<str> = Arc::from("{}");
        for _ in 0..3 {
            s.dispatch(&ev);
        }
        assert_eq!(drain(&mut rx), vec![1, 2, 3]);
        // The client saw up to 2 when the socket dropped.
        assert!(s.detach(first));
        s.dispatch(&ev);
        s.dispatch(&ev);
        let (tx2, mut rx2) = mpsc::channel(16);
        let missed: Vec<u64> =
            s.resume(2, ConnId::next(), tx2).unwrap().into_iter().map(|(seq, _)| seq).collect();
        assert_eq!(missed, vec![3, 4, 5]);
        s.dispatch(&ev);
        assert_eq!(drain(&mut rx2), vec![6]);
    }

    #[test]
    fn resume_is_refused_when_events_were_dropped_or_seq_is_from_the_future() {
        let s = session(4);
        let ev: Arc<str> = Arc::from("{}");
        for _ in 0..10 {
            s.dispatch(&ev);
        }
        let (tx, _rx) = mpsc::channel(16);
        assert_eq!(s.resume(2, ConnId::next(), tx.clone()), Err(CannotResume));
        assert_eq!(s.resume(11, ConnId::next(), tx.clone()), Err(CannotResume));
        assert_eq!(s.resume(6, ConnId::next(), tx.clone()).unwrap().len(), 4);
        assert_eq!(s.resume(10, ConnId::next(), tx).unwrap().len(), 0);
    }

    #[test]
    fn a_full_queue_detaches_the_slow_connection_but_keeps_events() {
        let s = session(64);
        let (tx, mut rx) = mpsc::channel(2);
        s.attach(ConnId::next(), tx);
        let ev: Arc<str> = Arc::from("{}");
        for _ in 0..5 {
            s.dispatch(&ev);
        }
        assert!(!s.is_attached());
        assert_eq!(drain(&mut rx), vec![1, 2]);
        let (tx2, _rx2) = mpsc::channel(16);
        assert_eq!(s.resume(2, ConnId::next(), tx2).unwrap().len(), 3);
    }

    #[test]
    fn ending_a_session_closes_its_connection_queue() {
        let s = session(8);
        let (tx, mut rx) = mpsc::channel(4);
        s.attach(ConnId::next(), tx);
        s.end();
        // The session held the only sender: the connection sees its queue close.
        assert!(matches!(rx.try_recv(), Err(mpsc::error::TryRecvError::Disconnected)));
    }

    #[test]
    fn an_old_connection_cannot_detach_its_successor() {
        let s = session(8);
        let (old, _a) = mpsc::channel(4);
        let (new, _b) = mpsc::channel(4);
        let old_id = ConnId::next();
        s.attach(old_id, old);
        s.resume(0, ConnId::next(), new).unwrap();
        assert!(!s.detach(old_id));
        assert!(s.is_attached());
    }
}
