// No code of the project makes keys with node:crypto's generateKeyPair(Sync). On Node 20, a key
// it made deadlocks the process when a garbage collection, during an export of that key,
// finalizes the key-generation job: the job's destructor waits for the key's lock, which the
// export holds (the protocol core's bench hung this way once: dev/bench/core.ts). X25519 keys are
// imported from raw bytes as JWK instead, which makes no job. This test reads the sources, so a
// new use fails here instead of hanging a run now and then.
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from '../helpers/cli.js';

const SELF = relative(ROOT, import.meta.filename);

function sources(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(join(ROOT, dir), { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) {
      if (entry.name !== 'build' && entry.name !== 'node_modules') out.push(...sources(path));
    } else if (/\.(ts|mts|js|mjs)$/.test(entry.name)) out.push(path);
  }
  return out;
}

// A call or an import of the function; its name in a comment (between backticks) is not a use.
const USE = /\bgenerateKeyPair(Sync)?\b(?!`)/;

describe('key generation', () => {
  it('never goes through generateKeyPair or generateKeyPairSync', () => {
    const files = ['src', 'dev', 'test', 'scripts'].flatMap(sources).filter((f) => f !== SELF);
    expect(files.length).toBeGreaterThan(50);
    const uses = files.filter((f) =>
      readFileSync(join(ROOT, f), 'utf8')
        .split('\n')
        .some((line) => USE.test(line) && !/^\s*(\*|\/\/)/.test(line)),
    );
    expect(uses).toEqual([]);
  });

  it('finds a use when there is one', () => {
    expect(USE.test("const k = generateKeyPairSync('x25519');")).toBe(true);
    expect(USE.test('import { generateKeyPair } from "node:crypto";')).toBe(true);
    expect(USE.test(' * made with `generateKeyPairSync`: on Node 20')).toBe(false);
  });
});
