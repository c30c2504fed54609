/**
 * `npm run no-loss`: is any request lost when a server shuts down gracefully under load?
 *
 * Request/response clients (echo service, one request in flight per client, each request with a
 * unique id) run against `sesame serve` at a steady rate. Midway, the server gets SIGTERM (its
 * graceful shutdown) while another takes over:
 *
 *   --mode restart    (default) a new server starts on the same port once the old one has exited
 *   --mode failover   a second server runs from the start on another port; clients that cannot
 *                     reach the first one go to the second
 *
 * A request that gets no reply (the server closed the session first, a handshake was dropped...)
 * is counted, with its error code, and sent again on a new connection. At the end the tool prints
 * requests sent, attempts, replies received, unanswered attempts by code, handshakes failed by
 * code, and requests lost (never answered), duplicated or answered wrongly.
 *
 * --reload: later in the run (at 3/4), rewrite the key ring (adding a key) and send SIGHUP to the
 * serving server, wait for its `reload` log line, then have half of the clients use the new key
 * for their new connections. It only does so when `sesame serve --help` mentions key ring reload
 * (`--reload`, SIGHUP, or "key ring reload"); otherwise it says so and does nothing.
 *
 * Options: --seconds S (default 20), --clients N (default 16), --rate R requests/s in all
 * (default 400), --mode restart|failover, --shutdown-at F (fraction of the run, default 0.5),
 * --reload.
 */

import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import {
  connect,
  isSesameError,
  KeyRing,
  type PresharedKey,
  type Session,
  saveKeyring,
  toPresharedKey,
} from '../../src/index.js';
import {
  type CliServer,
  fmt,
  hardDeadline,
  log,
  machine,
  serveHelp,
  sleep,
  startCli,
  table,
  tempDir,
} from './common.js';

const { values: opts } = parseArgs({
  options: {
    seconds: { type: 'string', default: '20' },
    clients: { type: 'string', default: '16' },
    rate: { type: 'string', default: '400' },
    mode: { type: 'string', default: 'restart' },
    'shutdown-at': { type: 'string', default: '0.5' },
    reload: { type: 'boolean', default: false },
  },
});
const RUN_MS = Number(opts.seconds) * 1000;
const CLIENTS = Number(opts.clients);
const RATE = Number(opts.rate);
const MODE = opts.mode;
const SHUTDOWN_AT = Number(opts['shutdown-at']);
const DRAIN_MS = 10_000;

if (MODE !== 'restart' && MODE !== 'failover') {
  process.stderr.write('no-loss: --mode is restart or failover\n');
  process.exit(2);
}

interface Tally {
  requests: number;
  attempts: number;
  replies: number;
  wrongReplies: number;
  duplicateReplies: number;
  unanswered: Map<string, number>;
  handshakeFailures: Map<string, number>;
  connections: number;
  newKeyConnections: number;
}

function add(m: Map<string, number>, k: string): void {
  m.set(k, (m.get(k) ?? 0) + 1);
}

function codeOf(err: unknown): string {
  return isSesameError(err) ? err.code : err instanceof Error ? err.message : String(err);
}

function serverArgs(listen: string, ring: string): string[] {
  return ['--listen', listen, '--keyring', ring, '--service', 'echo', '--handshake-timeout', '5000'];
}

async function main(): Promise<void> {
  hardDeadline(RUN_MS + DRAIN_MS + 60_000, 'no-loss');
  const dir = tempDir('sesame-no-loss-');
  const ringFile = join(dir.path, 'keyring.json');
  const entry = KeyRing.generate({ principal: 'no-loss', now: new Date(), random: (n) => randomBytes(n) });
  await saveKeyring(ringFile, new KeyRing([entry]));
  const keys: { current: PresharedKey; next: PresharedKey | undefined } = {
    current: toPresharedKey(entry),
    next: undefined,
  };

  const help = serveHelp();
  const reloadSupported = /--reload|SIGHUP|key ring reload/i.test(help);
  log(`no-loss: ${CLIENTS} clients, ${RATE} requests/s, ${RUN_MS / 1000} s, mode ${MODE}`);
  log(`machine: ${machine()}`);
  if (opts.reload && !reloadSupported) {
    log(
      '--reload: `sesame serve --help` mentions neither --reload, SIGHUP nor key ring reload: not supported; skipped',
    );
  }

  const first = await startCli(serverArgs('tcp://127.0.0.1:0', ringFile));
  const servers: CliServer[] = [first];
  let second: CliServer | undefined;
  if (MODE === 'failover') {
    second = await startCli(serverArgs('tcp://127.0.0.1:0', ringFile));
    servers.push(second);
  }
  const urls = MODE === 'failover' ? [first.url, (second as CliServer).url] : [first.url];
  log(`servers: ${urls.join(', ')} (pids ${servers.map((s) => s.pid).join(', ')})`);

  const tally: Tally = {
    requests: 0,
    attempts: 0,
    replies: 0,
    wrongReplies: 0,
    duplicateReplies: 0,
    unanswered: new Map(),
    handshakeFailures: new Map(),
    connections: 0,
    newKeyConnections: 0,
  };
  const answered = new Set<string>();
  const pending = new Set<string>();
  let sending = true;
  const start = performance.now();
  const drainUntil = start + RUN_MS + DRAIN_MS;
  const interval = (CLIENTS / RATE) * 1000;

  const client = async (n: number): Promise<void> => {
    let session: Session | undefined;
    // Set when the server closed its side (graceful shutdown): a request sent on such a
    // session could never be answered, so the client opens a new one instead, as a real
    // client would.
    let peerClosed = false;
    let sessionKey: PresharedKey | undefined;
    const queue: string[] = [];
    let seq = 0;
    let nextAt = performance.now();
    for (;;) {
      const now = performance.now();
      if (sending && now >= nextAt && queue.length === 0) {
        const id = `c${n}-r${seq++}`;
        queue.push(id);
        pending.add(id);
        tally.requests++;
        nextAt = Math.max(nextAt + interval, now);
      }
      if (queue.length === 0) {
        if (!sending) break;
        await sleep(Math.max(0, nextAt - performance.now()));
        continue;
      }
      if (now > drainUntil) break;
      // After a reload, half of the clients reconnect with the new key.
      const wanted = keys.next !== undefined && n % 2 === 1 ? keys.next : keys.current;
      if (session !== undefined && (peerClosed || sessionKey !== wanted)) {
        await session.close();
        session = undefined;
      }
      if (session === undefined) {
        const key = wanted;
        for (const url of urls) {
          try {
            session = await connect(url, { key, handshakeTimeoutMs: 5000 });
            sessionKey = key;
            if (key === keys.next) tally.newKeyConnections++;
            peerClosed = false;
            session.once('peer-close', () => {
              peerClosed = true;
            });
            tally.connections++;
            break;
          } catch (err) {
            add(tally.handshakeFailures, codeOf(err));
          }
        }
        if (session === undefined) {
          await sleep(50);
          continue;
        }
      }
      const id = queue[0] as string;
      tally.attempts++;
      try {
        const reply = (await session.request(Buffer.from(id))).toString();
        queue.shift();
        if (reply !== id) tally.wrongReplies++;
        else if (answered.has(id)) tally.duplicateReplies++;
        else {
          answered.add(id);
          pending.delete(id);
          tally.replies++;
        }
      } catch (err) {
        add(tally.unanswered, codeOf(err));
        // After the server's orderly close, answer with ours; otherwise the session is dead.
        if (isSesameError(err, 'ERR_CLOSED')) await session.close();
        else session.destroy();
        session = undefined;
      }
    }
    await session?.close();
  };

  const clients = Array.from({ length: CLIENTS }, (_, n) => client(n));

  // Midway: a graceful shutdown of the first server, and a takeover.
  await sleep(RUN_MS * SHUTDOWN_AT);
  const t0 = performance.now();
  log(`${fmt((t0 - start) / 1000)} s: SIGTERM to the first server (pid ${first.pid})`);
  const code = await first.stop();
  const t1 = performance.now();
  log(`${fmt((t1 - start) / 1000)} s: the first server exited with code ${code} after ${fmt(t1 - t0, 0)} ms`);
  if (MODE === 'restart') {
    second = await startCli(serverArgs(first.url, ringFile));
    servers.push(second);
    log(
      `${fmt((performance.now() - start) / 1000)} s: a new server (pid ${second.pid}) listens on ${second.url}; ` +
        `${fmt(performance.now() - t0, 0)} ms without a server`,
    );
  }

  if (opts.reload && reloadSupported) {
    await sleep(Math.max(0, start + RUN_MS * 0.75 - performance.now()));
    const added = KeyRing.generate({
      principal: 'no-loss next',
      now: new Date(),
      random: (n) => randomBytes(n),
    });
    await saveKeyring(ringFile, new KeyRing([entry, added]));
    const serving = second as CliServer;
    const reloads = () => serving.events.get('reload') ?? 0;
    const before = reloads();
    serving.signal('SIGHUP');
    // Switch once the server has logged the reload (at most 5 s).
    for (let i = 0; i < 50 && reloads() === before; i++) await sleep(100);
    if (reloads() === before) log('the server logged no reload within 5 s; switching anyway');
    keys.next = toPresharedKey(added);
    log(
      `${fmt((performance.now() - start) / 1000)} s: key ring rewritten with a new key, SIGHUP sent; half the clients switch`,
    );
  }

  await sleep(Math.max(0, start + RUN_MS - performance.now()));
  sending = false;
  await Promise.all(clients);
  const codes = await Promise.all(servers.filter((s) => s !== first).map((s) => s.stop()));
  dir.cleanup();

  const byCode = (m: Map<string, number>) =>
    m.size === 0
      ? '-'
      : [...m.entries()]
          .sort()
          .map(([k, v]) => `${k} ${v}`)
          .join(', ');
  const sum = (m: Map<string, number>) => [...m.values()].reduce((s, v) => s + v, 0);
  log('');
  log(
    table(
      ['', 'count', 'detail'],
      [
        ['requests (unique ids)', String(tally.requests), ''],
        ['attempts sent', String(tally.attempts), 'a request is sent again after an unanswered attempt'],
        ['replies received', String(tally.replies), ''],
        ['unanswered attempts (retried)', String(sum(tally.unanswered)), byCode(tally.unanswered)],
        ['requests lost (never answered)', String(pending.size), ''],
        ['duplicate replies', String(tally.duplicateReplies), ''],
        ['wrong replies', String(tally.wrongReplies), ''],
        ['connections made', String(tally.connections), ''],
        ['  with the reloaded key', String(tally.newKeyConnections), opts.reload ? '' : 'no --reload'],
        ['handshakes failed', String(sum(tally.handshakeFailures)), byCode(tally.handshakeFailures)],
      ],
    ),
  );
  for (const s of servers) {
    log(`server pid ${s.pid} log: ${[...s.events.entries()].map(([k, v]) => `${k} ${v}`).join(', ')}`);
  }
  log(`exit codes: first ${code}, others ${codes.join(', ')}`);
  const ok = pending.size === 0 && tally.wrongReplies === 0 && tally.duplicateReplies === 0;
  log(
    `verdict: ${ok ? 'NO LOSS' : 'LOSS'}: ${tally.replies} of ${tally.requests} requests answered; ` +
      `${sum(tally.unanswered)} attempts had to be retried, ${sum(tally.handshakeFailures)} handshakes failed`,
  );
  process.exitCode = ok ? 0 : 1;
}

main().catch((err: unknown) => {
  process.stderr.write(`no-loss: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
