// House rules checked over the source: only backend/tauri.ts talks to Tauri, and the only
// `{@html}` is the sanitised markdown.
import { describe, expect, it } from 'vitest';

const sources = import.meta.glob(['/src/**/*.svelte', '/src/**/*.ts', '!/src/**/*.test.ts'], {
  query: '?raw',
  import: 'default',
  eager: true,
}) as Record<string, string>;

describe('source rules', () => {
  it('finds the sources', () => {
    expect(Object.keys(sources).length).toBeGreaterThan(30);
  });

  it('only the Tauri backend imports @tauri-apps', () => {
    const offenders = Object.entries(sources)
      .filter(([, text]) => text.includes('@tauri-apps/'))
      .map(([file]) => file);
    expect(offenders).toEqual(['/src/lib/backend/tauri.ts']);
  });

  it('only Markdown.svelte uses {@html}', () => {
    const offenders = Object.entries(sources)
      .filter(([file, text]) => file.endsWith('.svelte') && text.includes('{@html'))
      .map(([file]) => file);
    expect(offenders).toEqual(['/src/lib/markdown/Markdown.svelte']);
  });
});
