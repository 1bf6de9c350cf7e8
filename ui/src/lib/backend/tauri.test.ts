// Pins the Tauri command/event names and argument shapes documented in ./README.md, so the
// contract with src-tauri cannot drift silently.
import { beforeEach, describe, expect, it, vi } from 'vitest';

const invoke = vi.fn();
const listen = vi.fn();
vi.mock('@tauri-apps/api/core', () => ({ invoke: (...args: unknown[]) => invoke(...args) }));
vi.mock('@tauri-apps/api/event', () => ({ listen: (...args: unknown[]) => listen(...args) }));

const { TauriBackend, EVENTS } = await import('./tauri');
const { BackendError, DEFAULT_VOICE_SETTINGS } = await import('./backend');

describe('TauriBackend', () => {
  beforeEach(() => {
    invoke.mockReset().mockResolvedValue(null);
    listen.mockReset().mockResolvedValue(() => undefined);
  });

  it('calls the documented commands with camelCase arguments', async () => {
    const b = new TauriBackend();
    const settings = { theme: 'dark', language: 'fr', notifications: { level: 'all', channels: {} } } as const;
    const voice = { ...DEFAULT_VOICE_SETTINGS, input_mode: 'push_to_talk', ptt_key: 'Control+Shift+KeyV' } as const;
    const calls: [() => Promise<unknown>, string, Record<string, unknown> | undefined][] = [
      [() => b.listAccounts(), 'account_list', undefined],
      [() => b.activeAccount(), 'account_active', undefined],
      [() => b.serverInfo('https://h.example'), 'server_info', { serverUrl: 'https://h.example' }],
      [
        () => b.register('https://h.example', { invite: 'I', username: 'u', password: 'p', display_name: null }),
        'account_register',
        { serverUrl: 'https://h.example', request: { invite: 'I', username: 'u', password: 'p', display_name: null } },
      ],
      [() => b.login('https://h.example', { username: 'u', password: 'p' }), 'account_login', { serverUrl: 'https://h.example', request: { username: 'u', password: 'p' } }],
      [() => b.logout('a1'), 'account_logout', { accountId: 'a1' }],
      [() => b.switchAccount('a1'), 'account_switch', { accountId: 'a1' }],
      [() => b.sessionStatus(), 'session_status', undefined],
      [() => b.snapshot(), 'session_snapshot', undefined],
      [() => b.history('c', '9', 50), 'message_history', { channelId: 'c', before: '9', limit: 50 }],
      [() => b.historyAround('c', '9', 51), 'message_history_around', { channelId: 'c', messageId: '9', limit: 51 }],
      [() => b.historyAfter('c', '9', 50), 'message_history_after', { channelId: 'c', after: '9', limit: 50 }],
      [() => b.search('tea from:mum', 25), 'search_messages', { query: 'tea from:mum', offset: 25 }],
      [
        () => b.sendMessage({ channel_id: 'c', content: 'hi', reply_to: null, nonce: 'n' }),
        'message_send',
        { channelId: 'c', content: 'hi', replyTo: null, nonce: 'n', attachments: null },
      ],
      [
        () => b.sendMessage({ channel_id: 'c', content: '', reply_to: null, nonce: 'n', attachments: ['a1'] }),
        'message_send',
        { channelId: 'c', content: '', replyTo: null, nonce: 'n', attachments: ['a1'] },
      ],
      [() => b.attachmentPick(), 'transfer_pick', { folders: false }],
      [() => b.attachmentExpand(['/d']), 'attachment_expand', { paths: ['/d'] }],
      [() => b.attachmentUpload('j', '/d/a.png'), 'attachment_upload', { job: 'j', path: '/d/a.png' }],
      [
        () =>
          b.attachmentDownload('j', {
            id: 'a1',
            name: 'f.txt',
            size: 3,
            content_type: 'text/plain',
            kind: 'file',
            width: null,
            height: null,
            thumbnail: false,
          }),
        'attachment_download',
        { job: 'j', id: 'a1', size: 3, name: 'f.txt' },
      ],
      [() => b.attachmentCancel('j'), 'attachment_cancel', { job: 'j' }],
      [() => b.attachmentImage('a1', true), 'attachment_image', { id: 'a1', full: true }],
      [() => b.editMessage('c', 'm', 'x'), 'message_edit', { channelId: 'c', messageId: 'm', content: 'x' }],
      [() => b.deleteMessage('c', 'm'), 'message_delete', { channelId: 'c', messageId: 'm' }],
      [() => b.addReaction('c', 'm', '👍'), 'reaction_add', { channelId: 'c', messageId: 'm', emoji: '👍' }],
      [() => b.removeReaction('c', 'm', '👍'), 'reaction_remove', { channelId: 'c', messageId: 'm', emoji: '👍' }],
      [() => b.typing('c'), 'channel_typing', { channelId: 'c' }],
      [() => b.markRead('c', 'm'), 'channel_mark_read', { channelId: 'c', messageId: 'm' }],
      [() => b.setStatus('dnd'), 'presence_set_status', { status: 'dnd' }],
      [() => b.openDm(['u2']), 'dm_open', { recipients: ['u2'] }],
      [() => b.updateProfile('Zoë'), 'profile_update', { displayName: 'Zoë' }],
      [() => b.pickAvatarFile(), 'profile_pick_avatar', undefined],
      [() => b.setAvatar('/tmp/a.png'), 'profile_set_avatar', { path: '/tmp/a.png' }],
      [() => b.avatarUrl('h1'), 'avatar_get', { hash: 'h1' }],
      [() => b.getSettings(), 'settings_get', undefined],
      [() => b.saveSettings(settings), 'settings_set', { settings }],
      [() => b.openExternal('https://example.com'), 'link_open', { url: 'https://example.com' }],
      [() => b.takeStartupLink(), 'link_take_startup', undefined],
      [() => b.getAutostart(), 'autostart_get', undefined],
      [() => b.setAutostart(true), 'autostart_set', { enabled: true }],
      [() => b.checkUpdate(), 'update_check', undefined],
      [() => b.installUpdate(), 'update_install', undefined],
      [() => b.voiceStatus(), 'voice_status', undefined],
      [() => b.voiceJoin('c4'), 'voice_join', { channelId: 'c4' }],
      [() => b.voiceLeave(), 'voice_leave', undefined],
      [() => b.voiceSetMute(true), 'voice_set_mute', { muted: true }],
      [() => b.voiceSetDeafen(false), 'voice_set_deafen', { deafened: false }],
      [() => b.voiceSetUserVolume('u2', 150.4), 'voice_set_user_volume', { userId: 'u2', volume: 150 }],
      [() => b.voicePeers(), 'voice_peers', undefined],
      [() => b.voiceDevices(), 'voice_devices', undefined],
      [() => b.voiceSettings(), 'voice_settings_get', undefined],
      [() => b.saveVoiceSettings(voice), 'voice_settings_set', { settings: voice }],
      [() => b.voiceMicTestStart(), 'voice_mic_test_start', undefined],
      [() => b.voiceMicTestStop(), 'voice_mic_test_stop', undefined],
    ];
    for (const [run, command, args] of calls) {
      invoke.mockClear();
      await run();
      expect(invoke, command).toHaveBeenCalledWith(command, args);
    }
  });

  it('stages a dropped file in raw pieces from offset 0, then uploads it by size', async () => {
    const b = new TauriBackend();
    const { STAGE_PIECE } = await import('./tauri');
    const size = STAGE_PIECE * 2 + 5;
    const bytes = new Uint8Array(size).map((_, i) => i % 251);
    const staged = new Uint8Array(size);
    let length = 0;
    invoke.mockImplementation(async (cmd: string, args: unknown, options?: { headers: Record<string, string> }) => {
      if (cmd === 'attachment_stage') {
        expect(args).toBeInstanceOf(Uint8Array);
        const piece = args as Uint8Array;
        const offset = Number(options?.headers['x-hearth-offset']);
        expect(options?.headers['x-hearth-job']).toBe('j');
        expect(offset).toBe(length);
        staged.set(piece, offset);
        length += piece.length;
        return length;
      }
      if (cmd === 'attachment_upload_staged') return { id: 'a1', size: (args as { size: number }).size };
      return null;
    });
    const done = await b.attachmentUploadBlob('j', 'video.mp4', new Blob([bytes]));
    const stages = invoke.mock.calls.filter((c) => c[0] === 'attachment_stage');
    expect(stages.map((c) => (c[1] as Uint8Array).length)).toEqual([STAGE_PIECE, STAGE_PIECE, 5]);
    expect(length).toBe(size);
    expect(staged.every((v, i) => v === bytes[i])).toBe(true);
    expect(invoke.mock.calls.at(-1)?.slice(0, 2)).toEqual(['attachment_upload_staged', { job: 'j', name: 'video.mp4', size }]);
    expect(done).toEqual({ id: 'a1', size });

    // An empty file is one empty piece; a cancel while staging stops before the upload.
    invoke.mockReset().mockResolvedValue(null);
    await b.attachmentUploadBlob('e', 'empty.txt', new Blob([]));
    expect(invoke.mock.calls.map((c) => c[0])).toEqual(['attachment_stage', 'attachment_upload_staged']);
    invoke.mockClear();
    invoke.mockImplementation(async (cmd: string) => {
      if (cmd === 'attachment_stage') await b.attachmentCancel('c');
      return null;
    });
    await expect(b.attachmentUploadBlob('c', 'big.bin', new Blob([bytes]))).rejects.toMatchObject({ code: 'cancelled' });
    expect(invoke.mock.calls.map((c) => c[0])).toEqual(['attachment_stage', 'attachment_cancel']);
  });

  it('refuses non-http links before asking the shell', async () => {
    const b = new TauriBackend();
    await expect(b.openExternal('file:///etc/passwd')).rejects.toMatchObject({ code: 'invalid_url' });
    expect(invoke).not.toHaveBeenCalled();
  });

  it('turns command errors into BackendErrors with their code', async () => {
    invoke.mockRejectedValue({ code: 'invalid_credentials', message: 'Wrong username or password.' });
    const err = await new TauriBackend().login('https://h.example', { username: 'u', password: 'p' }).catch((e) => e);
    expect(err).toBeInstanceOf(BackendError);
    expect(err.code).toBe('invalid_credentials');
  });

  it('listens to the documented events and unlistens', async () => {
    const unlisten = vi.fn();
    listen.mockResolvedValue(unlisten);
    const b = new TauriBackend();
    const subs = [
      b.onStatus(() => {}),
      b.onReady(() => {}),
      b.onEvent(() => {}),
      b.onSendFailed(() => {}),
      b.onVoiceCall(() => {}),
      b.onSpeaking(() => {}),
      b.onQuality(() => {}),
      b.onMicLevel(() => {}),
      b.onVoiceDeviceError(() => {}),
      b.onLink(() => {}),
      b.onOpenChannel(() => {}),
      b.onTransfer(() => {}),
      b.onAttachmentProgress(() => {}),
    ];
    expect(listen.mock.calls.map((c) => c[0])).toEqual([
      'session://status',
      'session://ready',
      'session://event',
      'message://failed',
      'voice://state',
      'voice://speaking',
      'voice://quality',
      'voice://level',
      'voice://device_error',
      'link://open',
      'notification://open',
      'transfer://changed',
      'attachment://progress',
    ]);
    expect(Object.values(EVENTS)).toHaveLength(13);
    await Promise.resolve();
    for (const unsubscribe of subs) unsubscribe();
    expect(unlisten).toHaveBeenCalledTimes(13);
  });
});
