import { describe, expect, it } from 'vitest';
import { isAppLink, plainText, renderMarkdown } from './markdown';

const env = { nameOf: (id: string) => (id === '42' ? 'Zoë <b>' : 'someone'), me: '42' };

function dom(html: string) {
  const div = document.createElement('div');
  div.innerHTML = html;
  return div;
}

describe('renderMarkdown', () => {
  it('renders emphasis, code blocks and links', () => {
    const d = dom(renderMarkdown('**bold** and `x`\n\n```\nlet a = 1 < 2;\n```\nsee https://example.com', env));
    expect(d.querySelector('strong')?.textContent).toBe('bold');
    expect(d.querySelector('pre code')?.textContent).toContain('let a = 1 < 2;');
    expect(d.querySelector('a')?.getAttribute('href')).toBe('https://example.com');
  });

  it('shows a <script> tag as text and never as an element', () => {
    const d = dom(renderMarkdown('<script>alert(1)</script>', env));
    expect(d.querySelector('script')).toBeNull();
    expect(d.textContent).toContain('<script>alert(1)</script>');
  });

  it('does not create an <img onerror>', () => {
    const d = dom(renderMarkdown('<img src=x onerror="alert(1)"> and ![x](https://e.com/a.png)', env));
    expect(d.querySelector('img')).toBeNull();
    expect(d.querySelector('[onerror]')).toBeNull();
    expect(d.textContent).toContain('<img src=x onerror="alert(1)">');
  });

  it('drops javascript: and data: links', () => {
    for (const src of ['[click](javascript:alert(1))', '[x](JAVASCRIPT:alert(1))', '[x](data:text/html,hi)', '<javascript:alert(1)>']) {
      const d = dom(renderMarkdown(src, env));
      for (const a of d.querySelectorAll('a')) {
        expect(a.getAttribute('href') ?? '', src).not.toMatch(/^(javascript|data):/i);
      }
      expect(d.innerHTML, src).not.toMatch(/href="(javascript|data):/i);
    }
  });

  it('links hearth message and join links for the app, and nothing else of the scheme', () => {
    const link = 'hearth://message?server=https%3A%2F%2Fhearth.example&channel=c1&message=42';
    const d = dom(renderMarkdown(`look: ${link}. and [the plan](${link})`, env));
    const anchors = [...d.querySelectorAll('a')];
    expect(anchors.map((a) => a.getAttribute('href'))).toEqual([link, link]);
    expect(anchors.every((a) => a.classList.contains('app-link'))).toBe(true);
    expect(anchors[0].textContent).toBe(link);
    expect(anchors[1].textContent).toBe('the plan');
    expect(isAppLink(link)).toBe(true);

    const join = dom(renderMarkdown('join us: hearth://join?server=https%3A%2F%2Fhearth.example&code=WELCOME', env));
    expect(join.querySelector('a.app-link')?.getAttribute('href')).toBe('hearth://join?server=https%3A%2F%2Fhearth.example&code=WELCOME');

    for (const src of [
      '[x](hearth://message?server=https%3A%2F%2Fa.org&channel=1)',
      '[x](hearth://evil?server=https%3A%2F%2Fa.org)',
      '[x](hearth://message?server=javascript%3Aalert(1)&channel=1&message=2)',
      'hearth://other?x=1',
    ]) {
      const bad = dom(renderMarkdown(src, env));
      for (const a of bad.querySelectorAll('a')) expect(a.getAttribute('href'), src).toBeNull();
      expect(bad.innerHTML, src).not.toMatch(/href="hearth:/i);
    }
  });

  it('turns <@id> into an escaped, highlighted mention', () => {
    const d = dom(renderMarkdown('hi <@42>', env));
    const span = d.querySelector('span.mention');
    expect(span?.textContent).toBe('@Zoë <b>');
    expect(span?.classList.contains('mention-me')).toBe(true);
    expect(d.querySelector('b')).toBeNull();
  });
});

describe('plainText', () => {
  it('shows mentions by name without markup', () => {
    expect(plainText('**hey** <@42>', env)).toBe('hey @Zoë <b>');
  });

  it('keeps reference definitions inside the message that made them', () => {
    const shared = { ...env };
    const evil = dom(renderMarkdown('[docs]: https://evil.example', shared));
    expect(evil.querySelector('a')).toBeNull();
    const other = dom(renderMarkdown('read the [docs] please', shared));
    expect(other.querySelector('a')).toBeNull();
    expect(other.textContent).toContain('[docs]');
    const own = dom(renderMarkdown('[docs]\n\n[docs]: https://example.com', shared));
    expect(own.querySelector('a')?.getAttribute('href')).toBe('https://example.com');
  });

  it('keeps the text of deeply nested quotes', () => {
    const deep = '>'.repeat(500) + ' the bottom of the well';
    const d = dom(renderMarkdown(deep, env));
    expect(d.textContent).toContain('the bottom of the well');
    expect(d.querySelectorAll('blockquote').length).toBeLessThanOrEqual(8);
    const spaced = Array.from({ length: 300 }, () => '> ').join('') + 'spaced out';
    expect(dom(renderMarkdown(spaced, env)).textContent).toContain('spaced out');
    // Inside a code fence, `>` is text.
    const code = dom(renderMarkdown('```\n' + '>'.repeat(20) + '\n```', env));
    expect(code.querySelector('code')?.textContent).toContain('>'.repeat(20));
  });
});
