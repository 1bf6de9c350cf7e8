//! Helpers for attachments in the message pane and the composer: sizes for people, the image
//! cache (attachments never change, so a preview is fetched once), and the files of a drop
//! or paste (folders replaced by the files inside them).

import type { Backend } from '../backend/backend';
import type { Attachment, AttachmentId } from '../protocol/generated';

/** `1.5 MB`-style sizes (powers of 1024, one decimal under 10). */
export function formatBytes(n: number): string {
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  const shown = i === 0 || v >= 10 ? Math.round(v).toString() : v.toFixed(1);
  return `${shown} ${units[i]}`;
}

/** Shown inline only when the server decided it is an image and made a preview. */
export const isPreviewable = (a: Attachment) => a.kind === 'image' && a.thumbnail;

/** Whole percent of a job, 0 when the size is unknown. */
export const percent = (done: number, total: number) => (total > 0 ? Math.min(100, Math.floor((done * 100) / total)) : 0);

const cache = new Map<string, Promise<string>>();

/** A `data:` URL of the thumbnail (or the whole image with `full`), fetched once per session. */
export function imageUrl(backend: Backend, id: AttachmentId, full: boolean): Promise<string> {
  const key = `${full ? 'full' : 'thumb'}:${id}`;
  let url = cache.get(key);
  if (!url) {
    url = backend.attachmentImage(id, full);
    // A failure is not remembered: the next look tries again.
    url.catch(() => cache.delete(key));
    cache.set(key, url);
  }
  return url;
}

let jobs = 0;
/** A job id for an upload or download, unique in this window. */
export const newJob = (kind: 'up' | 'down') => `${kind}${Date.now().toString(36)}${(jobs++).toString(36)}`;

interface Entry {
  isFile: boolean;
  isDirectory: boolean;
  file?(ok: (f: File) => void, err: (e: unknown) => void): void;
  createReader?(): { readEntries(ok: (e: Entry[]) => void, err: (e: unknown) => void): void };
}

async function walk(entry: Entry, out: File[]) {
  if (entry.isFile && entry.file) {
    out.push(await new Promise<File>((ok, err) => entry.file!(ok, err)));
  } else if (entry.isDirectory && entry.createReader) {
    const reader = entry.createReader();
    // readEntries returns a batch at a time until an empty one.
    for (;;) {
      const batch = await new Promise<Entry[]>((ok, err) => reader.readEntries(ok, err));
      if (!batch.length) break;
      for (const e of batch) await walk(e, out);
    }
  }
}

/** The files of a drop or paste; a dropped folder gives every file inside it. */
export async function filesOf(data: DataTransfer): Promise<File[]> {
  const entries: Entry[] = [];
  for (const item of Array.from(data.items ?? [])) {
    if (item.kind !== 'file') continue;
    const entry = (item as DataTransferItem & { webkitGetAsEntry?: () => Entry | null }).webkitGetAsEntry?.();
    if (entry) entries.push(entry);
  }
  // Only folders need walking; plain files come from `files` (WebKitGTK's entry of a file made
  // in the page, not read from disk, never calls back from `file()`).
  if (!entries.some((e) => e.isDirectory)) return Array.from(data.files ?? []);
  const out: File[] = [];
  for (const e of entries) await walk(e, out);
  return out;
}
