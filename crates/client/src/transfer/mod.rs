//! Direct transfers ("send directly"): files and folders sent peer to peer over a WebRTC data
//! channel negotiated through the gateway's `TransferSignal`, with nothing stored on the
//! server and no size limit.
//!
//! - [`machine`]: each transfer's bookkeeping, sans-IO (fake-time tests).
//! - [`wire`]: the data channel's messages (manifest, chunk requests, chunks with SHA-256).
//! - [`files`]: hashing, reading, writing, safe placement, finalizing (threads of their own).
//! - [`names`]: received names made safe.
//! - [`link`]: the webrtc-rs connection tuned for bulk data.
//! - [`task`]: one task per transfer drives its machine, link and files.
//!
//! [`Transfers`] is the handle the engine hands out: send, accept (into a folder), decline,
//! pause, resume, cancel, the list and a stream of changes. Records of unfinished transfers
//! live in `transfers/` under the account's directory (the receiver's holds its verified
//! chunks), so a transfer resumes after a dropped connection or a restart of either side.

pub mod files;
pub mod link;
pub mod machine;
pub mod names;
mod record;
mod task;
pub mod wire;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use hearth_protocol::UserId;
use hearth_protocol::gateway::Event;
use hearth_protocol::model::{IceServer, TransferSignal};
use serde::Serialize;
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinHandle;

pub use files::Fault;
pub use link::LinkConfig;

use crate::session::{SessionEvent, SessionHandle};
use machine::{Machine, Role};
use record::Record;

/// How transfers connect (and a test hook).
#[derive(Debug, Clone, Default)]
pub struct TransferOptions {
    pub link: LinkConfig,
    /// Test hook: damage one chunk once on its way out (see [`Fault`]).
    pub fault: Option<Fault>,
    /// Test hook: the sender waits this long before each chunk (a slow link that a test can
    /// stop partway, however fast the machine).
    pub pace: Option<std::time::Duration>,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransferError {
    #[error("no such transfer")]
    NotFound,
    #[error(transparent)]
    Files(#[from] files::FilesError),
    #[error("the transfer service has stopped")]
    Stopped,
    #[error("not connected to the server")]
    Offline,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ts_rs::TS)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Outgoing,
    Incoming,
}

/// Where a transfer stands, for the app.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ts_rs::TS)]
#[serde(rename_all = "snake_case")]
pub enum TransferState {
    /// Waiting for the receiver to accept or decline.
    Offered,
    Connecting,
    Moving,
    Paused,
    /// The connection dropped or the peer is offline; it resumes by itself.
    Waiting,
    Done,
    Declined,
    Cancelled,
    Failed,
    /// Another device of ours accepted it.
    TakenElsewhere,
}

/// How the bytes travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default, ts_rs::TS)]
#[serde(rename_all = "snake_case")]
pub enum TransferPath {
    #[default]
    Unknown,
    Direct,
    Relayed,
}

/// One transfer as the app shows it.
#[derive(Debug, Clone, PartialEq, Serialize, ts_rs::TS)]
pub struct TransferInfo {
    pub id: String,
    pub direction: Direction,
    pub peer: UserId,
    /// The first file or folder's name (as offered; received files get safe names).
    pub name: String,
    pub size: u64,
    pub files: u32,
    pub state: TransferState,
    /// Paused by this side (only this side can resume it).
    pub paused_by_me: bool,
    pub error: Option<String>,
    pub bytes_done: u64,
    pub speed_bps: Option<f64>,
    pub eta_secs: Option<f64>,
    pub path: TransferPath,
    /// Incoming: chunks that arrived damaged and were fetched again.
    pub refetched_chunks: u32,
    /// Incoming: the folder it is saved into, once accepted.
    #[ts(type = "string | null")]
    pub folder: Option<PathBuf>,
}

/// What the router hands a transfer's task.
#[derive(Debug)]
enum TaskMsg {
    Accept(PathBuf),
    User(machine::Input),
    Signal { device: String, signal: TransferSignal },
    Refused { offline: bool, reason: String },
    SessionBack,
}

/// What every task shares.
struct Shared {
    session: SessionHandle,
    me: Mutex<Option<UserId>>,
    options: TransferOptions,
    dir: PathBuf,
    ice: Mutex<Vec<IceServer>>,
    infos: Mutex<HashMap<String, TransferInfo>>,
    events: broadcast::Sender<TransferInfo>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Each critical section replaces whole values, so a poisoned lock is still consistent.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    fn publish(&self, info: TransferInfo) {
        lock(&self.infos).insert(info.id.clone(), info.clone());
        // Nobody listening is fine: the list has it.
        let _ = self.events.send(info);
    }

    fn ice_servers(&self) -> Vec<IceServer> {
        if self.options.link.ice_servers.is_empty() {
            lock(&self.ice).clone()
        } else {
            self.options.link.ice_servers.clone()
        }
    }
}

type Tasks = Arc<Mutex<HashMap<String, (mpsc::UnboundedSender<TaskMsg>, JoinHandle<()>)>>>;

/// The direct transfers of one running account. Dropping it stops every transfer at once,
/// as an app that is killed would (their records stay, and they resume on the next start).
pub struct Transfers {
    shared: Arc<Shared>,
    tasks: Tasks,
    router: JoinHandle<()>,
}

impl Drop for Transfers {
    fn drop(&mut self) {
        self.router.abort();
        for (_, (_, task)) in lock(&self.tasks).drain() {
            task.abort();
        }
    }
}

impl Transfers {
    /// Starts the service over `session`, with records in `dir`, and takes up every
    /// unfinished transfer found there.
    pub fn start(session: SessionHandle, dir: PathBuf, options: TransferOptions) -> Transfers {
        let (events, _) = broadcast::channel(1024);
        let shared = Arc::new(Shared {
            session: session.clone(),
            me: Mutex::new(session.user().map(|u| u.id)),
            options,
            dir,
            ice: Mutex::new(Vec::new()),
            infos: Mutex::new(HashMap::new()),
            events,
        });
        let tasks: Tasks = Arc::default();
        for record in record::load_all(&shared.dir) {
            spawn_restored(&shared, &tasks, record);
        }
        let router = tokio::spawn(route(shared.clone(), tasks.clone(), session.subscribe()));
        Transfers { shared, tasks, router }
    }

    /// Every transfer known since the start, newest state of each.
    pub fn list(&self) -> Vec<TransferInfo> {
        let mut all: Vec<_> = lock(&self.shared.infos).values().cloned().collect();
        all.sort_by(|a, b| a.id.cmp(&b.id));
        all
    }

    pub fn get(&self, id: &str) -> Option<TransferInfo> {
        lock(&self.shared.infos).get(id).cloned()
    }

    /// Every change of every transfer.
    pub fn subscribe(&self) -> broadcast::Receiver<TransferInfo> {
        self.shared.events.subscribe()
    }

    /// Offers `paths` (files and folders) to `to`. Every file is hashed first (the receiver
    /// gets the whole-file SHA-256 before the first chunk), so this reads them all once.
    pub async fn send(&self, to: UserId, paths: Vec<PathBuf>) -> Result<String, TransferError> {
        let (sources, manifest) = tokio::task::spawn_blocking(move || {
            let sources = files::collect(&paths)?;
            let manifest = files::manifest(&sources)?;
            Ok::<_, files::FilesError>((sources, manifest))
        })
        .await
        .map_err(|_| TransferError::Stopped)??;
        let id = format!("{:032x}", rand::random::<u128>());
        let name = manifest.files[0].path.split('/').next().unwrap_or("file").to_string();
        let record = Record {
            id: id.clone(),
            role: Role::Send,
            peer: to,
            name,
            size: manifest.files.iter().map(|f| f.size).sum(),
            files: manifest.files.len() as u32,
            manifest: Some(manifest),
            sources: sources.into_iter().map(|(p, _)| p).collect(),
            targets: None,
            verified: Vec::new(),
            paused_by_me: false,
        };
        record.save(&self.shared.dir).map_err(|e| {
            TransferError::Files(files::FilesError::Io { path: self.shared.dir.clone(), source: e })
        })?;
        let machine = Machine::new(Role::Send, record.size, Instant::now());
        spawn(&self.shared, &self.tasks, record, machine, None, true);
        Ok(id)
    }

    fn tell(&self, id: &str, msg: TaskMsg) -> Result<(), TransferError> {
        let tasks = lock(&self.tasks);
        let (tx, _) = tasks.get(id).ok_or(TransferError::NotFound)?;
        tx.send(msg).map_err(|_| TransferError::NotFound)
    }

    /// Accepts an incoming offer; the files are saved inside `folder`.
    pub fn accept(&self, id: &str, folder: PathBuf) -> Result<(), TransferError> {
        self.tell(id, TaskMsg::Accept(folder))
    }

    pub fn decline(&self, id: &str) -> Result<(), TransferError> {
        self.tell(id, TaskMsg::User(machine::Input::Decline))
    }

    pub fn pause(&self, id: &str) -> Result<(), TransferError> {
        self.tell(id, TaskMsg::User(machine::Input::Pause))
    }

    pub fn resume(&self, id: &str) -> Result<(), TransferError> {
        self.tell(id, TaskMsg::User(machine::Input::Resume))
    }

    pub fn cancel(&self, id: &str) -> Result<(), TransferError> {
        self.tell(id, TaskMsg::User(machine::Input::Cancel))
    }
}

fn spawn_restored(shared: &Arc<Shared>, tasks: &Tasks, record: Record) {
    let files = match (&record.manifest, record.role) {
        (Some(m), Role::Receive) => m
            .files
            .iter()
            .enumerate()
            .map(|(i, f)| {
                machine::FileChunks::from_bits(
                    f.chunks(),
                    record.verified.get(i).cloned().unwrap_or_default(),
                )
            })
            .collect(),
        _ => Vec::new(),
    };
    let machine = Machine::restore(record.role, record.size, files, record.paused_by_me, Instant::now());
    spawn(shared, tasks, record, machine, None, false);
}

fn spawn(
    shared: &Arc<Shared>,
    tasks: &Tasks,
    record: Record,
    machine: Machine,
    peer_device: Option<String>,
    propose: bool,
) {
    let (tx, rx) = mpsc::unbounded_channel();
    let id = record.id.clone();
    let worker = task::Worker::new(shared.clone(), record, machine, peer_device, rx);
    let handle = tokio::spawn(worker.run(propose));
    lock(tasks).insert(id, (tx, handle));
}

/// Routes session events to the transfers they concern; a new offer becomes a transfer.
async fn route(shared: Arc<Shared>, tasks: Tasks, mut events: broadcast::Receiver<SessionEvent>) {
    loop {
        let event = match events.recv().await {
            Ok(e) => e,
            Err(broadcast::error::RecvError::Lagged(n)) => {
                tracing::warn!(missed = n, "transfer router fell behind the session");
                continue;
            }
            Err(broadcast::error::RecvError::Closed) => return,
        };
        match event {
            SessionEvent::Ready(ready) => {
                *lock(&shared.me) = Some(ready.user.id);
                *lock(&shared.ice) = ready.ice_servers.clone();
                broadcast_all(&tasks, || TaskMsg::SessionBack);
            }
            SessionEvent::Resumed { .. } => broadcast_all(&tasks, || TaskMsg::SessionBack),
            SessionEvent::Event(Event::TransferSignal { from, device, transfer_id, signal }) => {
                let known = lock(&tasks).get(&transfer_id).map(|(tx, _)| tx.clone());
                match (known, signal) {
                    (Some(tx), signal) => {
                        let _ended = tx.send(TaskMsg::Signal { device, signal });
                    }
                    (None, TransferSignal::Propose { name, size, files }) => {
                        let me = *lock(&shared.me);
                        if me == Some(from) {
                            continue;
                        }
                        let record = Record {
                            id: transfer_id.clone(),
                            role: Role::Receive,
                            peer: from,
                            name,
                            size,
                            files,
                            manifest: None,
                            sources: Vec::new(),
                            targets: None,
                            verified: Vec::new(),
                            paused_by_me: false,
                        };
                        let machine = Machine::new(Role::Receive, size, Instant::now());
                        spawn(&shared, &tasks, record, machine, Some(device), false);
                    }
                    // Signals for transfers this device does not have (another device's).
                    (None, _) => {}
                }
            }
            SessionEvent::OpFailed { op: Some(op), error, nonce: Some(id) } if op == "TransferSignal" => {
                let offline = error.code == hearth_protocol::ErrorCode::Unavailable;
                if let Some((tx, _)) = lock(&tasks).get(&id) {
                    let _ended = tx.send(TaskMsg::Refused { offline, reason: error.message });
                }
            }
            _ => {}
        }
    }
}

fn broadcast_all(tasks: &Tasks, msg: impl Fn() -> TaskMsg) {
    for (tx, _) in lock(tasks).values() {
        let _ended = tx.send(msg());
    }
}
