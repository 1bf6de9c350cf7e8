//! `Backend` over the Tauri shell: one `invoke` per command and one `listen` per event stream.
//! The names and argument shapes are the contract with `src-tauri`, listed in ./README.md.
//! Tauri maps the camelCase argument keys used here to the commands' snake_case parameters.

import { invoke } from '@tauri-apps/api/core';
import { listen, type UnlistenFn } from '@tauri-apps/api/event';
import type {
  Attachment,
  AttachmentId,
  AuditEntry,
  AuditEntryId,
  Ban,
  Channel,
  ChannelId,
  CreateChannelRequest,
  Event,
  LoginRequest,
  MessageId,
  Ready,
  RegisterRequest,
  SearchResults,
  Role,
  ServerInfo,
  ServerSettings,
  Status,
  UpdateChannelRequest,
  UpdateServerSettingsRequest,
  User,
  UserId,
} from '../protocol/generated';
import type { InviteView } from './generated';
import {
  type Account,
  type AttachmentProgress,
  type AudioDevices,
  type Backend,
  BackendError,
  bytesOf,
  type AroundPage,
  type HistoryPage,
  isExternalUrl,
  type MicLevel,
  type PeerQuality,
  type SendFailure,
  type SendMessage,
  type SessionStatus,
  type Settings,
  type TransferInfo,
  type SpeakingUpdate,
  type Unsubscribe,
  type UpdateInfo,
  type VoiceCall,
  type VoiceDeviceError,
  type VoiceSettings,
} from './backend';

/** Event names emitted by the shell. */
export const EVENTS = {
  status: 'session://status',
  ready: 'session://ready',
  event: 'session://event',
  sendFailed: 'message://failed',
  link: 'link://open',
  openChannel: 'notification://open',
  voiceState: 'voice://state',
  voiceSpeaking: 'voice://speaking',
  voiceQuality: 'voice://quality',
  voiceLevel: 'voice://level',
  voiceDeviceError: 'voice://device_error',
  transfer: 'transfer://changed',
  attachmentProgress: 'attachment://progress',
} as const;

async function call<T>(command: string, args?: Record<string, unknown>): Promise<T> {
  try {
    return await invoke<T>(command, args);
  } catch (err) {
    // Commands fail with `{ code, message }`; anything else is a bug in the shell.
    throw BackendError.from(err);
  }
}

/** A command whose argument is raw bytes (an IPC body that is not JSON), with headers. */
async function callRaw<T>(command: string, body: Uint8Array, headers: Record<string, string>): Promise<T> {
  try {
    return await invoke<T>(command, body, { headers });
  } catch (err) {
    throw BackendError.from(err);
  }
}

/** Bytes of a pasted or dropped file per `attachment_stage` call (the shell takes up to 16 MiB). */
export const STAGE_PIECE = 8 << 20;

/** `listen` is async; this returns a synchronous unsubscribe that also works before it resolves. */
function subscribe<T>(name: string, listener: (payload: T) => void): Unsubscribe {
  let unlisten: UnlistenFn | null = null;
  let cancelled = false;
  listen<T>(name, (e) => listener(e.payload)).then(
    (fn) => {
      if (cancelled) fn();
      else unlisten = fn;
    },
    (err) => console.error(`listen ${name} failed`, err),
  );
  return () => {
    cancelled = true;
    unlisten?.();
  };
}

export class TauriBackend implements Backend {
  private avatarCache = new Map<string, Promise<string | null>>();
  /** Jobs cancelled while their file was still being staged. */
  private stagingCancelled = new Set<string>();

  listAccounts() {
    return call<Account[]>('account_list');
  }
  activeAccount() {
    return call<Account | null>('account_active');
  }
  serverInfo(serverUrl: string) {
    return call<ServerInfo>('server_info', { serverUrl });
  }
  register(serverUrl: string, request: RegisterRequest) {
    return call<Account>('account_register', { serverUrl, request });
  }
  login(serverUrl: string, request: LoginRequest) {
    return call<Account>('account_login', { serverUrl, request });
  }
  logout(accountId: string) {
    return call<void>('account_logout', { accountId });
  }
  switchAccount(accountId: string) {
    return call<void>('account_switch', { accountId });
  }

  sessionStatus() {
    return call<SessionStatus>('session_status');
  }
  snapshot() {
    return call<Ready | null>('session_snapshot');
  }
  onStatus(listener: (status: SessionStatus) => void) {
    return subscribe(EVENTS.status, listener);
  }
  onReady(listener: (ready: Ready) => void) {
    return subscribe(EVENTS.ready, listener);
  }
  onEvent(listener: (event: Event) => void) {
    return subscribe(EVENTS.event, listener);
  }
  onSendFailed(listener: (failure: SendFailure) => void) {
    return subscribe(EVENTS.sendFailed, listener);
  }
  onLink(listener: (url: string) => void) {
    return subscribe(EVENTS.link, listener);
  }
  onOpenChannel(listener: (channelId: ChannelId) => void) {
    return subscribe<{ channel_id: ChannelId }>(EVENTS.openChannel, (p) => listener(p.channel_id));
  }

  history(channelId: ChannelId, before: MessageId | null, limit: number) {
    return call<HistoryPage>('message_history', { channelId, before, limit });
  }
  historyAround(channelId: ChannelId, messageId: MessageId, limit: number) {
    return call<AroundPage>('message_history_around', { channelId, messageId, limit });
  }
  historyAfter(channelId: ChannelId, after: MessageId, limit: number) {
    return call<HistoryPage>('message_history_after', { channelId, after, limit });
  }
  search(query: string, offset: number | null) {
    return call<SearchResults>('search_messages', { query, offset });
  }
  sendMessage(message: SendMessage) {
    return call<string>('message_send', {
      channelId: message.channel_id,
      content: message.content,
      replyTo: message.reply_to,
      nonce: message.nonce,
      attachments: message.attachments ?? null,
    });
  }
  editMessage(channelId: ChannelId, messageId: MessageId, content: string) {
    return call<void>('message_edit', { channelId, messageId, content });
  }
  deleteMessage(channelId: ChannelId, messageId: MessageId) {
    return call<void>('message_delete', { channelId, messageId });
  }
  addReaction(channelId: ChannelId, messageId: MessageId, emoji: string) {
    return call<void>('reaction_add', { channelId, messageId, emoji });
  }
  removeReaction(channelId: ChannelId, messageId: MessageId, emoji: string) {
    return call<void>('reaction_remove', { channelId, messageId, emoji });
  }
  typing(channelId: ChannelId) {
    return call<void>('channel_typing', { channelId });
  }
  markRead(channelId: ChannelId, messageId: MessageId) {
    return call<void>('channel_mark_read', { channelId, messageId });
  }

  setStatus(status: Status) {
    return call<void>('presence_set_status', { status });
  }
  openDm(recipients: UserId[]) {
    return call<Channel>('dm_open', { recipients });
  }
  updateProfile(displayName: string | null) {
    return call<User>('profile_update', { displayName });
  }
  pickAvatarFile() {
    return call<string | null>('profile_pick_avatar');
  }
  setAvatar(path: string) {
    return call<User>('profile_set_avatar', { path });
  }
  avatarUrl(hash: string) {
    return this.imageUrl('avatar_get', hash);
  }

  /** Content-addressed PNGs (avatars, the group icon) fetched once by the engine as bytes. */
  private imageUrl(command: 'avatar_get' | 'server_icon_get', hash: string) {
    const key = `${command}:${hash}`;
    let url = this.avatarCache.get(key);
    if (!url) {
      url = call<number[] | ArrayBuffer | null>(command, { hash }).then(
        (bytes) => (bytes ? URL.createObjectURL(new Blob([new Uint8Array(bytes)], { type: 'image/png' })) : null),
        () => null,
      );
      this.avatarCache.set(key, url);
    }
    return url;
  }

  getSettings() {
    return call<Settings>('settings_get');
  }
  saveSettings(settings: Settings) {
    return call<void>('settings_set', { settings });
  }
  takeStartupLink() {
    return call<string | null>('link_take_startup');
  }
  getAutostart() {
    return call<boolean>('autostart_get');
  }
  setAutostart(enabled: boolean) {
    return call<void>('autostart_set', { enabled });
  }
  checkUpdate() {
    return call<UpdateInfo | null>('update_check');
  }
  installUpdate() {
    return call<void>('update_install');
  }
  async openExternal(url: string) {
    // Checked here and again in Rust: the shell refuses anything but http(s).
    if (!isExternalUrl(url)) throw new BackendError('invalid_url', 'only http(s) links open');
    await call<void>('link_open', { url });
  }

  voiceStatus() {
    return call<VoiceCall>('voice_status');
  }
  voiceJoin(channelId: ChannelId) {
    return call<VoiceCall>('voice_join', { channelId });
  }
  voiceLeave() {
    return call<void>('voice_leave');
  }
  voiceSetMute(muted: boolean) {
    return call<void>('voice_set_mute', { muted });
  }
  voiceSetDeafen(deafened: boolean) {
    return call<void>('voice_set_deafen', { deafened });
  }
  voiceSetUserVolume(userId: UserId, volume: number) {
    return call<void>('voice_set_user_volume', { userId, volume: Math.round(volume) });
  }
  voicePeers() {
    return call<PeerQuality[]>('voice_peers');
  }
  voiceDevices() {
    return call<AudioDevices>('voice_devices');
  }
  voiceSettings() {
    return call<VoiceSettings>('voice_settings_get');
  }
  saveVoiceSettings(settings: VoiceSettings) {
    return call<void>('voice_settings_set', { settings });
  }
  voiceMicTestStart() {
    return call<void>('voice_mic_test_start');
  }
  voiceMicTestStop() {
    return call<void>('voice_mic_test_stop');
  }
  onVoiceCall(listener: (call: VoiceCall) => void) {
    return subscribe(EVENTS.voiceState, listener);
  }
  onSpeaking(listener: (updates: SpeakingUpdate[]) => void) {
    return subscribe(EVENTS.voiceSpeaking, listener);
  }
  onQuality(listener: (quality: PeerQuality) => void) {
    return subscribe(EVENTS.voiceQuality, listener);
  }
  onMicLevel(listener: (level: MicLevel) => void) {
    return subscribe(EVENTS.voiceLevel, listener);
  }
  onVoiceDeviceError(listener: (error: VoiceDeviceError) => void) {
    return subscribe(EVENTS.voiceDeviceError, listener);
  }

  transferList() {
    return call<TransferInfo[]>('transfer_list');
  }
  transferPick(folders: boolean) {
    return call<string[] | null>('transfer_pick', { folders });
  }
  transferSend(userId: UserId, paths: string[]) {
    return call<string>('transfer_send', { userId, paths });
  }
  transferAccept(id: string) {
    return call<boolean>('transfer_accept', { id });
  }
  transferDecline(id: string) {
    return call<void>('transfer_decline', { id });
  }
  transferPause(id: string) {
    return call<void>('transfer_pause', { id });
  }
  transferResume(id: string) {
    return call<void>('transfer_resume', { id });
  }
  transferCancel(id: string) {
    return call<void>('transfer_cancel', { id });
  }
  onTransfer(listener: (transfer: TransferInfo) => void) {
    return subscribe(EVENTS.transfer, listener);
  }

  attachmentPick() {
    return call<string[] | null>('transfer_pick', { folders: false });
  }
  attachmentExpand(paths: string[]) {
    return call<string[]>('attachment_expand', { paths });
  }
  attachmentUpload(job: string, path: string) {
    return call<Attachment>('attachment_upload', { job, path });
  }
  async attachmentUploadBlob(job: string, name: string, file: Blob) {
    // Staged in pieces as raw IPC bodies (never a JSON number array, never the file whole).
    this.stagingCancelled.delete(job);
    try {
      for (let offset = 0; offset === 0 || offset < file.size; offset += STAGE_PIECE) {
        if (this.stagingCancelled.has(job)) throw new BackendError('cancelled', 'cancelled');
        const piece = await bytesOf(file.slice(offset, offset + STAGE_PIECE));
        await callRaw<number>('attachment_stage', piece, { 'x-hearth-job': job, 'x-hearth-offset': String(offset) });
      }
      if (this.stagingCancelled.has(job)) throw new BackendError('cancelled', 'cancelled');
      return await call<Attachment>('attachment_upload_staged', { job, name, size: file.size });
    } finally {
      this.stagingCancelled.delete(job);
    }
  }
  attachmentDownload(job: string, attachment: Attachment) {
    return call<string | null>('attachment_download', {
      job,
      id: attachment.id,
      size: attachment.size,
      name: attachment.name,
    });
  }
  attachmentCancel(job: string) {
    this.stagingCancelled.add(job);
    return call<boolean>('attachment_cancel', { job });
  }
  attachmentImage(id: AttachmentId, full: boolean) {
    return call<string>('attachment_image', { id, full });
  }
  onAttachmentProgress(listener: (progress: AttachmentProgress) => void) {
    return subscribe(EVENTS.attachmentProgress, listener);
  }

  inviteCreate(maxUses: number | null, expiresInSecs: number | null) {
    return call<InviteView>('invite_create', { maxUses, expiresInSecs });
  }
  inviteList() {
    return call<InviteView[]>('invite_list');
  }
  inviteRevoke(code: string) {
    return call<void>('invite_revoke', { code });
  }
  channelCreate(request: CreateChannelRequest) {
    return call<Channel>('channel_create', { request });
  }
  channelUpdate(channelId: ChannelId, request: UpdateChannelRequest) {
    return call<Channel>('channel_update', { channelId, request });
  }
  channelSetMembers(channelId: ChannelId, members: UserId[]) {
    return call<Channel>('channel_set_members', { channelId, members });
  }
  channelReorder(channelIds: ChannelId[]) {
    return call<Channel[]>('channel_reorder', { channelIds });
  }
  channelDelete(channelId: ChannelId) {
    return call<void>('channel_delete', { channelId });
  }
  memberSetRole(userId: UserId, role: Role) {
    return call<User>('member_set_role', { userId, role });
  }
  memberKick(userId: UserId, reason: string | null) {
    return call<void>('member_kick', { userId, reason });
  }
  memberBan(userId: UserId, reason: string | null) {
    return call<void>('member_ban', { userId, reason });
  }
  memberUnban(userId: UserId) {
    return call<void>('member_unban', { userId });
  }
  banList() {
    return call<Ban[]>('ban_list');
  }
  memberBlock(userId: UserId, blocked: boolean) {
    return call<void>('member_block', { userId, blocked });
  }
  ownershipTransfer(userId: UserId) {
    return call<User>('ownership_transfer', { userId });
  }
  serverSettingsUpdate(request: UpdateServerSettingsRequest) {
    return call<ServerSettings>('server_settings_update', { request });
  }
  serverSetIcon(path: string | null) {
    return call<ServerSettings>('server_set_icon', { path });
  }
  serverIconUrl(hash: string) {
    return this.imageUrl('server_icon_get', hash);
  }
  auditLog(before: AuditEntryId | null, limit: number) {
    return call<AuditEntry[]>('audit_log', { before, limit });
  }
}
