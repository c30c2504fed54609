// The same kind of service on several processes (socketserver's ForkingMixIn): every worker runs
// the server on the shared address; SIGTERM to the primary shuts them all down gracefully.
//
//   node examples/service-workers.js [URL] [--keyring PATH] [--workers N]
import {
  defaultKeyringPath,
  ensureKeyring,
  presharedKeys,
  SesameServer,
  StreamRequestHandler,
  serveWorkers,
} from 'sesame';

class Pid extends StreamRequestHandler {
  respond(message) {
    return `${process.pid}: ${message.toString('utf8')}`;
  }
}

const url = process.argv[2] ?? 'tcp://127.0.0.1:9603';
const option = (name, fallback) => {
  const at = process.argv.indexOf(name);
  return at > 0 ? process.argv[at + 1] : fallback;
};
const { ring } = await ensureKeyring(option('--keyring', defaultKeyringPath()), { principal: 'default' });
const events = new (await import('node:events')).EventEmitter();
events.on('listening', (listening, n) => console.log(`listening on ${listening} (${n} workers)`));
process.exitCode = await serveWorkers({
  workers: Number(option('--workers', '2')),
  start: () => new SesameServer({ listen: url, keys: presharedKeys(ring), handler: Pid }),
  events,
});
