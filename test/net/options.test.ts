/**
 * Every option the socket layer accepts is checked where it is given: a server refuses a value
 * out of range at construction, a client before any I/O, each with ERR_INVALID_ARGUMENT naming
 * the option (nested throttle options as `throttle.NAME`); the boundaries are accepted. The
 * policies the net options extend reach the core unchanged.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NoneConnection } from '../../src/compat/index.js';
import { BASE_SERVER_RULES } from '../../src/net/base-server.js';
import { connect, openSession } from '../../src/net/client.js';
import { connectUdp, UDP_CONNECT_RULES } from '../../src/net/datagram-client.js';
import { UDP_SERVER_RULES, UdpServer } from '../../src/net/datagram-server.js';
import { SESSION_OPTION_RULES } from '../../src/net/session.js';
import { SesameServer, STREAM_SERVER_RULES } from '../../src/net/stream-server.js';
import { FailureThrottle, THROTTLE_RULES } from '../../src/net/throttle.js';
import { CLIENT_POLICY_RULES, DATAGRAM_CLIENT_RULES, ENVIRONMENT_RULES } from '../../src/protocol/index.js';
import {
  acceptances,
  DATAGRAM,
  ENVIRONMENT,
  type Expected,
  type ExpectedTable,
  expectNotRefused,
  expectRejectsRefusal,
  expectThrowsRefusal,
  label,
  RECORD,
  refusals,
  SAFE,
  SERVER_HANDSHAKE,
  TIMER_MAX,
  TWO_31,
} from '../helpers/options.js';
import { KEY_A } from '../helpers/pair.js';

const SESSION: ExpectedTable = {
  handshakeTimeoutMs: { min: 0, max: TIMER_MAX },
  idleTimeoutMs: { min: 0, max: TIMER_MAX },
  closeTimeoutMs: { min: 0, max: TIMER_MAX },
  highWaterMarkBytes: { min: 1, max: SAFE },
  outputPausesInput: 'boolean',
  closeWait: { allowed: '"deadline" or "idle"', bad: ['never', 1, true], good: ['deadline', 'idle'] },
};
const BASE_SERVER: ExpectedTable = { ...ENVIRONMENT, shutdownTimeoutMs: { min: 0, max: TIMER_MAX } };
const THROTTLE: ExpectedTable = {
  freeFailures: { min: 0, max: SAFE },
  baseDelayMs: { min: 0, max: SAFE },
  maxDelayMs: { min: 0, max: SAFE },
  forgetAfterMs: { min: 0, max: SAFE },
  maxSources: { min: 1, max: 2 ** 24 },
};
const STREAM_SERVER: ExpectedTable = {
  ...BASE_SERVER,
  ...SESSION,
  ...SERVER_HANDSHAKE,
  ...RECORD,
  maxConnections: { min: 1, max: TWO_31 },
  backlog: { min: 0, max: TIMER_MAX },
  inputBudgetBytes: { min: 1, max: SAFE },
  maxHandshakesPerSource: { min: 1, max: TWO_31 },
  maxConnectionsPerSource: { min: 1, max: TWO_31 },
  firstByteTimeoutMs: { min: 0, max: TIMER_MAX },
};
const UDP_SERVER: ExpectedTable = {
  ...BASE_SERVER,
  ...SERVER_HANDSHAKE,
  ...DATAGRAM,
  sessionIdleMs: { min: 1, max: TWO_31 },
  handshakeTimeoutMs: { min: 1, max: TWO_31 },
  maxSessions: { min: 1, max: TWO_31 },
  maxPendingHandshakes: { min: 1, max: TWO_31 },
  maxPendingPerSource: { min: 1, max: TWO_31 },
  sweepIntervalMs: { min: 1, max: TIMER_MAX },
};
const CONNECT: ExpectedTable = { ...ENVIRONMENT, ...SESSION, ...RECORD, forwardSecrecy: 'boolean' };
const UDP_CONNECT: ExpectedTable = {
  ...ENVIRONMENT,
  ...DATAGRAM,
  forwardSecrecy: 'boolean',
  maxAttempts: { min: 1, max: 1024 },
  handshakeTimeoutMs: { min: 1, max: TIMER_MAX },
  retransmitMs: { min: 1, max: TIMER_MAX },
  requestTimeoutMs: { min: 1, max: TIMER_MAX },
  keepaliveMs: { min: 0, max: TIMER_MAX },
};

function keysOf(...tables: object[]): string[] {
  return [...new Set(tables.flatMap((t) => Object.keys(t)))].sort();
}

const refused = (table: ExpectedTable) => refusals(table).map(([n, v, e]) => [n, label(v), v, e] as const);
const accepted = (table: ExpectedTable) => acceptances(table).map(([n, v]) => [n, label(v), v] as const);

const makeStream = (over: object) =>
  new SesameServer({ listen: 'tcp://127.0.0.1:0', keys: [KEY_A], handler: (m: Buffer) => m, ...over });
const makeUdp = (over: object) =>
  new UdpServer({ listen: 'udp://127.0.0.1:0', keys: [KEY_A], handler: (m: Buffer) => m, ...over });

describe.each([
  {
    name: 'SesameServer',
    table: STREAM_SERVER,
    rules: [STREAM_SERVER_RULES, BASE_SERVER_RULES],
    make: makeStream,
  },
  { name: 'UdpServer', table: UDP_SERVER, rules: [UDP_SERVER_RULES, BASE_SERVER_RULES], make: makeUdp },
])('$name', ({ table, rules, make }) => {
  it('has a rule for exactly the options expected here', () => {
    expect(keysOf(...rules)).toEqual(keysOf(table));
  });

  it.each(refused(table))(
    'refuses %s = %s at construction, naming it',
    (name, _l, value, expected: Expected) => {
      expectThrowsRefusal(() => make({ [name]: value }), name, expected);
    },
  );

  it.each(accepted(table))('accepts %s = %s', (name, _l, value) => {
    expect(() => make({ [name]: value })).not.toThrow();
  });

  it.each(refused(THROTTLE))('refuses throttle.%s = %s', (name, _l, value, expected: Expected) => {
    expectThrowsRefusal(() => make({ throttle: { [name]: value } }), `throttle.${name}`, expected);
  });

  it.each(accepted(THROTTLE))('accepts throttle.%s = %s', (name, _l, value) => {
    expect(() => make({ throttle: { [name]: value } })).not.toThrow();
  });
});

describe('FailureThrottle', () => {
  it('has a rule for exactly the options expected here', () => {
    expect(keysOf(THROTTLE_RULES)).toEqual(keysOf(THROTTLE));
  });

  it.each(refused(THROTTLE))('refuses %s = %s naming it', (name, _l, value, expected: Expected) => {
    expectThrowsRefusal(() => new FailureThrottle({ [name]: value }), name, expected);
  });

  it.each(accepted(THROTTLE))('accepts %s = %s', (name, _l, value) => {
    expect(() => new FailureThrottle({ [name]: value })).not.toThrow();
  });
});

// Nothing listens here: an accepted option gets as far as the connect, which fails.
const NOWHERE = 'unix:///nonexistent/sesame-options.sock';

describe('connect()', () => {
  it('has a rule for exactly the options expected here', () => {
    expect(keysOf(SESSION_OPTION_RULES, CLIENT_POLICY_RULES, ENVIRONMENT_RULES)).toEqual(keysOf(CONNECT));
  });

  it.each(refused(CONNECT))(
    'rejects %s = %s before connecting',
    async (name, _l, value, expected: Expected) => {
      await expectRejectsRefusal(() => connect(NOWHERE, { key: KEY_A, [name]: value }), name, expected);
    },
  );

  it.each(accepted(CONNECT))('accepts %s = %s', async (name, _l, value) => {
    const err = await connect(NOWHERE, { key: KEY_A, [name]: value }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect((err as { code?: string } | undefined)?.code).toBe('ERR_CONNECT_FAILED');
  });
});

describe('openSession()', () => {
  it.each(refused(SESSION))(
    'rejects %s = %s before connecting',
    async (name, _l, value, expected: Expected) => {
      await expectRejectsRefusal(
        () => openSession(NOWHERE, new NoneConnection('client'), { [name]: value }),
        name,
        expected,
      );
    },
  );

  it.each(accepted(SESSION))('accepts %s = %s', async (name, _l, value) => {
    const err = await openSession(NOWHERE, new NoneConnection('client'), { [name]: value }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect((err as { code?: string } | undefined)?.code).toBe('ERR_CONNECT_FAILED');
  });
});

describe('connectUdp()', () => {
  let server: UdpServer;
  let url: string;

  beforeAll(async () => {
    server = makeUdp({ throttle: { freeFailures: SAFE } });
    await server.listen();
    url = server.url;
  });

  afterAll(async () => {
    await server.close();
  });

  it('has a rule for exactly the options expected here', () => {
    expect(keysOf(UDP_CONNECT_RULES, DATAGRAM_CLIENT_RULES)).toEqual(keysOf(UDP_CONNECT));
  });

  it.each(refused(UDP_CONNECT))(
    'rejects %s = %s before sending',
    async (name, _l, value, expected: Expected) => {
      await expectRejectsRefusal(() => connectUdp(url, { key: KEY_A, [name]: value }), name, expected);
    },
  );

  // A boundary may make the handshake itself fail (a 1 ms deadline): it must not be refused.
  it.each(accepted(UDP_CONNECT))('accepts %s = %s', async (name, _l, value) => {
    const session = await connectUdp(url, { key: KEY_A, handshakeTimeoutMs: 2000, [name]: value }).then(
      (s) => s,
      (e: unknown) => {
        expectNotRefused(e);
        return undefined;
      },
    );
    await session?.close();
  });
});
