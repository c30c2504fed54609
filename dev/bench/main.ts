#!/usr/bin/env node
/**
 * `npm run bench` (node dev/build/dev/bench/main.js): the bench as a program of its own. See command.ts
 * for the options and bench/orchestrator.ts for the method.
 */

import { Command, CommanderError } from 'commander';
import { configureBenchCommand } from './command.js';

const program = configureBenchCommand(new Command('bench'), 'npm run bench --').exitOverride();

program.parseAsync(process.argv).then(
  () => {},
  (err: unknown) => {
    if (err instanceof CommanderError) {
      process.exitCode = err.exitCode === 0 ? 0 : 2;
      return;
    }
    process.stderr.write(`bench: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
