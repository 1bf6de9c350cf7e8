//! Context keys: the root component provides the backend and one state object per domain;
//! components read them with these getters instead of importing singletons.

import { getContext, setContext } from 'svelte';
import type { Backend } from '../backend/backend';
import type { Hearth } from './hearth.svelte';

const BACKEND = Symbol('backend');
const HEARTH = Symbol('hearth');

export function provideHearth(hearth: Hearth) {
  setContext(BACKEND, hearth.backend);
  setContext(HEARTH, hearth);
}

export function getBackend(): Backend {
  const backend = getContext<Backend | undefined>(BACKEND);
  if (!backend) throw new Error('no Backend in context: render inside <App>');
  return backend;
}

function hearth(): Hearth {
  const h = getContext<Hearth | undefined>(HEARTH);
  if (!h) throw new Error('no Hearth in context: render inside <App>');
  return h;
}

export const getHearth = hearth;
export const getI18n = () => hearth().i18n;
export const getSession = () => hearth().session;
export const getChannels = () => hearth().channels;
export const getMessages = () => hearth().messages;
export const getMembers = () => hearth().members;
export const getSettings = () => hearth().settings;
export const getUi = () => hearth().ui;
export const getCall = () => hearth().call;
export const getAudio = () => hearth().audio;
export const getTransfers = () => hearth().transfers;
export const getAdmin = () => hearth().admin;
