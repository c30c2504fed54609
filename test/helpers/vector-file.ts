// Generated test vector files: compare what the core computes now with the committed file, or
// rewrite the file with UPDATE_VECTORS=1 (`npm run vectors`).

import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { expect } from 'vitest';
import type { PresharedKey } from '../../src/protocol/index.js';

/** Whether this run rewrites the vector files instead of checking them. */
export const UPDATE_VECTORS = process.env.UPDATE_VECTORS === '1';

/** The file's content must equal `computed` (JSON, byte for byte), or is rewritten to it. */
export function checkVectorFile(file: string, computed: unknown): void {
  const text = `${JSON.stringify(computed, null, 2)}\n`;
  if (UPDATE_VECTORS) {
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, text);
    return;
  }
  expect(existsSync(file), `${file} is missing: run npm run vectors`).toBe(true);
  expect(JSON.parse(readFileSync(file, 'utf8'))).toEqual(computed);
  expect(readFileSync(file, 'utf8')).toBe(text);
}

/** Lowercase hex. */
export const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

/** The instant every generated vector is made at (the seed's timestamp). */
export const TIMESTAMP = '2026-11-29T19:26:43Z';
/** {@link TIMESTAMP} in ms since the epoch. */
export const NOW = Date.parse(TIMESTAMP);
/** The pre-shared secret of the generated vectors: bytes 0 to 31. */
export const PSK = Buffer.from(Array.from({ length: 32 }, (_, i) => i));
/** The key of the generated vectors. */
export const KEY: PresharedKey = { id: '0123456789abcdef', principal: 'vector', secret: PSK };
