/**
 * Prometheus metrics for `sesame serve --metrics URL` (prom-client), served over HTTP at
 * `/metrics`. Names are prefixed `sesame_`; docs/operations.md lists them.
 *
 * Rules:
 * - Workers record into prom-client's default registry; with `--workers N` the primary serves
 *   the sum over all workers (prom-client's cluster aggregator), so one scrape sees the service.
 * - Only key ids, reason codes and results are labels: never principals' secrets, never peer
 *   addresses (unbounded label values would grow memory without bound).
 * - A refusal's reason is never finer than the wire's: "unknown key id" and "wrong key" are both
 *   counted as ERR_AUTH_FAILED, or any local scraper could probe which key ids exist, the oracle
 *   the protocol is designed not to have. The exact reason stays in the (rate-limited) log.
 * - This module (and prom-client with it) is loaded only by a process given `--metrics`: every
 *   other import of it is a type. Loaded, prom-client adds about 1.8 MB to the heap that lives as
 *   long as the process; in a small tunnel process that was enough to turn V8's young collections
 *   under bulk into full ones (docs/performance.md, "The heap a tunnel end starts with").
 */

import cluster from 'node:cluster';
import { createServer, type Server } from 'node:http';
import { AggregatorRegistry, Counter, Gauge, Histogram, type Registry, register } from 'prom-client';
import { type ErrorCode, sesameError } from '../errors.js';
import { parseAddress } from '../net/address.js';
import type { BaseServer, ServerStats } from '../net/base-server.js';

/** The instruments one server process records into. */
export interface Metrics {
  readonly handshakes: Counter<'result' | 'reason'>;
  readonly handshakeSeconds: Histogram;
  readonly reloads: Counter<'result'>;
}

let created: Metrics | undefined;

/** The forwarding pipes' instruments (`serve --forward` with `--metrics`). */
export interface PipeMetrics {
  readonly open: Gauge;
  readonly bytes: Counter<'direction'>;
  readonly targetErrors: Counter;
}

let pipeMetrics: PipeMetrics | undefined;

/** The pipe instruments, in prom-client's default registry (created once per process). */
export function pipeInstruments(): PipeMetrics {
  pipeMetrics ??= {
    open: new Gauge({ name: 'sesame_pipes_open', help: 'Forwarding pipes open now.' }),
    bytes: new Counter({
      name: 'sesame_pipe_bytes_total',
      help: 'Bytes forwarded to the target (to_target) and back from it (from_target).',
      labelNames: ['direction'],
    }),
    targetErrors: new Counter({
      name: 'sesame_pipe_target_errors_total',
      help: 'Connections to the target that failed (refused, unreachable, timed out).',
    }),
  };
  return pipeMetrics;
}

/** Record `server`'s events into the default registry (once per process). */
export function instrument(server: BaseServer): Metrics {
  const metrics = created ?? createMetrics(() => server.stats());
  if (created === undefined && cluster.isWorker) {
    // prom-client answers the primary's scrape requests only once an aggregator exists here.
    new AggregatorRegistry();
  }
  created = metrics;
  server.on('auth', (e) => {
    if (e.ok) {
      metrics.handshakes.inc({ result: 'ok', reason: '' });
      metrics.handshakeSeconds.observe(e.handshakeMs / 1000);
    } else {
      metrics.handshakes.inc({ result: 'refused', reason: metricReason(e.code) });
    }
  });
  return metrics;
}

/**
 * The reason label of a refusal: ERR_UNKNOWN_KEY is merged into ERR_AUTH_FAILED, so the metrics
 * do not tell which key ids exist (see the module header).
 */
export function metricReason(code: ErrorCode): ErrorCode {
  return code === 'ERR_UNKNOWN_KEY' ? 'ERR_AUTH_FAILED' : code;
}

function createMetrics(stats: () => ServerStats): Metrics {
  new Gauge({
    name: 'sesame_open_connections',
    help: 'Connections open now, in their handshake or authenticated.',
    collect() {
      this.set(stats().open);
    },
  });
  // Counters read from the server's own totals when scraped (reset, then the current value).
  new Counter({
    name: 'sesame_messages_total',
    help: 'Application messages received (in) and sent (out).',
    labelNames: ['direction'],
    collect() {
      const s = stats();
      this.reset();
      this.inc({ direction: 'in' }, s.messagesIn);
      this.inc({ direction: 'out' }, s.messagesOut);
    },
  });
  new Counter({
    name: 'sesame_bytes_total',
    help: 'Bytes received (in) and sent (out) on the wire.',
    labelNames: ['direction'],
    collect() {
      const s = stats();
      this.reset();
      this.inc({ direction: 'in' }, s.bytesIn);
      this.inc({ direction: 'out' }, s.bytesOut);
    },
  });
  return {
    handshakes: new Counter({
      name: 'sesame_handshakes_total',
      help: 'Handshakes by result (ok, refused) and refusal reason code.',
      labelNames: ['result', 'reason'],
    }),
    handshakeSeconds: new Histogram({
      name: 'sesame_handshake_duration_seconds',
      help: 'Time from accept to authenticated.',
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
    }),
    reloads: new Counter({
      name: 'sesame_keyring_reloads_total',
      help: 'Key ring reloads by result (ok, error).',
      labelNames: ['result'],
      // Every worker reloads the same change: the sum over workers would count it N times.
      aggregator: 'max',
    }),
  };
}

/** The registry to serve: this process's, or in a cluster primary the sum over its workers. */
export type MetricsSource =
  | { readonly kind: 'local'; readonly registry: Registry }
  | { readonly kind: 'cluster' };

/**
 * Serve `/metrics` on `url` (`tcp://HOST:PORT`; port 0 picks a free port). Resolves with the
 * `http://HOST:PORT/metrics` address.
 * @throws (rejects) LocalError ERR_INVALID_ADDRESS.
 */
export async function serveMetrics(
  url: string,
  source: MetricsSource,
): Promise<{ url: string; server: Server }> {
  const a = parseAddress(url);
  if (a.kind !== 'tcp')
    throw sesameError('ERR_INVALID_ADDRESS', `--metrics needs tcp://HOST:PORT, got ${url}`);
  const aggregator = source.kind === 'cluster' ? new AggregatorRegistry() : undefined;
  const server = createServer((req, res) => {
    const path = req.url?.split('?')[0];
    if (req.method === 'GET' && path === '/healthz') {
      // Up and answering: the process serves; readiness of the service is `listening` in the log.
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
      return;
    }
    if (req.method !== 'GET' || path !== '/metrics') {
      res.writeHead(404).end('not found\n');
      return;
    }
    const registry = source.kind === 'local' ? source.registry : undefined;
    const body = aggregator !== undefined ? aggregator.clusterMetrics() : (registry ?? register).metrics();
    body.then(
      (text) => res.writeHead(200, { 'content-type': (registry ?? register).contentType }).end(text),
      (err: unknown) => res.writeHead(500).end(`${String(err)}\n`),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(
        sesameError(
          err.code === 'EADDRINUSE' ? 'ERR_ADDRESS_IN_USE' : 'ERR_INVALID_ADDRESS',
          `cannot serve metrics on ${url}: ${err.code === 'EADDRINUSE' ? 'the address is in use' : err.message}`,
          { cause: err },
        ),
      ),
    );
    server.listen(a.port, a.host, () => resolve());
  });
  const bound = server.address();
  const port = typeof bound === 'object' && bound !== null ? bound.port : a.port;
  const host = a.host.includes(':') ? `[${a.host}]` : a.host;
  return { url: `http://${host}:${port}/metrics`, server };
}

export { register as defaultRegistry };
