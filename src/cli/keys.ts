/**
 * `sesame keys list|add|revoke|remove|rotate|export|fingerprint` and `sesame keygen`: key ring
 * management for operators.
 *
 * Contract (scripts rely on it):
 * - stdout carries only the result: `add`, `keygen` and `rotate` print the new key id; `list` a
 *   table (or JSON lines with --json); `fingerprint` `ID FINGERPRINT` lines; `export` without
 *   `--out` (or with `--out -`) the one-key ring itself, for a pipe to the client's machine. No
 *   other command ever prints a secret.
 * - Every command that changes a ring prints one confirmation line on stderr: what changed and,
 *   when keys will stop working, which and when. A key created already expired draws a warning.
 * - A key id or principal the ring does not hold, a date that is not one, or a validity window
 *   that ends before it starts is a bad argument: exit 2, naming the argument.
 * - Every change rewrites the ring atomically with mode 0600.
 * - `keygen` is `keys add` under its historical name: same options, same defaults.
 */

import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import type { Command } from 'commander';
import { isSesameError, sesameError } from '../errors.js';
import { defaultKeyringPath, loadKeyring, saveKeyring } from '../keyring/file.js';
import { type KeyEntry, KeyRing, keyStatus } from '../keyring/keyring.js';
import { describeKeys, exportKey, fingerprint, removeKey, revokeKey, rotateKey } from '../keyring/manage.js';
import { formatDuration, parseDate, parseDuration } from './durations.js';
import { UsageError } from './usage.js';

/** Where the keys commands write. */
export interface KeysIo {
  readonly stdout: NodeJS.WritableStream;
  readonly stderr: NodeJS.WritableStream;
}

/** The principal a new key gets when `--principal` is not given (keygen, keys add, serve). */
export const DEFAULT_PRINCIPAL = 'default';
/** How long `keys rotate` keeps the old keys valid by default. */
export const DEFAULT_ROTATE_OVERLAP_MS = 86_400_000;

/** The options of `keys add` and `keygen`. */
export interface AddKeyOptions {
  keyring?: string;
  principal: string;
  notBefore?: Date;
  notAfter?: Date;
}

/** `--keyring`'s help: the same on every machine, so that the man page can share it. */
export const KEYRING_HELP = 'key ring file (default: $SESAME_KEYRING, else ~/.config/sesame/keyring.json)';
const ringOption = () => KEYRING_HELP;
const file = (opts: { keyring?: string }) => opts.keyring ?? defaultKeyringPath();

/** The ring at `path`, or an empty one when the file does not exist yet. */
async function loadOrEmpty(path: string): Promise<KeyRing> {
  try {
    return await loadKeyring(path);
  } catch (err) {
    if (isSesameError(err, 'ERR_KEYRING_IO') && !existsSync(path)) return new KeyRing();
    throw err;
  }
}

/** Run `change`; a key or principal the ring does not hold becomes a bad `argument`. */
function naming<T>(argument: string, change: () => T): T {
  try {
    return change();
  } catch (err) {
    if (isSesameError(err, 'ERR_KEY_NOT_FOUND'))
      throw new UsageError(`${argument}: ${err.message} (${err.code})`);
    throw err;
  }
}

/** ` (valid from X until Y)`, or nothing for a key without dates. */
function validity(e: KeyEntry): string {
  const from = e.notBefore === undefined ? '' : ` from ${e.notBefore.toISOString()}`;
  const until = e.notAfter === undefined ? '' : ` until ${e.notAfter.toISOString()}`;
  return from === '' && until === '' ? '' : ` (valid${from}${until})`;
}

/** Declare the options `keys add` and `keygen` share. */
export function addKeyOptions(command: Command): Command {
  return command
    .option('--keyring <path>', `${ringOption()}; created with mode 0600 if missing`)
    .option('--principal <name>', 'who will hold the key (optional)', DEFAULT_PRINCIPAL)
    .option('--not-before <date>', 'refuse the key before this time (2027-01-01 or ISO 8601)', parseDate)
    .option('--not-after <date>', 'refuse the key from this time on (2027-01-01 or ISO 8601)', parseDate);
}

/** `keys add` / `keygen`: add a random 256-bit key; its id on stdout, a confirmation on stderr. */
export async function runAddKey(opts: AddKeyOptions, io: KeysIo): Promise<number> {
  if (
    opts.notBefore !== undefined &&
    opts.notAfter !== undefined &&
    opts.notAfter.getTime() <= opts.notBefore.getTime()
  ) {
    throw new UsageError(
      `--not-after ${opts.notAfter.toISOString()} must be later than --not-before ${opts.notBefore.toISOString()}`,
    );
  }
  const path = file(opts);
  const ring = await loadOrEmpty(path);
  let generated = KeyRing.generate({ principal: opts.principal, now: new Date(), random: randomBytes });
  // A 64-bit id collision is next to impossible, but cheap to rule out.
  while (ring.get(generated.id) !== undefined) {
    generated = KeyRing.generate({ principal: opts.principal, now: generated.created, random: randomBytes });
  }
  const entry = { ...generated, notBefore: opts.notBefore, notAfter: opts.notAfter };
  const next = new KeyRing(ring.list());
  next.add(entry);
  await saveKeyring(path, next);
  io.stdout.write(`${entry.id}\n`);
  io.stderr.write(
    `sesame: added key ${entry.id} for ${entry.principal} to key ring ${path}${validity(entry)}\n`,
  );
  const status = keyStatus(entry, new Date());
  if (status === 'expired') {
    io.stderr.write(`sesame: warning: key ${entry.id} is already expired: every server will refuse it\n`);
  }
  return 0;
}

function list(ring: KeyRing, json: boolean, io: KeysIo): void {
  const rows = describeKeys(ring, new Date());
  if (json) {
    for (const r of rows) io.stdout.write(`${JSON.stringify(r)}\n`);
    return;
  }
  const table = [
    ['ID', 'PRINCIPAL', 'STATUS', 'NOT BEFORE', 'NOT AFTER', 'FINGERPRINT'],
    ...rows.map((r) => [r.id, r.principal, r.status, r.notBefore ?? '-', r.notAfter ?? '-', r.fingerprint]),
  ];
  const widths = table[0]?.map((_, i) => Math.max(...table.map((row) => (row[i] ?? '').length))) ?? [];
  for (const row of table) {
    io.stdout.write(
      `${row
        .map((c, i) => c.padEnd(widths[i] ?? 0))
        .join('  ')
        .trimEnd()}\n`,
    );
  }
}

/** Add the `keys` command and its subcommands to `program`. */
export function registerKeysCommand(program: Command, io: KeysIo): void {
  const keys = program
    .command('keys')
    .description('manage the keys of a key ring (secrets are printed only by export to stdout)');

  keys
    .command('list')
    .description('list ids, principals, validity and fingerprints')
    .option('--keyring <path>', ringOption())
    .option('--json', 'one JSON object per line')
    .action(async (opts: { keyring?: string; json?: boolean }) => {
      list(await loadKeyring(file(opts)), opts.json === true, io);
    });

  addKeyOptions(keys.command('add').description('add a new random 256-bit key; prints its id')).action(
    async (opts: AddKeyOptions) => {
      await runAddKey(opts, io);
    },
  );

  keys
    .command('revoke')
    .description('revoke a key: servers refuse it from their next reload on')
    .argument('<id>', 'key id')
    .option('--keyring <path>', ringOption())
    .action(async (id: string, opts: { keyring?: string }) => {
      const path = file(opts);
      const ring = await loadKeyring(path);
      const next = naming(`key id ${id}`, () => revokeKey(ring, id));
      await saveKeyring(path, next);
      io.stderr.write(
        `sesame: revoked key ${id} (${ring.get(id)?.principal}) in key ring ${path}; servers refuse it from their next reload\n`,
      );
    });

  keys
    .command('remove')
    .description('delete a key from the ring for good (revoke keeps it, marked)')
    .argument('<id>', 'key id')
    .option('--keyring <path>', ringOption())
    .action(async (id: string, opts: { keyring?: string }) => {
      const path = file(opts);
      const ring = await loadKeyring(path);
      const next = naming(`key id ${id}`, () => removeKey(ring, id));
      await saveKeyring(path, next);
      io.stderr.write(
        `sesame: removed key ${id} (${ring.get(id)?.principal}) from key ring ${path}; ${next.size} keys remain\n`,
      );
    });

  keys
    .command('rotate')
    .description(
      "add a successor key for a principal; the principal's current keys expire after the overlap; prints the new id",
    )
    .argument('<principal>', 'whose key to rotate')
    .option('--keyring <path>', ringOption())
    .option(
      '--overlap <duration>',
      `how long the old keys stay valid (500ms, 30m, 1h30m, 7d; default: ${formatDuration(DEFAULT_ROTATE_OVERLAP_MS)})`,
      parseDuration,
      DEFAULT_ROTATE_OVERLAP_MS,
    )
    .action(async (principal: string, opts: { keyring?: string; overlap: number }) => {
      const path = file(opts);
      const now = new Date();
      const ring = await loadKeyring(path);
      const { ring: next, added } = naming(`principal ${JSON.stringify(principal)}`, () =>
        rotateKey(ring, principal, { now, overlapMs: opts.overlap, random: randomBytes }),
      );
      await saveKeyring(path, next);
      io.stdout.write(`${added.id}\n`);
      const ending = next
        .list()
        .filter((e) => e.id !== added.id && e.principal === principal && keyStatus(e, now) !== 'revoked')
        .map((e) => `${e.id} at ${e.notAfter?.toISOString() ?? 'never'}`);
      io.stderr.write(
        `sesame: added key ${added.id} for ${principal} to key ring ${path}; the old keys expire: ${ending.join(', ')}\n`,
      );
    });

  keys
    .command('export')
    .description(
      'a key ring holding one key, for the client that holds it: to stdout, or to a file (mode 0600) with --out',
    )
    .argument('<id>', 'key id')
    .option('--keyring <path>', ringOption())
    .option('--out <file>', 'where to write the one-key ring (default, or -: stdout)')
    .option('--force', 'overwrite --out if it exists')
    .action(async (id: string, opts: { keyring?: string; out?: string; force?: boolean }) => {
      const ring = await loadKeyring(file(opts));
      const one = naming(`key id ${id}`, () => exportKey(ring, id));
      if (opts.out === undefined || opts.out === '-') {
        io.stdout.write(one.serialize());
        return;
      }
      if (existsSync(opts.out) && opts.force !== true) {
        throw sesameError('ERR_INVALID_ARGUMENT', `--out ${opts.out} exists; pass --force to overwrite it`);
      }
      await saveKeyring(opts.out, one);
      const entry = one.list()[0];
      io.stderr.write(
        `sesame: wrote key ${id} (${entry?.principal}) to ${opts.out} (mode 0600)${entry === undefined ? '' : validity(entry)}\n`,
      );
    });

  keys
    .command('fingerprint')
    .description('print key fingerprints, to compare keys without revealing them')
    .argument('[id]', 'one key id (default: every key)')
    .option('--keyring <path>', ringOption())
    .action(async (id: string | undefined, opts: { keyring?: string }) => {
      const ring = await loadKeyring(file(opts));
      const entries =
        id === undefined ? ring.list() : naming(`key id ${id}`, () => exportKey(ring, id).list());
      for (const e of entries) io.stdout.write(`${e.id} ${fingerprint(e)}\n`);
    });
}
