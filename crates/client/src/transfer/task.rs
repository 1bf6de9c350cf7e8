//! One task per transfer: it owns the transfer's [`Machine`], its connection (at most one at a
//! time, numbered so notes from a replaced one are ignored), the channel's pump and the file
//! threads, and turns the machine's outputs into signals, link changes, requests and file
//! operations. Everything it learns goes back into the machine.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use futures_util::FutureExt;
use hearth_protocol::model::TransferSignal;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use webrtc::data_channel::{DataChannel, DataChannelEvent, RTCDataChannelState};
use webrtc::peer_connection::{
    PeerConnection, RTCIceCandidateInit, RTCPeerConnectionState, RTCSessionDescription,
};

use super::files::{self, ReaderNote, WriterMsg, WriterNote};
use super::link::{self, LinkNote};
use super::machine::{Input, Machine, Output, Phase, Role, Say};
use super::record::Record;
use super::wire::{self, ManifestReader, Wire};
use super::{Direction, Shared, TaskMsg, TransferInfo, TransferPath, TransferState};
use crate::call::PathKind;

/// Chunk messages queued between the reader and the channel (1 MiB).
const OUT_QUEUE: usize = 16;
/// Chunks queued between the channel and the writer.
const WRITE_QUEUE: usize = 32;
/// How often progress is published while moving.
const PROGRESS_EVERY: Duration = Duration::from_millis(500);
/// Candidates kept for a connection whose remote description is not set yet.
const MAX_PENDING_CANDIDATES: usize = 64;

/// What a link's helper tasks report.
#[derive(Debug)]
enum ChannelNote {
    Open,
    Closed,
    Control(Wire),
    Sent(u64),
}

struct Link {
    generation: u64,
    pc: Arc<dyn PeerConnection>,
    channel: Option<Arc<dyn DataChannel>>,
    remote_set: bool,
    pending: Vec<RTCIceCandidateInit>,
    helpers: Vec<JoinHandle<()>>,
    /// Sender: the queue into the pump, and the reader's range queue.
    out: Option<mpsc::Sender<BytesMut>>,
    ranges: Option<std::sync::mpsc::Sender<Vec<wire::ChunkRange>>>,
    /// A relayed path's flusher runs (see [`relay_flush`]).
    flushing: bool,
}

pub(super) struct Worker {
    shared: Arc<Shared>,
    record: Record,
    machine: Machine,
    peer_device: Option<String>,
    inbox: mpsc::UnboundedReceiver<TaskMsg>,
    link: Option<Link>,
    generation: u64,
    notes_tx: mpsc::UnboundedSender<(u64, LinkNote)>,
    notes_rx: mpsc::UnboundedReceiver<(u64, LinkNote)>,
    channel_tx: mpsc::UnboundedSender<(u64, ChannelNote)>,
    channel_rx: mpsc::UnboundedReceiver<(u64, ChannelNote)>,
    writer_tx: Option<mpsc::Sender<WriterMsg>>,
    writer_notes_tx: mpsc::UnboundedSender<WriterNote>,
    writer_notes_rx: mpsc::UnboundedReceiver<WriterNote>,
    reader_notes_tx: mpsc::UnboundedSender<ReaderNote>,
    reader_notes_rx: mpsc::UnboundedReceiver<ReaderNote>,
    manifest_reader: ManifestReader,
    path: TransferPath,
    error: Option<String>,
}

impl Worker {
    pub(super) fn new(
        shared: Arc<Shared>,
        record: Record,
        machine: Machine,
        peer_device: Option<String>,
        inbox: mpsc::UnboundedReceiver<TaskMsg>,
    ) -> Worker {
        let (notes_tx, notes_rx) = mpsc::unbounded_channel();
        let (channel_tx, channel_rx) = mpsc::unbounded_channel();
        let (writer_notes_tx, writer_notes_rx) = mpsc::unbounded_channel();
        let (reader_notes_tx, reader_notes_rx) = mpsc::unbounded_channel();
        Worker {
            shared,
            record,
            machine,
            peer_device,
            inbox,
            link: None,
            generation: 0,
            notes_tx,
            notes_rx,
            channel_tx,
            channel_rx,
            writer_tx: None,
            writer_notes_tx,
            writer_notes_rx,
            reader_notes_tx,
            reader_notes_rx,
            manifest_reader: ManifestReader::default(),
            path: TransferPath::Unknown,
            error: None,
        }
    }

    pub(super) async fn run(mut self, propose: bool) {
        if propose {
            let signal = TransferSignal::Propose {
                name: self.record.name.clone(),
                size: self.record.size,
                files: self.record.files,
            };
            self.signal(None, signal).await;
        }
        self.act().await;
        self.publish();
        let mut progress = tokio::time::interval(PROGRESS_EVERY);
        loop {
            if self.machine.phase().is_over() {
                break;
            }
            let deadline = self.machine.poll_timeout().map(tokio::time::Instant::from_std);
            let timer = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                msg = self.inbox.recv() => match msg {
                    Some(msg) => self.on_message(msg).await,
                    None => break,
                },
                Some((generation, note)) = self.notes_rx.recv() => self.on_link_note(generation, note).await,
                Some((generation, note)) = self.channel_rx.recv() => self.on_channel_note(generation, note).await,
                Some(note) = self.writer_notes_rx.recv() => self.on_writer_note(note),
                Some(note) = self.reader_notes_rx.recv() => match note {
                    ReaderNote::Failed { file, message } => {
                        self.machine.handle(Input::Broken(format!("file {file} cannot be read: {message}")), Instant::now());
                    }
                },
                () = timer => self.machine.handle_timeout(Instant::now()),
                _ = progress.tick() => {
                    if *self.machine.phase() == Phase::Moving {
                        if self.path == TransferPath::Unknown {
                            self.measure_path().await;
                        }
                        self.publish();
                    }
                }
            }
            self.act().await;
        }
        self.act().await;
        self.close_link().await;
        self.publish();
    }

    async fn on_message(&mut self, msg: TaskMsg) {
        let now = Instant::now();
        match msg {
            TaskMsg::Accept(folder) => {
                if self.record.role == Role::Receive && *self.machine.phase() == Phase::Offered {
                    self.record.targets =
                        Some(files::Targets { root: folder, finals: Vec::new(), created_dirs: Vec::new() });
                    self.machine.handle(Input::Accept, now);
                }
            }
            TaskMsg::User(input) => {
                if input == Input::Pause {
                    self.record.paused_by_me = true;
                } else if input == Input::Resume {
                    self.record.paused_by_me = false;
                }
                self.machine.handle(input, now);
            }
            TaskMsg::Refused { offline, reason } => {
                tracing::debug!(%reason, "a transfer signal was refused");
                if !offline {
                    self.error = Some(reason.clone());
                }
                self.machine.handle(Input::Refused { offline, reason }, now);
            }
            TaskMsg::SessionBack => {
                // The server may have lost our signals while we were away; a receiver that
                // waits tries again now.
                if self.record.role == Role::Receive && matches!(self.machine.phase(), Phase::Waiting { .. })
                {
                    self.machine.handle(Input::PeerResumed, now);
                }
            }
            TaskMsg::Signal { device, signal } => self.on_signal(device, signal, now).await,
        }
    }

    async fn on_signal(&mut self, device: String, signal: TransferSignal, now: Instant) {
        let from_self = matches!(signal, TransferSignal::Taken);
        if !from_self {
            self.peer_device = Some(device.clone());
        }
        match signal {
            TransferSignal::Propose { .. } => {}
            TransferSignal::Decline => self.machine.handle(Input::PeerDeclined, now),
            TransferSignal::Pause => self.machine.handle(Input::PeerPaused, now),
            TransferSignal::Resume => self.machine.handle(Input::PeerResumed, now),
            TransferSignal::Cancel => self.machine.handle(Input::PeerCancelled, now),
            TransferSignal::Done => self.machine.handle(Input::PeerDone, now),
            TransferSignal::Taken => self.machine.handle(Input::TakenElsewhere, now),
            TransferSignal::Connect { sdp } if self.record.role == Role::Send => {
                self.answer(device, sdp, now).await
            }
            TransferSignal::Answer { sdp } if self.record.role == Role::Receive => {
                let Some(link) = self.link.as_mut() else { return };
                let applied = match RTCSessionDescription::answer(sdp) {
                    Ok(answer) => link.pc.set_remote_description(answer).await,
                    Err(e) => Err(e),
                };
                match applied {
                    Ok(()) => {
                        link.remote_set = true;
                        for c in std::mem::take(&mut link.pending) {
                            add_candidate(&*link.pc, c).await;
                        }
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "transfer answer not applied");
                        self.machine.handle(Input::LinkDown, now);
                    }
                }
            }
            TransferSignal::Candidate { candidate, sdp_mid, sdp_mline_index } => {
                let Some(link) = self.link.as_mut() else { return };
                let init = RTCIceCandidateInit { candidate, sdp_mid, sdp_mline_index, ..Default::default() };
                if link.remote_set {
                    add_candidate(&*link.pc, init).await;
                } else if link.pending.len() < MAX_PENDING_CANDIDATES {
                    link.pending.push(init);
                }
            }
            TransferSignal::Connect { .. } | TransferSignal::Answer { .. } => {}
        }
    }

    /// Sender: the receiver opens a (new) connection.
    async fn answer(&mut self, device: String, sdp: String, now: Instant) {
        if self.machine.phase().is_over() || matches!(self.machine.phase(), Phase::Paused { .. }) {
            return;
        }
        self.close_link().await;
        self.machine.handle(Input::Connecting, now);
        let result = async {
            let link = self.new_link().await?;
            let offer = RTCSessionDescription::offer(sdp)?;
            link.pc.set_remote_description(offer).await?;
            let answer = link.pc.create_answer(None).await?;
            link.pc.set_local_description(answer.clone()).await?;
            Ok::<_, webrtc::error::Error>((link, answer.sdp))
        }
        .await;
        match result {
            Ok((mut link, sdp)) => {
                link.remote_set = true;
                self.link = Some(link);
                self.signal(Some(device), TransferSignal::Answer { sdp }).await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot answer a transfer connection");
                self.machine.handle(Input::LinkDown, now);
            }
        }
    }

    async fn new_link(&mut self) -> webrtc::error::Result<Link> {
        self.generation += 1;
        let mut config = self.shared.options.link.clone();
        config.ice_servers = self.shared.ice_servers();
        let pc = link::build(&config, self.generation, self.notes_tx.downgrade()).await?;
        Ok(Link {
            generation: self.generation,
            pc,
            channel: None,
            remote_set: false,
            pending: Vec::new(),
            helpers: Vec::new(),
            out: None,
            ranges: None,
            flushing: false,
        })
    }

    /// Receiver: a new connection and its channel, offered with `Connect`.
    async fn open_link(&mut self) {
        self.close_link().await;
        let result = async {
            let mut link = self.new_link().await?;
            let channel = link::open_channel(&*link.pc).await?;
            let offer = link.pc.create_offer(None).await?;
            link.pc.set_local_description(offer.clone()).await?;
            link.helpers.push(tokio::spawn(receive_pump(
                channel.clone(),
                link.generation,
                self.channel_tx.clone(),
                self.writer_tx.clone(),
            )));
            link.channel = Some(channel);
            Ok::<_, webrtc::error::Error>((link, offer.sdp))
        }
        .await;
        match result {
            Ok((link, sdp)) => {
                self.link = Some(link);
                // Every device of the sender: after its restart only the new one knows it.
                self.signal(None, TransferSignal::Connect { sdp }).await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot open a transfer connection");
                self.machine.handle(Input::LinkDown, Instant::now());
            }
        }
    }

    async fn close_link(&mut self) {
        if let Some(link) = self.link.take() {
            for helper in &link.helpers {
                helper.abort();
            }
            link::close(&*link.pc).await;
        }
        self.manifest_reader = ManifestReader::default();
    }

    async fn on_link_note(&mut self, generation: u64, note: LinkNote) {
        let Some(link) = self.link.as_mut().filter(|l| l.generation == generation) else { return };
        match note {
            LinkNote::Candidate(c) => {
                let signal = TransferSignal::Candidate {
                    candidate: c.candidate,
                    sdp_mid: c.sdp_mid,
                    sdp_mline_index: c.sdp_mline_index,
                };
                let device = self.peer_device.clone();
                self.signal(device, signal).await;
            }
            LinkNote::State(state) => {
                tracing::debug!(?state, "transfer connection state");
                if matches!(
                    state,
                    RTCPeerConnectionState::Failed
                        | RTCPeerConnectionState::Disconnected
                        | RTCPeerConnectionState::Closed
                ) {
                    self.machine.handle(Input::LinkDown, Instant::now());
                }
            }
            LinkNote::Channel(channel) if self.record.role == Role::Send => {
                let (out_tx, out_rx) = mpsc::channel(OUT_QUEUE);
                link.helpers.push(tokio::spawn(send_pump(
                    channel.clone(),
                    out_rx,
                    generation,
                    self.channel_tx.clone(),
                )));
                link.out = Some(out_tx);
                link.channel = Some(channel);
            }
            LinkNote::Channel(_) => {}
        }
    }

    async fn on_channel_note(&mut self, generation: u64, note: ChannelNote) {
        if self.link.as_ref().is_none_or(|l| l.generation != generation) {
            return;
        }
        let now = Instant::now();
        match note {
            ChannelNote::Open => {
                self.machine.handle(Input::LinkUp, now);
                self.measure_path().await;
                if self.record.role == Role::Send {
                    self.start_sending().await;
                }
            }
            ChannelNote::Closed => self.machine.handle(Input::LinkDown, now),
            ChannelNote::Sent(bytes) => self.machine.handle(Input::ChunkSent { bytes }, now),
            ChannelNote::Control(wire) => self.on_control(wire, now),
        }
    }

    /// Direct or through the relay, from the selected candidate pair (unknown until ICE has
    /// chosen one, so it is asked again while moving).
    async fn measure_path(&mut self) {
        if let Some(pc) = self.link.as_ref().map(|l| l.pc.clone()) {
            self.path = match crate::call::peer_path(&*pc).await {
                PathKind::Direct => TransferPath::Direct,
                PathKind::Relayed => TransferPath::Relayed,
                PathKind::Unknown => TransferPath::Unknown,
            };
        }
        if self.path == TransferPath::Relayed
            && let Some(link) = self.link.as_mut()
            && !link.flushing
            && let Some(channel) = link.channel.clone()
        {
            link.flushing = true;
            link.helpers.push(tokio::spawn(relay_flush(channel)));
        }
    }

    /// Sender: the manifest, then the reader for whatever the receiver asks.
    async fn start_sending(&mut self) {
        let Some(manifest) = self.record.manifest.clone() else { return };
        let Some(link) = self.link.as_mut() else { return };
        let Some(out) = link.out.clone() else { return };
        for message in wire::manifest_messages(&manifest) {
            if out.send(message.encode()).await.is_err() {
                return;
            }
        }
        let (ranges_tx, ranges_rx) = std::sync::mpsc::channel();
        match files::start_reader(
            self.record.sources.clone(),
            manifest,
            ranges_rx,
            out,
            self.reader_notes_tx.clone(),
            self.shared.options.fault,
            self.shared.options.pace,
        ) {
            Ok(_detached) => link.ranges = Some(ranges_tx),
            Err(e) => {
                self.machine.handle(Input::Broken(format!("cannot start reading: {e}")), Instant::now())
            }
        }
    }

    fn on_control(&mut self, wire: Wire, now: Instant) {
        match (self.record.role, wire) {
            (Role::Send, Wire::Request(ranges)) => {
                if let Some(tx) = self.link.as_ref().and_then(|l| l.ranges.as_ref())
                    && tx.send(ranges).is_err()
                {
                    self.machine.handle(Input::LinkDown, now);
                }
            }
            (Role::Receive, Wire::ManifestPart { data, last }) => {
                match self.manifest_reader.push(&data, last) {
                    Ok(Some(manifest)) => self.on_manifest(manifest, now),
                    Ok(None) => {}
                    Err(e) => self.machine.handle(Input::Broken(e.to_string()), now),
                }
            }
            (Role::Receive, Wire::SourceError { file, message }) => self
                .machine
                .handle(Input::Broken(format!("the sender cannot read file {file}: {message}")), now),
            (role, other) => {
                tracing::debug!(?role, kind = ?std::mem::discriminant(&other), "unexpected transfer message")
            }
        }
    }

    /// Receiver: the first manifest places the files; later ones must be the same.
    fn on_manifest(&mut self, manifest: wire::Manifest, now: Instant) {
        match &self.record.manifest {
            Some(known) if *known != manifest => {
                return self.machine.handle(Input::Broken("the files changed at the sender".into()), now);
            }
            Some(_) => {}
            None => {
                let size: u64 = manifest.files.iter().map(|f| f.size).sum();
                if size != self.record.size || manifest.files.len() as u64 != u64::from(self.record.files) {
                    return self
                        .machine
                        .handle(Input::Broken("the files are not the ones offered".into()), now);
                }
                let Some(root) = self.record.targets.as_ref().map(|t| t.root.clone()) else { return };
                match files::prepare(&root, &manifest) {
                    Ok(targets) => self.record.targets = Some(targets),
                    Err(e) => return self.machine.handle(Input::Broken(e.to_string()), now),
                }
                self.record.manifest = Some(manifest.clone());
            }
        }
        if self.writer_tx.is_none() {
            let Some(targets) = self.record.targets.clone() else { return };
            let (tx, rx) = mpsc::channel(WRITE_QUEUE);
            match files::start_writer(targets, manifest.clone(), rx, self.writer_notes_tx.clone()) {
                Ok(_detached) => self.writer_tx = Some(tx),
                Err(e) => {
                    return self.machine.handle(Input::Broken(format!("cannot start writing: {e}")), now);
                }
            }
            // The pump of this link started before the writer: give it the writer now.
            if let Some(link) = self.link.as_mut()
                && let Some(channel) = link.channel.clone()
            {
                for helper in link.helpers.drain(..) {
                    helper.abort();
                }
                link.helpers.push(tokio::spawn(receive_pump(
                    channel,
                    link.generation,
                    self.channel_tx.clone(),
                    self.writer_tx.clone(),
                )));
            }
        }
        let chunks = manifest.files.iter().map(|f| f.chunks()).collect();
        self.machine.handle(Input::Manifest { chunks }, now);
    }

    fn on_writer_note(&mut self, note: WriterNote) {
        let now = Instant::now();
        let input = match note {
            WriterNote::Verified { file, index, bytes } => Input::ChunkVerified { file, index, bytes },
            WriterNote::Corrupt { file, index } => {
                tracing::info!(file, index, "a corrupt chunk arrived; asking for it again");
                Input::ChunkCorrupt { file, index }
            }
            WriterNote::FileVerified(file) => Input::FileVerified { file },
            WriterNote::FileMismatch(file) => Input::FileMismatch { file },
            WriterNote::Failed(reason) => Input::Broken(reason),
        };
        self.machine.handle(input, now);
    }

    /// Carries out what the machine asked for.
    async fn act(&mut self) {
        let mut changed = false;
        while let Some(output) = self.machine.poll_output() {
            match output {
                Output::Say(say) => {
                    let (to_self, signal) = match say {
                        Say::Decline => (false, TransferSignal::Decline),
                        Say::Pause => (false, TransferSignal::Pause),
                        Say::Resume => (false, TransferSignal::Resume),
                        Say::Cancel => (false, TransferSignal::Cancel),
                        Say::Done => (false, TransferSignal::Done),
                        Say::Taken => (true, TransferSignal::Taken),
                    };
                    if to_self {
                        let me = *super::lock(&self.shared.me);
                        if let Some(me) = me {
                            let id = self.record.id.clone();
                            // Our other devices: none online is the usual case, not an error.
                            let _sent = self.shared.session.transfer_signal(me, None, &id, signal).await;
                        }
                    } else {
                        let device = if self.record.role == Role::Send && say == Say::Resume {
                            None
                        } else {
                            self.peer_device.clone()
                        };
                        self.signal(device, signal).await;
                    }
                }
                Output::OpenLink => self.open_link().await,
                Output::CloseLink => self.close_link().await,
                Output::Request(ranges) => {
                    if let Some(channel) = self.link.as_ref().and_then(|l| l.channel.clone()) {
                        for message in wire::request_messages(&ranges) {
                            if let Err(e) = channel.send(message.encode()).await {
                                tracing::debug!(error = %e, "request not sent");
                                self.machine.handle(Input::LinkDown, Instant::now());
                                break;
                            }
                        }
                    }
                }
                Output::CheckFile(file) => {
                    if let Some(tx) = &self.writer_tx
                        && tx.send(WriterMsg::Check(file)).await.is_err()
                    {
                        self.machine.handle(Input::Broken("the writer stopped".into()), Instant::now());
                    }
                }
                Output::Finalize => {
                    if let Some(targets) = self.record.targets.as_mut()
                        && let Err(e) = files::finalize(targets)
                    {
                        self.error = Some(e.to_string());
                    }
                }
                Output::DeletePartial => {
                    self.writer_tx = None;
                    if let Some(targets) = &self.record.targets {
                        files::remove_partial(targets);
                    }
                }
                Output::Persist => self.persist(),
                Output::Changed => changed = true,
            }
        }
        if changed {
            self.publish();
        }
    }

    fn persist(&mut self) {
        let dir = &self.shared.dir;
        if self.machine.phase().is_over() {
            super::record::Record::remove(dir, &self.record.id);
            return;
        }
        // An offer not yet accepted has nothing to keep: declining leaves no trace.
        if self.record.role == Role::Receive && self.record.targets.is_none() {
            return;
        }
        self.record.verified = self.machine.files().iter().map(|f| f.bits.clone()).collect();
        if let Err(e) = self.record.save(dir) {
            tracing::warn!(error = %e, "a transfer record could not be saved");
        }
    }

    async fn signal(&mut self, device: Option<String>, signal: TransferSignal) {
        let id = self.record.id.clone();
        if let Err(e) = self.shared.session.transfer_signal(self.record.peer, device, &id, signal).await {
            tracing::debug!(error = %e, "transfer signal not sent: offline");
            self.machine
                .handle(Input::Refused { offline: true, reason: "not connected".into() }, Instant::now());
        }
    }

    fn publish(&self) {
        let progress = self.machine.progress();
        let (state, paused_by_me, error) = match self.machine.phase() {
            Phase::Offered => (TransferState::Offered, false, None),
            Phase::Connecting => (TransferState::Connecting, false, None),
            Phase::Moving => (TransferState::Moving, false, None),
            Phase::Paused { by_me } => (TransferState::Paused, *by_me, None),
            Phase::Waiting { .. } => (TransferState::Waiting, false, None),
            Phase::Done => (TransferState::Done, false, self.error.clone()),
            Phase::Declined => (TransferState::Declined, false, None),
            Phase::Cancelled { .. } => (TransferState::Cancelled, false, self.error.clone()),
            Phase::Failed(reason) => (TransferState::Failed, false, Some(reason.clone())),
            Phase::TakenElsewhere => (TransferState::TakenElsewhere, false, None),
        };
        self.shared.publish(TransferInfo {
            id: self.record.id.clone(),
            direction: if self.record.role == Role::Send { Direction::Outgoing } else { Direction::Incoming },
            peer: self.record.peer,
            name: self.record.name.clone(),
            size: self.record.size,
            files: self.record.files,
            state,
            paused_by_me,
            error,
            bytes_done: progress.bytes_done,
            speed_bps: progress.speed,
            eta_secs: progress.eta.map(|d| d.as_secs_f64()),
            path: self.path,
            refetched_chunks: progress.refetched,
            folder: self.record.targets.as_ref().map(|t| t.root.clone()),
        });
    }
}

async fn add_candidate(pc: &dyn PeerConnection, candidate: RTCIceCandidateInit) {
    if let Err(e) = pc.add_ice_candidate(candidate).await {
        tracing::debug!(error = %e, "remote transfer candidate not added");
    }
}

/// How often a relayed connection's driver is woken (see [`relay_flush`]).
const RELAY_FLUSH_EVERY: Duration = Duration::from_millis(1);

/// Wakes the connection's driver every millisecond while the path is relayed. webrtc 0.21's
/// driver drains its TURN client's queue *before* it moves the core's new packets into it (see
/// `call::peer::RelayFlush`), so a relayed packet waits for the next wake: the next send, the
/// next packet received, or a ~200 ms timer. With bulk data both ends stall on each other's
/// held-back SACKs and data (2 MB/s over a 20 ms relayed path). Calls fix this with an RTP
/// interceptor, which SCTP never passes through; setting a channel threshold is the cheapest
/// call that wakes the driver, whose next pass sends what was held back.
async fn relay_flush(channel: Arc<dyn DataChannel>) {
    let mut tick = tokio::time::interval(RELAY_FLUSH_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tick.tick().await;
        if channel.set_buffered_amount_low_threshold(link::BUFFERED_LOW).await.is_err() {
            return;
        }
    }
}

fn note(tx: &mpsc::UnboundedSender<(u64, ChannelNote)>, generation: u64, note: ChannelNote) -> bool {
    tx.send((generation, note)).is_ok()
}

/// Receiver: reads the channel; chunks go to the writer (waiting while it is behind, which
/// holds the channel back and with it the sender), the rest to the task.
async fn receive_pump(
    channel: Arc<dyn DataChannel>,
    generation: u64,
    notes: mpsc::UnboundedSender<(u64, ChannelNote)>,
    writer: Option<mpsc::Sender<WriterMsg>>,
) {
    if matches!(channel.ready_state().await, Ok(RTCDataChannelState::Open))
        && !note(&notes, generation, ChannelNote::Open)
    {
        return;
    }
    while let Some(event) = channel.poll().await {
        match event {
            DataChannelEvent::OnOpen if !note(&notes, generation, ChannelNote::Open) => return,
            DataChannelEvent::OnMessage(message) => match Wire::decode(message.data.freeze()) {
                Ok(Wire::Chunk { file, index, sha256, data }) => {
                    let Some(writer) = &writer else { continue };
                    if writer.send(WriterMsg::Chunk { file, index, sha256, data }).await.is_err() {
                        return;
                    }
                }
                Ok(other) => {
                    if !note(&notes, generation, ChannelNote::Control(other)) {
                        return;
                    }
                }
                Err(e) => tracing::debug!(error = %e, "a transfer message was dropped"),
            },
            DataChannelEvent::OnClose => break,
            _ => {}
        }
    }
    note(&notes, generation, ChannelNote::Closed);
}

/// Sender: writes queued messages while the channel's buffered amount is under the high
/// threshold, stops above it until the low threshold's event, and reads the receiver's
/// requests.
async fn send_pump(
    channel: Arc<dyn DataChannel>,
    mut out: mpsc::Receiver<BytesMut>,
    generation: u64,
    notes: mpsc::UnboundedSender<(u64, ChannelNote)>,
) {
    let thresholds = async {
        channel.set_buffered_amount_low_threshold(link::BUFFERED_LOW).await?;
        channel.set_buffered_amount_high_threshold(link::BUFFERED_HIGH).await
    };
    if let Err(e) = thresholds.await {
        tracing::debug!(error = %e, "transfer channel gone before it started");
        note(&notes, generation, ChannelNote::Closed);
        return;
    }
    let mut open = matches!(channel.ready_state().await, Ok(RTCDataChannelState::Open));
    if open && !note(&notes, generation, ChannelNote::Open) {
        return;
    }
    let mut high = false;
    let mut sent = 0u64;
    loop {
        tokio::select! {
            event = channel.poll().fuse() => match event {
                Some(DataChannelEvent::OnOpen) => {
                    if !open {
                        open = true;
                        if !note(&notes, generation, ChannelNote::Open) {
                            return;
                        }
                    }
                }
                Some(DataChannelEvent::OnBufferedAmountHigh) => high = true,
                Some(DataChannelEvent::OnBufferedAmountLow) => high = false,
                Some(DataChannelEvent::OnMessage(message)) => match Wire::decode(message.data.freeze()) {
                    Ok(wire) => {
                        if !note(&notes, generation, ChannelNote::Control(wire)) {
                            return;
                        }
                    }
                    Err(e) => tracing::debug!(error = %e, "a transfer message was dropped"),
                },
                Some(DataChannelEvent::OnClose) | None => break,
                Some(_) => {}
            },
            message = out.recv(), if open && !high => {
                let Some(message) = message else { break };
                let len = message.len().saturating_sub(wire::CHUNK_HEADER) as u64;
                if let Err(e) = channel.send(message).await {
                    tracing::debug!(error = %e, "transfer channel closed while sending");
                    break;
                }
                sent += len;
                if sent >= 1 << 20 {
                    if !note(&notes, generation, ChannelNote::Sent(sent)) {
                        return;
                    }
                    sent = 0;
                }
            }
        }
    }
    note(&notes, generation, ChannelNote::Closed);
}
