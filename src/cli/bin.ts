#!/usr/bin/env node
// The `sesame` executable: runs the CLI and sets the exit code (see main.ts for the contract).
// A reader that stops early (`sesame keys list | head -1`) closes the pipe: that ends the
// output, as it does for other Unix tools, rather than crashing with EPIPE.
import { describe, main } from './main.js';

process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  throw err;
});

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`sesame: ${describe(err)}\n`);
    process.exitCode = 1;
  },
);
