//! The bookkeeping of one transfer as a sans-IO state machine: it is told what happened (the
//! user's choices, the peer's signals, the link coming up or going, chunks verified or found
//! corrupt) and when, and answers with what to do (signal the peer, open or close the link,
//! request chunks, finalize or delete files, save the record). No sockets, files or clock:
//! the transfer task does the I/O and passes `now`, so the tests run on fake time.
//!
//! Offer → accept/decline → connect → chunks → verify → done, with pause/resume/cancel on
//! both sides. Pausing closes the link; only the side that paused resumes. The receiver
//! drives: it opens every connection (after a drop, with backoff), asks for the chunks it
//! lacks, asks again for a corrupt one (at most [`MAX_CHUNK_RETRIES`] times), and treats a
//! link that delivers nothing for [`STALL`] as dropped. Its record of verified chunks is what
//! a restart resumes from.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use super::wire::ChunkRange;

/// A link that moves nothing for this long while chunks are due counts as dropped.
pub const STALL: Duration = Duration::from_secs(20);
/// How often the record of verified chunks is saved while chunks arrive.
pub const PERSIST_EVERY: Duration = Duration::from_secs(2);
/// A chunk corrupt this many times fails the transfer (something is badly wrong).
pub const MAX_CHUNK_RETRIES: u8 = 5;
/// A file whose whole hash is wrong after every chunk checked is fetched again once.
const MAX_FILE_RETRIES: u8 = 1;
/// Reconnect waits: 1 s doubling to 30 s.
const RETRY_FIRST: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(30);
/// Speed is measured over this window.
const SPEED_WINDOW: Duration = Duration::from_secs(4);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Send,
    Receive,
}

/// Where a transfer stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase {
    /// Proposed; the receiver has not decided.
    Offered,
    /// Accepted (or resuming); the link is being set up.
    Connecting,
    /// Chunks are moving.
    Moving,
    /// Stopped by one side until that side resumes; no link.
    Paused {
        by_me: bool,
    },
    /// The link dropped (or the peer is offline): the receiver reconnects at `retry_at`, the
    /// sender waits for it.
    Waiting {
        retry_at: Option<Instant>,
    },
    Done,
    Declined,
    Cancelled {
        by_me: bool,
    },
    Failed(String),
    /// Another device of ours accepted the offer (receiver).
    TakenElsewhere,
}

impl Phase {
    pub fn is_over(&self) -> bool {
        matches!(
            self,
            Phase::Done
                | Phase::Declined
                | Phase::Cancelled { .. }
                | Phase::Failed(_)
                | Phase::TakenElsewhere
        )
    }
}

/// A signal to the peer that is not part of the link's own negotiation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Say {
    Decline,
    Pause,
    Resume,
    Cancel,
    Done,
    /// To our own other devices.
    Taken,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    // The user, on this device.
    Accept,
    Decline,
    Pause,
    Resume,
    Cancel,
    // The peer, through the server.
    PeerDeclined,
    PeerPaused,
    PeerResumed,
    PeerCancelled,
    PeerDone,
    TakenElsewhere,
    /// The server did not relay our signal: `offline` (try later) or for good.
    Refused {
        offline: bool,
        reason: String,
    },
    // The link.
    /// The sender got a connection attempt from the receiver.
    Connecting,
    LinkUp,
    LinkDown,
    /// Receiver: the manifest arrived and matches; sizes of the files in chunks.
    Manifest {
        chunks: Vec<u64>,
    },
    ChunkVerified {
        file: u32,
        index: u64,
        bytes: u64,
    },
    ChunkCorrupt {
        file: u32,
        index: u64,
    },
    /// Every chunk of the file is on disk and the whole file has the announced hash.
    FileVerified {
        file: u32,
    },
    FileMismatch {
        file: u32,
    },
    /// Sender: a chunk went out (progress only).
    ChunkSent {
        bytes: u64,
    },
    /// Something outside the protocol broke (a file cannot be read or written).
    Broken(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    Say(Say),
    /// Receiver: build a connection and send `Connect`.
    OpenLink,
    CloseLink,
    Request(Vec<ChunkRange>),
    /// Receiver: hash the whole file (every chunk is verified).
    CheckFile(u32),
    /// Receiver: rename the partial files to their final names.
    Finalize,
    /// Receiver: remove partial files and anything created for them.
    DeletePartial,
    /// Save the record (verified chunks, phase).
    Persist,
    /// Something the user sees changed.
    Changed,
}

/// Which chunks of one file are verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileChunks {
    pub count: u64,
    /// One bit per chunk.
    pub bits: Vec<u64>,
    pub verified: u64,
    /// The whole file checked out.
    pub complete: bool,
    retries: u8,
}

impl FileChunks {
    pub fn new(count: u64) -> FileChunks {
        FileChunks {
            count,
            bits: vec![0; count.div_ceil(64) as usize],
            verified: 0,
            complete: false,
            retries: 0,
        }
    }

    /// From a saved bitmap (bits beyond `count` are ignored).
    pub fn from_bits(count: u64, mut bits: Vec<u64>) -> FileChunks {
        bits.resize(count.div_ceil(64) as usize, 0);
        let mut f = FileChunks { count, bits, verified: 0, complete: false, retries: 0 };
        if let Some(last) = f.bits.last_mut()
            && !count.is_multiple_of(64)
        {
            *last &= (1u64 << (count % 64)) - 1;
        }
        f.verified = f.bits.iter().map(|w| u64::from(w.count_ones())).sum();
        f
    }

    pub fn has(&self, index: u64) -> bool {
        index < self.count && self.bits[(index / 64) as usize] & (1 << (index % 64)) != 0
    }

    fn set(&mut self, index: u64) -> bool {
        if index >= self.count || self.has(index) {
            return false;
        }
        self.bits[(index / 64) as usize] |= 1 << (index % 64);
        self.verified += 1;
        true
    }

    fn clear(&mut self) {
        self.bits.iter_mut().for_each(|w| *w = 0);
        self.verified = 0;
        self.complete = false;
    }

    /// The missing chunks as ranges.
    fn missing(&self, file: u32, out: &mut Vec<ChunkRange>) {
        let mut i = 0;
        while i < self.count {
            if self.has(i) {
                i += 1;
                continue;
            }
            let first = i;
            while i < self.count && !self.has(i) {
                i += 1;
            }
            out.push(ChunkRange { file, first, end: i });
        }
    }
}

/// A view of progress for the app.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Progress {
    pub bytes_done: u64,
    pub bytes_total: u64,
    /// Bytes per second over the last few seconds; `None` until measured.
    pub speed: Option<f64>,
    /// Time left at that speed.
    pub eta: Option<Duration>,
    /// Chunks that arrived corrupt and were asked for again.
    pub refetched: u32,
}

/// One transfer's bookkeeping.
#[derive(Debug)]
pub struct Machine {
    role: Role,
    phase: Phase,
    total: u64,
    done: u64,
    /// Receiver: per file; empty until the manifest is known.
    files: Vec<FileChunks>,
    /// Receiver: chunks asked for again, per (file, index).
    retries: HashMap<(u32, u64), u8>,
    /// Receiver: chunks requested and not yet in.
    outstanding: u64,
    attempts: u32,
    refetched: u32,
    last_progress: Instant,
    persist_due: Option<Instant>,
    samples: VecDeque<(Instant, u64)>,
    out: VecDeque<Output>,
}

impl Machine {
    /// A new transfer: the sender just proposed it, or the receiver was just offered it.
    pub fn new(role: Role, total: u64, now: Instant) -> Machine {
        Machine {
            role,
            phase: Phase::Offered,
            total,
            done: 0,
            files: Vec::new(),
            retries: HashMap::new(),
            outstanding: 0,
            attempts: 0,
            refetched: 0,
            last_progress: now,
            persist_due: None,
            samples: VecDeque::new(),
            out: VecDeque::new(),
        }
    }

    /// A transfer taken up again from its record after a restart. `files` (receiver) are the
    /// saved verified chunks. A transfer we had paused stays paused; any other reconnects: the
    /// receiver at once, the sender tells the receiver it is back.
    pub fn restore(
        role: Role,
        total: u64,
        files: Vec<FileChunks>,
        paused_by_me: bool,
        now: Instant,
    ) -> Machine {
        let mut m = Machine::new(role, total, now);
        m.done =
            files.iter().map(|f| f.verified).sum::<u64>().saturating_mul(u64::from(super::wire::CHUNK_SIZE));
        m.done = m.done.min(total);
        m.files = files;
        if paused_by_me {
            m.phase = Phase::Paused { by_me: true };
        } else {
            m.phase = Phase::Waiting { retry_at: None };
            match role {
                Role::Receive => m.open(),
                Role::Send => m.out.push_back(Output::Say(Say::Resume)),
            }
        }
        m
    }

    pub fn role(&self) -> Role {
        self.role
    }

    pub fn phase(&self) -> &Phase {
        &self.phase
    }

    pub fn files(&self) -> &[FileChunks] {
        &self.files
    }

    pub fn progress(&self) -> Progress {
        let speed = match (self.samples.front(), self.samples.back()) {
            (Some(a), Some(b)) if b.0 > a.0 && self.phase == Phase::Moving => {
                Some((b.1 - a.1) as f64 / (b.0 - a.0).as_secs_f64())
            }
            _ => None,
        };
        let eta = speed
            .filter(|s| *s > 0.0)
            .map(|s| Duration::from_secs_f64(self.total.saturating_sub(self.done) as f64 / s));
        Progress { bytes_done: self.done, bytes_total: self.total, speed, eta, refetched: self.refetched }
    }

    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// When [`Machine::handle_timeout`] wants to run next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let retry = match self.phase {
            Phase::Waiting { retry_at } => retry_at,
            _ => None,
        };
        let stall = (self.phase == Phase::Moving && self.role == Role::Receive && self.outstanding > 0)
            .then(|| self.last_progress + STALL);
        [retry, stall, self.persist_due].into_iter().flatten().min()
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        if self.persist_due.is_some_and(|t| t <= now) {
            self.persist_due = None;
            self.out.push_back(Output::Persist);
        }
        match self.phase {
            Phase::Waiting { retry_at: Some(t) } if t <= now => self.open(),
            Phase::Moving
                if self.role == Role::Receive
                    && self.outstanding > 0
                    && now >= self.last_progress + STALL =>
            {
                self.link_lost(now)
            }
            _ => {}
        }
    }

    pub fn handle(&mut self, input: Input, now: Instant) {
        if self.phase.is_over() {
            return;
        }
        match input {
            Input::Accept if self.role == Role::Receive && self.phase == Phase::Offered => {
                self.out.push_back(Output::Say(Say::Taken));
                self.open();
            }
            Input::Decline if self.role == Role::Receive && self.phase == Phase::Offered => {
                self.out.push_back(Output::Say(Say::Decline));
                self.finish(Phase::Declined);
            }
            Input::Pause if self.is_running() => {
                self.out.push_back(Output::Say(Say::Pause));
                self.pause(true);
            }
            Input::Resume if self.phase == (Phase::Paused { by_me: true }) => {
                self.out.push_back(Output::Say(Say::Resume));
                self.resume_link();
            }
            Input::Cancel => {
                self.out.push_back(Output::Say(Say::Cancel));
                self.finish(Phase::Cancelled { by_me: true });
            }
            Input::PeerDeclined if self.role == Role::Send => self.finish(Phase::Declined),
            Input::PeerPaused if self.is_running() => self.pause(false),
            Input::PeerResumed => match self.phase {
                Phase::Paused { by_me: false } => self.resume_link(),
                // The sender is back (after its restart, or it went offline): try at once.
                Phase::Waiting { .. } if self.role == Role::Receive => self.open(),
                _ => {}
            },
            Input::PeerCancelled => self.finish(Phase::Cancelled { by_me: false }),
            Input::PeerDone if self.role == Role::Send => {
                self.done = self.total;
                self.finish(Phase::Done);
            }
            Input::TakenElsewhere if self.role == Role::Receive && self.phase == Phase::Offered => {
                self.finish(Phase::TakenElsewhere)
            }
            Input::Refused { offline: true, .. } if self.is_running() => self.link_lost(now),
            Input::Refused { offline: false, reason } => self.fail(reason),
            Input::Connecting if self.role == Role::Send => {
                // The receiver opens a new link (first accept, resume, or after a drop).
                if matches!(
                    self.phase,
                    Phase::Offered | Phase::Waiting { .. } | Phase::Moving | Phase::Connecting
                ) {
                    self.phase = Phase::Connecting;
                    self.changed();
                }
            }
            Input::LinkUp if self.phase == Phase::Connecting => {
                self.attempts = 0;
                self.last_progress = now;
                self.samples.clear();
                self.phase = Phase::Moving;
                self.changed();
            }
            Input::LinkDown if self.is_running() => self.link_lost(now),
            Input::Manifest { chunks } if self.role == Role::Receive && self.phase == Phase::Moving => {
                if self.files.len() != chunks.len() {
                    self.files = chunks.iter().map(|&c| FileChunks::new(c)).collect();
                }
                self.request_missing(now);
                self.out.push_back(Output::Persist);
            }
            Input::ChunkVerified { file, index, bytes } => {
                let Some(f) = self.files.get_mut(file as usize) else { return };
                if f.set(index) {
                    self.done = (self.done + bytes).min(self.total);
                    self.outstanding = self.outstanding.saturating_sub(1);
                    let whole = f.verified == f.count;
                    self.progressed(now);
                    if whole {
                        self.out.push_back(Output::CheckFile(file));
                    }
                }
            }
            Input::ChunkCorrupt { file, index } => {
                if (file as usize) >= self.files.len() {
                    return;
                }
                let tries = self.retries.entry((file, index)).or_insert(0);
                *tries += 1;
                if *tries > MAX_CHUNK_RETRIES {
                    return self.fail(format!(
                        "chunk {index} of file {file} arrived corrupt {MAX_CHUNK_RETRIES} times"
                    ));
                }
                self.last_progress = now;
                self.refetched += 1;
                self.out.push_back(Output::Request(vec![ChunkRange { file, first: index, end: index + 1 }]));
            }
            Input::FileVerified { file } => {
                if let Some(f) = self.files.get_mut(file as usize) {
                    f.complete = true;
                }
                self.out.push_back(Output::Persist);
                if self.files.iter().all(|f| f.complete) {
                    self.done = self.total;
                    self.out.push_back(Output::Finalize);
                    self.out.push_back(Output::Say(Say::Done));
                    self.finish(Phase::Done);
                }
            }
            Input::FileMismatch { file } => {
                let Some(f) = self.files.get_mut(file as usize) else { return };
                if f.retries >= MAX_FILE_RETRIES {
                    return self.fail(format!("file {file} does not have the announced SHA-256"));
                }
                f.retries += 1;
                let lost = f.verified * u64::from(super::wire::CHUNK_SIZE);
                f.clear();
                self.done = self.done.saturating_sub(lost);
                let mut ranges = Vec::new();
                self.files[file as usize].missing(file, &mut ranges);
                self.outstanding += ranges.iter().map(|r| r.end - r.first).sum::<u64>();
                self.out.push_back(Output::Request(ranges));
                self.changed();
            }
            Input::ChunkSent { bytes } if self.role == Role::Send => {
                self.done = (self.done + bytes).min(self.total);
                self.progressed(now);
            }
            Input::Broken(reason) => self.fail(reason),
            _ => {}
        }
    }

    fn is_running(&self) -> bool {
        matches!(self.phase, Phase::Connecting | Phase::Moving | Phase::Waiting { .. } | Phase::Offered)
            && !(self.phase == Phase::Offered && self.role == Role::Receive)
    }

    /// Receiver: open a link; the sender only waits for one.
    fn open(&mut self) {
        match self.role {
            Role::Receive => {
                self.phase = Phase::Connecting;
                self.out.push_back(Output::OpenLink);
            }
            Role::Send => self.phase = Phase::Waiting { retry_at: None },
        }
        self.changed();
    }

    fn resume_link(&mut self) {
        self.attempts = 0;
        self.open();
    }

    fn pause(&mut self, by_me: bool) {
        self.phase = Phase::Paused { by_me };
        self.outstanding = 0;
        self.out.push_back(Output::CloseLink);
        self.persist_due = None;
        self.out.push_back(Output::Persist);
        self.changed();
    }

    fn link_lost(&mut self, now: Instant) {
        self.out.push_back(Output::CloseLink);
        self.outstanding = 0;
        let retry_at = match self.role {
            Role::Receive => {
                let wait = RETRY_FIRST.saturating_mul(1 << self.attempts.min(5)).min(RETRY_MAX);
                self.attempts += 1;
                Some(now + wait)
            }
            Role::Send => None,
        };
        self.phase = Phase::Waiting { retry_at };
        self.persist_due = None;
        self.out.push_back(Output::Persist);
        self.changed();
    }

    fn request_missing(&mut self, now: Instant) {
        let mut ranges = Vec::new();
        for (i, f) in self.files.iter().enumerate() {
            if !f.complete {
                f.missing(i as u32, &mut ranges);
            }
        }
        self.outstanding = ranges.iter().map(|r| r.end - r.first).sum();
        self.last_progress = now;
        // Files whose chunks are all in but whose whole hash was not checked yet (the record
        // was saved between the last chunk and the check) are checked now.
        for (i, f) in self.files.iter().enumerate() {
            if !f.complete && f.verified == f.count {
                self.out.push_back(Output::CheckFile(i as u32));
            }
        }
        if !ranges.is_empty() {
            self.out.push_back(Output::Request(ranges));
        }
    }

    fn progressed(&mut self, now: Instant) {
        self.last_progress = now;
        self.samples.push_back((now, self.done));
        while self.samples.front().is_some_and(|s| now.duration_since(s.0) > SPEED_WINDOW) {
            self.samples.pop_front();
        }
        if self.persist_due.is_none() {
            self.persist_due = Some(now + PERSIST_EVERY);
        }
    }

    fn fail(&mut self, reason: String) {
        self.out.push_back(Output::Say(Say::Cancel));
        self.finish(Phase::Failed(reason));
    }

    fn finish(&mut self, phase: Phase) {
        let running_link = !matches!(self.phase, Phase::Offered | Phase::Paused { .. });
        if running_link {
            self.out.push_back(Output::CloseLink);
        }
        let keep_files = matches!(phase, Phase::Done);
        if self.role == Role::Receive && !keep_files && !self.files.is_empty() {
            self.out.push_back(Output::DeletePartial);
        }
        self.phase = phase;
        self.persist_due = None;
        self.out.push_back(Output::Persist);
        self.changed();
    }

    fn changed(&mut self) {
        self.out.push_back(Output::Changed);
    }
}

#[cfg(test)]
#[path = "machine_tests.rs"]
mod tests;
