//! Push-to-talk accelerators: `[Modifier+]*Code` with modifiers Control, Alt, Shift, Super and
//! the key's `KeyboardEvent.code` (the format the shell hands to the global-shortcut plugin).

const MODIFIER_CODES = /^(Control|Alt|Shift|Meta|OS)(Left|Right)?$/;

/** The accelerator a key press makes, or `null` while only modifiers are held. */
export function acceleratorFromEvent(e: Pick<KeyboardEvent, 'code' | 'ctrlKey' | 'altKey' | 'shiftKey' | 'metaKey'>): string | null {
  if (!e.code || e.code === 'Unidentified' || e.code === 'Unknown' || MODIFIER_CODES.test(e.code)) return null;
  const parts: string[] = [];
  if (e.ctrlKey) parts.push('Control');
  if (e.altKey) parts.push('Alt');
  if (e.shiftKey) parts.push('Shift');
  if (e.metaKey) parts.push('Super');
  parts.push(e.code);
  return parts.join('+');
}

const SYMBOLS: Record<string, string> = {
  ArrowUp: '↑',
  ArrowDown: '↓',
  ArrowLeft: '←',
  ArrowRight: '→',
  Backquote: '`',
  Minus: '-',
  Equal: '=',
  BracketLeft: '[',
  BracketRight: ']',
  Semicolon: ';',
  Quote: "'",
  Comma: ',',
  Period: '.',
  Slash: '/',
  Backslash: '\\',
};

/** Modifier and key names the UI translates (`keys.*` in the i18n tables). */
export const NAMED_KEYS = ['Control', 'Alt', 'Shift', 'Super', 'Space'] as const;
export type NamedKey = (typeof NAMED_KEYS)[number];

/** The parts to show, key names shortened (`KeyV` → `V`, `Digit1` → `1`, `ArrowUp` → `↑`). */
export function acceleratorParts(accelerator: string): string[] {
  return accelerator.split('+').map(
    (p) => SYMBOLS[p] ?? p.replace(/^Key([A-Z])$/, '$1').replace(/^Digit(\d)$/, '$1').replace(/^Numpad(\w+)$/, 'Num $1'),
  );
}

/** A key without modifiers that types a character: as a global shortcut it stops typing it elsewhere. */
export function typesCharacter(accelerator: string): boolean {
  return !accelerator.includes('+') && /^(Key[A-Z]|Digit\d|Space|Backquote|Minus|Equal|Bracket\w+|Semicolon|Quote|Comma|Period|Slash|Backslash)$/.test(accelerator);
}
