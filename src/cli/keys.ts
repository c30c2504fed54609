/**
 * `sesame keys list|add|revoke|rotate|export|fingerprint`: key ring management for operators.
 *
 * Contract: secrets are never printed. `add` and `rotate` print only the new key id on stdout;
 * `list` prints a table (or JSON lines with --json); `fingerprint` prints `ID FINGERPRINT` lines.
 * Every change rewrites the ring atomically with mode 0600.
 */

import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { type Command, InvalidArgumentError } from 'commander';
import { isSesameError, sesameError } from '../errors.js';
import { defaultKeyringPath, loadKeyring, saveKeyring } from '../keyring/file.js';
import { KeyRing } from '../keyring/keyring.js';
import { describeKeys, exportKey, fingerprint, revokeKey, rotateKey } from '../keyring/manage.js';

interface Io {
  readonly stdout: NodeJS.WritableStream;
}

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** `90s`, `30m`, `24h`, `7d` or plain milliseconds. */
export function durationArg(value: string): number {
  const m = /^(\d+)(ms|s|m|h|d)?$/.exec(value);
  if (m === null) throw new InvalidArgumentError('expected a duration such as 90s, 30m, 24h or 7d');
  return Number(m[1]) * (UNITS[m[2] ?? 'ms'] as number);
}

function dateArg(value: string): Date {
  const d = new Date(value);
  if (!/^\d{4}-\d{2}-\d{2}T/.test(value) || Number.isNaN(d.getTime())) {
    throw new InvalidArgumentError('expected an ISO 8601 date and time, such as 2026-12-01T00:00:00Z');
  }
  return d;
}

/** The ring at `path`, or an empty one when the file does not exist yet. */
async function loadOrEmpty(path: string): Promise<KeyRing> {
  try {
    return await loadKeyring(path);
  } catch (err) {
    if (isSesameError(err, 'ERR_KEYRING_IO') && !existsSync(path)) return new KeyRing();
    throw err;
  }
}

/** Add the `keys` command and its subcommands to `program`. */
export function registerKeysCommand(program: Command, io: Io): void {
  const keys = program
    .command('keys')
    .description('manage the keys of a key ring (secrets are never printed)');
  const ringOption = `key ring file (default: ${defaultKeyringPath()})`;
  const file = (opts: { keyring?: string }) => opts.keyring ?? defaultKeyringPath();

  keys
    .command('list')
    .description('list ids, principals, validity and fingerprints')
    .option('--keyring <path>', ringOption)
    .option('--json', 'one JSON object per line')
    .action(async (opts: { keyring?: string; json?: boolean }) => {
      const rows = describeKeys(await loadKeyring(file(opts)), new Date());
      if (opts.json === true) {
        for (const r of rows) io.stdout.write(`${JSON.stringify(r)}\n`);
        return;
      }
      const table = [
        ['ID', 'PRINCIPAL', 'STATUS', 'NOT BEFORE', 'NOT AFTER', 'FINGERPRINT'],
        ...rows.map((r) => [
          r.id,
          r.principal,
          r.status,
          r.notBefore ?? '-',
          r.notAfter ?? '-',
          r.fingerprint,
        ]),
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
    });

  keys
    .command('add')
    .description('add a new random 256-bit key; prints its id')
    .option('--keyring <path>', ringOption)
    .requiredOption('--principal <name>', 'who will hold the key')
    .option('--not-before <date>', 'refuse the key before this time', dateArg)
    .option('--not-after <date>', 'refuse the key from this time on', dateArg)
    .action(async (opts: { keyring?: string; principal: string; notBefore?: Date; notAfter?: Date }) => {
      const path = file(opts);
      const ring = await loadOrEmpty(path);
      const entry = {
        ...KeyRing.generate({ principal: opts.principal, now: new Date(), random: randomBytes }),
        notBefore: opts.notBefore,
        notAfter: opts.notAfter,
      };
      const next = new KeyRing(ring.list());
      next.add(entry);
      await saveKeyring(path, next);
      io.stdout.write(`${entry.id}\n`);
    });

  keys
    .command('revoke')
    .description('revoke a key: servers refuse it from their next reload on')
    .argument('<id>', 'key id')
    .option('--keyring <path>', ringOption)
    .action(async (id: string, opts: { keyring?: string }) => {
      const path = file(opts);
      await saveKeyring(path, revokeKey(await loadKeyring(path), id));
    });

  keys
    .command('rotate')
    .description(
      "add a successor key for a principal; the principal's current keys expire after the overlap; prints the new id",
    )
    .argument('<principal>', 'whose key to rotate')
    .option('--keyring <path>', ringOption)
    .option(
      '--overlap <duration>',
      'how long the old keys stay valid (90s, 30m, 24h, 7d)',
      durationArg,
      86_400_000,
    )
    .action(async (principal: string, opts: { keyring?: string; overlap: number }) => {
      const path = file(opts);
      const { ring, added } = rotateKey(await loadKeyring(path), principal, {
        now: new Date(),
        overlapMs: opts.overlap,
        random: randomBytes,
      });
      await saveKeyring(path, ring);
      io.stdout.write(`${added.id}\n`);
    });

  keys
    .command('export')
    .description('write a key ring holding one key (mode 0600), for the client that holds it')
    .argument('<id>', 'key id')
    .option('--keyring <path>', ringOption)
    .requiredOption('--out <file>', 'where to write the one-key ring')
    .option('--force', 'overwrite --out if it exists')
    .action(async (id: string, opts: { keyring?: string; out: string; force?: boolean }) => {
      const one = exportKey(await loadKeyring(file(opts)), id);
      if (existsSync(opts.out) && opts.force !== true) {
        throw sesameError('ERR_INVALID_ARGUMENT', `--out ${opts.out} exists; pass --force to overwrite it`);
      }
      await saveKeyring(opts.out, one);
    });

  keys
    .command('fingerprint')
    .description('print key fingerprints, to compare keys without revealing them')
    .argument('[id]', 'one key id (default: every key)')
    .option('--keyring <path>', ringOption)
    .action(async (id: string | undefined, opts: { keyring?: string }) => {
      const ring = await loadKeyring(file(opts));
      const entries = id === undefined ? ring.list() : [exportKey(ring, id).list()[0]];
      for (const e of entries) if (e !== undefined) io.stdout.write(`${e.id} ${fingerprint(e)}\n`);
    });
}
