/**
 * The `sesame` command: keygen, serve, connect.
 *
 * The contract scripts rely on (keep it stable):
 * - `keygen` prints only the new key id on stdout.
 * - `serve` logs a line containing `listening on URL` (the real port) once accepting, one line
 *   per authentication result, and exits 0 after a graceful shutdown on SIGINT/SIGTERM.
 * - `connect` prints one reply line per message on stdout; a refused or failed connection prints
 *   one line on stderr and exits non-zero.
 * Exit codes: 0 success, 1 failure at run time, 2 bad arguments.
 */

import { EventEmitter } from 'node:events';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { isSesameError } from '../errors.js';
import {
  addGeneratedKey,
  defaultKeyringPath,
  ensureKeyring,
  keyringPermissionWarning,
  loadKeyring,
} from '../keyring/file.js';
import type { KeyRing } from '../keyring/keyring.js';
import { clientKey, presharedKeys } from '../keyring/preshared.js';
import { DEFAULT_ADDRESS, parseAddress } from '../net/address.js';
import type { BaseServer } from '../net/base-server.js';
import { connect } from '../net/client.js';
import { connectUdp } from '../net/datagram-client.js';
import { UdpServer } from '../net/datagram-server.js';
import { parseTrustedProxies } from '../net/proxy.js';
import { DEFAULT_HANDSHAKE_TIMEOUT_MS, DEFAULT_IDLE_TIMEOUT_MS } from '../net/session.js';
import { DEFAULT_MAX_CONNECTIONS, SesameServer } from '../net/stream-server.js';
import { isWorker, type PrimaryEvents, serveWorkers, type WorkerServer } from '../net/workers.js';
import { SERVICES, type ServiceName } from '../services/handlers.js';
import { registerKeysCommand } from './keys.js';
import { createLogger, type Logger } from './logger.js';
import { DATAGRAM_REQUEST_MAX_BYTES, interactive, limitRequest, piped, watchSessionEnd } from './loops.js';
import { defaultRegistry, instrument, serveMetrics } from './metrics.js';
import {
  addProfileOptions,
  type ProfileOptions,
  profileOptionsProblem,
  runProfileConnect,
  runProfileServe,
} from './profiles.js';
import { watchKeyring } from './reload.js';
import { logServerEvents } from './server-log.js';
import { untilStopSignal } from './signals.js';

export interface Io {
  readonly stdin: NodeJS.ReadableStream & { isTTY?: boolean };
  readonly stdout: NodeJS.WritableStream;
  readonly stderr: NodeJS.WritableStream;
}

const defaultIo: Io = { stdin: process.stdin, stdout: process.stdout, stderr: process.stderr };

function addressArg(value: string): string {
  try {
    parseAddress(value);
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message);
  }
  return value;
}

function trustedProxyArg(value: string): string {
  try {
    parseTrustedProxies([value]);
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message);
  }
  return value;
}

function millisecondsArg(value: string): number {
  if (!/^\d+$/.test(value)) throw new InvalidArgumentError('expected a whole number of milliseconds');
  return Number(value);
}

function countArg(value: string): number {
  if (!/^[1-9]\d*$/.test(value)) throw new InvalidArgumentError('expected a positive whole number');
  return Number(value);
}

/** One line for a failure: the message and the permanent code. */
export function describe(err: unknown): string {
  if (isSesameError(err)) return `${err.message} (${err.code})`;
  return err instanceof Error ? err.message : String(err);
}

class Failure extends Error {}

async function runKeygen(opts: { keyring?: string; principal: string }, io: Io): Promise<number> {
  const file = opts.keyring ?? defaultKeyringPath();
  const entry = await addGeneratedKey(file, opts.principal);
  io.stdout.write(`${entry.id}\n`);
  return 0;
}

interface ServeOptions {
  listen: string;
  keyring?: string;
  service: ServiceName;
  forwardSecrecy: boolean;
  handshakeTimeout: number;
  idleTimeout: number;
  maxConnections: number;
  workers: number;
  proxyProtocol?: boolean;
  trustedProxy: string[];
  metrics?: string;
  closeRevoked?: boolean;
}

/** The server's key ring: the one given, or the default one, created with one key if missing. */
async function serveKeyring(opts: ServeOptions, log: Logger): Promise<{ file: string; ring: KeyRing }> {
  if (opts.keyring !== undefined) return { file: opts.keyring, ring: await loadKeyring(opts.keyring) };
  const file = defaultKeyringPath();
  const made = await ensureKeyring(file, { principal: 'default' });
  if (made.created) log.info({ keyring: file }, `created key ring ${file} (mode 0600) with one key`);
  return { file, ring: made.ring };
}

/**
 * The server for `opts`, with every event it reports going to the log: a datagram server for a
 * `udp://` address, a stream server for the others.
 */
function buildServer(opts: ServeOptions, ring: KeyRing, log: Logger): BaseServer {
  const common = {
    listen: opts.listen,
    keys: presharedKeys(ring),
    handler: SERVICES[opts.service],
    requireForwardSecrecy: opts.forwardSecrecy,
    handshakeTimeoutMs: opts.handshakeTimeout,
  };
  const server =
    parseAddress(opts.listen).kind === 'udp'
      ? new UdpServer({ ...common, ...(opts.idleTimeout > 0 ? { sessionIdleMs: opts.idleTimeout } : {}) })
      : new SesameServer({
          ...common,
          idleTimeoutMs: opts.idleTimeout,
          maxConnections: opts.maxConnections,
          proxyProtocol: opts.proxyProtocol,
          trustedProxies: opts.trustedProxy,
        });
  logServerEvents(server, log);
  return server;
}

function announce(log: Logger, url: string, opts: ServeOptions, fields: Record<string, unknown>): void {
  log.info({ event: 'listening', url, service: opts.service, ...fields }, `listening on ${url}`);
  const keyringArg = opts.keyring === undefined ? '' : ` --keyring ${opts.keyring}`;
  log.info(`connect with: npx sesame connect ${url}${keyringArg}`);
}

/**
 * A server with its operations attached: metrics recording (when --metrics is given), key ring
 * reload on SIGHUP and file changes. `close()` stops all of it.
 */
function operatedServer(
  opts: ServeOptions,
  file: string,
  ring: KeyRing,
  log: Logger,
): WorkerServer & { server: BaseServer } {
  const server = buildServer(opts, ring, log);
  const metrics = opts.metrics === undefined ? undefined : instrument(server);
  let stopWatching = (): void => {};
  return {
    server,
    listen: async () => {
      const url = await server.listen();
      stopWatching = watchKeyring(ring, {
        file,
        server,
        log,
        closeRevoked: opts.closeRevoked === true,
        onResult: (result) => metrics?.reloads.inc({ result }),
      });
      return url;
    },
    close: async () => {
      stopWatching();
      await server.close();
    },
  };
}

async function runServe(opts: ServeOptions): Promise<number> {
  if (parseAddress(opts.listen).kind === 'udp' && (opts.workers > 1 || opts.proxyProtocol === true)) {
    throw new Failure('--workers and --proxy-protocol are for stream sockets (tcp://, unix://), not udp://');
  }
  const log = createLogger();
  if (isWorker()) {
    return serveWorkers({
      workers: opts.workers,
      start: async () => {
        const { file, ring } = await serveKeyring(opts, log);
        const operated = operatedServer(opts, file, ring, log);
        operated.server.once('listening', (url) =>
          log.info({ event: 'worker-ready', url }, `worker ${process.pid} ready`),
        );
        return operated;
      },
    });
  }
  const { file, ring } = await serveKeyring(opts, log);
  const warning = await keyringPermissionWarning(file);
  if (warning !== undefined) log.warn({ keyring: file }, warning);
  if (opts.workers > 1) {
    const metricsHttp =
      opts.metrics === undefined ? undefined : await serveMetrics(opts.metrics, { kind: 'cluster' });
    if (metricsHttp !== undefined)
      log.info({ event: 'metrics', url: metricsHttp.url }, `metrics on ${metricsHttp.url}`);
    const events = new EventEmitter<PrimaryEvents>();
    events.on('listening', (url, n) =>
      announce(log, url, opts, { workers: n, keys: ring.size, keyring: file }),
    );
    events.on('shutdown', (why) =>
      log.info({ event: 'shutdown', signal: why }, `${why}: closing every worker gracefully`),
    );
    events.on('restart', (pid) =>
      log.warn({ event: 'worker-restart', pid }, `worker ${pid} died; starting another`),
    );
    events.on('failed', (message) =>
      log.error({ event: 'worker-failed' }, `a worker could not start: ${message}`),
    );
    events.on('reload', () =>
      log.info({ event: 'reload-relay' }, 'SIGHUP: asking every worker to reload the key ring'),
    );
    const code = await serveWorkers({
      workers: opts.workers,
      start: () => Promise.reject(new Error('primary')),
      events,
    });
    metricsHttp?.server.close();
    log.info({ event: 'stopped' }, 'stopped');
    return code;
  }
  const stopped = untilStopSignal(log);
  const operated = operatedServer(opts, file, ring, log);
  const metricsHttp =
    opts.metrics === undefined
      ? undefined
      : await serveMetrics(opts.metrics, { kind: 'local', registry: defaultRegistry });
  const url = await operated.listen();
  announce(log, url, opts, { keys: ring.size, keyring: file });
  if (metricsHttp !== undefined)
    log.info({ event: 'metrics', url: metricsHttp.url }, `metrics on ${metricsHttp.url}`);
  await stopped;
  await operated.close();
  metricsHttp?.server.close();
  log.info({ event: 'stopped' }, 'stopped');
  return 0;
}

interface ConnectCliOptions {
  keyring?: string;
  keyId?: string;
  forwardSecrecy: boolean;
  handshakeTimeout: number;
}

async function runConnect(url: string, opts: ConnectCliOptions, io: Io): Promise<number> {
  const file = opts.keyring ?? defaultKeyringPath();
  let ring: Awaited<ReturnType<typeof loadKeyring>>;
  try {
    ring = await loadKeyring(file);
  } catch (err) {
    if (isSesameError(err, 'ERR_KEYRING_IO') && opts.keyring === undefined) {
      throw new Failure(
        `no key ring at ${file}: start the server once with \`npm start\`, or create one with \`sesame keygen\``,
      );
    }
    throw err;
  }
  const key = clientKey(ring, opts.keyId, new Date());
  const session: Requester =
    parseAddress(url).kind === 'udp'
      ? await connectUdp(url, {
          key,
          forwardSecrecy: opts.forwardSecrecy,
          handshakeTimeoutMs: opts.handshakeTimeout,
        })
      : await connect(url, {
          key,
          forwardSecrecy: opts.forwardSecrecy,
          handshakeTimeoutMs: opts.handshakeTimeout,
        });
  try {
    const send = (line: string) => session.request(Buffer.from(line, 'utf8'));
    const ask = parseAddress(url).kind === 'udp' ? limitRequest(send, DATAGRAM_REQUEST_MAX_BYTES) : send;
    const show = (reply: Buffer) => io.stdout.write(`${reply.toString('utf8')}\n`);
    const end = watchSessionEnd(session);
    if (io.stdin.isTTY === true) await interactive(ask, show, io, end);
    else await piped(ask, show, io, MAX_OUTSTANDING, end);
  } catch (err) {
    session.destroy?.();
    throw err;
  }
  await session.close();
  return 0;
}

/** Messages awaiting replies at once when input is piped. */
const MAX_OUTSTANDING = 1024;

/** What the connect loops need of a session, stream or datagram. */
interface Requester {
  request(message: Uint8Array): Promise<Buffer>;
  close(): Promise<void>;
  destroy?(): void;
  on(event: 'peer-close' | 'failed' | 'close', listener: (err?: unknown) => void): unknown;
  readonly error?: Error | undefined;
}

export function buildProgram(io: Io, exit: { code: number }): Command {
  const program = new Command('sesame')
    .description('Authenticated connections from pre-shared keys: servers, clients and keys')
    .exitOverride()
    .configureOutput({ writeOut: (s) => io.stdout.write(s), writeErr: (s) => io.stderr.write(s) })
    .showHelpAfterError('(run with --help for usage)');

  program
    .command('keygen')
    .description(
      'add a new random 256-bit key to a key ring (created with mode 0600 if missing); prints the key id',
    )
    .option('--keyring <path>', `key ring file (default: ${defaultKeyringPath()})`)
    .option('--principal <name>', 'who will hold the key', 'default')
    .action(async (opts) => {
      exit.code = await runKeygen(opts, io);
    });

  const serve = program
    .command('serve')
    .description('run an authenticated service')
    .addOption(
      new Option('--listen <url>', 'tcp://HOST:PORT (port 0: any free port), udp://HOST:PORT or unix:///path')
        .default(DEFAULT_ADDRESS)
        .argParser(addressArg),
    )
    .option(
      '--keyring <path>',
      `key ring file (default: ${defaultKeyringPath()}, created with one key if missing)`,
    )
    .addOption(
      new Option('--service <name>', 'what to serve').choices(Object.keys(SERVICES)).default('timestamp'),
    )
    .option('--no-forward-secrecy', 'also accept clients that do not use ephemeral X25519 (PSK-only)')
    .addOption(
      new Option('--handshake-timeout <ms>', 'handshake deadline')
        .default(DEFAULT_HANDSHAKE_TIMEOUT_MS)
        .argParser(millisecondsArg),
    )
    .addOption(
      new Option('--idle-timeout <ms>', 'close idle connections after this long (0: never)')
        .default(DEFAULT_IDLE_TIMEOUT_MS)
        .argParser(millisecondsArg),
    )
    .addOption(
      new Option('--max-connections <n>', 'most connections at once')
        .default(DEFAULT_MAX_CONNECTIONS)
        .argParser(countArg),
    )
    .addOption(
      new Option('--workers <n>', 'serve with this many processes sharing the address (node:cluster)')
        .default(1)
        .argParser(countArg),
    )
    .option('--proxy-protocol', 'expect a PROXY v1/v2 header from a load balancer before each handshake')
    .addOption(
      new Option('--trusted-proxy <cidr>', 'address or CIDR allowed to send PROXY headers (repeatable)')
        .default([])
        .argParser((v: string, prev: string[]) => [...prev, trustedProxyArg(v)]),
    )
    .addOption(
      new Option(
        '--metrics <url>',
        'serve Prometheus metrics on tcp://HOST:PORT/metrics (port 0: any)',
      ).argParser(addressArg),
    )
    .option('--close-revoked', 'on key ring reload, close sessions whose key is revoked, expired or removed');
  addProfileOptions(serve, 'serve').action(async (opts: ServeOptions & ProfileOptions, command: Command) => {
    const refuse = (problem: string) => command.error(problem, { exitCode: 2 });
    const problem = profileOptionsProblem(opts, command);
    if (problem !== undefined) refuse(problem);
    exit.code = opts.profile === 'native' ? await runServe(opts) : await runProfileServe(opts, refuse);
  });

  const connectCommand = program
    .command('connect')
    .description(
      'connect to a service: an interactive >>> prompt on a terminal, else one message per input line',
    )
    .addArgument(
      program
        .createArgument('[url]', 'tcp://HOST:PORT, udp://HOST:PORT or unix:///path')
        .default(DEFAULT_ADDRESS)
        .argParser(addressArg),
    )
    .option('--keyring <path>', `key ring file (default: ${defaultKeyringPath()})`)
    .option('--key-id <id>', 'which key to use (optional when the ring holds one key)')
    .option('--no-forward-secrecy', 'PSK-only handshake, without ephemeral X25519')
    .addOption(
      new Option('--handshake-timeout <ms>', 'handshake deadline')
        .default(DEFAULT_HANDSHAKE_TIMEOUT_MS)
        .argParser(millisecondsArg),
    );
  addProfileOptions(connectCommand, 'connect').action(
    async (url: string, opts: ConnectCliOptions & ProfileOptions, command: Command) => {
      const problem = profileOptionsProblem(opts, command);
      if (problem !== undefined) command.error(problem, { exitCode: 2 });
      exit.code =
        opts.profile === 'native' ? await runConnect(url, opts, io) : await runProfileConnect(url, opts, io);
    },
  );

  registerKeysCommand(program, io);
  return program;
}

/** Run the CLI with `argv` (without node and script); returns the exit code. */
export async function main(argv: readonly string[], io: Io = defaultIo): Promise<number> {
  const exit = { code: 0 };
  const program = buildProgram(io, exit);
  try {
    await program.parseAsync([...argv], { from: 'user' });
    return exit.code;
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? 0 : 2;
    io.stderr.write(`sesame: ${describe(err)}\n`);
    return 1;
  }
}
