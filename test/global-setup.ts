// The CLI tests run the compiled `sesame` executable: build it once before any test runs.
// SESAME_SKIP_BUILD=1 uses the dist/ already there (for a build made by hand).
import { execFileSync } from 'node:child_process';

export default function setup(): void {
  if (process.env.SESAME_SKIP_BUILD === '1') return;
  execFileSync(process.execPath, ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.build.json'], {
    stdio: 'inherit',
  });
  // The man page and completion scripts, as `npm run build` writes them.
  execFileSync(process.execPath, ['scripts/build-extras.mjs'], { stdio: 'inherit' });
}
