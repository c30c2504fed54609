// What the npm package ships, checked from `npm pack`'s own file list (scripts not run): the
// built CLI with its man page and completion scripts, the licence, the docs and the examples the
// README points to, and no install-time script that would build on a consumer's machine.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from '../helpers/cli.js';

interface PackageJson {
  scripts: Record<string, string>;
  bin: Record<string, string>;
  man: string[];
  license: string;
}

const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as PackageJson;

function packedFiles(): string[] {
  const out = execFileSync('npm', ['pack', '--dry-run', '--ignore-scripts', '--json'], {
    cwd: ROOT,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  const [report] = JSON.parse(out) as { files: { path: string }[] }[];
  return (report?.files ?? []).map((f) => f.path);
}

describe('the npm package', () => {
  it('runs nothing at install time: the built dist/ is shipped, built before packing', () => {
    for (const hook of ['preinstall', 'install', 'postinstall', 'prepare']) {
      expect(pkg.scripts[hook], hook).toBeUndefined();
    }
    expect(pkg.scripts.prepack).toBe('npm run build');
    expect(pkg.scripts.build).toContain('scripts/build-extras.mjs');
  });

  it('ships the CLI, its man page, completion, licence, docs and every example the README names', () => {
    const files = new Set(packedFiles());
    const bin = pkg.bin.sesame as string;
    for (const f of [bin, 'dist/index.js', 'dist/index.d.ts', 'LICENSE', 'README.md', 'docs/protocol.md']) {
      expect(files.has(f), f).toBe(true);
    }
    expect(readFileSync(join(ROOT, bin), 'utf8').startsWith('#!/usr/bin/env node\n')).toBe(true);
    for (const man of pkg.man) expect(files.has(man.replace(/^\.\//, '')), man).toBe(true);
    expect(files.has('dist/completion/sesame.bash')).toBe(true);
    expect(files.has('dist/completion/_sesame')).toBe(true);
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
    const named = [...readme.matchAll(/`(examples\/[\w./-]+\.js)`/g)].map((m) => m[1] as string);
    expect(named.length).toBeGreaterThan(2);
    for (const example of named) expect(files.has(example), example).toBe(true);
    for (const f of files) expect(f, f).not.toMatch(/^(src|test|dev|scripts)\//);
    expect(readFileSync(join(ROOT, 'LICENSE'), 'utf8')).toMatch(new RegExp(`^${pkg.license} License`));
  });
});
