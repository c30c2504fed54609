/** docs/errors.md documents every error code, with its fault class, and nothing else. */

import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ERROR_CODES, type ErrorCode, faultOf } from '../../src/errors.js';

const ERRORS_DOC = fileURLToPath(new URL('../../docs/errors.md', import.meta.url));

interface Row {
  code: string;
  fault: string;
  line: number;
}

/** Table rows whose first cell is a code in backquotes: | `ERR_X` | fault | when | peer sees | */
function documentedRows(): Row[] {
  const rows: Row[] = [];
  readFileSync(ERRORS_DOC, 'utf8')
    .split('\n')
    .forEach((text, i) => {
      const m = /^\|\s*`(ERR_[A-Z0-9_]+)`\s*\|\s*([a-z]+)\s*\|(.*)\|\s*$/.exec(text);
      if (m !== null) rows.push({ code: m[1] as string, fault: m[2] as string, line: i + 1 });
    });
  return rows;
}

describe('docs/errors.md', () => {
  const rows = documentedRows();
  const documented = rows.map((r) => r.code);

  it('has a table row for every code in ERROR_CODES', () => {
    expect(ERROR_CODES.filter((code) => !documented.includes(code))).toEqual([]);
  });

  it('documents no code that ERROR_CODES lacks, and each code once', () => {
    const known = new Set<string>(ERROR_CODES);
    expect(documented.filter((code) => !known.has(code))).toEqual([]);
    expect(documented.filter((code, i) => documented.indexOf(code) !== i)).toEqual([]);
  });

  it('gives each code its fault class', () => {
    const wrong = rows
      .filter((r) => ERROR_CODES.includes(r.code as ErrorCode) && faultOf(r.code as ErrorCode) !== r.fault)
      .map((r) => `line ${r.line}: ${r.code} is ${faultOf(r.code as ErrorCode)}, documented as ${r.fault}`);
    expect(wrong).toEqual([]);
  });

  it('mentions no code outside its table rows that ERROR_CODES lacks', () => {
    const text = readFileSync(ERRORS_DOC, 'utf8');
    const mentioned = new Set(text.match(/\bERR_[A-Z0-9_]+\b/g) ?? []);
    const known = new Set<string>(ERROR_CODES);
    expect([...mentioned].filter((code) => !known.has(code))).toEqual([]);
  });
});
