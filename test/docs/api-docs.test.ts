/**
 * The API reference is complete: typedoc (typedoc.json) finds every exported symbol, member and
 * option documented, every referenced type exported, and every link resolved. A missing doc
 * comment fails here with typedoc's warning naming the symbol and its file.
 */

import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const TYPEDOC = fileURLToPath(new URL('../../node_modules/typedoc/bin/typedoc', import.meta.url));

describe('API documentation', () => {
  it('builds with typedoc without a single warning', { timeout: 60_000 }, () => {
    const run = spawnSync(process.execPath, [TYPEDOC, '--emit', 'none', '--treatWarningsAsErrors'], {
      cwd: ROOT,
      encoding: 'utf8',
      env: { ...process.env, NO_COLOR: '1', FORCE_COLOR: '0' },
      timeout: 55_000,
    });
    const output = `${run.stdout ?? ''}${run.stderr ?? ''}`;
    if (run.error !== undefined) throw run.error;
    expect(run.status, `typedoc failed:\n${output}`).toBe(0);
  });
});
