#!/usr/bin/env node
// The `sesame` executable: runs the CLI and sets the exit code (see main.ts for the contract).
import { describe, main } from './main.js';

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`sesame: ${describe(err)}\n`);
    process.exitCode = 1;
  },
);
