//! Attachments for the mock backend: files "on disk" (`files`, by path, which tests fill),
//! uploads with progress and cancel, the server's sniffing (only PNG, JPEG, GIF and WebP bytes
//! become images), images as `data:` URLs, and downloads with progress.

import type { Attachment, AttachmentId } from '../protocol/generated';
import { BackendError, type AttachmentProgress, type Unsubscribe } from './backend';

/** The raster image type the bytes start with, as the server sniffs it; null for anything else. */
export function sniffImage(bytes: Uint8Array): string | null {
  const starts = (sig: number[], at = 0) => sig.every((b, i) => bytes[at + i] === b);
  if (starts([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])) return 'image/png';
  if (starts([0xff, 0xd8, 0xff])) return 'image/jpeg';
  if (starts([0x47, 0x49, 0x46, 0x38])) return 'image/gif';
  if (starts([0x52, 0x49, 0x46, 0x46]) && starts([0x57, 0x45, 0x42, 0x50], 8)) return 'image/webp';
  return null;
}

function dataUrl(type: string, bytes: Uint8Array): string {
  let bin = '';
  for (const b of bytes) bin += String.fromCharCode(b);
  return `data:${type};base64,${btoa(bin)}`;
}

export class MockAttachments {
  /** Local files by path: what the dialog and drops can name. */
  readonly files = new Map<string, Uint8Array>();
  /** What the next `attachmentPick` returns (null: the dialog was cancelled). */
  picked: string[] | null = null;
  /** When set, uploads stop half way until `release()` (so tests can see progress and cancel). */
  holdUploads = false;
  /** Paths the save dialog returned, in order. */
  readonly downloads: string[] = [];
  private stored = new Map<AttachmentId, { attachment: Attachment; bytes: Uint8Array }>();
  private running = new Map<string, { cancelled: boolean; release: () => void }>();
  private listeners = new Set<(p: AttachmentProgress) => void>();
  private next = 1;

  on(listener: (p: AttachmentProgress) => void): Unsubscribe {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private progress(job: string, done: number, total: number) {
    for (const l of [...this.listeners]) l({ job, done, total });
  }

  expand(paths: string[]): string[] {
    const out: string[] = [];
    for (const p of paths) {
      if (this.files.has(p)) out.push(p);
      else out.push(...[...this.files.keys()].filter((f) => f.startsWith(`${p}/`)).sort());
    }
    return out;
  }

  release() {
    this.holdUploads = false;
    for (const r of this.running.values()) r.release();
  }

  cancel(job: string): boolean {
    const r = this.running.get(job);
    if (!r) return false;
    r.cancelled = true;
    r.release();
    return true;
  }

  async uploadPath(job: string, path: string): Promise<Attachment> {
    const bytes = this.files.get(path);
    if (!bytes) throw new BackendError('not_found', `no such file: ${path}`);
    return this.upload(job, path.replace(/^.*\//, ''), bytes);
  }

  async upload(job: string, name: string, bytes: Uint8Array): Promise<Attachment> {
    if (this.running.has(job)) throw new BackendError('invalid_field', 'job: already running');
    const state = { cancelled: false, release: () => {} };
    const held = new Promise<void>((resolve) => (state.release = resolve));
    this.running.set(job, state);
    try {
      this.progress(job, 0, bytes.length);
      await Promise.resolve();
      this.progress(job, Math.floor(bytes.length / 2), bytes.length);
      if (this.holdUploads) await held;
      if (state.cancelled) throw new BackendError('cancelled', 'Cancelled.');
      this.progress(job, bytes.length, bytes.length);
      const image = sniffImage(bytes);
      const attachment: Attachment = {
        id: `a${this.next++}`,
        name,
        size: bytes.length,
        content_type: image ?? 'application/octet-stream',
        kind: image ? 'image' : 'file',
        width: null,
        height: null,
        thumbnail: image !== null,
      };
      this.stored.set(attachment.id, { attachment, bytes });
      return structuredClone(attachment);
    } finally {
      this.running.delete(job);
    }
  }

  /** The stored attachments of `ids`, in order; unknown ids are refused as the server does. */
  resolve(ids: AttachmentId[]): Attachment[] {
    return ids.map((id) => {
      const s = this.stored.get(id);
      if (!s) throw new BackendError('not_found', 'no such attachment');
      return structuredClone(s.attachment);
    });
  }

  image(id: AttachmentId): string {
    const s = this.stored.get(id);
    const type = s && s.attachment.kind === 'image' ? sniffImage(s.bytes) : null;
    if (!s || !type) throw new BackendError('unsupported_media', 'not an image');
    return dataUrl(type, s.bytes);
  }

  async download(job: string, attachment: Attachment): Promise<string | null> {
    const s = this.stored.get(attachment.id);
    if (!s) throw new BackendError('not_found', 'no such attachment');
    const path = `/home/me/Downloads/${attachment.name}`;
    this.progress(job, 0, s.bytes.length);
    await Promise.resolve();
    this.progress(job, s.bytes.length, s.bytes.length);
    this.downloads.push(path);
    return path;
  }
}
