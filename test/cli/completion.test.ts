// The man page and the shell completion scripts, generated from the command tree that makes
// --help: every visible command and option appears in both, and the scripts work in real shells.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { completionScript } from '../../src/cli/completion.js';
import { buildProgram } from '../../src/cli/main.js';
import { manPage } from '../../src/cli/man.js';
import { PACKAGE } from '../../src/cli/version.js';
import { home, run } from '../helpers/cli.js';

const sink = { write: () => true } as unknown as NodeJS.WritableStream;
const program = buildProgram({ stdin: process.stdin, stdout: sink, stderr: sink }, { code: 0 });

/** [path, command] for every visible command. */
function commands(command: Command, path = 'sesame'): [string, Command][] {
  const subs = command.commands.filter((c) => !(c as unknown as { _hidden?: boolean })._hidden);
  return [[path, command], ...subs.flatMap((c) => commands(c, `${path} ${c.name()}`))];
}

function has(tool: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${tool}`]).status === 0;
}

/** What bash's completion offers for the words typed so far (the last one being completed). */
function bashComplete(script: string, words: string[]): string[] {
  const dir = mkdtempSync(join(tmpdir(), 'sesame-completion-'));
  const file = join(dir, 'sesame.bash');
  writeFileSync(file, script);
  const quoted = words.map((w) => `'${w}'`).join(' ');
  const out = execFileSync(
    'bash',
    [
      '-c',
      `cd '${dir}' && touch ring.json && source '${file}' && COMP_WORDS=(${quoted}) && COMP_CWORD=${words.length - 1} && _sesame && printf '%s\\n' "\${COMPREPLY[@]}"`,
    ],
    { encoding: 'utf8' },
  );
  return out.split('\n').filter((l) => l !== '');
}

describe('sesame --version, man page and completion', () => {
  it('--version and -V print the package version', async () => {
    const env = home();
    for (const flag of ['--version', '-V']) {
      const r = await run([flag], env);
      expect(r).toMatchObject({ code: 0, stdout: `${PACKAGE.version}\n` });
    }
    expect(PACKAGE.version).toMatch(/^\d+\.\d+\.\d+/);
  });

  it('the man page names every command and option of the help, with the defaults help shows', () => {
    const page = manPage(program);
    expect(page).toMatch(/^\.TH SESAME 1 "" "sesame \d+\.\d+\.\d+"/);
    for (const [path, command] of commands(program)) {
      if (path !== 'sesame') expect(page, path).toContain(path.replaceAll('-', '\\-'));
      for (const o of command.options) {
        if (o.long === '--version') continue;
        expect(page, `${path} ${o.long}`).toContain(`.B ${o.flags.replaceAll('-', '\\-')}`);
      }
    }
    expect(page).toContain('(default: 10s)'); // --handshake-timeout, in the duration syntax
    for (const section of ['NAME', 'SYNOPSIS', 'COMMANDS', 'EXIT STATUS', 'ENVIRONMENT', 'FILES']) {
      expect(page).toContain(`.SH ${section}`);
    }
  });

  it.skipIf(!has('man'))('man renders the page without a warning', () => {
    const dir = mkdtempSync(join(tmpdir(), 'sesame-man-'));
    const file = join(dir, 'sesame.1');
    writeFileSync(file, manPage(program));
    const r = spawnSync('man', ['--warnings', '-l', file], {
      encoding: 'utf8',
      env: { ...process.env, MANPAGER: 'cat', MANWIDTH: '100' },
    });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toBe('');
    expect(r.stdout).toMatch(/sesame serve \[options\]/);
  });

  it('`sesame completion bash|zsh` prints the scripts; another shell is a bad argument', async () => {
    const env = home();
    const bash = await run(['completion', 'bash'], env);
    expect(bash.code).toBe(0);
    expect(bash.stdout).toBe(completionScript(program, 'bash'));
    expect(bash.stdout).toContain('complete -F _sesame sesame');
    const zsh = await run(['completion', 'zsh'], env);
    expect(zsh.stdout.startsWith('#compdef sesame\n')).toBe(true);
    const fish = await run(['completion', 'fish'], env);
    expect(fish.code).toBe(2);
    expect(fish.stderr).toMatch(/shell/);
  });

  it.skipIf(!has('bash'))('bash completes commands, subcommands, options, choices and files', () => {
    const script = completionScript(program, 'bash');
    expect(bashComplete(script, ['sesame', ''])).toEqual([
      'keygen',
      'serve',
      'connect',
      'keys',
      'completion',
    ]);
    expect(bashComplete(script, ['sesame', 'keys', 're'])).toEqual(['revoke', 'remove']);
    expect(bashComplete(script, ['sesame', 'serve', '--idle'])).toEqual(['--idle-timeout']);
    expect(bashComplete(script, ['sesame', 'serve', '--service', ''])).toEqual(['timestamp', 'echo']);
    expect(bashComplete(script, ['sesame', 'keys', 'add', '--keyring', 'ri'])).toEqual(['ring.json']);
    expect(bashComplete(script, ['sesame', 'completion', ''])).toEqual(['bash', 'zsh']);
    expect(bashComplete(script, ['sesame', 'connect', '--profile', 'n'])).toEqual(['native', 'none']);
    expect(bashComplete(script, ['sesame', 'm'])).toEqual([]); // `man` is hidden
  });

  it('zsh: the script is valid zsh', (ctx) => {
    if (!has('zsh')) {
      console.log('skipped: zsh is not installed (apt-get install zsh)');
      ctx.skip();
    }
    const dir = mkdtempSync(join(tmpdir(), 'sesame-zsh-'));
    const file = join(dir, '_sesame');
    writeFileSync(file, completionScript(program, 'zsh'));
    const r = spawnSync('zsh', ['-n', file], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
  });
});
