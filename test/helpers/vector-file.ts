// Generated test vector files: compare what the core computes now with the committed file, or
// rewrite the file with UPDATE_VECTORS=1 (`npm run vectors`).
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { expect } from 'vitest';

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
