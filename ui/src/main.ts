//! Entry point: picks the backend (Tauri or mock), builds the root state and mounts the app.

import { mount } from 'svelte';
import App from './App.svelte';
import { Hearth } from './lib/app/hearth.svelte';
import { createBackend } from './lib/backend/select';
import './app.css';

const backend = await createBackend();
const hearth = new Hearth(backend);
mount(App, { target: document.getElementById('app')!, props: { hearth } });
