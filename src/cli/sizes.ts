/**
 * The one size syntax of the command line and the config file: `--input-budget 64MiB`.
 *
 * Rules:
 * - A size is a whole number, then optionally one binary unit: `KiB` (1,024), `MiB`, `GiB`. A
 *   bare number is bytes, so a config file may give the byte count as a number.
 * - Help shows every default in the same syntax ({@link formatSize}), so what help prints can be
 *   typed back.
 * - Parsers throw commander's InvalidArgumentError: the command line then names the option and
 *   exits 2.
 */

import { InvalidArgumentError } from 'commander';

/** Bytes in each size unit, largest first. */
export const SIZE_UNITS: readonly (readonly [string, number])[] = [
  ['GiB', 1024 ** 3],
  ['MiB', 1024 ** 2],
  ['KiB', 1024],
];

const SIZE_HELP = 'expected a size such as 65536, 512KiB, 64MiB or 1GiB (a bare number is bytes)';

/**
 * Bytes in `text`: a whole number, optionally followed by `KiB`, `MiB` or `GiB`.
 * @throws InvalidArgumentError when `text` is not a size, is 0, or exceeds 2^53-1 bytes.
 */
export function parseSize(text: string): number {
  const m = /^(\d+)(KiB|MiB|GiB)?$/.exec(text.trim());
  if (m === null) throw new InvalidArgumentError(SIZE_HELP);
  const unit = SIZE_UNITS.find(([name]) => name === m[2])?.[1] ?? 1;
  const bytes = Number(m[1]) * unit;
  if (bytes === 0) throw new InvalidArgumentError(`${SIZE_HELP}; at least 1 byte`);
  if (!Number.isSafeInteger(bytes)) throw new InvalidArgumentError(`${SIZE_HELP}; this one is too large`);
  return bytes;
}

/** `bytes` in the size syntax, exactly: the largest unit that divides it (`268435456` -> `256MiB`). */
export function formatSize(bytes: number): string {
  for (const [name, size] of SIZE_UNITS) {
    if (bytes >= size && bytes % size === 0) return `${bytes / size}${name}`;
  }
  return String(bytes);
}
