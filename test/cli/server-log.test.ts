import { EventEmitter } from 'node:events';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { logServerEvents } from '../../src/cli/server-log.js';
import type { ServerEvents } from '../../src/net/base-server.js';

function capture() {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString().split('\n'))
        if (l !== '') lines.push(JSON.parse(l) as Record<string, unknown>);
      done();
    },
  });
  return { log: pino({ level: 'debug' }, stream), lines };
}

describe('server log', () => {
  it('rate-limits refusals and says how many were left out', async () => {
    const { log, lines } = capture();
    const server = new EventEmitter<ServerEvents>();
    logServerEvents(server, log, { refusalsPerSecond: 5 });
    for (let i = 0; i < 50; i++)
      server.emit('auth', { ok: false, remote: `198.51.100.1:${i}`, code: 'ERR_AUTH_FAILED', reason: 'x' });
    expect(lines.filter((l) => l.event === 'refused')).toHaveLength(5);
    await new Promise((r) => setTimeout(r, 1050));
    server.emit('auth', { ok: false, remote: '198.51.100.1:99', code: 'ERR_AUTH_FAILED', reason: 'x' });
    expect(lines.find((l) => l.event === 'refused-suppressed')).toMatchObject({ count: 45 });
    expect(lines.filter((l) => l.event === 'refused')).toHaveLength(6);
  });

  it('samples accept lines too, so a flood of connections grows the log sublinearly', async () => {
    const { log, lines } = capture();
    const server = new EventEmitter<ServerEvents>();
    logServerEvents(server, log, { acceptedPerSecond: 10 });
    for (let i = 0; i < 1000; i++) server.emit('accepted', `198.51.100.${i % 250}:${i}`);
    expect(lines.filter((l) => l.event === 'accepted')).toHaveLength(10);
    await new Promise((r) => setTimeout(r, 1050));
    server.emit('accepted', '198.51.100.1:1001');
    expect(lines.find((l) => l.event === 'accepted-suppressed')).toMatchObject({ count: 990 });
    expect(lines.filter((l) => l.event === 'accepted')).toHaveLength(11);
    // The default limit applies without the option: 1,000 accepts in a burst are not 1,000 lines.
    const d = capture();
    const other = new EventEmitter<ServerEvents>();
    logServerEvents(other, d.log);
    for (let i = 0; i < 1000; i++) other.emit('accepted', `198.51.100.7:${i}`);
    expect(d.lines.filter((l) => l.event === 'accepted').length).toBeLessThanOrEqual(100);
  });

  it('logs accepted, authenticated and closed events with their fields', () => {
    const { log, lines } = capture();
    const server = new EventEmitter<ServerEvents>();
    logServerEvents(server, log);
    server.emit('accepted', '127.0.0.1:5');
    server.emit('auth', {
      ok: true,
      remote: '127.0.0.1:5',
      handshakeMs: 1,
      session: {
        profile: 'native',
        keyId: '0123456789abcdef',
        principal: 'alice',
        forwardSecrecy: true,
        channelBinding: Buffer.alloc(32),
      },
    });
    server.emit('session-closed', {
      remote: '127.0.0.1:5',
      keyId: '0123456789abcdef',
      principal: 'alice',
      durationMs: 12,
      bytesIn: 100,
      bytesOut: 90,
      messagesIn: 1,
      messagesOut: 1,
      error: undefined,
    });
    expect(lines.map((l) => l.event)).toEqual(['accepted', 'authenticated', 'closed']);
    expect(lines[1]).toMatchObject({ keyId: '0123456789abcdef', principal: 'alice', remote: '127.0.0.1:5' });
    expect(lines[2]).toMatchObject({ durationMs: 12, bytesIn: 100, bytesOut: 90 });
    expect(JSON.stringify(lines)).not.toContain('channelBinding');
  });
});
