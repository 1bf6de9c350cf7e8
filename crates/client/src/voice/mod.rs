//! Voice in a channel, end to end: a [`Voice`] joins a voice channel with a [`Call`] and runs
//! the audio between the injected devices and the call.
//!
//! Two workers per call:
//!
//! - the **audio thread** (`hearth-voice-audio`, a plain OS thread so a busy async runtime
//!   never delays a frame) owns the devices and a [`core::Core`] (capture and playback
//!   pipelines, members, tones, speaking reporter). It ticks once per frame (10 ms) on deadlines
//!   counted from its start instant (`start + n × 10 ms`, so sleeping late once never shifts the
//!   schedule), and per tick: renders the mix (jitter buffers → decode → per-user gain → mixer,
//!   plus join/leave tones) and writes it to the output, feeds it to the echo canceller, reads
//!   a microphone frame and runs capture (AEC → RNNoise → VAD → mute/PTT gate → Opus). Between
//!   ticks it waits on its inbox, so packets enter the jitter buffer as they arrive and
//!   controls apply within a frame. The schedule moves on purpose only when the playback asks
//!   ([`hearth_voice::pacing`]): in a pause, to tick just after the talker's packets arrive,
//!   so they do not wait up to a frame each; the devices' queues absorb the move.
//! - the **link task** (tokio) owns the [`Call`]: it forwards incoming RTP and call events to
//!   the audio thread's inbox and events to subscribers, and performs the audio thread's
//!   [`core::Effect`]s: `send_packet` (after `skip` for frames not sent) and `set_voice`.
//!
//! The app controls a call through [`Voice`] (mute, deafen, push-to-talk, volumes, devices…)
//! and hears from it through [`VoiceEvent`]s. [`MicTest`] runs the same audio thread without a
//! call, for the settings page's meter.

mod core;

use std::collections::BTreeMap;
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle as ThreadHandle;
use std::time::{Duration, Instant};

use hearth_protocol::{ChannelId, UserId};
use hearth_voice::pipeline::PipelineError;
use hearth_voice::{
    AudioInput, AudioOutput, FRAME_DURATION, JitterStats, PcmFrame, ReceivedPacket, SILENT_FRAME, TickShift,
};
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinHandle;
use tokio_util::sync::{CancellationToken, DropGuard};

pub use self::core::Sound;
use self::core::{Core, Effect, Setting};
use crate::call::{
    Call, CallConfig, CallError, CallEvent, CallStreams, MediaPacket, PeerInfo, PeerQuality, PeerState,
};
use crate::session::SessionHandle;
pub use hearth_voice::TransmitMode;

/// Events buffered for slow subscribers (levels come 10 times a second).
const EVENT_BUFFER: usize = 512;
/// The audio thread this far behind its schedule skips the missed ticks instead of running
/// them back to back.
const STALL: Duration = Duration::from_millis(100);

/// Why voice could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VoiceError {
    #[error(transparent)]
    Call(#[from] CallError),
    #[error("voice pipeline: {0}")]
    Pipeline(#[from] PipelineError),
    /// The audio thread could not be started.
    #[error("audio thread: {0}")]
    Thread(#[from] std::io::Error),
    /// The engine has no running session, or the ICE servers could not be fetched.
    #[error(transparent)]
    Engine(#[from] crate::Error),
}

/// How the user set up voice. Everything here can also be changed during a call.
#[derive(Debug, Clone, PartialEq)]
pub struct VoiceSettings {
    pub muted: bool,
    /// Deafened also mutes (the mute the user chose comes back on undeafen).
    pub deafened: bool,
    /// Voice activity (default) or push-to-talk.
    pub mode: TransmitMode,
    /// Input sensitivity, 0..1 (1 = most sensitive): 0 needs -20 dBFS to open the gate, 1
    /// only -80 dBFS. The default 0.5 is -50 dBFS.
    pub sensitivity: f32,
    pub noise_suppression: bool,
    pub echo_cancellation: bool,
    /// Per-user volume, 0.0..=2.0 (0–200 %); others play at 1.0.
    pub user_volumes: BTreeMap<UserId, f32>,
    /// Join and leave sounds.
    pub sounds: bool,
}

impl Default for VoiceSettings {
    fn default() -> Self {
        VoiceSettings {
            muted: false,
            deafened: false,
            mode: TransmitMode::VoiceActivity,
            sensitivity: 0.5,
            noise_suppression: true,
            echo_cancellation: true,
            user_volumes: BTreeMap::new(),
            sounds: true,
        }
    }
}

/// A peer's level for the meters.
#[derive(Debug, Clone, PartialEq)]
pub struct PeerLevel {
    pub user_id: UserId,
    /// Smoothed level of what they send, before our volume setting (dBFS, -100 is silence).
    pub level_dbfs: f32,
    pub speaking: bool,
}

/// Which device an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceKind {
    Input,
    Output,
}

/// What a [`Voice`] (or a [`MicTest`]) tells the app.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum VoiceEvent {
    /// Our own speaking ring (local, undebounced; the server gets a debounced copy).
    SelfSpeaking {
        speaking: bool,
    },
    /// A peer's speaking ring, from the voice activity of what we play of them.
    PeerSpeaking {
        user_id: UserId,
        speaking: bool,
    },
    /// Every 100 ms: our microphone level (after noise suppression) and whether the VAD hears
    /// voice, and every peer's level. A mic test sends only this.
    Levels {
        level_dbfs: f32,
        voice_detected: bool,
        peers: Vec<PeerLevel>,
    },
    /// A member is in the call with us (a connection is being made).
    PeerJoined {
        user_id: UserId,
    },
    /// A member left or dropped; their audio is no longer mixed.
    PeerLeft {
        user_id: UserId,
    },
    /// A peer's connection changed state.
    PeerConnection {
        user_id: UserId,
        state: PeerState,
    },
    /// Every 2 s per peer: the transport's quality (RTT, loss, jitter, direct or relayed) and
    /// our jitter buffer's statistics for them (delay, late, concealed).
    Quality {
        user_id: UserId,
        quality: PeerQuality,
        jitter: JitterStats,
    },
    /// A device failed; silence is used in its place until it works again or is replaced.
    DeviceError {
        device: DeviceKind,
        message: String,
    },
    /// Our connection dropped; the call is being re-established.
    Rejoining,
    Rejoined,
    /// The call ended without us leaving (e.g. joined voice on another device).
    Ended {
        reason: String,
    },
}

/// What reaches the audio thread.
enum Inbox {
    Setting(Setting),
    Input(Box<dyn AudioInput>),
    Output(Box<dyn AudioOutput>),
    Media(MediaPacket),
    PeerJoined(UserId),
    PeerLeft(UserId),
    Quality(UserId, PeerQuality),
    Quiet(bool),
    Stop,
}

/// The audio thread's handle.
struct AudioThread {
    inbox: std_mpsc::Sender<Inbox>,
    thread: Mutex<Option<ThreadHandle<()>>>,
}

impl AudioThread {
    fn spawn(worker: AudioWorker) -> Result<AudioThread, VoiceError> {
        let (inbox, rx) = std_mpsc::channel();
        let thread =
            std::thread::Builder::new().name("hearth-voice-audio".into()).spawn(move || worker.run(rx))?;
        Ok(AudioThread { inbox, thread: Mutex::new(Some(thread)) })
    }

    fn send(&self, msg: Inbox) {
        // The thread only ends when asked to (or the handle is dropped), so a failed send
        // means we are already stopping.
        if self.inbox.send(msg).is_err() {
            tracing::debug!("audio thread already stopped");
        }
    }

    /// Stops the thread and waits for it (off the async runtime).
    async fn stop(&self) {
        self.send(Inbox::Stop);
        let thread = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(thread) = thread {
            match tokio::task::spawn_blocking(move || thread.join()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => tracing::error!("the audio thread panicked"),
                Err(e) => tracing::error!(error = %e, "could not join the audio thread"),
            }
        }
    }
}

impl Drop for AudioThread {
    fn drop(&mut self) {
        // Without waiting: dropping the sender ends the thread at its next wake-up anyway.
        let _already_gone = self.inbox.send(Inbox::Stop);
    }
}

/// The audio thread's state. See the module docs.
struct AudioWorker {
    core: Core,
    input: Box<dyn AudioInput>,
    output: Option<Box<dyn AudioOutput>>,
    /// To the link task (none in a mic test).
    link: Option<mpsc::UnboundedSender<Effect>>,
    events: broadcast::Sender<VoiceEvent>,
    /// The zero of the `now` and arrival times given to the core.
    epoch: Instant,
    input_failed: bool,
    output_failed: bool,
    effects: Vec<Effect>,
    out_events: Vec<VoiceEvent>,
}

impl AudioWorker {
    fn run(mut self, inbox: std_mpsc::Receiver<Inbox>) {
        raise_priority();
        let mut start = Instant::now();
        let mut tick: u32 = 0;
        loop {
            let deadline = start + FRAME_DURATION * tick;
            // Wait for the deadline, handling what arrives meanwhile.
            loop {
                let now = Instant::now();
                let message = if now >= deadline {
                    match inbox.try_recv() {
                        Ok(m) => m,
                        Err(std_mpsc::TryRecvError::Empty) => break,
                        Err(std_mpsc::TryRecvError::Disconnected) => return,
                    }
                } else {
                    match inbox.recv_timeout(deadline - now) {
                        Ok(m) => m,
                        Err(std_mpsc::RecvTimeoutError::Timeout) => break,
                        Err(std_mpsc::RecvTimeoutError::Disconnected) => return,
                    }
                };
                if !self.handle(message) {
                    return;
                }
            }
            // The schedule moves (in a pause) so ticks come just after the talker's packets.
            match self.tick() {
                Some(TickShift::Earlier(by)) => start = start.checked_sub(by).unwrap_or(start),
                Some(TickShift::Later(by)) => start += by,
                None => {}
            }
            tick = tick.wrapping_add(1);
            // Far behind (the machine stalled for 100 ms): skip the missed ticks rather than
            // run them in a burst; the schedule stays anchored at `start`.
            let elapsed = start.elapsed();
            let due = start + FRAME_DURATION * tick;
            if Instant::now() > due + STALL {
                tick = (elapsed.as_micros() / FRAME_DURATION.as_micros()) as u32 + 1;
            }
        }
    }

    fn now(&self) -> Duration {
        self.epoch.elapsed()
    }

    /// Returns false to stop.
    fn handle(&mut self, message: Inbox) -> bool {
        let now = self.now();
        match message {
            Inbox::Setting(setting) => {
                if let Err(e) = self.core.apply(now, setting, &mut self.effects) {
                    tracing::warn!(error = %e, "voice setting not applied");
                }
                self.flush();
            }
            Inbox::Input(input) => {
                self.input = input;
                self.input_failed = false;
            }
            Inbox::Output(output) => {
                self.output = Some(output);
                self.output_failed = false;
            }
            Inbox::Media(packet) => {
                let received = ReceivedPacket {
                    sequence: packet.seq,
                    timestamp: packet.rtp_timestamp,
                    marker: packet.marker,
                    payload: &packet.payload,
                    arrival: packet.arrival.saturating_duration_since(self.epoch),
                };
                self.core.receive(packet.user_id, &received);
            }
            Inbox::PeerJoined(user) => {
                if let Err(e) = self.core.add_member(user, true) {
                    tracing::warn!(error = %e, "no playback stream for a new member");
                }
            }
            Inbox::PeerLeft(user) => {
                self.core.remove_member(user, &mut self.out_events);
                self.flush();
            }
            Inbox::Quality(user, quality) => {
                let event = self.core.quality(user, quality);
                self.out_events.push(event);
                self.flush();
            }
            Inbox::Quiet(quiet) => self.core.set_quiet(quiet),
            Inbox::Stop => return false,
        }
        true
    }

    /// Renders, plays, captures; returns how the schedule should move.
    fn tick(&mut self) -> Option<TickShift> {
        let now = self.now();
        let mut out: PcmFrame = SILENT_FRAME;
        if let Err(e) = self.core.render(now, &mut out, &mut self.out_events) {
            tracing::warn!(error = %e, "playback failed for a frame");
        }
        if let Some(output) = &mut self.output {
            match output.write_frame(&out) {
                Ok(()) => self.output_failed = false,
                Err(e) if !self.output_failed => {
                    self.output_failed = true;
                    self.out_events
                        .push(VoiceEvent::DeviceError { device: DeviceKind::Output, message: e.to_string() });
                }
                Err(_) => {}
            }
        }
        let mut mic: PcmFrame = SILENT_FRAME;
        match self.input.read_frame(&mut mic) {
            // No complete frame (a device behind our clock, or a finished test source): silence.
            Ok(true) | Ok(false) => self.input_failed = false,
            Err(e) => {
                mic = SILENT_FRAME;
                if !self.input_failed {
                    self.input_failed = true;
                    self.out_events
                        .push(VoiceEvent::DeviceError { device: DeviceKind::Input, message: e.to_string() });
                }
            }
        }
        if let Err(e) = self.core.capture(now, &mic, &mut self.effects, &mut self.out_events) {
            tracing::warn!(error = %e, "capture failed for a frame");
        }
        self.flush();
        self.core.tick_shift(now)
    }

    fn flush(&mut self) {
        for effect in self.effects.drain(..) {
            if let Some(link) = &self.link
                && link.send(effect).is_err()
            {
                tracing::debug!("voice link gone; effect dropped");
            }
        }
        for event in self.out_events.drain(..) {
            // No subscriber is fine.
            let _unheard = self.events.send(event);
        }
    }
}

/// Asks the scheduler to run the audio thread ahead of ordinary work (best effort; needs the
/// right to raise priority, else the thread runs at normal priority). A tick late by more than
/// a few milliseconds sends its packet late, which the far end's jitter buffer must then cover
/// with delay: on a busy machine (a compiler, a game) this is what keeps the call's latency
/// low. The thread sleeps ~95 % of the time, so it cannot starve anything.
fn raise_priority() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: plain syscalls on the calling thread's own id; no memory is passed.
        let result = unsafe { libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, -10) };
        if result != 0 {
            tracing::debug!(error = %std::io::Error::last_os_error(), "audio thread keeps normal priority");
        }
    }
}

/// Voice in one channel: a call and its audio. Dropping it leaves too (without waiting).
pub struct Voice {
    channel: ChannelId,
    call: Arc<Call>,
    audio: AudioThread,
    events: broadcast::Sender<VoiceEvent>,
    link: Mutex<Option<JoinHandle<()>>>,
    stop_link: CancellationToken,
    /// Dropping the [`Voice`] ends the link task, which drops the call (leaving it).
    _stop_link_on_drop: DropGuard,
    settings: Mutex<VoiceSettings>,
}

impl std::fmt::Debug for Voice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Voice").field("channel", &self.channel).finish_non_exhaustive()
    }
}

impl Voice {
    /// Joins `channel` with the session and starts the audio between `input` and `output`.
    /// Returns once the server has confirmed the join (connections come up in the background;
    /// watch [`VoiceEvent::PeerConnection`]). Plays the join sound.
    pub async fn join(
        session: SessionHandle,
        channel: ChannelId,
        mut call: CallConfig,
        settings: VoiceSettings,
        input: Box<dyn AudioInput>,
        output: Box<dyn AudioOutput>,
    ) -> Result<Voice, VoiceError> {
        // Built first, so a pipeline error does not leave a call behind.
        let mut core = Core::new(&settings, true)?;
        call.muted = settings.muted || settings.deafened;
        call.deafened = settings.deafened;
        let (call, streams) = Call::join(session, channel, call).await?;
        // Whoever is there already gets no join sound; we get ours.
        for peer in call.peers() {
            core.add_member(peer.user_id, false)?;
        }
        core.sound(Sound::SelfJoin);
        let (events, _) = broadcast::channel(EVENT_BUFFER);
        let (effects_tx, effects_rx) = mpsc::unbounded_channel();
        let audio = AudioThread::spawn(AudioWorker {
            core,
            input,
            output: Some(output),
            link: Some(effects_tx),
            events: events.clone(),
            epoch: Instant::now(),
            input_failed: false,
            output_failed: false,
            effects: Vec::new(),
            out_events: Vec::new(),
        })?;
        let call = Arc::new(call);
        let stop_link = CancellationToken::new();
        let link = tokio::spawn(run_link(
            call.clone(),
            streams,
            audio.inbox.clone(),
            effects_rx,
            events.clone(),
            stop_link.clone(),
        ));
        Ok(Voice {
            channel,
            call,
            audio,
            events,
            link: Mutex::new(Some(link)),
            _stop_link_on_drop: stop_link.clone().drop_guard(),
            stop_link,
            settings: Mutex::new(settings),
        })
    }

    pub fn channel(&self) -> ChannelId {
        self.channel
    }

    /// Events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<VoiceEvent> {
        self.events.subscribe()
    }

    /// Everyone we have (or are making) a connection to, with state and quality.
    pub fn peers(&self) -> Vec<PeerInfo> {
        self.call.peers()
    }

    /// The call underneath (peer list watch, leak probe).
    pub fn call(&self) -> &Call {
        &self.call
    }

    /// The settings as last set.
    pub fn settings(&self) -> VoiceSettings {
        self.settings.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn update(&self, change: impl FnOnce(&mut VoiceSettings), setting: Setting) {
        change(&mut self.settings.lock().unwrap_or_else(|p| p.into_inner()));
        self.audio.send(Inbox::Setting(setting));
    }

    /// Mutes the microphone (nothing is sent; the others see the mute).
    pub fn set_muted(&self, muted: bool) {
        self.update(|s| s.muted = muted, Setting::Muted(muted));
    }

    /// Deafens: nothing is played, and the microphone is muted too until undeafened.
    pub fn set_deafened(&self, deafened: bool) {
        self.update(|s| s.deafened = deafened, Setting::Deafened(deafened));
    }

    pub fn set_transmit_mode(&self, mode: TransmitMode) {
        self.update(|s| s.mode = mode, Setting::Mode(mode));
    }

    /// The push-to-talk key went down (`true`) or up. Only matters in push-to-talk mode.
    pub fn push_to_talk(&self, pressed: bool) {
        self.audio.send(Inbox::Setting(Setting::PushToTalk(pressed)));
    }

    /// `user`'s volume, 0.0..=2.0 (0–200 %), ramped over one frame.
    pub fn set_user_volume(&self, user: UserId, volume: f32) {
        self.update(|s| _ = s.user_volumes.insert(user, volume), Setting::UserVolume(user, volume));
    }

    /// Input sensitivity, 0..1 (see [`VoiceSettings::sensitivity`]).
    pub fn set_sensitivity(&self, sensitivity: f32) {
        self.update(|s| s.sensitivity = sensitivity, Setting::Sensitivity(sensitivity));
    }

    pub fn set_noise_suppression(&self, on: bool) {
        self.update(|s| s.noise_suppression = on, Setting::NoiseSuppression(on));
    }

    pub fn set_echo_cancellation(&self, on: bool) {
        self.update(|s| s.echo_cancellation = on, Setting::EchoCancellation(on));
    }

    pub fn set_sounds(&self, on: bool) {
        self.update(|s| s.sounds = on, Setting::Sounds(on));
    }

    /// Switches the microphone during the call (from the next frame).
    pub fn set_input(&self, input: Box<dyn AudioInput>) {
        self.audio.send(Inbox::Input(input));
    }

    /// Switches the speaker during the call (from the next frame).
    pub fn set_output(&self, output: Box<dyn AudioOutput>) {
        self.audio.send(Inbox::Output(output));
    }

    /// Leaves the channel: stops the audio, closes every connection, and waits for both.
    pub async fn leave(self) {
        self.audio.stop().await;
        self.stop_link.cancel();
        let link = self.link.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(link) = link
            && let Err(e) = link.await
        {
            tracing::error!(error = %e, "voice link task ended abnormally");
        }
        match Arc::try_unwrap(self.call) {
            Ok(call) => call.leave().await,
            // Someone still holds it (cannot happen once the link task ended); dropping our
            // reference leaves when the last one goes.
            Err(_) => tracing::warn!("call still referenced after leave"),
        }
    }
}

/// The link task: the call's side of a [`Voice`]. See the module docs. Three loops run
/// concurrently so none waits for another: incoming media and events, outgoing packets, and
/// voice-state updates (a gateway round trip each; only the latest state matters, so a slow
/// server coalesces them instead of holding up audio).
async fn run_link(
    call: Arc<Call>,
    mut streams: CallStreams,
    audio: std_mpsc::Sender<Inbox>,
    mut effects: mpsc::UnboundedReceiver<Effect>,
    events: broadcast::Sender<VoiceEvent>,
    stop: CancellationToken,
) {
    let (state_tx, mut state_rx) = tokio::sync::watch::channel(None::<(bool, bool, bool)>);
    let incoming = async {
        let to_audio = |message: Inbox| {
            if audio.send(message).is_err() {
                tracing::debug!("audio thread gone");
            }
        };
        let publish = |event: VoiceEvent| {
            let _unheard = events.send(event);
        };
        loop {
            tokio::select! {
                packet = streams.media.recv() => match packet {
                    Some(packet) => to_audio(Inbox::Media(packet)),
                    None => break,
                },
                event = streams.events.recv() => match event {
                    Ok(CallEvent::PeerJoined { user_id }) => {
                        to_audio(Inbox::PeerJoined(user_id));
                        publish(VoiceEvent::PeerJoined { user_id });
                    }
                    Ok(CallEvent::PeerLeft { user_id }) => {
                        to_audio(Inbox::PeerLeft(user_id));
                        publish(VoiceEvent::PeerLeft { user_id });
                    }
                    Ok(CallEvent::PeerState { user_id, state }) => {
                        publish(VoiceEvent::PeerConnection { user_id, state });
                    }
                    // The audio thread adds its jitter-buffer numbers and publishes.
                    Ok(CallEvent::Quality { user_id, quality }) => to_audio(Inbox::Quality(user_id, quality)),
                    Ok(CallEvent::Rejoining) => {
                        to_audio(Inbox::Quiet(true));
                        publish(VoiceEvent::Rejoining);
                    }
                    Ok(CallEvent::Rejoined) => {
                        to_audio(Inbox::Quiet(false));
                        publish(VoiceEvent::Rejoined);
                    }
                    Ok(CallEvent::Ended { reason }) => publish(VoiceEvent::Ended { reason }),
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!(missed = n, "voice link fell behind the call's events");
                    }
                    Err(broadcast::error::RecvError::Closed) => break,
                },
            }
        }
    };
    let outgoing = async {
        while let Some(effect) = effects.recv().await {
            match effect {
                Effect::Send { payload, skipped } => {
                    if skipped > 0 {
                        call.skip(skipped * Core::FRAME);
                    }
                    call.send_packet(&payload, Core::FRAME).await;
                }
                Effect::VoiceState { muted, deafened, speaking } => {
                    state_tx.send_replace(Some((muted, deafened, speaking)));
                }
            }
        }
    };
    let states = async {
        while state_rx.changed().await.is_ok() {
            let state = *state_rx.borrow_and_update();
            if let Some((muted, deafened, speaking)) = state
                && let Err(e) = call.set_voice(muted, deafened, speaking).await
            {
                tracing::debug!(error = %e, "voice state not sent");
            }
        }
    };
    // Any loop ending (the call or the audio thread gone) or a stop ends the link.
    tokio::select! {
        () = stop.cancelled() => {}
        () = incoming => {}
        () = outgoing => {}
        () = states => {}
    }
}

/// The microphone test of the settings page: capture and meter ([`VoiceEvent::Levels`]), no
/// call, nothing sent or played. Stops when dropped.
pub struct MicTest {
    audio: AudioThread,
    events: broadcast::Sender<VoiceEvent>,
}

impl std::fmt::Debug for MicTest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MicTest").finish_non_exhaustive()
    }
}

impl MicTest {
    /// Starts metering `input` with `settings` (sensitivity, noise suppression).
    pub fn start(input: Box<dyn AudioInput>, settings: &VoiceSettings) -> Result<MicTest, VoiceError> {
        let core = Core::new(settings, false)?;
        let (events, _) = broadcast::channel(EVENT_BUFFER);
        let audio = AudioThread::spawn(AudioWorker {
            core,
            input,
            output: None,
            link: None,
            events: events.clone(),
            epoch: Instant::now(),
            input_failed: false,
            output_failed: false,
            effects: Vec::new(),
            out_events: Vec::new(),
        })?;
        Ok(MicTest { audio, events })
    }

    pub fn subscribe(&self) -> broadcast::Receiver<VoiceEvent> {
        self.events.subscribe()
    }

    pub fn set_sensitivity(&self, sensitivity: f32) {
        self.audio.send(Inbox::Setting(Setting::Sensitivity(sensitivity)));
    }

    pub fn set_noise_suppression(&self, on: bool) {
        self.audio.send(Inbox::Setting(Setting::NoiseSuppression(on)));
    }

    pub fn set_input(&self, input: Box<dyn AudioInput>) {
        self.audio.send(Inbox::Input(input));
    }

    pub async fn stop(self) {
        self.audio.stop().await;
    }
}
