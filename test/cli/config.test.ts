// The config file example in docs/operations.md is applied as written: every key is an option
// of serve (or connect's url) and every value parses.
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { applyConfig } from '../../src/cli/config.js';
import { buildProgram } from '../../src/cli/main.js';
import { UsageError } from '../../src/cli/usage.js';

const DOC = readFileSync(fileURLToPath(new URL('../../docs/operations.md', import.meta.url)), 'utf8');
const sink = { write: () => true } as unknown as NodeJS.WritableStream;

function command(name: string): Command {
  const program = buildProgram({ stdin: process.stdin, stdout: sink, stderr: sink }, { code: 0 });
  return program.commands.find((c) => c.name() === name) as Command;
}

describe('the documented config file', () => {
  const section = DOC.slice(DOC.indexOf('## 9. Configuration file'));
  const example = JSON.parse(/```json\n([\s\S]*?)\n```/.exec(section)?.[1] ?? 'null') as Record<
    string,
    unknown
  >;
  const {
    serve,
    connect,
    '//': _comment,
    ...shared
  } = example as {
    serve: Record<string, unknown>;
    connect: Record<string, unknown>;
    '//': string;
  };

  it('sets the serve options it names', () => {
    const cmd = command('serve');
    expect(applyConfig(cmd, { ...shared, ...serve }, 'example.json')).toEqual({});
    expect(cmd.opts()).toMatchObject({
      keyring: '/etc/sesame/keyring.json',
      handshakeTimeout: 5000,
      listen: 'tcp://10.0.0.5:9527',
      workers: Math.min(availableParallelism(), 64),
      idleTimeout: 5_400_000,
      inputBudget: 64 * 1024 * 1024,
      firstByteTimeout: 2000,
      metrics: 'tcp://127.0.0.1:9464',
      proxyProtocol: true,
      trustedProxy: ['10.0.0.2/32', '10.0.0.3/32'],
      logLevel: 'info',
    });
  });

  it("gives connect its url back, and refuses serve's options for connect", () => {
    const cmd = command('connect');
    expect(applyConfig(cmd, { ...shared, ...connect }, 'example.json', ['url'])).toEqual({
      url: 'tcp://10.0.0.5:9527',
    });
    expect(cmd.opts()).toMatchObject({ keyring: '/etc/sesame/keyring.json', handshakeTimeout: 5000 });
    expect(() => applyConfig(command('connect'), serve, 'example.json')).toThrow(UsageError);
  });
});
