/**
 * `npm run oracle`: can a peer tell an unknown key id from a wrong key by timing the server?
 *
 * A server (a child process, so that its event loop is not ours) holds one key. Over loopback
 * this tool sends well-formed ClientHellos of three classes, interleaved in a random order:
 *
 *   unknown   a key id the server does not have
 *   wrong     the server's key id with another secret
 *   control   the same as wrong, with yet another secret (an A/A control: it tells how much two
 *             samples of one distribution differ on this machine)
 *
 * and measures, for each, the time from writing the ClientHello to the server's FIN (the
 * connection is set up before the clock starts). It then compares the distributions: the
 * Kolmogorov-Smirnov two-sample test, and medians and 90th percentiles with percentile-bootstrap
 * 95% intervals, and prints a verdict. It also checks that the server sent no byte in any case.
 *
 * Options: --samples N (per class, default 10000), --warmup N (rounds discarded, default 300),
 * --max-seconds S (default 150), --bootstrap B (resamples, default 2000), --seed X.
 */

import { createConnection, type Socket } from 'node:net';
import { parseArgs } from 'node:util';
import { ClientConnection, type PresharedKey, systemEntropy } from '../../src/protocol/index.js';
import {
  bootstrap,
  fmt,
  hardDeadline,
  ksTwoSample,
  log,
  machine,
  prng,
  quantile,
  randomKey,
  startServerChild,
  summarize,
  table,
} from './common.js';

const { values: opts } = parseArgs({
  options: {
    samples: { type: 'string', default: '10000' },
    warmup: { type: 'string', default: '300' },
    'max-seconds': { type: 'string', default: '150' },
    bootstrap: { type: 'string', default: '2000' },
    seed: { type: 'string', default: '20261129' },
  },
});
const SAMPLES = Number(opts.samples);
const WARMUP = Number(opts.warmup);
const MAX_MS = Number(opts['max-seconds']) * 1000;
const ROUNDS = Number(opts.bootstrap);
const SEED = Number(opts.seed);

type Class = 'unknown' | 'wrong' | 'control';
const CLASSES: readonly Class[] = ['unknown', 'wrong', 'control'];
const LABELS: Record<Class, string> = {
  unknown: 'unknown key id',
  wrong: 'wrong key (known id)',
  control: 'wrong key, control (A/A)',
};

function connected(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = createConnection({ host: '127.0.0.1', port }, () => resolve(s));
    s.once('error', reject);
  });
}

/** Microseconds from writing `hello` to the server's end of stream; and the bytes it sent. */
async function sample(port: number, hello: Buffer): Promise<{ us: number; bytes: number }> {
  const socket = await connected(port);
  socket.setNoDelay(true);
  return new Promise((resolve) => {
    let bytes = 0;
    let t0 = 0n;
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      const us = Number(process.hrtime.bigint() - t0) / 1000;
      socket.destroy();
      resolve({ us, bytes });
    };
    socket.on('data', (c: Buffer) => {
      bytes += c.length;
    });
    socket.once('end', finish);
    socket.once('close', finish);
    socket.on('error', () => {});
    t0 = process.hrtime.bigint();
    socket.write(hello);
  });
}

function helloFor(key: PresharedKey): Buffer {
  const c = new ClientConnection({ key, entropy: systemEntropy, now: Date.now });
  return Buffer.concat(c.takeOutput());
}

async function main(): Promise<void> {
  hardDeadline(MAX_MS + 120_000, 'oracle');
  const serverKey = randomKey('oracle');
  const keys: Record<Class, PresharedKey> = {
    unknown: randomKey('not on the server'),
    wrong: { ...randomKey('wrong'), id: serverKey.id },
    control: { ...randomKey('control'), id: serverKey.id },
  };
  const server = await startServerChild({
    listen: 'tcp://127.0.0.1:0',
    keys: [serverKey],
    handshakeTimeoutMs: 10_000,
  });
  const port = Number(/:(\d+)$/.exec(server.url)?.[1]);
  log(`timing oracle: unknown key id vs wrong key, server ${server.url} (pid ${server.pid})`);
  log(`machine: ${machine()}`);
  log(`${SAMPLES} samples per class after ${WARMUP} warm-up rounds, at most ${MAX_MS / 1000} s`);

  const rand = prng(SEED);
  const times: Record<Class, number[]> = { unknown: [], wrong: [], control: [] };
  let bytesBack = 0;
  const started = performance.now();
  let round = 0;
  for (; round < WARMUP + SAMPLES; round++) {
    if (performance.now() - started > MAX_MS) {
      log(`time limit reached after ${round} rounds`);
      break;
    }
    // A fresh random order of the three classes each round.
    const order = [...CLASSES];
    for (let i = order.length - 1; i > 0; i--) {
      const j = Math.floor(rand() * (i + 1));
      [order[i], order[j]] = [order[j] as Class, order[i] as Class];
    }
    for (const cls of order) {
      const r = await sample(port, helloFor(keys[cls]));
      bytesBack += r.bytes;
      if (round >= WARMUP) times[cls].push(r.us);
    }
    if (round > 0 && round % 1000 === 0)
      log(`  ${round} rounds, ${((performance.now() - started) / 1000).toFixed(0)} s`);
  }
  const stats = await server.stats();
  await server.stop();

  const median = (s: number[]) => quantile(s, 0.5);
  const p90 = (s: number[]) => quantile(s, 0.9);
  const ci = (x: { low: number; high: number }) => `[${fmt(x.low)}, ${fmt(x.high)}]`;
  log('');
  log('time from ClientHello to the server closing the connection, in microseconds:');
  log(
    table(
      ['class', 'n', 'median', 'median 95% CI', 'p90', 'p90 95% CI', 'mean'],
      CLASSES.map((c) => {
        const s = summarize(times[c]);
        return [
          LABELS[c],
          String(s.n),
          fmt(s.p50),
          ci(bootstrap(times[c], undefined, median, ROUNDS, SEED)),
          fmt(s.p90),
          ci(bootstrap(times[c], undefined, p90, ROUNDS, SEED + 1)),
          fmt(s.mean),
        ];
      }),
    ),
  );
  const compare = (a: Class, b: Class) => {
    const ks = ksTwoSample(times[a], times[b]);
    const dm = bootstrap(times[a], times[b], median, ROUNDS, SEED + 2);
    const d9 = bootstrap(times[a], times[b], p90, ROUNDS, SEED + 3);
    return { ks, dm, d9, diff: median(sortedCopy(times[a])) - median(sortedCopy(times[b])) };
  };
  const ua = compare('unknown', 'wrong');
  const aa = compare('control', 'wrong');
  log('');
  log(
    table(
      ['comparison', 'KS D', 'KS p', 'median diff', 'median diff 95% CI', 'p90 diff 95% CI'],
      [
        ['unknown id vs wrong key', fmt(ua.ks.d, 4), fmt(ua.ks.p, 4), fmt(ua.diff), ci(ua.dm), ci(ua.d9)],
        ['control vs wrong key (A/A)', fmt(aa.ks.d, 4), fmt(aa.ks.p, 4), fmt(aa.diff), ci(aa.dm), ci(aa.d9)],
      ],
    ),
  );
  log('');
  log(
    `server refusals: ${Object.entries(stats.refusals)
      .map(([k, v]) => `${k} ${v}`)
      .join(', ')}; authenticated: ${stats.authOk}`,
  );
  log(`bytes the server sent in all refusals: ${bytesBack}`);

  const contains0 = (x: { low: number; high: number }) => x.low <= 0 && x.high >= 0;
  const detected = ua.ks.p < 0.01 || !contains0(ua.dm);
  const noisy = aa.ks.p < 0.01 || !contains0(aa.dm);
  let verdict: string;
  if (bytesBack > 0) verdict = 'ORACLE: the server sent bytes to a client that did not authenticate';
  else if (detected && noisy)
    verdict = 'INCONCLUSIVE: the A/A control differs as well; rerun on a quieter machine';
  else if (detected) verdict = 'DIFFERENCE DETECTED between unknown key ids and wrong keys';
  else {
    const width = Math.max(Math.abs(ua.dm.low), Math.abs(ua.dm.high));
    verdict = `no difference detected (KS p = ${fmt(ua.ks.p, 3)}; median difference within ±${fmt(width)} µs)`;
  }
  log(`verdict: ${verdict}`);
  process.exitCode = bytesBack > 0 ? 1 : 0;
}

function sortedCopy(v: readonly number[]): number[] {
  return [...v].sort((x, y) => x - y);
}

main().catch((err: unknown) => {
  process.stderr.write(`oracle: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
