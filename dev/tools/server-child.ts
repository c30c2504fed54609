/**
 * A SesameServer (echo service) run as a child process by the security tools. It takes its
 * configuration and keys over IPC (so no secret appears on a command line), reports `listening`,
 * answers `stats` with its counters (RSS, heap, connections, authentication results; after a full
 * garbage collection when asked and run with --expose-gc) and closes gracefully on `stop` or
 * SIGTERM.
 *
 * Unlike `sesame serve`, it turns the per-source throttling of failed logins off unless asked:
 * the tools count refusals one by one, from one loopback address.
 */

import { type AuthEvent, echoService, type PresharedKey, SesameServer } from '../../src/index.js';
import type { ChildConfig, ChildStats } from './common.js';

let server: SesameServer | undefined;
let authOk = 0;
let busy = 0;
const refusals: Record<string, number> = {};

async function start(config: ChildConfig): Promise<void> {
  const keys: PresharedKey[] = config.keys.map((k) => ({
    id: k.id,
    principal: k.principal,
    secret: Buffer.from(k.secretHex, 'hex'),
  }));
  server = new SesameServer({
    listen: config.listen,
    keys,
    handler: echoService,
    handshakeTimeoutMs: config.handshakeTimeoutMs,
    idleTimeoutMs: config.idleTimeoutMs,
    maxConnections: config.maxConnections,
    // Without the throttle, attackers model many addresses: the per-source cap is lifted too.
    ...(config.throttle === true
      ? {}
      : { throttle: { freeFailures: Number.MAX_SAFE_INTEGER }, maxHandshakesPerSource: 2 ** 31 }),
  });
  server.on('auth', (e: AuthEvent) => {
    if (e.ok) authOk++;
    else refusals[e.code] = (refusals[e.code] ?? 0) + 1;
  });
  server.on('busy', () => busy++);
  const url = await server.listen();
  process.send?.({ type: 'listening', url });
}

async function stop(): Promise<void> {
  await server?.close();
  process.exit(0);
}

function stats(collect: boolean): ChildStats {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (collect) gc?.();
  const m = process.memoryUsage();
  return {
    rss: m.rss,
    heapUsed: m.heapUsed,
    external: m.external,
    collected: collect && gc !== undefined,
    connections: server?.connectionCount ?? 0,
    authOk,
    refusals: { ...refusals },
    busy,
  };
}

process.on('message', (m: { type: string; config?: ChildConfig; gc?: boolean }) => {
  if (m.type === 'start' && m.config !== undefined) {
    start(m.config).catch((err: unknown) => {
      process.stderr.write(`server child: ${String(err)}\n`);
      process.exit(1);
    });
  } else if (m.type === 'stats') {
    process.send?.({ type: 'stats', stats: stats(m.gc === true) });
  } else if (m.type === 'stop') {
    void stop();
  }
});
process.once('SIGTERM', () => void stop());
// The parent went away: do not linger.
process.once('disconnect', () => void stop());
