/**
 * `npm run exhaustion`: memory and connection exhaustion at a stream server, measured.
 *
 * 1. fragments: `--peers` authenticated connections each send every record of a 15 MiB message
 *    but the last, so the server holds the fragments; reports what the server held at most, how
 *    many connections it closed with ERR_INPUT_BUDGET and whether the others were still served.
 * 2. lines: the same with `--profile none --framing line` and unterminated 15 MiB lines.
 * 3. trickle: `--trickle` connections each send 103 bytes of a ClientHello one byte per write;
 *    reports the memory the server keeps per byte held (heap + external + array buffers, after a
 *    full collection, against connections that sent one byte).
 * 4. flood: one address (127.0.0.2) opens `maxConnections` connections that never send a byte
 *    while legitimate clients from 127.0.0.3-10 connect; reports their success rate (target:
 *    at least 95%).
 *
 * The server runs in this process (run with --expose-gc, as the npm script does), on loopback.
 * Bounded: every phase has a fixed count and its own deadline; the whole run stops by itself
 * (`--max-seconds`).
 *
 * Options: --budget-mib N (input budget, default 64), --peers N (default 12), --trickle N
 * (default 400), --legit N (default 200), --only input|trickle|flood (one phase), --max-seconds S
 * (default 120).
 */

import { createConnection, type Socket } from 'node:net';
import { parseArgs } from 'node:util';
import { compatServerProfile } from '../../src/compat/index.js';
import { connect, SesameServer } from '../../src/index.js';
import { ClientConnection, systemEntropy } from '../../src/protocol/index.js';
import { fmt, hardDeadline, log, machine, randomKey, sleep, table } from './common.js';

const { values: opts } = parseArgs({
  options: {
    'budget-mib': { type: 'string', default: '64' },
    peers: { type: 'string', default: '12' },
    trickle: { type: 'string', default: '400' },
    legit: { type: 'string', default: '200' },
    only: { type: 'string' },
    'max-seconds': { type: 'string', default: '120' },
  },
});
const MiB = 1024 * 1024;
const BUDGET = Number(opts['budget-mib']) * MiB;
const PEERS = Number(opts.peers);
const TRICKLE = Number(opts.trickle);
const LEGIT = Number(opts.legit);
hardDeadline(Number(opts['max-seconds']) * 1000, 'exhaustion');

const key = randomKey('exhaustion');
const echo = (m: Buffer) => m;

function port(url: string): number {
  return Number(/:(\d+)$/.exec(url)?.[1]);
}

function raw(p: number, localAddress = '127.0.0.1'): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = createConnection({ host: '127.0.0.1', port: p, localAddress }, () => resolve(s));
    s.once('error', reject);
  });
}

function closedSoon(s: Socket, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    if (s.destroyed) return resolve(true);
    s.on('error', () => {});
    const t = setTimeout(() => resolve(false), ms);
    s.once('close', () => {
      clearTimeout(t);
      resolve(true);
    });
  });
}

async function handshake(p: number): Promise<{ socket: Socket; conn: ClientConnection }> {
  const socket = await raw(p);
  const conn = new ClientConnection({ key, entropy: systemEntropy, now: Date.now });
  await new Promise<void>((resolve, reject) => {
    socket.on('data', (chunk) => {
      for (const e of conn.receive(chunk)) {
        if (e.type === 'established') resolve();
        if (e.type === 'error') reject(e.error);
      }
      for (const b of conn.takeOutput()) socket.write(b);
    });
    for (const b of conn.takeOutput()) socket.write(b);
  });
  return { socket, conn };
}

function memory(): number {
  (globalThis as { gc?: () => void }).gc?.();
  const m = process.memoryUsage();
  return m.heapUsed + m.external + m.arrayBuffers;
}

async function fragments(): Promise<string[]> {
  const server = new SesameServer({
    listen: 'tcp://127.0.0.1:0',
    keys: [key],
    handler: echo,
    inputBudgetBytes: BUDGET,
  });
  let maxHeld = 0;
  let budgetClosed = 0;
  server.on('session-error', (e) => {
    if (e.code === 'ERR_INPUT_BUDGET') budgetClosed++;
  });
  const p = port(await server.listen());
  const peers = [];
  for (let i = 0; i < PEERS; i++) {
    const c = await handshake(p);
    c.conn.send(Buffer.alloc(15 * MiB, i));
    const records = c.conn.takeOutput();
    const last = records.pop() as Buffer;
    const gone = closedSoon(c.socket, 60_000);
    for (const r of records) c.socket.write(r);
    await Promise.race([gone, sleep(300)]);
    maxHeld = Math.max(maxHeld, server.heldInputBytes);
    peers.push({ ...c, last, gone });
  }
  await sleep(500);
  maxHeld = Math.max(maxHeld, server.heldInputBytes);
  // The survivors complete their messages and must be answered whole.
  let served = 0;
  const alive = peers.filter((c) => !c.socket.destroyed);
  await Promise.all(
    alive.map(
      (c) =>
        new Promise<void>((resolve) => {
          let got = 0;
          c.socket.removeAllListeners('data');
          c.socket.on('data', (chunk) => {
            for (const e of c.conn.receive(chunk))
              if (e.type === 'message' && e.data.length === 15 * MiB) got++;
            if (got === 1) {
              served++;
              resolve();
            }
          });
          c.socket.write(c.last);
          setTimeout(resolve, 20_000).unref();
        }),
    ),
  );
  for (const c of peers) c.socket.destroy();
  await server.close();
  return [
    'fragments (15 MiB messages, last record withheld)',
    `${PEERS}`,
    fmt(BUDGET / MiB, 0),
    fmt(maxHeld / MiB),
    `${budgetClosed}`,
    `${served} of ${alive.length}`,
  ];
}

async function lines(): Promise<string[]> {
  const server = new SesameServer({
    listen: 'tcp://127.0.0.1:0',
    profile: compatServerProfile({ profile: 'none', framing: 'line' }),
    handler: echo,
    inputBudgetBytes: BUDGET,
  });
  let maxHeld = 0;
  const p = port(await server.listen());
  const socks: Socket[] = [];
  for (let i = 0; i < PEERS; i++) {
    const s = await raw(p);
    socks.push(s);
    s.on('error', () => {});
    s.write(Buffer.alloc(15 * MiB, 0x61));
    await sleep(300);
    maxHeld = Math.max(maxHeld, server.heldInputBytes);
  }
  await sleep(500);
  const alive = socks.filter((s) => !s.destroyed);
  const closed = PEERS - alive.length;
  let served = 0;
  await Promise.all(
    alive.map(
      (s) =>
        new Promise<void>((resolve) => {
          let n = 0;
          s.on('data', (d) => {
            n += d.length;
            if (n === 15 * MiB + 1) {
              served++;
              resolve();
            }
          });
          s.write('\n');
          setTimeout(resolve, 20_000).unref();
        }),
    ),
  );
  for (const s of socks) s.destroy();
  await server.close();
  return [
    'unterminated lines (none, line framing, 15 MiB)',
    `${PEERS}`,
    fmt(BUDGET / MiB, 0),
    fmt(maxHeld / MiB),
    `${closed}`,
    `${served} of ${alive.length}`,
  ];
}

/**
 * Memory the server keeps per trickled byte: TRICKLE connections send 1 byte of a ClientHello,
 * then 102 more one byte per write; the difference between the two states, per connection.
 */
async function trickleCost(): Promise<{ afterOne: number; perByte: number }> {
  const server = new SesameServer({
    listen: 'tcp://127.0.0.1:0',
    keys: [key],
    handler: echo,
    handshakeTimeoutMs: 120_000,
    firstByteTimeoutMs: 0,
    maxHandshakesPerSource: 100_000,
  });
  const p = port(await server.listen());
  const hello = new ClientConnection({
    key,
    entropy: systemEntropy,
    now: Date.now,
  }).takeOutput()[0] as Buffer;
  const socks: Socket[] = [];
  for (let i = 0; i < TRICKLE; i++) {
    const s = await raw(p);
    s.setNoDelay(true);
    socks.push(s);
  }
  const trickle = async (from: number, to: number): Promise<number> => {
    for (let b = from; b < to; b++) {
      for (const s of socks) s.write(hello.subarray(b, b + 1));
      await sleep(2); // one segment per byte: let each write leave before the next
    }
    await sleep(300);
    return memory();
  };
  const base = memory();
  const one = await trickle(0, 1);
  const full = await trickle(1, 103);
  for (const s of socks) s.destroy();
  await server.close();
  return { afterOne: (one - base) / TRICKLE, perByte: (full - one) / TRICKLE / 102 };
}

async function flood(): Promise<string[]> {
  const max = 200;
  const server = new SesameServer({
    listen: 'tcp://127.0.0.1:0',
    keys: [key],
    handler: echo,
    maxConnections: max,
  });
  const url = await server.listen();
  const p = port(url);
  const attackers: Socket[] = [];
  for (let i = 0; i < max; i++)
    attackers.push(await raw(p, '127.0.0.2').catch(() => undefined as unknown as Socket));
  await sleep(200);
  const held = server.connectionCount;
  let ok = 0;
  const started = Date.now();
  for (let i = 0; i < LEGIT; i += 8) {
    await Promise.all(
      Array.from({ length: Math.min(8, LEGIT - i) }, async (_, j) => {
        try {
          const s = await connect(url, { key, localAddress: `127.0.0.${3 + ((i + j) % 8)}` });
          if ((await s.request(Buffer.from('x'))).toString() === 'x') ok++;
          await s.close();
        } catch {
          // a failure: counted by its absence
        }
      }),
    );
  }
  const ms = Date.now() - started;
  for (const s of attackers) s?.destroy();
  await server.close();
  return [
    `${max} silent connections from 127.0.0.2 (maxConnections ${max})`,
    `${held}`,
    `${ok} of ${LEGIT}`,
    fmt((100 * ok) / LEGIT),
    fmt(ms / LEGIT, 2),
  ];
}

async function main(): Promise<void> {
  log(`exhaustion: ${machine()}`);
  const only = opts.only;
  if (only === undefined || only === 'input') {
    const rows = [await fragments(), await lines()];
    console.log('\ninput held across connections:');
    console.log(
      table(['attack', 'peers', 'budget MiB', 'held at most MiB', 'closed', 'others served'], rows),
    );
  }
  if (only === undefined || only === 'trickle') {
    const t = await trickleCost();
    console.log(`\ntrickle: ${TRICKLE} connections, 103 bytes of a ClientHello one byte per write`);
    console.log(
      `server memory: ${fmt(t.perByte, 1)} B per byte held (bytes 2-103), ${fmt(t.afterOne, 0)} B per connection after its first byte`,
    );
  }
  if (only === undefined || only === 'flood') {
    console.log('\nflood from one address while legitimate clients connect from others:');
    console.log(
      table(['flood', 'flood connections held', 'legitimate ok', '% ok', 'ms per attempt'], [await flood()]),
    );
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
