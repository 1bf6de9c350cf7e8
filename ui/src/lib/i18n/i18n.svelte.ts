//! The active language and the `t()` lookup every visible string goes through.

import type { Language } from '../backend/backend';
import { en, type MessageKey } from './en';
import { fr } from './fr';
import { zhTW } from './zh-TW';

export type { MessageKey };

export const TABLES: Record<Language, Record<MessageKey, string>> = { en, 'zh-TW': zhTW, fr };

/** Language names are shown in their own language, so they are not translated. */
export const LANGUAGE_NAMES: Record<Language, string> = { en: 'English', 'zh-TW': '繁體中文', fr: 'Français' };

export type Params = Record<string, string | number>;

export function translate(language: Language, key: MessageKey, params?: Params): string {
  const text = TABLES[language][key] ?? en[key] ?? key;
  if (!params) return text;
  return text.replace(/\{(\w+)\}/g, (whole, name: string) => (name in params ? String(params[name]) : whole));
}

export class I18n {
  language = $state<Language>('en');

  constructor(language: Language = 'en') {
    this.language = language;
  }

  /** The BCP 47 tag for `Intl` formatting and the document's `lang`. */
  get locale(): string {
    return this.language;
  }

  t = (key: MessageKey, params?: Params): string => translate(this.language, key, params);

  time(ms: number): string {
    return formatter(this.locale, 'time').format(ms);
  }

  dateTime(ms: number): string {
    return formatter(this.locale, 'dateTime').format(ms);
  }

  day(ms: number, now = Date.now()): string {
    const startOf = (t: number) => new Date(t).setHours(0, 0, 0, 0);
    const diff = Math.round((startOf(now) - startOf(ms)) / 86_400_000);
    if (diff === 0) return this.t('messages.today');
    if (diff === 1) return this.t('messages.yesterday');
    return formatter(this.locale, 'day').format(ms);
  }
}

const FORMATS = {
  time: { hour: '2-digit', minute: '2-digit' },
  dateTime: { dateStyle: 'full', timeStyle: 'short' },
  day: { dateStyle: 'long' },
} satisfies Record<string, Intl.DateTimeFormatOptions>;

/**
 * One `Intl.DateTimeFormat` per locale and format: building one costs far more than formatting
 * (a channel's history formats two timestamps per message; building them per call made paging
 * through long histories slow).
 */
const formatters = new Map<string, Intl.DateTimeFormat>();
function formatter(locale: string, kind: keyof typeof FORMATS): Intl.DateTimeFormat {
  const key = `${locale}|${kind}`;
  let f = formatters.get(key);
  if (!f) {
    f = new Intl.DateTimeFormat(locale, FORMATS[kind]);
    formatters.set(key, f);
  }
  return f;
}
