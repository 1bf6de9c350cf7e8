import { describe, expect, it } from 'vitest';
import { parseServerTarget } from './invite';

describe('parseServerTarget', () => {
  it('reads a hearth:// invite link', () => {
    expect(parseServerTarget('hearth://join?server=https%3A%2F%2Fhearth.example%3A8443&code=AbC123')).toEqual({
      serverUrl: 'https://hearth.example:8443',
      invite: 'AbC123',
    });
  });
  it('reads an https invite link', () => {
    expect(parseServerTarget('https://hearth.example/invite/XYZ')).toEqual({
      serverUrl: 'https://hearth.example',
      invite: 'XYZ',
    });
  });
  it('takes a bare host as an https server without invite', () => {
    expect(parseServerTarget('  hearth.example ')).toEqual({ serverUrl: 'https://hearth.example', invite: null });
  });
  it('reads a setup link: the token is the owner\'s invite', () => {
    expect(parseServerTarget('hearth://setup?server=http%3A%2F%2F127.0.0.1%3A8080&token=mWzXK-aHoyKHV1O9tK-YfwH1')).toEqual({
      serverUrl: 'http://127.0.0.1:8080',
      invite: 'mWzXK-aHoyKHV1O9tK-YfwH1',
      setup: true,
    });
  });
  it('refuses a setup link without a usable token', () => {
    expect(parseServerTarget('hearth://setup?server=https%3A%2F%2Fhearth.example')).toBeNull();
    expect(parseServerTarget('hearth://setup?server=https%3A%2F%2Fhearth.example&token=a%20b')).toBeNull();
    expect(parseServerTarget('hearth://setup?token=abc')).toBeNull();
  });
  it('refuses other schemes', () => {
    expect(parseServerTarget('javascript:alert(1)')).toBeNull();
    expect(parseServerTarget('file:///etc/passwd')).toBeNull();
    expect(parseServerTarget('hearth://other?server=https://x')).toBeNull();
  });
});
