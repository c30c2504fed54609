/**
 * The server process of one system under test (forked by the orchestrator, one per system).
 *
 * It runs one server on 127.0.0.1 and reports its own CPU time and memory over IPC, so the cost
 * of serving is measured in the process that pays it, apart from the load generator's.
 *
 * - Sesame servers are the real `SesameServer` with the real services: `timestampService` for
 *   churn, `echoService` for persistent and idle, and a small byte-counting handler for bulk.
 * - The baselines answer the same messages, framed (u32 length + payload), with the same reply
 *   builders, so every system does the same application work.
 */

import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer as createNetServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer as createTlsServer } from 'node:tls';
import { getHeapSpaceStatistics, writeHeapSnapshot } from 'node:v8';
import {
  echoReply,
  echoService,
  type PresharedKey,
  type ServerOptions,
  SesameServer,
  type Session,
  sessionHandler,
  timestampReply,
  timestampService,
} from '../../src/index.js';
import { selectCryptoBackend } from '../../src/net/crypto-backend.js';
import { serveFlights, serveFrames } from './framing.js';
import { serveRequests } from './ipc.js';
import { secretStream } from './secret-stream.js';
import { startSpiped } from './spiped.js';
import {
  type BenchKey,
  type BenchService,
  BulkCounter,
  type SystemName,
  sesameSystem,
  TLS_CIPHER,
  TLS_VERSION,
} from './systems.js';

export interface ServerStartArgs {
  readonly system: SystemName;
  readonly service: BenchService;
  readonly key: BenchKey;
}

export interface SnapshotArgs {
  /** Wait (at most waitMs) until the server holds exactly this many connections. */
  readonly connections?: number | undefined;
  readonly waitMs?: number | undefined;
  /** Run a full garbage collection before reading memory. */
  readonly gc?: boolean | undefined;
}

export interface Snapshot {
  /** Process CPU time (user + system), in microseconds, read before any collection. */
  readonly cpuUs: number;
  /** The same after the collection (equal to cpuUs without gc). */
  readonly cpuAfterGcUs: number;
  readonly rss: number;
  readonly heapUsed: number;
  readonly external: number;
  readonly arrayBuffers: number;
  /**
   * Physical memory of V8's young generation (`new_space`), which V8 enlarges as retained
   * objects accumulate: a cost of the process, not of each connection.
   */
  readonly youngBytes: number;
  readonly connections: number;
  /** When the connection count was not reached within waitMs. */
  readonly timedOut: boolean;
}

/** Heap objects by kind (`type:constructor`): [count, self bytes]. */
export type HeapCensus = Record<string, [number, number]>;

export interface ServerCommands {
  start: { args: ServerStartArgs; result: { url: string; port: number } };
  snapshot: { args: SnapshotArgs; result: Snapshot };
  heapCensus: { args: null; result: HeapCensus };
}

interface HeapSnapshotJson {
  readonly snapshot: { readonly meta: { node_fields: string[]; node_types: [string[], ...unknown[]] } };
  readonly nodes: number[];
  readonly strings: string[];
}

/** Count the objects of this process's heap by kind, from a V8 heap snapshot (after a full GC). */
function heapCensus(): HeapCensus {
  gc?.();
  const dir = mkdtempSync(join(tmpdir(), 'sesame-bench-heap-'));
  const file = writeHeapSnapshot(join(dir, 'server.heapsnapshot'));
  try {
    const snap = JSON.parse(readFileSync(file, 'utf8')) as HeapSnapshotJson;
    const fields = snap.snapshot.meta.node_fields;
    const types = snap.snapshot.meta.node_types[0];
    const width = fields.length;
    const iType = fields.indexOf('type');
    const iName = fields.indexOf('name');
    const iSize = fields.indexOf('self_size');
    const census: HeapCensus = {};
    const { nodes, strings } = snap;
    for (let i = 0; i < nodes.length; i += width) {
      const type = types[nodes[i + iType] as number] ?? '?';
      const name = type.includes('string')
        ? '(strings)'
        : type === 'code'
          ? '(code)'
          : (strings[nodes[i + iName] as number] ?? '?');
      const key = `${type}:${name}`;
      const entry = census[key] ?? [0, 0];
      entry[0] += 1;
      entry[1] += nodes[i + iSize] as number;
      census[key] = entry;
    }
    return census;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const gc = (globalThis as { gc?: () => void }).gc;

interface Running {
  readonly port: number;
  connections(): Promise<number>;
  /** CPU time (µs) and RSS (bytes) of helper processes that serve with this one (spiped -d). */
  readonly helpers?: { cpuUs(): number; rss(): number } | undefined;
}

type Handler = ServerOptions['handler'];

/** Counts the bytes of each message; an empty message is answered with the count. */
const bulkService = sessionHandler(async (session: Session): Promise<void> => {
  const counter = new BulkCounter();
  for await (const message of session) {
    const ack = counter.onMessage(message);
    if (ack !== undefined) session.send(ack);
  }
});

const SESAME_SERVICES: Record<BenchService, Handler> = {
  timestamp: timestampService,
  echo: echoService,
  bulk: bulkService,
};

function framedReply(service: BenchService): () => (m: Buffer) => Uint8Array | undefined {
  switch (service) {
    case 'timestamp':
      return () => (m) => timestampReply(m, new Date());
    case 'echo':
      return () => echoReply;
    case 'bulk':
      return () => {
        const counter = new BulkCounter();
        return (m) => counter.onMessage(m);
      };
  }
}

function presharedKey(key: BenchKey): PresharedKey {
  return { id: key.id, principal: 'bench', secret: Buffer.from(key.secretHex, 'hex') };
}

async function listen(server: Server): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: '127.0.0.1', port: 0, backlog: 4096 }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const a = server.address();
  if (a === null || typeof a !== 'object') throw new Error('server has no TCP address');
  return a.port;
}

function countOf(server: Server): () => Promise<number> {
  return () =>
    new Promise((resolve, reject) => server.getConnections((err, n) => (err ? reject(err) : resolve(n))));
}

async function start(args: ServerStartArgs): Promise<Running> {
  const { system, service, key } = args;
  const sesame = sesameSystem(system);
  if (sesame !== undefined) {
    selectCryptoBackend(sesame.crypto);
    const server = new SesameServer({
      listen: 'tcp://127.0.0.1:0',
      keys: [presharedKey(key)],
      handler: SESAME_SERVICES[service],
      requireForwardSecrecy: sesame.forwardSecrecy,
      maxConnections: 100_000,
      // Every load connection comes from 127.0.0.1: the per-source cap on handshakes in progress
      // (a defence against one flooding address) would refuse churn-256's legitimate load.
      maxHandshakesPerSource: 100_000,
    });
    const url = await server.listen();
    return {
      port: Number(url.slice(url.lastIndexOf(':') + 1)),
      connections: async () => server.connectionCount,
    };
  }
  const makeReply = framedReply(service);
  if (system === 'spiped') {
    const server = createNetServer({ noDelay: true }, (socket) => {
      socket.on('error', () => {});
      serveFrames(socket, makeReply());
    });
    const pipe = await startSpiped(await listen(server));
    return {
      port: pipe.port,
      connections: countOf(server),
      helpers: { cpuUs: () => pipe.serverCpuUs(), rss: () => pipe.serverRss() },
    };
  }
  if (system === 'raw' || system === 'raw-flights') {
    const serve = system === 'raw' ? serveFrames : serveFlights;
    const server = createNetServer({ noDelay: true }, (socket) => {
      socket.on('error', () => {});
      serve(socket, makeReply());
    });
    return { port: await listen(server), connections: countOf(server) };
  }
  if (system === 'secret-stream') {
    const { wrap } = await secretStream();
    const server = createNetServer({ noDelay: true }, (socket) => {
      socket.on('error', () => {});
      const stream = wrap(false, socket);
      stream.on('error', () => {});
      serveFrames(stream, makeReply());
    });
    return { port: await listen(server), connections: countOf(server) };
  }
  const psk = Buffer.from(key.secretHex, 'hex');
  const server = createTlsServer(
    {
      pskCallback: (_socket, identity) => (identity === key.id ? psk : null),
      ciphers: TLS_CIPHER,
      minVersion: TLS_VERSION,
      maxVersion: TLS_VERSION,
    },
    (socket) => {
      socket.setNoDelay(true);
      socket.on('error', () => {});
      serveFrames(socket, makeReply());
    },
  );
  server.on('tlsClientError', () => {});
  return { port: await listen(server), connections: countOf(server) };
}

let running: Running | undefined;

serveRequests<ServerCommands>({
  heapCensus: async () => heapCensus(),
  start: async (args) => {
    if (running !== undefined) throw new Error('server already started');
    running = await start(args);
    return { url: `tcp://127.0.0.1:${running.port}`, port: running.port };
  },
  snapshot: async ({ connections, waitMs = 5_000, gc: collect = false }) => {
    const r = running;
    if (r === undefined) throw new Error('server not started');
    const deadline = Date.now() + waitMs;
    let n = await r.connections();
    while (connections !== undefined && n !== connections && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 5));
      n = await r.connections();
    }
    const before = process.cpuUsage();
    const helperCpu = r.helpers?.cpuUs() ?? 0;
    if (collect && gc !== undefined) {
      gc();
      gc();
    }
    const after = collect ? process.cpuUsage() : before;
    const mem = process.memoryUsage();
    return {
      cpuUs: before.user + before.system + helperCpu,
      cpuAfterGcUs: after.user + after.system + helperCpu,
      rss: mem.rss + (r.helpers?.rss() ?? 0),
      heapUsed: mem.heapUsed,
      external: mem.external,
      arrayBuffers: mem.arrayBuffers,
      youngBytes:
        getHeapSpaceStatistics().find((sp) => sp.space_name === 'new_space')?.physical_space_size ?? 0,
      connections: n,
      timedOut: connections !== undefined && n !== connections,
    };
  },
});
