/**
 * `sesame serve|connect --profile NAME`: the compatibility profiles on the command line.
 *
 * The options (`--profile`, `--digest`, `--secret-file`, `--framing`, `--allow-remote`,
 * `--per-message`) are declared here and main.ts hands any non-native profile over to
 * {@link runProfileServe} / {@link runProfileConnect}. The contract is the native one: `serve` logs
 * `listening on URL` and one line per authentication result; `connect` prints one reply line per
 * message and reports a refusal on stderr with exit status 1; bad option combinations exit 2.
 *
 * Rules:
 * - The secret comes only from a file (never the command line): the file's bytes, minus one
 *   trailing `\n`. Short secrets and group/world-readable files draw a warning, never a refusal.
 * - `none` authenticates nobody: it warns, and refuses a non-loopback listen address unless
 *   `--allow-remote` is given.
 * - Clients work in lockstep (one request, one reply), as chunk framing needs.
 */

import { readFile, stat } from 'node:fs/promises';
import { type Command, Option } from 'commander';
import {
  COMPAT_PROFILES,
  type CompatProfileName,
  compatClientConnection,
  compatServerProfile,
  MP_CHALLENGE_FORMATS,
  type NoneFraming,
  SEED_DIGESTS,
  SHORT_SECRET_BYTES,
} from '../compat/index.js';
import { isSesameError, sesameError } from '../errors.js';
import { isLoopbackHost, parseAddress } from '../net/address.js';
import { openSession } from '../net/client.js';
import { sessionHandler } from '../net/handlers.js';
import type { Session } from '../net/session.js';
import { SesameServer } from '../net/stream-server.js';
import { SERVICES, type ServiceName } from '../services/handlers.js';
import { forwardServeHandler, forwardSessionOptions, spipedKeyFile } from './forward.js';
import { type ServerLimitOptions, serverLimits } from './limits.js';
import { createLogger, type LogSettings } from './logger.js';
import { interactive, piped, SERVER_CLOSED, SessionEndedError, watchSessionEnd } from './loops.js';
import type { Io } from './main.js';
import { logServerEvents } from './server-log.js';
import { untilStopSignal } from './signals.js';

export const PROFILE_CHOICES = ['native', ...COMPAT_PROFILES] as const;
export type ProfileChoice = (typeof PROFILE_CHOICES)[number];

/** The profile options of `serve` and `connect` as commander parses them. */
export interface ProfileOptions {
  profile: ProfileChoice;
  digest?: string | undefined;
  secretFile?: string | undefined;
  framing?: NoneFraming | undefined;
  allowRemote?: boolean | undefined;
  perMessage?: boolean | undefined;
}

/** The options of `serve` and `connect` that also apply to a compatibility profile. */
const SHARED_OPTIONS: ReadonlySet<string> = new Set([
  'config',
  'logLevel',
  'logFormat',
  'listen',
  'service',
  'handshakeTimeout',
  'idleTimeout',
  'maxConnections',
  'inputBudget',
  'maxHandshakesPerSource',
  'maxConnectionsPerSource',
  'firstByteTimeout',
  'profile',
  'digest',
  'secretFile',
  'framing',
  'allowRemote',
  'perMessage',
  // Forwarding works with every profile; forward secrecy is a choice in native and spiped.
  'forward',
  'connectTimeout',
  'grace',
  'forwardSecrecy',
]);

export interface ProfileServeOptions extends ProfileOptions, LogSettings, ServerLimitOptions {
  listen: string;
  forward?: string | undefined;
  connectTimeout: number;
  forwardSecrecy?: boolean | undefined;
  service: ServiceName;
  handshakeTimeout: number;
  idleTimeout: number;
}

export interface ProfileConnectOptions extends ProfileOptions {
  handshakeTimeout: number;
  forwardSecrecy?: boolean | undefined;
}

/** Declare the profile options on the `serve` or `connect` command. */
export function addProfileOptions(command: Command, role: 'serve' | 'connect'): Command {
  command
    .addOption(
      new Option('--profile <name>', 'wire profile (docs/profiles.md)')
        .choices(PROFILE_CHOICES)
        .default('native'),
    )
    .option(
      '--digest <name>',
      `seed, seed-hex: HMAC digest, one of ${SEED_DIGESTS.join('|')}; python-mp: the challenge issued, ` +
        `one of ${MP_CHALLENGE_FORMATS.join('|')} (legacy: Python <= 3.11) (default: sha256)`,
    )
    .option(
      '--secret-file <path>',
      'seed, seed-hex, python-mp: the shared secret, the file bytes minus one trailing newline; ' +
        'spiped: the key file, every byte',
    )
    .addOption(
      new Option('--framing <kind>', 'none: chunk (one recv per message) or line (readline)').choices([
        'chunk',
        'line',
      ]),
    );
  if (role === 'serve') {
    command.option('--allow-remote', 'none: allow a non-loopback listen address');
  } else {
    command.option('--per-message', 'a new connection for every message (as the socketserver clients do)');
  }
  return command;
}

/** `--a` / `--a, --b` followed by the verb agreeing with the number of flags. */
function flags(list: string[], singular: string, plural: string): string {
  return `${list.join(', ')} ${list.length === 1 ? singular : plural}`;
}

/**
 * Why the option combination is invalid (one line for stderr), or undefined when it is fine.
 * `command` tells which options were given on the command line: with a compatibility profile,
 * any native-only option given there is refused.
 */
export function profileOptionsProblem(opts: ProfileOptions, command: Command): string | undefined {
  const problem = problemOf(opts, command);
  return problem === undefined ? undefined : `error: ${problem}`;
}

function problemOf(opts: ProfileOptions, command: Command): string | undefined {
  const p = opts.profile;
  const given = (flag: string, value: unknown) => (value === undefined || value === false ? [] : [flag]);
  if (p === 'native') {
    const extra = [
      ...given('--digest', opts.digest),
      ...given('--secret-file', opts.secretFile),
      ...given('--framing', opts.framing),
      ...given('--allow-remote', opts.allowRemote),
      ...given('--per-message', opts.perMessage),
    ];
    if (extra.length === 0) return undefined;
    return `${flags(extra, 'applies', 'apply')} only with --profile seed|seed-hex|python-mp|none|spiped`;
  }
  const native = command.options
    .filter((o) => !SHARED_OPTIONS.has(o.attributeName()))
    .filter((o) => command.getOptionValueSource(o.attributeName()) === 'cli')
    .map((o) => o.long ?? o.flags);
  if (native.length > 0) return `${flags(native, 'applies', 'apply')} only to the native profile`;
  if (p !== 'spiped' && command.getOptionValueSource('forwardSecrecy') === 'cli') {
    return '--no-forward-secrecy applies only to the native and spiped profiles';
  }
  if (p === 'none') {
    const extra = [...given('--digest', opts.digest), ...given('--secret-file', opts.secretFile)];
    if (extra.length === 0) return undefined;
    return `profile none uses no secret: ${flags(extra, 'does', 'do')} not apply`;
  }
  if (opts.framing !== undefined) return `--framing applies only to --profile none (${p} has its own)`;
  if (opts.allowRemote === true) return '--allow-remote applies only to --profile none';
  if (opts.secretFile === undefined) return `--profile ${p} needs --secret-file PATH`;
  if (p === 'spiped')
    return opts.digest === undefined ? undefined : '--digest does not apply to spiped (SHA-256 only)';
  const digests: readonly string[] = p === 'python-mp' ? MP_CHALLENGE_FORMATS : SEED_DIGESTS;
  if (opts.digest !== undefined && !digests.includes(opts.digest)) {
    return `--digest for ${p} must be one of ${digests.join(', ')}`;
  }
  return undefined;
}

/**
 * Read a secret file: its bytes, minus one trailing `\n`. Returns the secret and the warnings to
 * show (short secret, file readable by others).
 * @throws LocalError ERR_INVALID_ARGUMENT when unreadable, ERR_KEY_TOO_SHORT when empty.
 */
export async function loadSecretFile(path: string): Promise<{ secret: Buffer; warnings: string[] }> {
  let data: Buffer;
  try {
    data = await readFile(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'error';
    throw sesameError('ERR_INVALID_ARGUMENT', `cannot read secret file ${path}: ${code}`, { cause: err });
  }
  const secret = data.at(-1) === 0x0a ? data.subarray(0, -1) : data;
  if (secret.length === 0) throw sesameError('ERR_KEY_TOO_SHORT', `secret file ${path} is empty`);
  const warnings: string[] = [];
  if (secret.length < SHORT_SECRET_BYTES) {
    warnings.push(
      `the secret in ${path} is only ${secret.length} bytes: anyone who captures one handshake can ` +
        `guess it offline; prefer ${SHORT_SECRET_BYTES} or more random bytes`,
    );
  }
  if (process.platform !== 'win32') {
    const mode = (await stat(path)).mode;
    if ((mode & 0o077) !== 0) {
      const shown = (mode & 0o777).toString(8).padStart(4, '0');
      warnings.push(
        `secret file ${path} is accessible by other users (mode ${shown}); run: chmod 600 '${path}'`,
      );
    }
  }
  return { secret, warnings };
}

const NONE_WARNING =
  'profile none: connections are NOT authenticated; anyone who can reach the socket can use the service';

function profileSettings(
  opts: ProfileOptions & { forwardSecrecy?: boolean | undefined },
  secret: Buffer | undefined,
) {
  return {
    profile: opts.profile as CompatProfileName,
    secret,
    digest: opts.digest,
    framing: opts.profile === 'none' ? (opts.framing ?? 'chunk') : undefined,
    forwardSecrecy: opts.forwardSecrecy,
  };
}

async function secretFor(opts: ProfileOptions, warn: (text: string) => void): Promise<Buffer | undefined> {
  if (opts.profile === 'none') {
    warn(NONE_WARNING);
    return undefined;
  }
  if (opts.profile === 'spiped') return spipedKeyFile(opts.secretFile as string, warn);
  const { secret, warnings } = await loadSecretFile(opts.secretFile as string);
  for (const w of warnings) warn(w);
  return secret;
}

/**
 * Why `profile` may not listen on `listen`: profile none on a TCP address that is not loopback,
 * without `allowRemote`. Undefined when it may.
 */
export function remoteListenProblem(
  profile: ProfileChoice,
  listen: string,
  allowRemote: boolean,
): string | undefined {
  const address = parseAddress(listen);
  if (profile !== 'none' || allowRemote || address.kind !== 'tcp' || isLoopbackHost(address.host))
    return undefined;
  return (
    `profile none authenticates nobody: refusing to listen on ${listen}, which is not a loopback ` +
    'address (give --allow-remote to do it anyway)'
  );
}

/** `sesame serve --profile NAME` (not native). */
export async function runProfileServe(
  opts: ProfileServeOptions,
  refuse: (message: string) => never,
): Promise<number> {
  const profile = opts.profile as CompatProfileName;
  const remote = remoteListenProblem(profile, opts.listen, opts.allowRemote === true);
  if (remote !== undefined) refuse(`error: ${remote}`);
  const log = createLogger(opts);
  const secret = await secretFor(opts, (text) => log.warn({ event: 'warning', profile }, text));
  const hex = profile === 'seed-hex';
  const server = new SesameServer({
    listen: opts.listen,
    profile: compatServerProfile(profileSettings(opts, secret)),
    // seed-hex is the seed's example 1: the server checks the answer, reports it, and hangs up.
    handler:
      opts.forward !== undefined
        ? forwardServeHandler(opts.forward, log, { connectTimeoutMs: opts.connectTimeout })
        : hex
          ? sessionHandler(() => {})
          : SERVICES[opts.service],
    ...forwardSessionOptions(opts),
    // With no handshake, the first message is awaited as long as an idle connection would be.
    handshakeTimeoutMs: profile === 'none' ? opts.idleTimeout : opts.handshakeTimeout,
    idleTimeoutMs: opts.idleTimeout,
    ...serverLimits(opts),
  });
  server.on('auth', (e) => {
    if (e.ok) {
      const text =
        profile === 'none'
          ? `connection from ${e.remote} (profile none, not authenticated)`
          : hex
            ? `legitimate client ${e.remote} (seed-hex)`
            : `authenticated ${e.remote} (${profile})`;
      // Profile none checks nothing: its log must not call anyone authenticated.
      const event = profile === 'none' ? 'unauthenticated' : 'authenticated';
      log.info({ event, remote: e.remote, profile }, text);
    } else {
      const text = hex ? `not a legitimate client ${e.remote}: ${e.code}` : `refused ${e.remote}: ${e.code}`;
      log.warn({ event: 'refused', remote: e.remote, profile, code: e.code, reason: e.reason }, text);
    }
  });
  logServerEvents(server, log, { auth: false });
  const stop = untilStopSignal(log);
  const url = await server.listen();
  log.info(
    {
      event: 'listening',
      url,
      profile,
      service: hex || opts.forward !== undefined ? undefined : opts.service,
      forward: opts.forward,
    },
    `listening on ${url} (profile ${profile})`,
  );
  await stop;
  await server.close();
  log.info({ event: 'stopped' }, 'stopped');
  return 0;
}

/**
 * A seed server decides on the answer as soon as it has read it, so its refusal (the connection
 * ending without a reply) comes within a round trip. An end with no reply later than this after
 * the connection opened is the server ending a session it accepted (a shutdown, an idle timeout),
 * not a refusal: the seed protocol has no verdict, so time is the only witness.
 */
export const SEED_VERDICT_MS = 1_000;

/**
 * A clearer error for what a refusal or an end looks like in the profiles that have no verdict
 * on the wire; `openMs` is how long the connection had been open when it failed.
 */
function explain(
  err: unknown,
  profile: CompatProfileName,
  perMessage: boolean,
  replies: number,
  openMs: number,
): unknown {
  // The server ended the session: report it as the typed ERR_CLOSED the rest of the CLI prints.
  // A server that closes after each reply (a socketserver handler) closes after the first one.
  const error =
    err instanceof SessionEndedError ? sesameError('ERR_CLOSED', err.message, { cause: err }) : err;
  if (!isSesameError(error)) return error;
  if (error.code === 'ERR_CLOSED' && !perMessage && replies === 1) {
    return sesameError(
      'ERR_CLOSED',
      `${error.message}; a server that closes after each reply (as socketserver handlers do) needs --per-message`,
      { cause: error },
    );
  }
  const silent = error.code === 'ERR_AUTH_REFUSED' || error.code === 'ERR_CONNECTION_RESET';
  if (silent && profile === 'seed' && replies === 0) {
    if (openMs > SEED_VERDICT_MS) {
      return sesameError(
        'ERR_CLOSED',
        `${SERVER_CLOSED}, ${(openMs / 1000).toFixed(1)} s after it accepted the connection and before any reply ` +
          `(a seed server refuses a wrong answer at once)`,
        { cause: error },
      );
    }
    if (error.code === 'ERR_CONNECTION_RESET') {
      return sesameError(
        'ERR_AUTH_REFUSED',
        'the server reset the connection without replying: it refused the answer (wrong secret or digest)',
        { cause: error },
      );
    }
  }
  return error;
}

/** `sesame connect --profile NAME` (not native). */
export async function runProfileConnect(url: string, opts: ProfileConnectOptions, io: Io): Promise<number> {
  const profile = opts.profile as CompatProfileName;
  const secret = await secretFor(opts, (text) => io.stderr.write(`sesame: warning: ${text}\n`));
  const settings = profileSettings(opts, secret);
  const sessionOptions = { handshakeTimeoutMs: opts.handshakeTimeout };
  const open = (): Promise<Session> => {
    const conn = compatClientConnection(settings);
    return openSession(url, conn, sessionOptions);
  };
  if (profile === 'seed-hex') {
    // The seed's example 1: answer the challenge and hang up; the server never says whether it
    // accepted the answer (it only logs it).
    const session = await open();
    await session.close();
    io.stderr.write(
      'sesame: answered the seed-hex challenge (the server does not tell whether it accepted)\n',
    );
    return 0;
  }
  const line = opts.framing === 'line';
  const show = (reply: Buffer) => {
    let text = reply.toString('utf8');
    if (line) text = text.replace(/\r?\n$/, '');
    io.stdout.write(`${text}\n`);
  };
  const perMessage = opts.perMessage === true;
  let replies = 0;
  let session: Session | undefined;
  let openedAt = performance.now();
  try {
    if (!perMessage) session = await open();
    openedAt = performance.now();
    const ask = async (text: string) => {
      if (session === undefined) openedAt = performance.now();
      const s = session ?? (await open());
      try {
        const reply = await s.request(Buffer.from(text, 'utf8'));
        replies++;
        return reply;
      } finally {
        if (session === undefined) await s.close();
      }
    };
    // A session kept open is watched: its end from the server's side stops the loops at once.
    const end = session === undefined ? undefined : watchSessionEnd(session);
    // One message at a time: these profiles frame by chunks or lines, and replies carry no id.
    if (io.stdin.isTTY === true) await interactive(ask, show, io, end);
    else await piped(ask, show, io, 1, end);
  } catch (err) {
    session?.destroy();
    throw explain(err, profile, perMessage, replies, performance.now() - openedAt);
  }
  await session?.close();
  return 0;
}
