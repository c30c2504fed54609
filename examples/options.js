// Command-line options shared by the examples: --host, --port (0: any free port) and --digest.
// The examples print exactly what the seed's programs print on stdout; the real address goes to
// stderr, so that scripts can find a server started with --port 0.
import { parseArgs } from 'node:util';

/**
 * @param {string} defaultDigest
 * @returns {{ host: string, port: number, digest: string, url: string }}
 */
export function exampleOptions(defaultDigest = 'md5') {
  const { values } = parseArgs({
    options: {
      host: { type: 'string', default: '127.0.0.1' },
      port: { type: 'string', default: '9527' },
      digest: { type: 'string', default: defaultDigest },
    },
  });
  const host = values.host ?? '127.0.0.1';
  const port = Number(values.port);
  return { host, port, digest: values.digest ?? defaultDigest, url: `tcp://${host}:${port}` };
}

/** `('127.0.0.1', 53397)`: a peer address as Python prints a socketserver client_address. */
export function pythonAddress(info) {
  return `('${info.remoteAddress}', ${info.remotePort})`;
}
