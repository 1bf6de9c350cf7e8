//! `voice_*`: this device's call, its audio settings and devices, and the microphone test
//! (the "Voice" section of `ui/src/lib/backend/README.md`). The state and the event
//! forwarding live in [`crate::voice`]; these only check arguments and pass them on.

use hearth_protocol::{ChannelId, UserId};
use tauri::{AppHandle, State};

use crate::error::CommandResult;
use crate::shell::Shell;
use crate::voice::VoiceLine;
use crate::voice::call_state::{PeerQuality, VoiceCall};
use crate::voice::devices::AudioDevices;
use crate::voice::settings::{self, VoiceSettings};

#[tauri::command]
pub fn voice_status(line: State<'_, VoiceLine>) -> VoiceCall {
    line.status()
}

#[tauri::command]
pub async fn voice_join(
    app: AppHandle,
    line: State<'_, VoiceLine>,
    channel_id: ChannelId,
) -> CommandResult<VoiceCall> {
    line.join(&app, channel_id).await
}

#[tauri::command]
pub async fn voice_leave(app: AppHandle, line: State<'_, VoiceLine>) -> CommandResult<()> {
    line.leave(&app).await;
    Ok(())
}

#[tauri::command]
pub fn voice_set_mute(app: AppHandle, line: State<'_, VoiceLine>, muted: bool) {
    line.set_muted(&app, muted);
}

#[tauri::command]
pub fn voice_set_deafen(app: AppHandle, line: State<'_, VoiceLine>, deafened: bool) {
    line.set_deafened(&app, deafened);
}

/// Async so that saving (many times a second while a slider moves) stays off the main thread.
#[tauri::command]
pub async fn voice_set_user_volume(
    shell: State<'_, Shell>,
    line: State<'_, VoiceLine>,
    user_id: UserId,
    volume: f64,
) -> CommandResult<()> {
    let volume = settings::check_volume(volume)?;
    line.set_user_volume(&shell.engine, user_id, volume)
}

#[tauri::command]
pub fn voice_peers(line: State<'_, VoiceLine>) -> Vec<PeerQuality> {
    line.peers()
}

/// Enumerating can take a while (ALSA probes every card), so off the main thread.
#[tauri::command]
pub async fn voice_devices(line: State<'_, VoiceLine>) -> CommandResult<AudioDevices> {
    Ok(line.devices())
}

#[tauri::command]
pub fn voice_settings_get(shell: State<'_, Shell>, line: State<'_, VoiceLine>) -> VoiceSettings {
    line.settings(&shell.engine)
}

/// Async: registering the shortcut waits for the main thread, so it must not run on it.
#[tauri::command]
pub async fn voice_settings_set(
    app: AppHandle,
    line: State<'_, VoiceLine>,
    settings: VoiceSettings,
) -> CommandResult<()> {
    line.set_settings(&app, settings).await
}

#[tauri::command]
pub async fn voice_mic_test_start(app: AppHandle, line: State<'_, VoiceLine>) -> CommandResult<()> {
    line.mic_test_start(&app).await
}

#[tauri::command]
pub async fn voice_mic_test_stop(line: State<'_, VoiceLine>) -> CommandResult<()> {
    line.mic_test_stop().await;
    Ok(())
}
