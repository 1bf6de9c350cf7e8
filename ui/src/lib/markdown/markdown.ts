//! Message markdown to safe HTML. Two locks: markdown-it runs with raw HTML off (so `<script>`
//! in a message is text), and its output goes through DOMPurify with a short allowlist, so that a
//! bug in either one alone cannot put script into the page. `<@id>` mentions become spans.
//! One message can never change how another renders: each render gets its own markdown-it
//! `env` (a reference definition such as `[docs]: http://…` lives in it). Quotes nested deeper
//! than markdown-it's nesting limit would lose their text, so they are flattened first.
//! Links keep an href only when it is http(s) or mailto (opened in the system browser) or a
//! well-formed `hearth://message` or `hearth://join|setup` link (opened in the app; bare ones
//! in the text are linked too, so a pasted message link becomes clickable).

import DOMPurify from 'dompurify';
import MarkdownIt from 'markdown-it';
import type { UserId } from '../protocol/generated';
import { parseMessageLink } from '../messages/links';
import { parseServerTarget } from '../session/invite';

export interface RenderEnv {
  /** Display name for a mentioned user id. */
  nameOf: (id: UserId) => string;
  /** The signed-in user, whose mentions are highlighted more strongly. */
  me: UserId | null;
}

const ALLOWED_TAGS = [
  'p', 'br', 'strong', 'em', 's', 'del', 'code', 'pre', 'blockquote', 'ul', 'ol', 'li', 'a', 'span',
  'h1', 'h2', 'h3', 'h4', 'h5', 'h6', 'hr',
];
const ALLOWED_ATTR = ['href', 'class', 'data-user-id', 'title', 'rel', 'start'];
const SAFE_HREF = /^(https?:|mailto:)/i;

/** Whether `href` is a link the app opens itself: a message link, or a join or setup link. */
export function isAppLink(href: string): boolean {
  if (!/^hearth:/i.test(href.trim())) return false;
  return parseMessageLink(href) !== null || parseServerTarget(href) !== null;
}

const md = new MarkdownIt({ html: false, linkify: true, breaks: true, typographer: false });
// Tables and images are not part of chat markdown: an image would load a remote URL unasked.
md.disable(['table', 'image']);
// Bare `hearth://message?…` (and join/setup) links in the text become links; a sentence's
// closing punctuation is left out of them.
md.linkify.add('hearth:', {
  validate: (text, pos) => {
    const match = /^\/\/(?:message|join|setup)\?[^\s<>"'`]+/i.exec(text.slice(pos));
    return match ? match[0].replace(/[.,;:!?)\]]+$/, '').length : 0;
  },
});

const escapeHtml = (s: string) =>
  s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

md.inline.ruler.before('autolink', 'mention', (state, silent) => {
  if (state.src.charCodeAt(state.pos) !== 0x3c /* < */) return false;
  const match = /^<@([A-Za-z0-9]{1,32})>/.exec(state.src.slice(state.pos));
  if (!match) return false;
  if (!silent) {
    const token = state.push('mention', '', 0);
    token.meta = { id: match[1] };
  }
  state.pos += match[0].length;
  return true;
});

md.renderer.rules.mention = (tokens, idx, _options, env: RenderEnv) => {
  const id: string = tokens[idx].meta.id;
  const cls = env?.me === id ? 'mention mention-me' : 'mention';
  const name = env?.nameOf ? env.nameOf(id) : id;
  return `<span class="${cls}" data-user-id="${escapeHtml(id)}">@${escapeHtml(name)}</span>`;
};

const purifier = DOMPurify;
purifier.addHook('afterSanitizeAttributes', (node) => {
  if (node.tagName === 'A') {
    const href = node.getAttribute('href') ?? '';
    if (isAppLink(href)) node.setAttribute('class', 'app-link');
    else if (!SAFE_HREF.test(href)) node.removeAttribute('href');
    node.setAttribute('rel', 'noopener noreferrer');
  }
});

/** Quote levels kept; deeper `>` markers are merged into the deepest kept level. */
export const MAX_QUOTE_DEPTH = 8;

/** Caps the `>` markers at the start of each line (outside code fences) at MAX_QUOTE_DEPTH. */
function capQuotes(content: string): string {
  let fenced = false;
  return content
    .split('\n')
    .map((line) => {
      if (/^\s*(```|~~~)/.test(line.replace(/^(\s*>)+/, ''))) fenced = !fenced;
      if (fenced) return line;
      const lead = /^(?:[ \t]*>)+/.exec(line);
      if (!lead) return line;
      const depth = (lead[0].match(/>/g) ?? []).length;
      if (depth <= MAX_QUOTE_DEPTH) return line;
      return '>'.repeat(MAX_QUOTE_DEPTH) + line.slice(lead[0].length);
    })
    .join('\n');
}

/** Sanitised HTML for a message body, safe for `{@html}`. */
export function renderMarkdown(content: string, env: RenderEnv): string {
  // A fresh env per message: markdown-it keeps reference definitions in it.
  const html = md.render(capQuotes(content), { ...env });
  return purifier.sanitize(html, {
    ALLOWED_TAGS,
    ALLOWED_ATTR,
    ALLOW_DATA_ATTR: false,
    ALLOWED_URI_REGEXP: /^(?:https?:|mailto:|hearth:)/i,
  });
}

/** Plain text for previews (replies, search, notifications): mentions as @name, no markup. */
export function plainText(content: string, env: RenderEnv): string {
  // Mentions are set aside first: their `<`/`>` must survive the markup stripping, and the
  // names put back afterwards must not be stripped.
  const ids: string[] = [];
  return content
    .replace(/<@([A-Za-z0-9]{1,32})>/g, (_, id: string) => `\u0000${ids.push(id) - 1}\u0000`)
    .replace(/```[\s\S]*?```/g, (block) => block.replace(/```\w*\n?/g, ''))
    .replace(/[*_~`>#]/g, '')
    .replace(/\s+/g, ' ')
    .replace(/\u0000(\d+)\u0000/g, (_, i: string) => `@${env.nameOf(ids[Number(i)])}`)
    .trim();
}
