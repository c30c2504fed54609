/**
 * Forwarding on the command line: `sesame serve --forward URL` (the server end: each
 * authenticated connection gets its own connection to URL) and `sesame connect URL --listen LOCAL`
 * (the client end: each local connection gets its own authenticated connection to URL). Both work
 * with every profile; the byte-stream semantics are src/net/forward.ts's.
 *
 * The contract scripts rely on:
 * - `serve --forward` logs one line per pipe opened and closed, naming the principal (or the
 *   profile, for profiles without principals) and the target; a target failure is a warning line
 *   with the reason and code. With `--metrics`: `sesame_pipes_open`, `sesame_pipe_bytes_total`
 *   (direction `to_target` / `from_target`), `sesame_pipe_target_errors_total`.
 * - `connect --listen` logs `listening on LOCAL_URL` (the real port) once accepting, one line per
 *   pipe, and why a pipe could not be opened or was cut. SIGINT/SIGTERM: stop accepting, let open
 *   pipes finish (at most the grace period), exit 0.
 */

import { readFile } from 'node:fs/promises';
import { type Command, InvalidArgumentError, Option } from 'commander';
import { compatClientConnection, SPIPED_MIN_KEY_FILE_BYTES } from '../compat/index.js';
import { sesameError } from '../errors.js';
import { defaultKeyringPath, loadKeyring } from '../keyring/file.js';
import { clientKey } from '../keyring/preshared.js';
import { connect, openSession } from '../net/client.js';
import {
  checkStreamAddress,
  DEFAULT_CONNECT_TIMEOUT_MS,
  FORWARD_SESSION_OPTIONS,
  ForwardListener,
  forwardHandler,
  type PipeCounters,
  type PipeEvent,
} from '../net/forward.js';
import type { Respond, StreamHandlerClass } from '../net/handlers.js';
import type { Session } from '../net/session.js';
import { SERVICES, type ServiceName } from '../services/handlers.js';
import { createLogger, type Logger } from './logger.js';
import type { Io } from './main.js';
import type { PipeMetrics } from './metrics.js';
import { loadSecretFile, type ProfileOptions } from './profiles.js';
import { untilStopSignal } from './signals.js';

/** How long `connect --listen` lets open pipes finish after SIGINT/SIGTERM, in ms. */
export const DEFAULT_FORWARD_GRACE_MS = 10_000;

function streamUrlArg(value: string): string {
  try {
    return checkStreamAddress(value);
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message);
  }
}

function msArg(value: string): number {
  if (!/^\d+$/.test(value)) throw new InvalidArgumentError('expected a whole number of milliseconds');
  return Number(value);
}

/** Declare the forwarding options on `serve` (`--forward`) or `connect` (`--listen`). */
export function addForwardOptions(command: Command, role: 'serve' | 'connect'): Command {
  if (role === 'serve') {
    command.addOption(
      new Option(
        '--forward <url>',
        'instead of --service: join each connection to its own connection to tcp://HOST:PORT or unix:///path',
      ).argParser(streamUrlArg),
    );
  } else {
    command
      .addOption(
        new Option(
          '--listen <url>',
          'listen on tcp://HOST:PORT (port 0: any) or unix:///path and forward each local connection',
        ).argParser(streamUrlArg),
      )
      .addOption(
        new Option('--grace <ms>', 'with --listen: how long open pipes may finish after SIGINT/SIGTERM')
          .default(DEFAULT_FORWARD_GRACE_MS)
          .argParser(msArg),
      );
  }
  command.addOption(
    new Option('--connect-timeout <ms>', 'with --forward/--listen: deadline for connecting to the target')
      .default(DEFAULT_CONNECT_TIMEOUT_MS)
      .argParser(msArg),
  );
  return command;
}

/** The forwarding options as commander parses them. */
export interface ForwardCliOptions {
  /** serve: the target. */
  forward?: string | undefined;
  /** connect: where to listen. */
  listen?: string | undefined;
  /** Deadline for connecting to the target (serve) or to the server (connect), in ms. */
  connectTimeout: number;
  /** connect: how long open pipes may finish after a stop signal. */
  grace?: number | undefined;
}

/** Who is at the other end of a pipe, for the log: the principal, or the profile's name. */
function who(e: PipeEvent): string {
  return e.info.principal ?? `(${e.info.profile})`;
}

/**
 * The handler of `serve --forward TARGET`: each pipe logged with principal and target, and, given
 * `metrics` (the instruments of metrics.ts, which only a process with `--metrics` loads), counted.
 */
export function forwardServeHandler(
  target: string,
  log: Logger,
  options: { connectTimeoutMs: number; metrics?: (() => PipeMetrics) | undefined },
): StreamHandlerClass {
  const m = options.metrics?.();
  const counters: PipeCounters | undefined =
    m === undefined
      ? undefined
      : {
          fromSession: (n) => m.bytes.inc({ direction: 'to_target' }, n),
          toSession: (n) => m.bytes.inc({ direction: 'from_target' }, n),
        };
  return forwardHandler(target, {
    connectTimeoutMs: options.connectTimeoutMs,
    counters,
    onEvent: (e) => {
      const base = { principal: e.info.principal, keyId: e.info.keyId, remote: e.info.remote, target };
      if (e.type === 'open') {
        m?.open.inc();
        log.info({ event: 'pipe-open', ...base }, `pipe ${who(e)} from ${e.info.remote} -> ${target}`);
      } else if (e.type === 'target-error') {
        m?.targetErrors.inc();
        log.warn(
          { event: 'pipe-target-error', ...base, code: e.error.code, reason: e.error.message },
          `pipe ${who(e)} from ${e.info.remote}: target ${target} failed: ${e.error.message} (${e.error.code})`,
        );
      } else {
        m?.open.dec();
        const r = e.result;
        const fields = {
          event: 'pipe-closed',
          ...base,
          bytesToTarget: r.bytesFromSession,
          bytesFromTarget: r.bytesToSession,
          ms: e.ms,
          ...(r.error === undefined ? {} : { code: r.error.code, side: r.failedSide }),
        };
        const how = r.error === undefined ? 'closed' : `cut (${r.failedSide} side: ${r.error.code})`;
        log.info(
          fields,
          `pipe ${who(e)} -> ${target} ${how}: ${r.bytesFromSession} bytes to, ${r.bytesToSession} from the target`,
        );
      }
    },
  });
}

/**
 * The secret of a profile for forwarding: spiped hashes the key file exactly as stored (every
 * byte, trailing newline included), as spiped does.
 */
export async function spipedKeyFile(path: string, warn: (text: string) => void): Promise<Buffer> {
  let data: Buffer;
  try {
    data = await readFile(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'error';
    throw sesameError('ERR_INVALID_ARGUMENT', `cannot read key file ${path}: ${code}`, { cause: err });
  }
  if (data.length === 0) throw sesameError('ERR_KEY_TOO_SHORT', `key file ${path} is empty`);
  if (data.length < SPIPED_MIN_KEY_FILE_BYTES) {
    warn(
      `the key file ${path} has ${data.length} bytes: spiped needs 256 bits of entropy (32 random bytes or more)`,
    );
  }
  return data;
}

/** The options `connect --listen` needs, whatever the profile. */
export interface ForwardConnectOptions extends ProfileOptions, ForwardCliOptions {
  keyring?: string | undefined;
  keyId?: string | undefined;
  forwardSecrecy: boolean;
  handshakeTimeout: number;
}

/**
 * `sesame connect URL --listen LOCAL`: a local listener whose every connection gets its own
 * authenticated session to URL. `secret` is the compatibility profile's secret (undefined for
 * native and none).
 */
export async function runForwardConnect(
  url: string,
  opts: ForwardConnectOptions,
  secret: Buffer | undefined,
): Promise<number> {
  const log = createLogger();
  // A half-closed pipe keeps flowing while bytes move (the idle timeout bounds it, not the close wait).
  const sessionOptions = {
    handshakeTimeoutMs: opts.handshakeTimeout,
    ...FORWARD_SESSION_OPTIONS,
  };
  let open: () => Promise<Session>;
  if (opts.profile === 'native') {
    const file = opts.keyring ?? defaultKeyringPath();
    const ring = await loadKeyring(file);
    const key = clientKey(ring, opts.keyId, new Date());
    open = () => connect(url, { key, forwardSecrecy: opts.forwardSecrecy, ...sessionOptions });
  } else {
    const settings = {
      profile: opts.profile,
      secret,
      digest: opts.digest,
      framing: opts.profile === 'none' ? (opts.framing ?? 'chunk') : undefined,
      forwardSecrecy: opts.forwardSecrecy,
    };
    compatClientConnection(settings); // check the settings once, before listening
    open = () => openSession(url, compatClientConnection(settings), sessionOptions);
  }
  const listener = new ForwardListener({
    listen: opts.listen as string,
    open,
    onEvent: (e) => {
      if (e.type === 'open') {
        log.info({ event: 'pipe-open', local: e.local, server: url }, `pipe ${e.local} -> ${url}`);
      } else if (e.type === 'connect-error') {
        log.warn(
          {
            event: 'pipe-connect-error',
            local: e.local,
            server: url,
            code: e.error.code,
            reason: e.error.message,
          },
          `pipe ${e.local}: cannot open a session to ${url}: ${e.error.message} (${e.error.code})`,
        );
      } else {
        const r = e.result;
        const fields = {
          event: 'pipe-closed',
          local: e.local,
          server: url,
          bytesToServer: r.bytesToSession,
          bytesFromServer: r.bytesFromSession,
          ms: e.ms,
          ...(r.error === undefined ? {} : { code: r.error.code, side: r.failedSide }),
        };
        if (r.error === undefined) {
          log.info(
            fields,
            `pipe ${e.local} closed: ${r.bytesToSession} bytes sent, ${r.bytesFromSession} received`,
          );
        } else if (r.failedSide === 'session' && r.bytesFromSession === 0) {
          log.warn(
            fields,
            `pipe ${e.local}: the server end cut the connection before any byte (${r.error.code}): ` +
              'its target is probably down or refusing connections (see the server log)',
          );
        } else {
          log.warn(
            fields,
            `pipe ${e.local} cut on the ${r.failedSide} side: ${r.error.message} (${r.error.code})`,
          );
        }
      }
    },
  });
  const stopped = untilStopSignal(log);
  const local = await listener.listen();
  log.info(
    { event: 'listening', url: local, server: url, profile: opts.profile },
    `listening on ${local} -> ${url}`,
  );
  await stopped;
  await listener.close(opts.grace ?? DEFAULT_FORWARD_GRACE_MS);
  log.info({ event: 'stopped' }, 'stopped');
  return 0;
}

/** What `serve` needs to pick its handler: a built-in service, or forwarding. */
export interface ServeHandlerOptions {
  service: ServiceName;
  forward?: string | undefined;
  connectTimeout: number;
}

/**
 * The handler of `serve`: `--forward URL` when given, else the `--service`. `metrics` gives the
 * pipe instruments (with `--metrics`).
 */
export function serviceOrForward(
  opts: ServeHandlerOptions,
  log: Logger,
  metrics?: () => PipeMetrics,
): StreamHandlerClass | Respond {
  if (opts.forward === undefined) return SERVICES[opts.service];
  return forwardServeHandler(opts.forward, log, { connectTimeoutMs: opts.connectTimeout, metrics });
}

/**
 * Session options of a forwarding server: the pipe is the session's only sender and waits for
 * `drained()`, and after one direction ends (a half-close) the other keeps flowing as long as
 * bytes move, cut after the idle timeout without a byte (src/net/forward.ts).
 */
export function forwardSessionOptions(opts: {
  forward?: string | undefined;
}): Partial<typeof FORWARD_SESSION_OPTIONS> {
  return opts.forward === undefined ? {} : FORWARD_SESSION_OPTIONS;
}

/**
 * Why the forwarding options do not fit the rest (one line for stderr), or undefined.
 * `command` tells which options were given on the command line.
 */
export function forwardOptionsProblem(
  opts: ForwardCliOptions & { listen?: string | undefined; perMessage?: boolean | undefined },
  command: Command,
  role: 'serve' | 'connect',
): string | undefined {
  if (role === 'serve' && opts.forward !== undefined) {
    if (command.getOptionValueSource('service') === 'cli')
      return 'error: --forward replaces --service: give one';
    if (opts.listen?.startsWith('udp://')) {
      return 'error: --forward joins byte streams: listen on tcp:// or unix://, not udp://';
    }
  }
  if (role === 'connect' && opts.listen === undefined) {
    for (const name of ['grace', 'connectTimeout']) {
      if (command.getOptionValueSource(name) === 'cli')
        return `error: --${name === 'grace' ? 'grace' : 'connect-timeout'} applies only with --listen`;
    }
  }
  if (role === 'connect' && opts.listen !== undefined && opts.perMessage === true) {
    return 'error: --per-message does not apply with --listen (every local connection has its own session)';
  }
  if (
    role === 'serve' &&
    opts.forward === undefined &&
    command.getOptionValueSource('connectTimeout') === 'cli'
  ) {
    return 'error: --connect-timeout applies only with --forward';
  }
  return undefined;
}

/**
 * `sesame connect URL --listen LOCAL`, any profile: loads the key (native) or the secret
 * (profiles: spiped's key file exactly as stored, the others as `--secret-file` reads it).
 */
export async function runForwardConnectCli(
  url: string,
  opts: ForwardConnectOptions,
  io: Io,
): Promise<number> {
  const warn = (text: string) => io.stderr.write(`sesame: warning: ${text}\n`);
  let secret: Buffer | undefined;
  if (opts.profile === 'spiped') {
    secret = await spipedKeyFile(opts.secretFile as string, warn);
  } else if (opts.profile === 'none') {
    warn('profile none: the forwarded connections are NOT authenticated');
  } else if (opts.profile !== 'native') {
    const loaded = await loadSecretFile(opts.secretFile as string);
    for (const w of loaded.warnings) warn(w);
    secret = loaded.secret;
  }
  return runForwardConnect(url, opts, secret);
}
