import { describe, expect, it } from 'vitest';
import { en } from './en';
import { TABLES, translate } from './i18n.svelte';

describe('i18n tables', () => {
  const keys = Object.keys(en).sort();
  for (const [language, table] of Object.entries(TABLES)) {
    it(`${language} has exactly the English keys, none empty`, () => {
      expect(Object.keys(table).sort()).toEqual(keys);
      for (const key of keys) expect((table as Record<string, string>)[key].trim(), key).not.toBe('');
    });
    it(`${language} keeps every placeholder of the English text`, () => {
      for (const key of keys) {
        const want = [...(en as Record<string, string>)[key].matchAll(/\{(\w+)\}/g)].map((m) => m[1]).sort();
        const got = [...(table as Record<string, string>)[key].matchAll(/\{(\w+)\}/g)].map((m) => m[1]).sort();
        expect(got, `${language} ${key}`).toEqual(want);
      }
    });
  }
  it('fills placeholders', () => {
    expect(translate('fr', 'typing.two', { a: 'Bob', b: 'Carol' })).toBe('Bob et Carol sont en train d’écrire…');
  });
});
