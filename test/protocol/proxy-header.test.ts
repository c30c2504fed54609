import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { encodeProxyV2, PROXY_V2_SIGNATURE, parseProxyHeader } from '../../src/protocol/proxy-header.js';

const v1 = (s: string) => Buffer.from(s, 'latin1');

describe('PROXY protocol headers', () => {
  it('parses v1 TCP4 and TCP6 lines and reports their length', () => {
    const line = v1('PROXY TCP4 192.0.2.7 198.51.100.1 56324 443\r\n');
    const r = parseProxyHeader(Buffer.concat([line, v1('SESM')]));
    expect(r?.length).toBe(line.length);
    expect(r?.header).toEqual({
      version: 1,
      command: 'proxy',
      source: { address: '192.0.2.7', port: 56324 },
      destination: { address: '198.51.100.1', port: 443 },
    });
    expect(parseProxyHeader(v1('PROXY TCP6 2001:db8::1 2001:db8::2 1 2\r\n'))?.header.source).toEqual({
      address: '2001:db8::1',
      port: 1,
    });
    expect(parseProxyHeader(v1('PROXY UNKNOWN whatever\r\n'))?.header).toMatchObject({
      command: 'local',
      source: undefined,
    });
  });

  it('waits for more bytes while a header is incomplete, fed one byte at a time', () => {
    for (const whole of [
      v1('PROXY TCP4 10.0.0.1 10.0.0.2 1000 2000\r\n'),
      encodeProxyV2({ address: '10.1.2.3', port: 4000 }, { address: '10.0.0.9', port: 9527 }),
      encodeProxyV2({ address: '2001:db8::5', port: 4000 }, { address: '::1', port: 9527 }),
    ]) {
      for (let n = 0; n < whole.length; n++) expect(parseProxyHeader(whole.subarray(0, n))).toBeUndefined();
      expect(parseProxyHeader(whole)?.length).toBe(whole.length);
    }
  });

  it('round-trips v2 headers for IPv4 and IPv6, including IPv4-mapped addresses', () => {
    const cases: [string, string][] = [
      ['203.0.113.9', '10.0.0.1'],
      ['2001:db8:0:0:1::1', '::1'],
      ['::ffff:192.0.2.1', '::'],
      ['fe80::', '1:2:3:4:5:6:7:8'],
    ];
    const canonical: Record<string, string> = { '2001:db8:0:0:1::1': '2001:db8::1:0:0:1' };
    for (const [src, dst] of cases) {
      const r = parseProxyHeader(encodeProxyV2({ address: src, port: 1234 }, { address: dst, port: 80 }));
      expect(r?.header.source).toEqual({ address: canonical[src] ?? src, port: 1234 });
      expect(r?.header.destination).toEqual({ address: dst, port: 80 });
    }
  });

  it('reads a v2 LOCAL command (health checks) as carrying no client address', () => {
    const local = Buffer.concat([PROXY_V2_SIGNATURE, Buffer.from([0x20, 0x00, 0x00, 0x00])]);
    expect(parseProxyHeader(local)).toEqual({
      header: { version: 2, command: 'local', source: undefined, destination: undefined },
      length: 16,
    });
  });

  it('refuses malformed headers with ERR_PROXY_HEADER', () => {
    const bad = [
      v1('GET / HTTP/1.1\r\n'),
      v1('PROXY TCP4 1.2.3.4 5.6.7.8 99999 1\r\n'),
      v1('PROXY TCP4 1.2.3.4 5.6.7.8 01 1\r\n'),
      v1('PROXY TCP4 ::1 5.6.7.8 1 1\r\n'),
      v1('PROXY TCP5 1.2.3.4 5.6.7.8 1 1\r\n'),
      v1(`PROXY TCP4 ${'1'.repeat(120)}`),
      Buffer.concat([PROXY_V2_SIGNATURE, Buffer.from([0x31, 0x11, 0x00, 0x0c])]), // version 3
      Buffer.concat([PROXY_V2_SIGNATURE, Buffer.from([0x22, 0x11, 0x00, 0x0c])]), // command 2
      Buffer.concat([PROXY_V2_SIGNATURE, Buffer.from([0x21, 0x11, 0xff, 0xff])]), // too long
      Buffer.concat([PROXY_V2_SIGNATURE, Buffer.from([0x21, 0x11, 0x00, 0x04, 1, 2, 3, 4])]), // truncated addresses
    ];
    for (const b of bad)
      expect(() => parseProxyHeader(b)).toThrow(expect.objectContaining({ code: 'ERR_PROXY_HEADER' }));
  });

  it('never throws anything but ERR_PROXY_HEADER, whatever the bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.boolean(), (bytes, prefixV2) => {
        const input = prefixV2 ? Buffer.concat([PROXY_V2_SIGNATURE, bytes]) : Buffer.from(bytes);
        try {
          const r = parseProxyHeader(input);
          if (r !== undefined) expect(r.length).toBeLessThanOrEqual(input.length);
        } catch (err) {
          expect(err).toMatchObject({ code: 'ERR_PROXY_HEADER' });
        }
      }),
      { numRuns: 20_000 },
    );
  });
});
