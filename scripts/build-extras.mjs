// After `tsc`: write the man page and the completion scripts into dist/ from the compiled
// command tree (the same one that prints --help), so the package ships them generated, never
// edited by hand. package.json's `man` field installs dist/sesame.1 (`man sesame`).
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const dist = join(import.meta.dirname, '..', 'dist');
const { buildProgram } = await import(join(dist, 'cli', 'main.js'));
const { manPage } = await import(join(dist, 'cli', 'man.js'));
const { completionScript } = await import(join(dist, 'cli', 'completion.js'));

const sink = { write: () => true };
const program = buildProgram({ stdin: process.stdin, stdout: sink, stderr: sink }, { code: 0 });
writeFileSync(join(dist, 'sesame.1'), manPage(program));
mkdirSync(join(dist, 'completion'), { recursive: true });
writeFileSync(join(dist, 'completion', 'sesame.bash'), completionScript(program, 'bash'));
writeFileSync(join(dist, 'completion', '_sesame'), completionScript(program, 'zsh'));
