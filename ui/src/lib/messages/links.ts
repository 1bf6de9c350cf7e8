//! Links to a message: `hearth://message?server=BASE&channel=ID&message=ID`, made by a message's
//! "Copy link" and opened when one is clicked in a message or arrives from outside through the
//! `hearth://` scheme (the shell's `link://open`, next to `hearth://join`). `BASE` is the
//! server's address as the app stores it (`https://host[:port][/prefix]`), so a link names its
//! server and the app can switch to the account it has there.

import type { ChannelId, MessageId } from '../protocol/generated';

export interface MessageLink {
  /** The server's base address, normalised by [`serverKey`]. */
  serverUrl: string;
  channelId: ChannelId;
  messageId: MessageId;
}

/** An id as it may appear in a link (the server's are decimal snowflakes; the mock's are not). */
const ID = /^[A-Za-z0-9]{1,32}$/;

/**
 * A server address in the one form links and accounts are compared in: `scheme://host[:port]`
 * plus its path without a trailing slash; `null` for anything but an http(s) address.
 */
export function serverKey(text: string): string | null {
  let url: URL;
  try {
    url = new URL(text.trim());
  } catch {
    return null;
  }
  if ((url.protocol !== 'https:' && url.protocol !== 'http:') || !url.hostname) return null;
  if (url.username || url.password) return null;
  return `${url.protocol}//${url.host}${url.pathname.replace(/\/+$/, '')}`;
}

/** Whether two server addresses name the same server. */
export function sameServer(a: string, b: string): boolean {
  const key = serverKey(a);
  return key !== null && key === serverKey(b);
}

/** The link to a message of `serverUrl`. */
export function messageLink(serverUrl: string, channelId: ChannelId, messageId: MessageId): string {
  const params = new URLSearchParams({ server: serverKey(serverUrl) ?? serverUrl, channel: channelId, message: messageId });
  return `hearth://message?${params}`;
}

/** Whether `text` is meant as a message link (`hearth://message…`), well-formed or not. */
export function isMessageLinkLike(text: string): boolean {
  return /^hearth:\/\/\/?message\b/i.test(text.trim());
}

/** The message a `hearth://message?...` link names, or `null` for any other text. */
export function parseMessageLink(text: string): MessageLink | null {
  let url: URL;
  try {
    url = new URL(text.trim());
  } catch {
    return null;
  }
  if (url.protocol !== 'hearth:') return null;
  // `URL` puts "message" in the host for non-special schemes.
  const action = (url.host || url.pathname.replace(/^\/+/, '')).toLowerCase();
  if (action !== 'message') return null;
  const server = serverKey(url.searchParams.get('server') ?? '');
  const channelId = url.searchParams.get('channel') ?? '';
  const messageId = url.searchParams.get('message') ?? '';
  if (!server || !ID.test(channelId) || !ID.test(messageId)) return null;
  return { serverUrl: server, channelId, messageId };
}
