/**
 * The tunnel workload's floors: the least a pair of Node processes pays to carry a tunnel's bytes.
 *
 *   node plain-proxy.js TARGET_PORT                       plain: no cryptography at all
 *   node plain-proxy.js TARGET_PORT client|server SECRET  sealed: Sesame's records, nothing else
 *
 * Each listens on 127.0.0.1 (a free port), joins every connection to 127.0.0.1:TARGET_PORT both
 * ways (half-close carried, back-pressure by pausing the reader until the writer drains) and
 * prints `listening on tcp://127.0.0.1:PORT`.
 *
 * Sealed, the `client` end seals what it reads from its accepted connection into records
 * (src/protocol/records.ts, the crypto backend Sesame itself picks) and opens the records it reads
 * back; the `server` end does the same with its roles turned. SECRET (64 hex digits) is the
 * client-to-server traffic secret, and its bytes reversed the other direction's: there is no
 * handshake, no session, no message layer, no authenticated close and no key update, so this is
 * no protocol to deploy, only the cost of the record layer and the sockets alone.
 */

import { createConnection, createServer, type Socket } from 'node:net';
import { selectCryptoBackend } from '../../src/net/crypto-backend.js';
import { setCryptoBackend } from '../../src/protocol/backend.js';
import { ByteQueue } from '../../src/protocol/byte-queue.js';
import {
  MAX_RECORD_PAYLOAD_BYTES,
  RECORD_HEADER_BYTES,
  RECORD_MESSAGE,
} from '../../src/protocol/constants.js';
import { checkRecordLength, RecordOpener, RecordSealer } from '../../src/protocol/records.js';

const [portArg, role, secretHex] = process.argv.slice(2);
const targetPort = Number(portArg);
const sealed = role === 'client' || role === 'server';
if (
  !Number.isInteger(targetPort) ||
  targetPort <= 0 ||
  (role !== undefined && (!sealed || !/^[0-9a-f]{64}$/.test(secretHex ?? '')))
) {
  process.stderr.write('usage: plain-proxy TARGET_PORT [client|server SECRET_HEX]\n');
  process.exit(2);
}
const up = Buffer.from(secretHex ?? '', 'hex');
const down = Buffer.from(up).reverse();
if (sealed) setCryptoBackend(selectCryptoBackend('auto'));

/** Copy `from` to `to` as it comes: each chunk is `transform`ed, the FIN follows the last one. */
function carry(from: Socket, to: Socket, transform: (chunk: Buffer, out: Buffer[]) => void): void {
  const out: Buffer[] = [];
  const resume = (): void => {
    from.resume();
  };
  from.on('data', (chunk: Buffer) => {
    transform(chunk, out);
    if (out.length === 0) return;
    let ok = true;
    if (out.length > 1) to.cork();
    for (const b of out) ok = to.write(b);
    if (out.length > 1) to.uncork();
    out.length = 0;
    if (!ok) {
      from.pause();
      to.once('drain', resume);
    }
  });
  from.on('end', () => to.end());
}

const asIs = (chunk: Buffer, out: Buffer[]): void => {
  out.push(chunk);
};

/** Seal each chunk into records of at most a full payload. */
function sealing(secret: Buffer): (chunk: Buffer, out: Buffer[]) => void {
  const sealer = new RecordSealer(secret);
  return (chunk, out) => {
    for (let at = 0; at < chunk.length; at += MAX_RECORD_PAYLOAD_BYTES)
      out.push(sealer.seal(RECORD_MESSAGE, chunk.subarray(at, at + MAX_RECORD_PAYLOAD_BYTES)));
  };
}

/** Open the whole records the chunks complete; a record that fails to open throws (and ends the process). */
function opening(secret: Buffer): (chunk: Buffer, out: Buffer[]) => void {
  const opener = new RecordOpener(secret);
  const queue = new ByteQueue();
  return (chunk, out) => {
    queue.push(chunk);
    while (queue.length >= RECORD_HEADER_BYTES) {
      const header = queue.peek(RECORD_HEADER_BYTES);
      const body = ((header[0] as number) << 8) | (header[1] as number);
      checkRecordLength(body);
      if (queue.length < RECORD_HEADER_BYTES + body) break;
      out.push(opener.open(queue.take(RECORD_HEADER_BYTES + body)).subarray(1));
    }
  };
}

const server = createServer({ allowHalfOpen: true, noDelay: true }, (local) => {
  const remote = createConnection({
    port: targetPort,
    host: '127.0.0.1',
    allowHalfOpen: true,
    noDelay: true,
  });
  const end = (): void => {
    local.destroy();
    remote.destroy();
  };
  local.on('error', end);
  remote.on('error', end);
  if (!sealed) {
    carry(local, remote, asIs);
    carry(remote, local, asIs);
  } else if (role === 'client') {
    carry(local, remote, sealing(up));
    carry(remote, local, opening(down));
  } else {
    carry(local, remote, opening(up));
    carry(remote, local, sealing(down));
  }
});
server.listen(0, '127.0.0.1', () => {
  const a = server.address();
  const port = typeof a === 'object' && a !== null ? a.port : 0;
  process.stdout.write(`listening on tcp://127.0.0.1:${port}\n`);
});
process.on('SIGTERM', () => process.exit(0));
