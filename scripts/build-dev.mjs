// Compiles dev/ (the bench and the security tools, with the src/ they import) into dev/build/,
// then places a copy of package.json where the compiled src/cli/version.js looks for it (two
// directories above it), so the sesame executable runs from dev/build/ as it does from dist/:
// the tunnel bench starts it as a process.
import { execFileSync } from 'node:child_process';
import { copyFileSync } from 'node:fs';
import { join } from 'node:path';

const root = join(import.meta.dirname, '..');
execFileSync(
  process.execPath,
  [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'dev/tsconfig.json'],
  {
    cwd: root,
    stdio: 'inherit',
  },
);
copyFileSync(join(root, 'package.json'), join(root, 'dev', 'build', 'package.json'));
