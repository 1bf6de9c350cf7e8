//! This device's voice: [`VoiceLine`], managed beside [`Shell`](crate::shell::Shell), owns the
//! current call (a [`hearth_client::Voice`] from `Engine::join_voice`), the mute/deafen chosen
//! outside calls, the microphone test, the voice settings file and the push-to-talk global
//! shortcut; and one forwarding task per call turns the call's `VoiceEvent`s into the
//! `voice://*` window events of `ui/src/lib/backend/README.md`.
//!
//! Locks: `inner` is a std mutex held for short synchronous sections only (never across an
//! `.await`). `calls` is a tokio mutex held across a whole join, leave or device change, so two
//! of them never interleave (one call per device; a leave must not run in the middle of a
//! join). A call's forwarder never takes `calls`: whoever holds it may abort the forwarder.

pub mod call_state;
pub mod devices;
pub mod settings;

use std::sync::Mutex;

use hearth_client::call::CallConfig;
use hearth_client::voice::DeviceKind;
use hearth_client::{Engine, MicTest, Voice, VoiceError, VoiceEvent};
use hearth_protocol::model::ChannelKind;
use hearth_protocol::{ChannelId, UserId};
use tauri::async_runtime::JoinHandle;
use tauri::{AppHandle, Manager};
use tauri_plugin_global_shortcut::{GlobalShortcutExt, Shortcut, ShortcutState};
use tokio::sync::broadcast;
use tokio::sync::broadcast::error::RecvError;

use self::call_state::{
    CallTracker, Connection, Emit, MicLevel, MicState, PeerQuality, VoiceCall, VoiceDeviceError,
};
use self::devices::{AudioDevices, AudioSystem};
use self::settings::{VoiceSettings, VoiceSettingsFile};
use crate::error::{CommandError, CommandResult};
use crate::events::emit;
use crate::shell::{Shell, lock};

pub const STATE: &str = "voice://state";
pub const SPEAKING: &str = "voice://speaking";
pub const QUALITY: &str = "voice://quality";
pub const LEVEL: &str = "voice://level";
pub const DEVICE_ERROR: &str = "voice://device_error";

pub struct VoiceLine {
    audio: AudioSystem,
    file: Mutex<VoiceSettingsFile>,
    inner: Mutex<Inner>,
    calls: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct Inner {
    mic: MicState,
    /// The channel a join is under way to (the server has not confirmed yet).
    joining: Option<ChannelId>,
    call: Option<ActiveCall>,
    mic_test: MicTestState,
    /// The registered push-to-talk shortcut.
    ptt: Option<Shortcut>,
    /// Tells a call's forwarder whether the call it follows is still the current one.
    next_call: u64,
}

struct ActiveCall {
    id: u64,
    voice: Voice,
    state: Connection,
    forwarder: JoinHandle<()>,
}

#[derive(Default)]
enum MicTestState {
    #[default]
    Off,
    /// The test has the input device (no call).
    Own { test: MicTest, forwarder: JoinHandle<()> },
    /// A call has the input device; its levels are passed on as `voice://level`.
    Tap,
}

impl VoiceLine {
    /// Reads the settings file of `data_dir`; the devices come from `HEARTH_AUDIO`.
    pub fn new(data_dir: &std::path::Path) -> VoiceLine {
        VoiceLine {
            audio: AudioSystem::from_env(),
            file: Mutex::new(VoiceSettingsFile::load(data_dir)),
            inner: Mutex::new(Inner::default()),
            calls: tokio::sync::Mutex::new(()),
        }
    }

    pub fn settings(&self, engine: &Engine) -> VoiceSettings {
        let account = engine.active_account().map(|a| a.id);
        lock(&self.file).get(account.as_deref())
    }

    pub fn devices(&self) -> AudioDevices {
        self.audio.devices()
    }

    /// The call now, as `voice_status` and `voice://state` give it.
    pub fn status(&self) -> VoiceCall {
        call_of(&lock(&self.inner))
    }

    pub fn peers(&self) -> Vec<PeerQuality> {
        let inner = lock(&self.inner);
        let Some(call) = &inner.call else { return Vec::new() };
        call.voice.peers().iter().filter_map(PeerQuality::from_info).collect()
    }

    /// Joins `channel` (leaving any other call first); see `voice_join` in the contract.
    pub async fn join(&self, app: &AppHandle, channel: ChannelId) -> CommandResult<VoiceCall> {
        let shell = app.state::<Shell>();
        let _one_at_a_time = self.calls.lock().await;
        {
            let inner = lock(&self.inner);
            if let Some(call) = inner.call.as_ref().filter(|c| c.voice.channel() == channel) {
                return Ok(call_of_active(call, &inner.mic));
            }
        }
        let Some((me, voice_states)) = shell
            .with_snapshot(|ready| {
                let is_voice = ready.channels.iter().any(|c| c.id == channel && c.kind == ChannelKind::Voice);
                is_voice.then(|| (ready.user.id, ready.voice_states.clone()))
            })
            .flatten()
        else {
            return Err(CommandError::new("not_found", "There is no such voice channel."));
        };
        if !matches!(shell.engine.connection_status(), hearth_client::ConnectionStatus::Connected) {
            return Err(unavailable());
        }
        self.leave_locked(app).await;
        self.mic_test_to_tap().await;

        let settings = self.settings(&shell.engine);
        let opened = self
            .audio
            .open_input(settings.input_device.as_deref())
            .and_then(|input| Ok((input, self.audio.open_output(settings.output_device.as_deref())?)));
        let (input, output) = match opened {
            Ok(devices) => devices,
            Err(e) => {
                // The test had the device; it is not in a call after all.
                self.mic_test_from_tap(app).await;
                return Err(e);
            }
        };
        let mic = {
            let mut inner = lock(&self.inner);
            inner.joining = Some(channel);
            inner.mic
        };
        emit(app, STATE, self.status());
        let mut config = CallConfig::new(Vec::new());
        config.voice_states = voice_states;
        let joined = shell
            .engine
            .join_voice(channel, config, settings.engine(mic.chosen_muted(), mic.deafened()), input, output)
            .await;
        let voice = match joined {
            Ok(voice) => voice,
            Err(e) => {
                lock(&self.inner).joining = None;
                emit(app, STATE, self.status());
                self.mic_test_from_tap(app).await;
                return Err(join_error(e));
            }
        };
        let events = voice.subscribe();
        let tracker = CallTracker::new(me, &voice.peers());
        let first_qualities = tracker.qualities();
        let state = tracker.state();
        let call = {
            let mut inner = lock(&self.inner);
            inner.joining = None;
            inner.next_call += 1;
            let id = inner.next_call;
            // Mute or deafen may have changed while the server answered.
            voice.set_muted(inner.mic.chosen_muted());
            voice.set_deafened(inner.mic.deafened());
            let forwarder = forward(app.clone(), id, events, tracker);
            let active = ActiveCall { id, voice, state, forwarder };
            let call = call_of_active(&active, &inner.mic);
            inner.call = Some(active);
            call
        };
        emit(app, STATE, call.clone());
        for quality in first_qualities {
            emit(app, QUALITY, quality);
        }
        tracing::info!(%channel, "joined voice");
        Ok(call)
    }

    /// Leaves the call, if any (`voice_leave`; also on account switch, logout and exit).
    pub async fn leave(&self, app: &AppHandle) {
        let _one_at_a_time = self.calls.lock().await;
        self.leave_locked(app).await;
    }

    async fn leave_locked(&self, app: &AppHandle) {
        let Some(call) = lock(&self.inner).call.take() else { return };
        call.forwarder.abort();
        call.voice.leave().await;
        tracing::info!("left voice");
        emit(app, STATE, self.status());
        self.mic_test_from_tap(app).await;
    }

    /// The forwarder of call `id` saw it end without us leaving.
    async fn ended(&self, app: &AppHandle, id: u64, reason: &str) {
        let call = {
            let mut inner = lock(&self.inner);
            if inner.call.as_ref().is_some_and(|c| c.id == id) { inner.call.take() } else { None }
        };
        let Some(call) = call else { return };
        tracing::info!("the call ended: {reason}");
        emit(app, STATE, self.status());
        // This task is the forwarder: dropping its handle leaves it running to its end here.
        drop(call.forwarder);
        call.voice.leave().await;
        let _one_at_a_time = self.calls.lock().await;
        self.mic_test_from_tap(app).await;
    }

    /// The forwarder of call `id` saw its connection state change: the `VoiceCall` to emit.
    fn set_state(&self, id: u64, state: Connection) -> Option<VoiceCall> {
        let mut inner = lock(&self.inner);
        inner.call.as_mut().filter(|c| c.id == id)?.state = state;
        Some(call_of(&inner))
    }

    fn tapping(&self) -> bool {
        matches!(lock(&self.inner).mic_test, MicTestState::Tap)
    }

    pub fn set_muted(&self, app: &AppHandle, muted: bool) {
        self.change_mic(app, |mic| mic.set_muted(muted));
    }

    pub fn set_deafened(&self, app: &AppHandle, deafened: bool) {
        self.change_mic(app, |mic| mic.set_deafened(deafened));
    }

    fn change_mic(&self, app: &AppHandle, change: impl FnOnce(&mut MicState)) {
        let call = {
            let mut inner = lock(&self.inner);
            change(&mut inner.mic);
            if let Some(call) = &inner.call {
                call.voice.set_muted(inner.mic.chosen_muted());
                call.voice.set_deafened(inner.mic.deafened());
            }
            call_of(&inner)
        };
        emit(app, STATE, call);
    }

    /// Sets and saves `user`'s volume (integer percent, checked) for the running account.
    pub fn set_user_volume(&self, engine: &Engine, user: UserId, volume: u32) -> CommandResult<()> {
        if let Some(call) = &lock(&self.inner).call {
            call.voice.set_user_volume(user, settings::gain(f64::from(volume)));
        }
        let Some(account) = engine.active_account() else {
            return Err(CommandError::new("unavailable", "No account is logged in."));
        };
        lock(&self.file)
            .set_volume(&account.id, user, volume)
            .map_err(|e| CommandError::internal("saving voice settings", e))
    }

    /// Replaces the settings: checks everything, opens changed devices, registers the
    /// shortcut and saves, and only then applies; on any error nothing has changed.
    pub async fn set_settings(&self, app: &AppHandle, next: VoiceSettings) -> CommandResult<()> {
        let shortcut = next.validate()?;
        let engine = app.state::<Shell>().engine.clone();
        let account = engine.active_account().map(|a| a.id);
        let _one_at_a_time = self.calls.lock().await;
        let previous = self.settings(&engine);
        let devices = self.audio.devices();
        let known = |id: &Option<String>, list: &[devices::AudioDevice]| {
            id.as_ref().is_none_or(|id| list.iter().any(|d| &d.id == id))
        };
        if !known(&next.input_device, &devices.inputs) || !known(&next.output_device, &devices.outputs) {
            return Err(devices::audio_device("This audio device is not available."));
        }
        // Devices in use are reopened now, so that a failure leaves everything as it was.
        let (in_call, own_test) = {
            let inner = lock(&self.inner);
            (inner.call.is_some(), matches!(inner.mic_test, MicTestState::Own { .. }))
        };
        let input = if next.input_device != previous.input_device && (in_call || own_test) {
            Some(self.audio.open_input(next.input_device.as_deref())?)
        } else {
            None
        };
        let output = if next.output_device != previous.output_device && in_call {
            Some(self.audio.open_output(next.output_device.as_deref())?)
        } else {
            None
        };
        let old_shortcut = lock(&self.inner).ptt;
        let registered_new = shortcut.is_some() && shortcut != old_shortcut;
        if let Some(new) = shortcut.filter(|_| registered_new) {
            register_ptt(app, new)?;
        }
        if let Err(e) = lock(&self.file).set(account.as_deref(), &next) {
            if let Some(new) = shortcut.filter(|_| registered_new) {
                unregister_ptt(app, new);
            }
            return Err(CommandError::internal("saving voice settings", e));
        }
        if let Some(old) = old_shortcut.filter(|old| Some(*old) != shortcut) {
            unregister_ptt(app, old);
        }

        let engine_settings = next.engine(false, false);
        let mut inner = lock(&self.inner);
        inner.ptt = shortcut;
        if let Some(call) = &inner.call {
            let voice = &call.voice;
            voice.set_transmit_mode(engine_settings.mode);
            if shortcut.is_none() {
                // A key held while push-to-talk was switched off must not stay "pressed".
                voice.push_to_talk(false);
            }
            voice.set_sensitivity(engine_settings.sensitivity);
            voice.set_noise_suppression(engine_settings.noise_suppression);
            voice.set_echo_cancellation(engine_settings.echo_cancellation);
            voice.set_sounds(engine_settings.sounds);
            for user in previous.user_volumes.keys().filter(|u| !next.user_volumes.contains_key(*u)) {
                if let Ok(user) = settings::parse_user(user) {
                    voice.set_user_volume(user, 1.0);
                }
            }
            for (user, gain) in &engine_settings.user_volumes {
                voice.set_user_volume(*user, *gain);
            }
            if let Some(output) = output {
                voice.set_output(output);
            }
            if let Some(input) = input {
                voice.set_input(input);
            }
        } else if let MicTestState::Own { test, .. } = &inner.mic_test {
            test.set_sensitivity(engine_settings.sensitivity);
            test.set_noise_suppression(engine_settings.noise_suppression);
            if let Some(input) = input {
                test.set_input(input);
            }
        }
        Ok(())
    }

    /// Registers the saved push-to-talk shortcut at start; a refusal is only logged (the
    /// settings page shows the key, and saving it again reports the error).
    pub fn register_saved_shortcut(&self, app: &AppHandle, engine: &Engine) {
        let Ok(Some(shortcut)) = self.settings(engine).validate() else { return };
        match register_ptt(app, shortcut) {
            Ok(()) => lock(&self.inner).ptt = Some(shortcut),
            Err(_) => tracing::warn!("the saved push-to-talk key {shortcut} could not be registered"),
        }
    }

    /// The shortcut went down or up.
    fn push_to_talk(&self, pressed: bool) {
        if let Some(call) = &lock(&self.inner).call {
            call.voice.push_to_talk(pressed);
        }
    }

    /// Starts the microphone test (`voice_mic_test_start`).
    pub async fn mic_test_start(&self, app: &AppHandle) -> CommandResult<()> {
        let _one_at_a_time = self.calls.lock().await;
        let in_call = {
            let mut inner = lock(&self.inner);
            if !matches!(inner.mic_test, MicTestState::Off) {
                return Ok(());
            }
            if inner.call.is_some() {
                inner.mic_test = MicTestState::Tap;
            }
            inner.call.is_some()
        };
        if !in_call {
            let state = self.own_mic_test(app)?;
            lock(&self.inner).mic_test = state;
        }
        Ok(())
    }

    /// Stops the microphone test (`voice_mic_test_stop`).
    pub async fn mic_test_stop(&self) {
        let _one_at_a_time = self.calls.lock().await;
        let state = std::mem::take(&mut lock(&self.inner).mic_test);
        if let MicTestState::Own { test, forwarder } = state {
            forwarder.abort();
            test.stop().await;
        }
    }

    fn own_mic_test(&self, app: &AppHandle) -> CommandResult<MicTestState> {
        let engine = app.state::<Shell>().engine.clone();
        let settings = self.settings(&engine);
        let input = self.audio.open_input(settings.input_device.as_deref())?;
        let test = MicTest::start(input, &settings.engine(false, false))
            .map_err(|e| CommandError::internal("starting the mic test", e))?;
        let forwarder = forward_mic_test(app.clone(), test.subscribe());
        Ok(MicTestState::Own { test, forwarder })
    }

    /// A call is about to open the input: a running test gives it up and taps the call.
    async fn mic_test_to_tap(&self) {
        let state = {
            let mut inner = lock(&self.inner);
            match inner.mic_test {
                MicTestState::Own { .. } => std::mem::replace(&mut inner.mic_test, MicTestState::Tap),
                _ => return,
            }
        };
        if let MicTestState::Own { test, forwarder } = state {
            forwarder.abort();
            test.stop().await;
        }
    }

    /// No call has the input any more: a test that tapped the call opens it itself.
    async fn mic_test_from_tap(&self, app: &AppHandle) {
        if !self.tapping() {
            return;
        }
        let state = match self.own_mic_test(app) {
            Ok(state) => state,
            Err(e) => {
                emit(app, DEVICE_ERROR, VoiceDeviceError::new(DeviceKind::Input, e.message));
                MicTestState::Off
            }
        };
        lock(&self.inner).mic_test = state;
    }
}

fn call_of(inner: &Inner) -> VoiceCall {
    match (&inner.call, inner.joining) {
        (Some(call), _) => call_of_active(call, &inner.mic),
        (None, Some(channel)) => VoiceCall {
            channel_id: Some(channel),
            state: Connection::Connecting,
            muted: inner.mic.muted(),
            deafened: inner.mic.deafened(),
        },
        (None, None) => VoiceCall {
            channel_id: None,
            state: Connection::Disconnected,
            muted: inner.mic.muted(),
            deafened: inner.mic.deafened(),
        },
    }
}

fn call_of_active(call: &ActiveCall, mic: &MicState) -> VoiceCall {
    VoiceCall {
        channel_id: Some(call.voice.channel()),
        state: call.state,
        muted: mic.muted(),
        deafened: mic.deafened(),
    }
}

fn unavailable() -> CommandError {
    CommandError::new("unavailable", "Not connected to the server.")
}

/// The contract's codes for a failed join (`not_found` is decided before, from the snapshot).
fn join_error(err: VoiceError) -> CommandError {
    use hearth_client::call::CallError;
    tracing::warn!("cannot join voice: {err}");
    match err {
        VoiceError::Call(CallError::Refused(_)) => {
            CommandError::new("forbidden", "You cannot join this voice channel.")
        }
        VoiceError::Call(_) => unavailable(),
        VoiceError::Engine(e) => match e {
            hearth_client::Error::Offline
            | hearth_client::Error::Network(_)
            | hearth_client::Error::Closed => unavailable(),
            other => CommandError::from(other),
        },
        other => CommandError::internal("joining voice", other),
    }
}

fn register_ptt(app: &AppHandle, shortcut: Shortcut) -> CommandResult<()> {
    app.global_shortcut()
        .on_shortcut(shortcut, |app, _shortcut, event| {
            let pressed = event.state == ShortcutState::Pressed;
            app.state::<VoiceLine>().push_to_talk(pressed);
        })
        .map_err(|e| {
            tracing::warn!("push-to-talk key {shortcut} refused: {e}");
            settings::invalid_shortcut("This key is taken by another application or the system.")
        })
}

fn unregister_ptt(app: &AppHandle, shortcut: Shortcut) {
    if let Err(e) = app.global_shortcut().unregister(shortcut) {
        tracing::warn!("cannot unregister the push-to-talk key {shortcut}: {e}");
    }
}

/// The task that follows call `id`: window events from its `VoiceEvent`s, until the call ends
/// (the events close when it is left; an `Ended` call is cleaned up here).
fn forward(
    app: AppHandle,
    id: u64,
    mut events: broadcast::Receiver<VoiceEvent>,
    mut tracker: CallTracker,
) -> JoinHandle<()> {
    tauri::async_runtime::spawn(async move {
        loop {
            let event = match events.recv().await {
                Ok(event) => event,
                Err(RecvError::Lagged(missed)) => {
                    tracing::warn!("voice forwarder fell {missed} events behind");
                    continue;
                }
                Err(RecvError::Closed) => return,
            };
            let line = app.state::<VoiceLine>();
            for out in tracker.on_event(event) {
                match out {
                    Emit::State(state) => {
                        if let Some(call) = line.set_state(id, state) {
                            emit(&app, STATE, call);
                        }
                    }
                    Emit::Speaking(batch) => emit(&app, SPEAKING, batch),
                    Emit::Quality(quality) => emit(&app, QUALITY, quality),
                    Emit::Level(level) => {
                        if line.tapping() {
                            emit(&app, LEVEL, level);
                        }
                    }
                    Emit::DeviceError(error) => {
                        tracing::warn!("audio {} device failed: {}", error.device, error.message);
                        emit(&app, DEVICE_ERROR, error);
                    }
                    Emit::Ended { reason } => {
                        line.ended(&app, id, &reason).await;
                        return;
                    }
                }
            }
        }
    })
}

/// The mic test's levels and device errors.
fn forward_mic_test(app: AppHandle, mut events: broadcast::Receiver<VoiceEvent>) -> JoinHandle<()> {
    tauri::async_runtime::spawn(async move {
        loop {
            match events.recv().await {
                Ok(VoiceEvent::Levels { level_dbfs, voice_detected, .. }) => {
                    emit(&app, LEVEL, MicLevel { level_dbfs, voice_detected });
                }
                Ok(VoiceEvent::DeviceError { device, message }) => {
                    emit(&app, DEVICE_ERROR, VoiceDeviceError::new(device, message));
                }
                Ok(_) | Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => return,
            }
        }
    })
}
