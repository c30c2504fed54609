/**
 * `npm run replay-window`: how long a replayed ClientHello can still buy a second ServerHello
 * from `sesame serve --workers 2`, whose workers share replay state through the primary.
 *
 * Each round makes a fresh ClientHello, opens two connections that landed on different workers
 * (which worker holds a connection is read from /proc: the socket's inode in /proc/net/tcp, and
 * the worker whose file descriptors include it), sends the hello on the first, waits the
 * spacing, and sends it on the second. A round "leaks" when both answer with a
 * ServerHello: the second worker had not yet learned the nonce. The window is the spacing from
 * which no round leaks. (A leak costs the server one ServerHello; the replayer still cannot
 * finish the handshake.)
 *
 * Bounded: `--rounds` per spacing, a fixed list of spacings, and a hard deadline
 * (`--max-seconds`). Loopback only; the server it starts is stopped by PID.
 *
 * Options: --rounds N (default 100: up to about 14,000 connections, from as many addresses),
 * --spacings MS,MS,... (default 0,1,2,5,10,20,50), --max-seconds S (default 120).
 */

import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { createConnection, type Socket } from 'node:net';
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { ClientConnection, systemEntropy } from '../../src/protocol/index.js';
import { hardDeadline, log, machine, sleep, startCli, table, tempDir, writeKeyring } from './common.js';

const { values: opts } = parseArgs({
  options: {
    rounds: { type: 'string', default: '100' },
    spacings: { type: 'string', default: '0,1,2,5,10,20,50' },
    'max-seconds': { type: 'string', default: '120' },
  },
});
const ROUNDS = Number(opts.rounds);
hardDeadline(Number(opts['max-seconds']) * 1000, 'replay-window');

/** Spacings tried between the two sends, in ms. */
const SPACINGS_MS = opts.spacings.split(',').map(Number);

/**
 * Connect from a new loopback address each time (127.1.0.0/16), so that the failed-login
 * throttle, which blocks a source after a few refusals, never decides a round.
 */
let sources = 0;
function open(port: number): Promise<Socket> {
  sources++;
  const localAddress = `127.${1 + (sources >> 16)}.${(sources >> 8) & 255}.${sources & 255}`;
  return new Promise((resolve, reject) => {
    const s = createConnection({ host: '127.0.0.1', port, localAddress }, () => resolve(s));
    s.once('error', reject);
  });
}

/** The PIDs of the primary's children (its workers). */
function workersOf(primary: number): number[] {
  const text = readFileSync(`/proc/${primary}/task/${primary}/children`, 'utf8').trim();
  return text === '' ? [] : text.split(/\s+/).map(Number);
}

/** An IPv4 address and port as /proc/net/tcp prints them (the address in host byte order). */
function procAddress(address: string, port: number): string {
  const hex = (n: number, width: number) => n.toString(16).toUpperCase().padStart(width, '0');
  return `${address
    .split('.')
    .reverse()
    .map((b) => hex(Number(b), 2))
    .join('')}:${hex(port, 4)}`;
}

/** The inode of the server side of a loopback connection from `client` to `serverPort`. */
function serverInode(serverPort: number, client: Socket): string | undefined {
  const local = procAddress('127.0.0.1', serverPort);
  const remote = procAddress(client.localAddress as string, client.localPort as number);
  for (const line of readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    // An earlier connection's TIME_WAIT entry has inode 0: skip it.
    if (f[1] === local && f[2] === remote && f[9] !== '0') return f[9];
  }
  return undefined;
}

/** Which worker holds the server side of `socket` (polled: the primary hands it over first). */
async function workerHolding(socket: Socket, serverPort: number, workers: number[]): Promise<number> {
  for (let i = 0; i < 200; i++) {
    if (socket.localPort === undefined) throw new Error('the server closed the connection before any byte');
    const inode = serverInode(serverPort, socket);
    if (inode !== undefined) {
      for (const pid of workers) {
        try {
          for (const fd of readdirSync(`/proc/${pid}/fd`)) {
            if (readlinkSync(`/proc/${pid}/fd/${fd}`) === `socket:[${inode}]`) return pid;
          }
        } catch {
          // a descriptor closed while we looked
        }
      }
    }
    await sleep(1);
  }
  throw new Error('no worker holds the connection');
}

/** Two connections held by different workers. */
async function pairOnBothWorkers(port: number, workers: number[]): Promise<[Socket, Socket]> {
  const a = await open(port);
  const wa = await workerHolding(a, port, workers);
  for (let i = 0; i < 20; i++) {
    const b = await open(port);
    if ((await workerHolding(b, port, workers)) !== wa) return [a, b];
    b.destroy();
  }
  throw new Error('20 connections in a row went to the same worker');
}

/** Resolves true when the socket receives a byte, false when it closes first (or after 5 s). */
function answer(socket: Socket): Promise<boolean> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), 5_000);
    socket.once('data', () => {
      clearTimeout(timer);
      resolve(true);
    });
    socket.once('close', () => {
      clearTimeout(timer);
      resolve(false);
    });
    socket.once('error', () => {});
  });
}

const dir = tempDir('sesame-replay-window-');
const ringFile = `${dir.path}/ring.json`;
const [key] = await writeKeyring(ringFile, ['replayer']);
if (key === undefined) throw new Error('no key');
const server = await startCli([
  '--listen',
  'tcp://127.0.0.1:0',
  '--keyring',
  ringFile,
  '--workers',
  '2',
  '--log-format',
  'json',
]);
const port = Number(new URL(server.url).port);
const workers = workersOf(server.pid);
if (workers.length !== 2) throw new Error(`expected 2 workers, found ${workers.length}`);
log(
  `replay-window: ${machine()}, load average ${loadavg()
    .map((l) => l.toFixed(2))
    .join(' ')}`,
);

const rows: string[][] = [];
try {
  for (const spacing of SPACINGS_MS) {
    let leaks = 0;
    for (let i = 0; i < ROUNDS; i++) {
      const client = new ClientConnection({ key, entropy: systemEntropy, now: Date.now });
      client.start();
      const hello = Buffer.concat(client.takeOutput());
      const [a, b] = await pairOnBothWorkers(port, workers);
      const answers = [answer(a), answer(b)];
      a.write(hello);
      if (spacing > 0) await sleep(spacing);
      b.write(hello);
      const [ra, rb] = await Promise.all(answers);
      if (ra && rb) leaks++;
      a.destroy();
      b.destroy();
    }
    rows.push([String(spacing), `${leaks}/${ROUNDS}`]);
    log(`spacing ${spacing} ms: ${leaks} of ${ROUNDS} rounds got two ServerHellos`);
  }
} finally {
  await server.stop();
  dir.cleanup();
}
process.stdout.write(`\n${table(['spacing (ms)', 'rounds with two ServerHellos'], rows)}\n`);
