/**
 * The `sesame` command: keygen, serve, connect.
 *
 * The contract scripts rely on (keep it stable):
 * - `keygen` prints only the new key id on stdout.
 * - `serve` logs a line containing `listening on URL` (the real port) once accepting, one line
 *   per authentication result, and exits 0 after a graceful shutdown on SIGINT/SIGTERM.
 * - `connect` prints one reply line per message on stdout; a refused or failed connection prints
 *   one line on stderr and exits non-zero.
 * - `--version` prints the package version; `completion bash|zsh` a completion script; `man` the
 *   man page. Help, man page and completion are all generated from the one command tree built
 *   here, so they cannot disagree.
 * - Durations are written one way everywhere (durations.ts); `--config FILE` supplies any option
 *   of `serve` and `connect` (config.ts), and the command line overrides it.
 * Exit codes: 0 success, 1 failure at run time, 2 bad arguments (every one, naming the argument),
 * 130 after Ctrl-C at the interactive prompt.
 */

import { EventEmitter } from 'node:events';
import { chmod } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { isSesameError } from '../errors.js';
import { defaultKeyringPath, ensureKeyring, keyringPermissionWarning, loadKeyring } from '../keyring/file.js';
import { type KeyRing, keyStatus } from '../keyring/keyring.js';
import { clientKey, presharedKeys } from '../keyring/preshared.js';
import { DEFAULT_ADDRESS, parseAddress } from '../net/address.js';
import type { BaseServer } from '../net/base-server.js';
import { connect } from '../net/client.js';
import { parseTrustedProxies } from '../net/proxy.js';
import { DEFAULT_HANDSHAKE_TIMEOUT_MS, DEFAULT_IDLE_TIMEOUT_MS } from '../net/session.js';
import { DEFAULT_MAX_CONNECTIONS, SesameServer } from '../net/stream-server.js';
import { isWorker, type PrimaryEvents, serveWorkers, type WorkerServer } from '../net/workers.js';
import { SERVICES, type ServiceName } from '../services/handlers.js';
import { completionScript, SHELLS, type Shell } from './completion.js';
import { applyConfig, type ConfigSection, readConfig } from './config.js';
import { formatDuration, parseDuration } from './durations.js';
import {
  addForwardOptions,
  type ForwardCliOptions,
  type ForwardConnectOptions,
  forwardOptionsProblem,
  forwardSessionOptions,
  runForwardConnectCli,
  serviceOrForward,
} from './forward.js';
import { addKeyOptions, DEFAULT_PRINCIPAL, KEYRING_HELP, registerKeysCommand, runAddKey } from './keys.js';
import {
  addServerLimitOptions,
  boundedCountArg,
  countArg,
  type ServerLimitOptions,
  serverLimits,
} from './limits.js';
import { createLogger, LOG_FORMATS, LOG_LEVELS, type Logger, type LogSettings } from './logger.js';
import {
  DATAGRAM_REQUEST_MAX_BYTES,
  Interrupted,
  interactive,
  limitRequest,
  piped,
  watchSessionEnd,
} from './loops.js';
import { manPage } from './man.js';
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
import { UsageError } from './usage.js';
import { VERSION } from './version.js';

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

/**
 * The most `--workers`: each worker is a whole Node process (tens of MB), and past a few per
 * core they only contend; a larger number is almost surely a typo.
 */
export const MAX_WORKERS = 64;

/** `--workers N` (1 to {@link MAX_WORKERS}) or `auto`: one per CPU the process may use. */
export function workersArg(value: string): number {
  const n = value === 'auto' ? availableParallelism() : countArg(value);
  if (n > MAX_WORKERS) throw new InvalidArgumentError(`at most ${MAX_WORKERS} (or auto: one per CPU)`);
  return Math.min(n, MAX_WORKERS);
}

/** `--socket-mode 660`: octal permission bits for a Unix socket. */
function socketModeArg(value: string): number {
  if (!/^0?[0-7]{3}$/.test(value))
    throw new InvalidArgumentError('expected octal permissions such as 660 or 0600');
  return Number.parseInt(value, 8);
}

/** A duration option showing its default in the duration syntax. */
function durationOption(flags: string, description: string, defaultMs: number): Option {
  return new Option(flags, description)
    .default(defaultMs, formatDuration(defaultMs))
    .argParser(parseDuration);
}

/** One line for a failure: the message and the permanent code. */
export function describe(err: unknown): string {
  if (isSesameError(err)) return `${err.message} (${err.code})`;
  return err instanceof Error ? err.message : String(err);
}

class Failure extends Error {}

interface ServeOptions extends LogSettings, ForwardCliOptions, ServerLimitOptions {
  listen: string;
  keyring?: string;
  service: ServiceName;
  forwardSecrecy: boolean;
  handshakeTimeout: number;
  idleTimeout: number;
  workers: number;
  proxyProtocol?: boolean;
  trustedProxy: string[];
  metrics?: string;
  closeRevoked?: boolean;
  socketMode?: number;
}

/** The server's key ring: the one given, or the default one, created with one key if missing. */
async function serveKeyring(opts: ServeOptions, log: Logger): Promise<{ file: string; ring: KeyRing }> {
  if (opts.keyring !== undefined) return { file: opts.keyring, ring: await loadKeyring(opts.keyring) };
  const file = defaultKeyringPath();
  const made = await ensureKeyring(file, { principal: DEFAULT_PRINCIPAL });
  if (made.created)
    log.info(
      { event: 'keyring-created', keyring: file },
      `created key ring ${file} (mode 0600) with one key`,
    );
  return { file, ring: made.ring };
}

/**
 * The modules only some servers use, loaded by those alone: metrics.ts (and prom-client) with
 * `--metrics`, the datagram server for a udp:// address. What a process keeps loaded stays in its
 * heap for good, and a tunnel end's heap size decides how V8 collects under bulk
 * (docs/performance.md, "The heap a tunnel end starts with").
 */
interface ServeModules {
  readonly metrics?: typeof import('./metrics.js') | undefined;
  readonly datagram?: typeof import('../net/datagram-server.js') | undefined;
}

async function loadServeModules(opts: ServeOptions): Promise<ServeModules> {
  return {
    metrics: opts.metrics === undefined ? undefined : await import('./metrics.js'),
    datagram:
      parseAddress(opts.listen).kind === 'udp' ? await import('../net/datagram-server.js') : undefined,
  };
}

/**
 * The server for `opts`, with every event it reports going to the log: a datagram server for a
 * `udp://` address, a stream server for the others.
 */
function buildServer(opts: ServeOptions, ring: KeyRing, log: Logger, modules: ServeModules): BaseServer {
  const common = {
    listen: opts.listen,
    keys: presharedKeys(ring),
    handler: SERVICES[opts.service],
    requireForwardSecrecy: opts.forwardSecrecy,
    handshakeTimeoutMs: opts.handshakeTimeout,
  };
  const server =
    modules.datagram !== undefined
      ? new modules.datagram.UdpServer({
          ...common,
          ...(opts.idleTimeout > 0 ? { sessionIdleMs: opts.idleTimeout } : {}),
        })
      : new SesameServer({
          ...common,
          handler: serviceOrForward(opts, log, modules.metrics?.pipeInstruments),
          idleTimeoutMs: opts.idleTimeout,
          ...forwardSessionOptions(opts),
          ...serverLimits(opts),
          proxyProtocol: opts.proxyProtocol,
          trustedProxies: opts.trustedProxy,
        });
  logServerEvents(server, log);
  return server;
}

/**
 * `listening on URL`, then a connect command that works: with the ring's only usable key it
 * needs no key id; with several it names the first usable one (revoked, expired and not yet
 * valid keys are skipped) and says how to hand each client its own key.
 */
function announce(
  log: Logger,
  url: string,
  opts: ServeOptions,
  ring: KeyRing,
  fields: Record<string, unknown>,
): void {
  const what = opts.forward === undefined ? { service: opts.service } : { forward: opts.forward };
  log.info({ event: 'listening', url, ...what, ...fields }, `listening on ${url}`);
  const keyringArg = opts.keyring === undefined ? '' : ` --keyring ${opts.keyring}`;
  const now = new Date();
  const usable = ring.list().filter((e) => keyStatus(e, now) === 'valid');
  const [first] = usable;
  if (first === undefined) {
    log.warn(
      { event: 'hint' },
      'the key ring holds no usable key: every client is refused until `sesame keys add` adds one',
    );
    return;
  }
  const keyIdArg = ring.size > 1 ? ` --key-id ${first.id}` : '';
  log.info({ event: 'hint' }, `connect with: npx sesame connect ${url}${keyringArg}${keyIdArg}`);
  if (usable.length > 1) {
    log.info(
      { event: 'hint' },
      `give each client only its own key: sesame keys export ID${keyringArg} --out CLIENT.json (ids: sesame keys list${keyringArg})`,
    );
  }
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
  modules: ServeModules,
): WorkerServer & { server: BaseServer } {
  const server = buildServer(opts, ring, log, modules);
  const metrics = modules.metrics?.instrument(server);
  let stopWatching = (): void => {};
  return {
    server,
    // Linked with the other workers' under --workers (the primary relays what each records).
    replayCache: server instanceof SesameServer ? server.replayCache : undefined,
    listen: async () => {
      const url = await listenWithMode(server, opts);
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

/**
 * Listen; on a Unix socket with `--socket-mode`, the socket gets exactly that mode: the umask is
 * narrowed while binding (no wider moment), then chmod sets the exact bits.
 */
async function listenWithMode(server: BaseServer, opts: ServeOptions): Promise<string> {
  const address = parseAddress(opts.listen);
  if (opts.socketMode === undefined || address.kind !== 'unix') return server.listen();
  const previous = process.umask(0o777 & ~opts.socketMode);
  let url: string;
  try {
    url = await server.listen();
  } finally {
    process.umask(previous);
  }
  await chmod(address.path, opts.socketMode);
  return url;
}

/** Option combinations that cannot work together: a bad argument each. */
function serveProblem(opts: ServeOptions): string | undefined {
  const kind = parseAddress(opts.listen).kind;
  if (kind === 'udp' && (opts.workers > 1 || opts.proxyProtocol === true)) {
    return '--workers and --proxy-protocol are for stream sockets (tcp://, unix://), not udp://';
  }
  if (opts.proxyProtocol === true && opts.trustedProxy.length === 0) {
    return '--proxy-protocol needs --trusted-proxy CIDR: the load balancers allowed to send PROXY headers';
  }
  if (opts.proxyProtocol !== true && opts.trustedProxy.length > 0) {
    return '--trusted-proxy applies only with --proxy-protocol';
  }
  if (opts.socketMode !== undefined && kind !== 'unix')
    return '--socket-mode applies only to unix:// addresses';
  return undefined;
}

async function runServe(opts: ServeOptions): Promise<number> {
  const problem = serveProblem(opts);
  if (problem !== undefined) throw new UsageError(problem);
  const log = createLogger(opts);
  const modules = await loadServeModules(opts);
  if (isWorker()) {
    return serveWorkers({
      workers: opts.workers,
      start: async () => {
        const { file, ring } = await serveKeyring(opts, log);
        const operated = operatedServer(opts, file, ring, log, modules);
        operated.server.once('listening', (url) =>
          log.info({ event: 'worker-ready', url }, `worker ${process.pid} ready`),
        );
        return operated;
      },
    });
  }
  const { file, ring } = await serveKeyring(opts, log);
  const warning = await keyringPermissionWarning(file);
  if (warning !== undefined) log.warn({ event: 'keyring-permissions', keyring: file }, warning);
  if (opts.workers > 1) {
    const metricsHttp =
      opts.metrics === undefined
        ? undefined
        : await modules.metrics?.serveMetrics(opts.metrics, { kind: 'cluster' });
    if (metricsHttp !== undefined)
      log.info({ event: 'metrics', url: metricsHttp.url }, `metrics on ${metricsHttp.url}`);
    const events = new EventEmitter<PrimaryEvents>();
    events.on('listening', (url, n) =>
      announce(log, url, opts, ring, { workers: n, keys: ring.size, keyring: file }),
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
  const operated = operatedServer(opts, file, ring, log, modules);
  const metricsHttp =
    opts.metrics === undefined
      ? undefined
      : await modules.metrics?.serveMetrics(opts.metrics, {
          kind: 'local',
          registry: modules.metrics.defaultRegistry,
        });
  const url = await operated.listen();
  announce(log, url, opts, ring, { keys: ring.size, keyring: file });
  if (metricsHttp !== undefined)
    log.info({ event: 'metrics', url: metricsHttp.url }, `metrics on ${metricsHttp.url}`);
  await stopped;
  await operated.close();
  metricsHttp?.server.close();
  log.info({ event: 'stopped' }, 'stopped');
  return 0;
}

interface ConnectCliOptions extends ForwardCliOptions {
  config?: string;
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
        `no key ring at ${file}: ask the server's operator for your key (\`sesame keys export ID --out FILE\` ` +
          "on the server) and pass it with --keyring FILE; on the server's own machine, `sesame serve` " +
          '(or `npm start`) creates this ring',
      );
    }
    throw err;
  }
  let key: ReturnType<typeof clientKey>;
  try {
    key = clientKey(ring, opts.keyId, new Date());
  } catch (err) {
    if (opts.keyId !== undefined && isSesameError(err, 'ERR_KEY_NOT_FOUND')) {
      throw new UsageError(`--key-id ${opts.keyId}: ${err.message} in ${file} (${err.code})`);
    }
    throw err;
  }
  const session: Requester =
    parseAddress(url).kind === 'udp'
      ? await (await import('../net/datagram-client.js')).connectUdp(url, {
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

/** Read `--config` into `command`'s options before its action runs; connect's `url` comes back. */
async function configure(command: Command, section: ConfigSection): Promise<Record<string, unknown>> {
  const path = command.getOptionValue('config') as string | undefined;
  if (path === undefined) return {};
  return applyConfig(command, await readConfig(path, section), path, section === 'connect' ? ['url'] : []);
}

/** `--config`, which `serve` and `connect` share. */
function addConfigOption(command: Command): Command {
  return command.option('--config <path>', 'read options from a JSON file (flags override it)');
}

/** The logging options of `serve`. */
function addLogOptions(command: Command): Command {
  return command
    .addOption(
      new Option(
        '--log-level <level>',
        'least severe level logged (default: $SESAME_LOG_LEVEL, else info)',
      ).choices(LOG_LEVELS),
    )
    .addOption(
      new Option(
        '--log-format <format>',
        'json lines, or pretty (default: pretty on a terminal, else json)',
      ).choices(LOG_FORMATS),
    );
}

/** The whole command tree: the CLI, its help, its man page and its completion come from it. */
export function buildProgram(io: Io, exit: { code: number }): Command {
  const program = new Command('sesame')
    .description('Authenticated connections from pre-shared keys: servers, clients and keys')
    .version(VERSION, '-V, --version', 'print the version')
    .exitOverride()
    .configureOutput({ writeOut: (s) => io.stdout.write(s), writeErr: (s) => io.stderr.write(s) })
    .showHelpAfterError('(run with --help for usage)');

  addKeyOptions(
    program
      .command('keygen')
      .description('add a new random 256-bit key to a key ring (same as keys add); prints the key id'),
  ).action(async (opts) => {
    exit.code = await runAddKey(opts, io);
  });

  const serve = program
    .command('serve')
    .description('run an authenticated service')
    .addOption(
      new Option('--listen <url>', 'tcp://HOST:PORT (port 0: any free port), udp://HOST:PORT or unix:///path')
        .default(DEFAULT_ADDRESS)
        .argParser(addressArg),
    )
    .option('--keyring <path>', `${KEYRING_HELP}; created with one key if missing`)
    .addOption(
      new Option('--service <name>', 'what to serve').choices(Object.keys(SERVICES)).default('timestamp'),
    )
    .option('--no-forward-secrecy', 'also accept clients that do not use ephemeral X25519 (PSK-only)')
    .addOption(
      durationOption('--handshake-timeout <duration>', 'handshake deadline', DEFAULT_HANDSHAKE_TIMEOUT_MS),
    )
    .addOption(
      durationOption(
        '--idle-timeout <duration>',
        'close idle connections after this long (0: never)',
        DEFAULT_IDLE_TIMEOUT_MS,
      ),
    )
    .addOption(
      new Option('--max-connections <n>', 'most connections at once')
        .default(DEFAULT_MAX_CONNECTIONS)
        .argParser(boundedCountArg),
    );
  addServerLimitOptions(serve)
    .addOption(
      new Option(
        '--workers <n>',
        `serve with this many processes sharing the address (node:cluster): 1 to ${MAX_WORKERS}, or auto (one per CPU)`,
      )
        .default(1)
        .argParser(workersArg),
    )
    .option('--proxy-protocol', 'expect a PROXY v1/v2 header from a load balancer before each handshake')
    .addOption(
      new Option(
        '--trusted-proxy <cidr>',
        'address or CIDR allowed to send PROXY headers (repeatable; required with --proxy-protocol)',
      )
        .default([])
        .argParser((v: string, prev: string[]) => [...prev, trustedProxyArg(v)]),
    )
    .addOption(
      new Option(
        '--metrics <url>',
        'serve Prometheus metrics on tcp://HOST:PORT/metrics and a health check on /healthz (port 0: any)',
      ).argParser(addressArg),
    )
    .option('--close-revoked', 'on key ring reload, close sessions whose key is revoked, expired or removed')
    .addOption(
      new Option('--socket-mode <octal>', 'unix://: the socket file mode, such as 660').argParser(
        socketModeArg,
      ),
    );
  addLogOptions(addConfigOption(serve));
  addForwardOptions(serve, 'serve');
  addProfileOptions(serve, 'serve')
    .hook('preAction', async (command) => {
      await configure(command, 'serve');
    })
    .action(async (opts: ServeOptions & ProfileOptions, command: Command) => {
      const refuse = (problem: string) => command.error(problem, { exitCode: 2 });
      const problem = profileOptionsProblem(opts, command) ?? forwardOptionsProblem(opts, command, 'serve');
      if (problem !== undefined) refuse(problem);
      exit.code = opts.profile === 'native' ? await runServe(opts) : await runProfileServe(opts, refuse);
    });

  let configUrl: unknown;
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
    .option('--keyring <path>', KEYRING_HELP)
    .option('--key-id <id>', 'which key to use (optional when the ring holds one key)')
    .option('--no-forward-secrecy', 'PSK-only handshake, without ephemeral X25519')
    .addOption(
      durationOption('--handshake-timeout <duration>', 'handshake deadline', DEFAULT_HANDSHAKE_TIMEOUT_MS),
    );
  addConfigOption(connectCommand);
  addForwardOptions(connectCommand, 'connect');
  addProfileOptions(connectCommand, 'connect')
    .hook('preAction', async (command) => {
      configUrl = (await configure(command, 'connect')).url;
    })
    .action(async (given: string, opts: ConnectCliOptions & ProfileOptions, command: Command) => {
      let url = given;
      if (command.args.length === 0 && configUrl !== undefined) {
        if (typeof configUrl !== 'string')
          throw new UsageError(`--config ${opts.config}: url: expected a string`);
        try {
          url = addressArg(configUrl);
        } catch (err) {
          throw new UsageError(`--config ${opts.config}: url: ${(err as Error).message}`);
        }
      }
      const problem = profileOptionsProblem(opts, command) ?? forwardOptionsProblem(opts, command, 'connect');
      if (problem !== undefined) command.error(problem, { exitCode: 2 });
      if ((opts as ForwardConnectOptions).listen !== undefined) {
        exit.code = await runForwardConnectCli(url, opts as ForwardConnectOptions, io);
        return;
      }
      exit.code =
        opts.profile === 'native' ? await runConnect(url, opts, io) : await runProfileConnect(url, opts, io);
    });

  registerKeysCommand(program, io);

  program
    .command('completion')
    .description('print a shell completion script: sesame completion bash > /etc/bash_completion.d/sesame')
    .addArgument(program.createArgument('<shell>', 'bash or zsh').choices(SHELLS))
    .action((shell: Shell) => {
      io.stdout.write(completionScript(program, shell));
    });

  program
    .command('man', { hidden: true })
    .description('print the man page (roff): sesame man | man -l -')
    .action(() => {
      io.stdout.write(manPage(program));
    });
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
    if (err instanceof UsageError) {
      io.stderr.write(`sesame: error: ${err.message}\n(run with --help for usage)\n`);
      return 2;
    }
    if (err instanceof Interrupted) return 130;
    io.stderr.write(`sesame: ${describe(err)}\n`);
    return 1;
  }
}
