/// <reference types="vitest/config" />
import { defineConfig } from 'vite';
import { svelte } from '@sveltejs/vite-plugin-svelte';

// `--mode mock` (npm run dev:mock, the browser tests) forces the in-memory backend even when
// Tauri is present; in any other mode the app picks Tauri when it runs inside the shell.
export default defineConfig(({ mode }) => ({
  plugins: [svelte()],
  clearScreen: false,
  server: { port: 1420, strictPort: true },
  envPrefix: ['VITE_', 'TAURI_ENV_'],
  define: { __HEARTH_FORCE_MOCK__: JSON.stringify(mode === 'mock') },
  build: { target: 'es2022', sourcemap: mode !== 'production' },
  resolve: process.env.VITEST ? { conditions: ['browser'] } : undefined,
  test: {
    environment: 'jsdom',
    include: ['src/**/*.test.ts'],
    setupFiles: ['src/test-setup.ts'],
    // Component tests drive the whole app through user events; on a loaded 2-core machine
    // a few take longer than the default 5 s without anything being wrong.
    testTimeout: 20_000,
  },
}));
