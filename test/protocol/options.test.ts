/**
 * Every option of the core is checked on every path that accepts it: the native connections, the
 * server context and both datagram endpoints refuse a value out of range with ERR_INVALID_ARGUMENT
 * naming the option, and accept its boundaries.
 */
import { describe, expect, it } from 'vitest';
import { isSesameError } from '../../src/errors.js';
import {
  CLIENT_POLICY_RULES,
  ClientConnection,
  checkOptions,
  DATAGRAM_CLIENT_RULES,
  DATAGRAM_SERVER_RULES,
  DatagramClientEndpoint,
  DatagramServerEndpoint,
  deterministicEntropy,
  ENVIRONMENT_RULES,
  pickOptions,
  SERVER_POLICY_RULES,
  ServerContext,
  type ServerPolicy,
} from '../../src/protocol/index.js';
import {
  acceptances,
  DATAGRAM,
  ENVIRONMENT,
  type Expected,
  type ExpectedTable,
  expectThrowsRefusal,
  label,
  RECORD,
  refusals,
  SERVER_HANDSHAKE,
  TWO_31,
} from '../helpers/options.js';
import { KEY_A, NOW } from '../helpers/pair.js';

const CLIENT: ExpectedTable = { ...ENVIRONMENT, ...RECORD, forwardSecrecy: 'boolean' };
const SERVER: ExpectedTable = { ...ENVIRONMENT, ...RECORD, ...SERVER_HANDSHAKE };
const DATAGRAM_SERVER: ExpectedTable = {
  ...ENVIRONMENT,
  ...SERVER_HANDSHAKE,
  ...DATAGRAM,
  sessionIdleMs: { min: 1, max: TWO_31 },
  handshakeTimeoutMs: { min: 1, max: TWO_31 },
  maxSessions: { min: 1, max: TWO_31 },
  maxPendingHandshakes: { min: 1, max: TWO_31 },
  maxPendingPerSource: { min: 1, max: TWO_31 },
};
const DATAGRAM_CLIENT: ExpectedTable = {
  ...ENVIRONMENT,
  ...DATAGRAM,
  forwardSecrecy: 'boolean',
  maxAttempts: { min: 1, max: 1024 },
};

const base = { entropy: deterministicEntropy('options'), now: () => NOW };

/** The constructors of the core, each with the options it must check. */
const PATHS: { name: string; table: ExpectedTable; rules: object; make: (over: object) => unknown }[] = [
  {
    name: 'ClientConnection',
    table: CLIENT,
    rules: { ...ENVIRONMENT_RULES, ...CLIENT_POLICY_RULES },
    make: (over) => new ClientConnection({ key: KEY_A, ...base, ...over }),
  },
  {
    name: 'ServerContext',
    table: SERVER,
    rules: { ...ENVIRONMENT_RULES, ...SERVER_POLICY_RULES },
    make: (over) => new ServerContext({ keys: [KEY_A], ...base, ...over }),
  },
  {
    name: 'DatagramServerEndpoint',
    table: DATAGRAM_SERVER,
    rules: DATAGRAM_SERVER_RULES,
    make: (over) => new DatagramServerEndpoint({ keys: [KEY_A], ...base, ...over }),
  },
  {
    name: 'DatagramClientEndpoint',
    table: DATAGRAM_CLIENT,
    rules: DATAGRAM_CLIENT_RULES,
    make: (over) => new DatagramClientEndpoint({ key: KEY_A, ...base, ...over }).hello(),
  },
];

describe.each(PATHS)('$name', ({ table, rules, make }) => {
  it('has a rule for exactly the options expected here', () => {
    expect(Object.keys(rules).sort()).toEqual(Object.keys(table).sort());
  });

  it.each(refusals(table).map(([n, v, e]) => [n, label(v), v, e] as const))(
    'refuses %s = %s naming it',
    (name, _label, value, expected: Expected) => {
      expectThrowsRefusal(() => make({ [name]: value }), name, expected);
    },
  );

  it.each(acceptances(table).map(([n, v]) => [n, label(v), v] as const))(
    'accepts %s = %s',
    (name, _l, value) => {
      expect(() => make({ [name]: value })).not.toThrow();
    },
  );
});

describe('the check and the pass-through', () => {
  it('the datagram server hands its handshake policy to its context', () => {
    const server = new DatagramServerEndpoint({
      keys: [KEY_A],
      ...base,
      requireForwardSecrecy: false,
      maxClockSkewMs: 5,
      replayCacheEntries: 7,
    });
    expect(server.context.options).toMatchObject({
      requireForwardSecrecy: false,
      maxClockSkewMs: 5,
      replayCacheEntries: 7,
    });
  });

  it('checkOptions skips undefined fields and fields without a rule, and prefixes nested names', () => {
    expect(() => checkOptions({ maxMessageBytes: undefined, other: -1 }, SERVER_POLICY_RULES)).not.toThrow();
    let err: unknown;
    try {
      checkOptions({ maxClockSkewMs: -1 }, SERVER_POLICY_RULES, 'server.');
    } catch (e) {
      err = e;
    }
    expect(isSesameError(err, 'ERR_INVALID_ARGUMENT')).toBe(true);
    expect((err as Error).message).toBe(
      'server.maxClockSkewMs must be a whole number from 0 to 2147483648 (got -1)',
    );
  });

  it('pickOptions hands down exactly the policy fields', () => {
    const picked = pickOptions<ServerPolicy>(
      { maxMessageBytes: 5, requireForwardSecrecy: false, listen: 'tcp://x:1' } as ServerPolicy,
      SERVER_POLICY_RULES,
    );
    expect(picked).toEqual({
      requireForwardSecrecy: false,
      maxClockSkewMs: undefined,
      replayCacheEntries: undefined,
      maxMessageBytes: 5,
      keyUpdateAfterRecords: undefined,
    });
  });
});
