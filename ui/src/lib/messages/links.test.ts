import { describe, expect, it } from 'vitest';
import { isMessageLinkLike, messageLink, parseMessageLink, sameServer, serverKey } from './links';

describe('message links', () => {
  it('round-trip: the link names its server, channel and message', () => {
    const link = messageLink('https://hearth.example:8443/', '123', '456');
    expect(link).toBe('hearth://message?server=https%3A%2F%2Fhearth.example%3A8443&channel=123&message=456');
    expect(parseMessageLink(link)).toEqual({ serverUrl: 'https://hearth.example:8443', channelId: '123', messageId: '456' });
  });

  it('keeps a server path prefix and compares addresses in one form', () => {
    const link = messageLink('https://example.org/hearth/', '1', '2');
    expect(parseMessageLink(link)?.serverUrl).toBe('https://example.org/hearth');
    expect(sameServer('https://HEARTH.example/', 'https://hearth.example')).toBe(true);
    expect(sameServer('https://hearth.example', 'http://hearth.example')).toBe(false);
    expect(sameServer('https://hearth.example:8443', 'https://hearth.example')).toBe(false);
    expect(serverKey('hearth://join')).toBeNull();
    expect(serverKey('https://user:pw@hearth.example')).toBeNull();
  });

  it('tolerates surrounding spaces and a path-style action', () => {
    expect(parseMessageLink('  hearth://message?server=https%3A%2F%2Fa.org&channel=1&message=2 ')?.messageId).toBe('2');
    expect(parseMessageLink('hearth:///message?server=https%3A%2F%2Fa.org&channel=1&message=2')?.channelId).toBe('1');
  });

  it('refuses anything that is not a complete, well-formed message link', () => {
    for (const bad of [
      '',
      'https://a.org/message?server=https%3A%2F%2Fa.org&channel=1&message=2',
      'hearth://join?server=https%3A%2F%2Fa.org&code=X',
      'hearth://message?server=https%3A%2F%2Fa.org&channel=1',
      'hearth://message?server=https%3A%2F%2Fa.org&message=2',
      'hearth://message?channel=1&message=2',
      'hearth://message?server=javascript%3Aalert(1)&channel=1&message=2',
      'hearth://message?server=https%3A%2F%2Fa.org&channel=1%3Cx&message=2',
      'hearth://message?server=https%3A%2F%2Fa.org&channel=1&message=2.',
      'hearth://message?server=https%3A%2F%2Fa.org&channel=1&message=' + '9'.repeat(40),
    ]) {
      expect(parseMessageLink(bad), bad).toBeNull();
    }
    expect(isMessageLinkLike('hearth://message?channel=1')).toBe(true);
    expect(isMessageLinkLike('hearth://join?server=x')).toBe(false);
  });
});
