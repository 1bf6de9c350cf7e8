//! Parses what a user pastes on the add-server screen: a server URL, an invite link
//! (`hearth://join?server=https://host&code=CODE`, or `https://host/invite/CODE`), or the
//! one-time setup link a new server prints (`hearth://setup?server=https://host&token=TOKEN`),
//! whose token is the invite of the group's owner.

export interface ServerTarget {
  /** Origin of the server, e.g. `https://hearth.example:8443`. */
  serverUrl: string;
  /** The invite code when the text was an invite link (the setup token for a setup link). */
  invite: string | null;
  /** Present for a setup link: registering creates the group's owner. */
  setup?: true;
}

const CODE = /^[A-Za-z0-9_-]{1,64}$/;

/** Returns `null` when the text is neither an http(s) URL nor an invite link. */
export function parseServerTarget(text: string): ServerTarget | null {
  const trimmed = text.trim();
  if (!trimmed) return null;
  let url: URL;
  try {
    // A bare host ("hearth.example") is taken as https.
    url = new URL(/^[a-z][a-z0-9+.-]*:/i.test(trimmed) ? trimmed : `https://${trimmed}`);
  } catch {
    return null;
  }
  if (url.protocol === 'hearth:') {
    // `hearth://join?...`: URL puts "join" in the host for non-special schemes.
    const action = (url.host || url.pathname.replace(/^\/+/, '')).toLowerCase();
    if (action !== 'join' && action !== 'setup') return null;
    const server = url.searchParams.get('server');
    const code =
      action === 'setup' ? url.searchParams.get('token') : (url.searchParams.get('code') ?? url.searchParams.get('invite'));
    if (!server) return null;
    const inner = parseServerTarget(server);
    if (!inner) return null;
    const invite = code && CODE.test(code) ? code : null;
    if (action === 'setup') return invite ? { serverUrl: inner.serverUrl, invite, setup: true } : null;
    return { serverUrl: inner.serverUrl, invite };
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') return null;
  if (!url.hostname) return null;
  const match = /^\/(?:invite|join)\/([^/]+)\/?$/.exec(url.pathname);
  const code = match ? decodeURIComponent(match[1]) : url.searchParams.get('code');
  return { serverUrl: url.origin, invite: code && CODE.test(code) ? code : null };
}
