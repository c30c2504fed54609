// connect() resolves with a session whose `info` is typed as set: the handshake filled it in
// before the promise resolved. The type assertion is checked by `tsc` (part of npm test).
import { describe, expect, expectTypeOf, it } from 'vitest';
import { type ConnectedSession, connect } from '../../src/net/client.js';
import { SesameServer } from '../../src/net/stream-server.js';
import type { SessionInfo } from '../../src/protocol/channel.js';
import { SERVICES } from '../../src/services/handlers.js';
import { KEY_A } from '../helpers/pair.js';

describe('ConnectedSession', () => {
  it('has info set, typed without undefined, from the moment connect() resolves', async () => {
    const server = new SesameServer({ listen: 'tcp://127.0.0.1:0', keys: [KEY_A], handler: SERVICES.echo });
    const url = await server.listen();
    try {
      const session = await connect(url, { key: KEY_A });
      expectTypeOf(session).toEqualTypeOf<ConnectedSession>();
      expectTypeOf(session.info).toEqualTypeOf<SessionInfo>();
      expect(session.info.keyId).toBe(KEY_A.id);
      expect(session.info.forwardSecrecy).toBe(true);
      await session.close();
    } finally {
      await server.close();
    }
  });
});
