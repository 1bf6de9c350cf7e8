/// <reference types="svelte" />
/// <reference types="vite/client" />

/** True in `--mode mock` builds: the app uses the in-memory backend even inside Tauri. */
declare const __HEARTH_FORCE_MOCK__: boolean;
