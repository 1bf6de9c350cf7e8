import { fireEvent, screen, waitFor, within } from '@testing-library/svelte';
import { describe, expect, it } from 'vitest';
import { sniffImage } from '../backend/mock-attachments';
import { composer, renderApp } from '../app/testing';
import { formatBytes, percent } from './attachments';

// A real 1×1 PNG.
const PNG = Uint8Array.from(
  atob('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=='),
  (c) => c.charCodeAt(0),
);
const SVG = new TextEncoder().encode('<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>');

describe('attachment helpers', () => {
  it('formats sizes for people', () => {
    expect(formatBytes(0)).toBe('0 B');
    expect(formatBytes(1023)).toBe('1023 B');
    expect(formatBytes(1536)).toBe('1.5 KB');
    expect(formatBytes(25 * 1024 * 1024)).toBe('25 MB');
  });

  it('reports whole percents and never more than 100', () => {
    expect(percent(0, 0)).toBe(0);
    expect(percent(1, 3)).toBe(33);
    expect(percent(5, 4)).toBe(100);
  });

  it('sniffs images from bytes as the server does, never SVG', () => {
    expect(sniffImage(PNG)).toBe('image/png');
    expect(sniffImage(SVG)).toBeNull();
    expect(sniffImage(new TextEncoder().encode('not a png, just named so'))).toBeNull();
  });
});

describe('attachments in the composer and the pane', () => {
  it('attaches picked files with progress, sends them, and shows an image preview and a file card', async () => {
    const { backend, user } = await renderApp();
    backend.attachments.files.set('/home/me/photo.png', PNG);
    backend.attachments.files.set('/home/me/notes.txt', new TextEncoder().encode('hello notes'));
    backend.attachments.picked = ['/home/me/photo.png', '/home/me/notes.txt'];
    backend.attachments.holdUploads = true;

    await user.click(screen.getByTestId('attach'));
    await waitFor(() => expect(screen.getAllByTestId('upload-progress')).toHaveLength(2));
    expect((screen.getAllByTestId('upload-progress')[0] as HTMLProgressElement).value).toBe(50);
    // Sending waits for the uploads.
    await user.type(composer(), 'look{Enter}');
    expect(backend.sent).toHaveLength(0);
    expect(screen.getByRole('alert').textContent).toContain('finished uploading');

    backend.attachments.release();
    await waitFor(() => expect(screen.getAllByTestId('upload').every((u) => u.dataset.done === 'true')).toBe(true));
    await user.click(composer());
    await user.keyboard('{Enter}');
    expect(backend.sent.at(-1)!.content).toBe('look');
    expect(backend.sent.at(-1)!.attachments).toHaveLength(2);
    expect(screen.queryAllByTestId('upload')).toHaveLength(0);
    expect(screen.getAllByTestId('pending-attachment').map((e) => e.textContent)).toEqual(['photo.png', 'notes.txt']);

    backend.ackPending();
    const image = await screen.findByTestId('attachment-image');
    await waitFor(() => expect(image.querySelector('img')?.getAttribute('src')).toMatch(/^data:image\/png;base64,/));
    const card = screen.getByTestId('attachment-file');
    expect(card.textContent).toContain('notes.txt');
    expect(card.textContent).toContain('11 B');
    expect(card.textContent).toContain('application/octet-stream');

    await user.click(within(card).getByTestId('attachment-download'));
    await waitFor(() => expect(backend.attachments.downloads).toEqual(['/home/me/Downloads/notes.txt']));
    await waitFor(() => expect(within(card).getByTestId('attachment-download').textContent).toContain('Saved'));
  });

  it('cancels an upload under way and sends nothing of it', async () => {
    const { backend, user } = await renderApp();
    backend.attachments.files.set('/home/me/big.bin', new Uint8Array(1000));
    backend.attachments.picked = ['/home/me/big.bin'];
    backend.attachments.holdUploads = true;
    await user.click(screen.getByTestId('attach'));
    await screen.findByTestId('upload-progress');
    await user.click(screen.getByTestId('upload-remove'));
    expect(screen.queryAllByTestId('upload')).toHaveLength(0);
    await user.type(composer(), 'no file{Enter}');
    expect(backend.sent.at(-1)!.attachments).toEqual([]);
  });

  it('a file that only claims to be an image, or an SVG, is a card and never a preview', async () => {
    const { backend, user } = await renderApp();
    const evil = new File([SVG], 'drawing.svg', { type: 'image/svg+xml' });
    const liar = new File([new TextEncoder().encode('plain text')], 'photo.png', { type: 'image/png' });
    const area = screen.getByTestId('composer-area');
    await fireEvent.drop(area, { dataTransfer: { types: ['Files'], files: [evil, liar], items: [] } });
    await waitFor(() => expect(screen.getAllByTestId('upload').filter((u) => u.dataset.done === 'true')).toHaveLength(2));
    await user.click(composer());
    await user.keyboard('{Enter}');
    expect(backend.sent.at(-1)!.content).toBe('');
    backend.ackPending();
    await waitFor(() => expect(screen.getAllByTestId('attachment-file')).toHaveLength(2));
    expect(screen.queryByTestId('attachment-image')).toBeNull();
  });

  it('opens the viewer, goes between images with the arrow keys, zooms and closes', async () => {
    const { backend, user } = await renderApp();
    backend.attachments.files.set('/p/one.png', PNG);
    backend.attachments.files.set('/p/two.png', PNG);
    backend.attachments.picked = ['/p'];
    await user.click(screen.getByTestId('attach'));
    await waitFor(() => expect(screen.getAllByTestId('upload').filter((u) => u.dataset.done === 'true')).toHaveLength(2));
    await user.click(composer());
    await user.keyboard('{Enter}');
    backend.ackPending();
    const thumbs = await screen.findAllByTestId('attachment-image');
    await user.click(thumbs[0]);
    const viewer = await screen.findByTestId('image-viewer');
    expect(within(viewer).getByTestId('viewer-name').textContent).toBe('one.png');
    await user.keyboard('{ArrowRight}');
    expect(within(viewer).getByTestId('viewer-name').textContent).toBe('two.png');
    await user.keyboard('{ArrowRight}');
    expect(within(viewer).getByTestId('viewer-name').textContent).toBe('one.png');
    await user.keyboard('+');
    expect(within(viewer).getByTestId('viewer-zoom').textContent).toBe('125%');
    await waitFor(() => expect(within(viewer).getByTestId('viewer-image').getAttribute('src')).toMatch(/^data:image\/png/));
    await user.keyboard('{Escape}');
    expect(screen.queryByTestId('image-viewer')).toBeNull();
  });
});
