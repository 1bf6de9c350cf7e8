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
  it('refuses other schemes', () => {
    expect(parseServerTarget('javascript:alert(1)')).toBeNull();
    expect(parseServerTarget('file:///etc/passwd')).toBeNull();
    expect(parseServerTarget('hearth://other?server=https://x')).toBeNull();
  });
});
