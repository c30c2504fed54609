/**
 * The compatibility profiles take one option of the record layer's policy, maxMessageBytes, and
 * check it with the same rule as the native connections, on every constructor and through the
 * profile factories.
 */
import { describe, it } from 'vitest';
import {
  compatClientConnection,
  compatServerProfile,
  NoneConnection,
  PythonMpConnection,
  SeedConnection,
} from '../../src/compat/index.js';
import { deterministicEntropy } from '../../src/protocol/index.js';
import {
  acceptances,
  type Expected,
  type ExpectedTable,
  expectThrowsRefusal,
  label,
  refusals,
} from '../helpers/options.js';

const MESSAGE_LIMIT: ExpectedTable = { maxMessageBytes: { min: 1, max: 2 ** 31 - 1 } };
const SECRET = Buffer.from('a shared secret');
const entropy = deterministicEntropy('compat-options');

const PATHS: { name: string; make: (over: object) => unknown }[] = [
  {
    name: 'SeedConnection server',
    make: (o) => new SeedConnection('server', { secret: SECRET, entropy, ...o }),
  },
  { name: 'SeedConnection client', make: (o) => new SeedConnection('client', { secret: SECRET, ...o }) },
  {
    name: 'PythonMpConnection',
    make: (o) => new PythonMpConnection('server', { secret: SECRET, entropy, ...o }),
  },
  { name: 'NoneConnection', make: (o) => new NoneConnection('client', { framing: 'line', ...o }) },
  {
    name: 'compatServerProfile',
    make: (o) => compatServerProfile({ profile: 'seed-hex', secret: SECRET, ...o }),
  },
  { name: 'compatClientConnection', make: (o) => compatClientConnection({ profile: 'none', ...o }) },
];

describe.each(PATHS)('$name', ({ make }) => {
  it.each(refusals(MESSAGE_LIMIT).map(([n, v, e]) => [n, label(v), v, e] as const))(
    'refuses %s = %s naming it',
    (name, _label, value, expected: Expected) => {
      expectThrowsRefusal(() => make({ [name]: value }), name, expected);
    },
  );

  it.each(acceptances(MESSAGE_LIMIT).map(([n, v]) => [n, label(v), v] as const))(
    'accepts %s = %s',
    (name, _l, value) => {
      make({ [name]: value });
    },
  );
});
