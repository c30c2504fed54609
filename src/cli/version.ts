/**
 * The package's version, read from its package.json, which sits two directories above this
 * module both in src/cli/ (tests) and in dist/cli/ (the installed package): one number, never
 * copied into the code where it could drift.
 */

import { readFileSync } from 'node:fs';

/** The name and version of the installed package, as its package.json says. */
export const PACKAGE: { readonly name: string; readonly version: string } = JSON.parse(
  readFileSync(new URL('../../package.json', import.meta.url), 'utf8'),
) as { name: string; version: string };

/** The version `sesame --version` prints. */
export const VERSION: string = PACKAGE.version;
