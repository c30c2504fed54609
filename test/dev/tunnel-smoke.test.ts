// The tunnel workload runs end to end (`npm run bench -- --tunnel --quick`): the sesame executable
// starts from dev/build/ at both ends, so do the two floors (plain Node proxies, and the same
// carrying Sesame's records), every system's row is measured with its bytes checked (the sink
// compares the whole upload, every echo is compared), and spiped's row is there wherever the
// Debian package is installed. Numbers are not checked: this is a smoke run.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { spipedInstalled } from '../../dev/bench/spiped.js';
import type { TunnelResults } from '../../dev/bench/tunnel.js';
import { ROOT, runCommand } from '../helpers/cli.js';

const BENCH = join(ROOT, 'dev', 'build', 'dev', 'bench', 'main.js');

beforeAll(() => {
  execFileSync(process.execPath, [join(ROOT, 'scripts', 'build-dev.mjs')], { cwd: ROOT, stdio: 'inherit' });
}, 120_000);

describe('bench --tunnel --quick', () => {
  it('runs direct, the two floors, sesame and (where installed) spiped, with every byte checked', async () => {
    const json = join(mkdtempSync(join(tmpdir(), 'sesame-tunnel-smoke-')), 'tunnel.json');
    const r = await runCommand(process.execPath, [BENCH, '--tunnel', '--quick', '--json', json], {
      timeoutMs: 150_000,
    });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^## tunnel \(bulk 16 MiB; load average /m);

    const { tunnel } = JSON.parse(readFileSync(json, 'utf8')) as { tunnel: TunnelResults };
    const spiped = spipedInstalled();
    if (!spiped)
      console.warn('tunnel smoke: spiped is not installed (apt-get install spiped): its row is skipped');
    const expected = ['direct', 'plain node', 'sealed node', 'sesame', ...(spiped ? ['spiped'] : [])];
    expect(tunnel.rows.map((row) => row.system)).toEqual(expected);
    expect(tunnel.skipped).toEqual(spiped ? [] : ['spiped: not installed (apt-get install spiped)']);
    for (const row of tunnel.rows) {
      expect(row.checked, row.system).toBe(true);
      expect(row.bulkMBps, row.system).toBeGreaterThan(0);
      expect(row.roundTripsPerSec, row.system).toBeGreaterThan(0);
      expect(row.connectionsPerSec, row.system).toBeGreaterThan(0);
      // The tunnel processes' CPU is read from /proc: a tunnel that did the work used some.
      if (row.system !== 'direct') expect(row.cpuMsPerConnection, row.system).toBeGreaterThan(0);
      expect(r.stdout).toMatch(new RegExp(`^\\| ${row.system} \\| yes \\| `, 'm'));
    }
    if (spiped) {
      // Each target with its ratio for Sesame and for both floors.
      expect(r.stdout).toMatch(
        /^\| CPU per connection vs spiped \| [\d.]+ \| <= 0\.5 \| [\d.]+ \| [\d.]+ \| (yes|NO.*) \|$/m,
      );
      expect(r.stdout).toMatch(/^\| bulk vs spiped \| [\d.]+ \| >= 3 \| [\d.]+ \| [\d.]+ \| (yes|NO.*) \|$/m);
    }
  }, 180_000);
});
