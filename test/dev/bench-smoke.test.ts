// The bench runs end to end (`--quick`): every system and workload, every reply correct, the table
// printed, the JSON and the chart written. Numbers are not checked: this is a smoke run.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import type { BenchResults } from '../../dev/bench/results.js';
import { spipedInstalled } from '../../dev/bench/spiped.js';
import { CHURN_ONLY, SYSTEMS } from '../../dev/bench/systems.js';
import { BIN, ROOT, runCommand } from '../helpers/cli.js';

// The bench lives outside the package: `npm run bench` compiles dev/ (with the src/ it imports)
// into dev/build/ and runs it from there, as this test does.
const BENCH = join(ROOT, 'dev', 'build', 'dev', 'bench', 'main.js');

beforeAll(() => {
  execFileSync(process.execPath, [join(ROOT, 'scripts', 'build-dev.mjs')], { cwd: ROOT, stdio: 'inherit' });
}, 120_000);

describe('bench --quick', () => {
  it('runs every system and workload, checks every reply and prints the table', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sesame-bench-'));
    const json = join(dir, 'bench.json');
    const svg = join(dir, 'scaling.svg');
    const r = await runCommand(process.execPath, [BENCH, '--quick', '--json', json, '--svg', svg], {
      timeoutMs: 170_000,
    });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^replies: \d+ checked, all correct$/m);
    for (const title of ['churn, 32 concurrent', 'persistent:', 'burst:', 'bulk:', 'idle:', 'targets']) {
      expect(r.stdout).toContain(title);
    }
    expect(r.stdout).toMatch(
      /system\s+ops\/s\s+p50 ms\s+p99 ms\s+CPU µs\/op\s+MB\/s\s+KiB\/conn\s+×raw\s+×TLS/,
    );

    const res = JSON.parse(readFileSync(json, 'utf8')) as BenchResults;
    expect(res.replies.wrong).toBe(0);
    expect(res.replies.errors).toBe(0);
    expect(res.replies.checked).toBeGreaterThan(0);
    // spiped runs where its Debian package is installed.
    const here = SYSTEMS.filter((s) => s !== 'spiped' || spipedInstalled());
    for (const workload of ['churn-32', 'persistent', 'burst', 'bulk', 'idle']) {
      const rows = res.rows.filter((row) => row.workload === workload);
      const systems = workload.startsWith('churn') ? here : here.filter((s) => !CHURN_ONLY.has(s));
      expect(rows.map((row) => row.system).sort()).toEqual([...systems].sort());
      for (const row of rows) {
        expect(row.ops).toBeGreaterThan(0);
        expect(row.errors).toBe(0);
        expect(row.wrong).toBe(0);
      }
    }
    // TLS 1.3 with the pre-shared key and no certificate, as the comparison intends.
    expect(res.tls).toMatchObject({
      protocol: 'TLSv1.3',
      cipher: 'TLS_AES_128_GCM_SHA256',
      peerCertificate: false,
    });
    expect(res.targets.length).toBeGreaterThan(0);
    expect(readFileSync(svg, 'utf8')).toMatch(/^<svg [^>]*>[\s\S]*<\/svg>\n$/);
  }, 180_000);

  it('measures the protocol core without sockets', async () => {
    const r = await runCommand(process.execPath, [BENCH, '--core', '--quick'], { timeoutMs: 60_000 });
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('handshake, forward secrecy (X25519)');
    expect(r.stdout).toContain('64-byte echo round trip');
  }, 90_000);

  it('describes its options (`npm run bench -- --help`)', async () => {
    const r = await runCommand(process.execPath, [BENCH, '--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('--quick');
    expect(r.stdout).toContain('--json <path>');
  });

  it('is not a command of the packaged `sesame` executable', async () => {
    const r = await runCommand(process.execPath, [BIN, 'bench', '--quick']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("unknown command 'bench'");
    expect(r.stdout).toBe('');
  });
});

// The bench and the security tools are development programs: the packed tarball holds the
// product's build and docs only.
describe('the package', () => {
  it('packs no bench or tool code', async () => {
    const r = await runCommand('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: ROOT });
    expect(r.code).toBe(0);
    const [pack] = JSON.parse(r.stdout) as { files: { path: string }[] }[];
    const paths = (pack?.files ?? []).map((f) => f.path);
    expect(paths).toContain('dist/index.js');
    expect(paths).toContain('dist/cli/bin.js');
    expect(paths.filter((p) => /^dev\/|\/(bench|tools)\//.test(p))).toEqual([]);
    const manifest = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as Record<string, unknown>;
    expect(JSON.stringify([manifest.files, manifest.exports, manifest.bin])).not.toMatch(/dev|bench|tools/);
  });
});
