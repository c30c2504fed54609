/** In-memory client/server pairs for driving the sans-I/O core without sockets. */
import {
  ClientConnection,
  type ClientOptions,
  type ConnectionEvent,
  deterministicEntropy,
  type PresharedKey,
  ServerConnection,
  ServerContext,
  type ServerOptions,
} from '../../src/protocol/index.js';

export const NOW = Date.UTC(2026, 10, 29, 19, 26, 43);

export function makeKey(
  id: string,
  principal: string,
  fill: number,
  extra: Partial<PresharedKey> = {},
): PresharedKey {
  return { id, principal, secret: Buffer.alloc(32, fill), ...extra };
}

export const KEY_A = makeKey('0123456789abcdef', 'alice', 0xa1);
export const KEY_B = makeKey('fedcba9876543210', 'bob', 0xb2);

export interface Pair {
  client: ClientConnection;
  server: ServerConnection;
  ctx: ServerContext;
  clientEvents: ConnectionEvent[];
  serverEvents: ConnectionEvent[];
  /** Every chunk each side wrote, in order. */
  wire: { from: 'client' | 'server'; bytes: Buffer }[];
}

export function makeServerContext(over: Partial<ServerOptions> = {}, seed = 'server'): ServerContext {
  return new ServerContext({
    keys: [KEY_A, KEY_B],
    entropy: deterministicEntropy(seed),
    now: () => NOW,
    ...over,
  });
}

export function makeClient(over: Partial<ClientOptions> = {}, seed = 'client'): ClientConnection {
  return new ClientConnection({ key: KEY_A, entropy: deterministicEntropy(seed), now: () => NOW, ...over });
}

/** Move every queued byte both ways until nothing is left; returns the events each side saw. */
export function pump(p: Pick<Pair, 'client' | 'server' | 'clientEvents' | 'serverEvents' | 'wire'>): void {
  for (let rounds = 0; rounds < 100; rounds++) {
    let moved = false;
    for (const chunk of p.client.takeOutput()) {
      moved = true;
      p.wire.push({ from: 'client', bytes: chunk });
      if (p.server.error === undefined) p.serverEvents.push(...p.server.receive(chunk));
    }
    for (const chunk of p.server.takeOutput()) {
      moved = true;
      p.wire.push({ from: 'server', bytes: chunk });
      if (p.client.error === undefined) p.clientEvents.push(...p.client.receive(chunk));
    }
    if (!moved) return;
  }
  throw new Error('pump did not settle');
}

export function makePair(
  opts: { client?: Partial<ClientOptions>; server?: Partial<ServerOptions>; ctx?: ServerContext } = {},
): Pair {
  const ctx = opts.ctx ?? makeServerContext(opts.server);
  const p: Pair = {
    client: makeClient(opts.client),
    server: new ServerConnection(ctx),
    ctx,
    clientEvents: [],
    serverEvents: [],
    wire: [],
  };
  pump(p);
  return p;
}

export function messages(events: ConnectionEvent[]): string[] {
  return events.flatMap((e) => (e.type === 'message' ? [e.data.toString('utf8')] : []));
}

export function errorCode(events: ConnectionEvent[]): string | undefined {
  const last = events.at(-1);
  return last?.type === 'error' ? last.error.code : undefined;
}
