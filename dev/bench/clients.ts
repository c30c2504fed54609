/**
 * One client connection of each system under test, behind one small interface the load
 * generator drives. Sesame clients are the real `connect()`; the baselines frame messages with
 * a u32 length (framing.ts).
 */

import { once } from 'node:events';
import { connect as netConnect, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { type TLSSocket, connect as tlsConnect } from 'node:tls';
import { connect, type Session } from '../../src/index.js';
import { selectCryptoBackend } from '../../src/net/crypto-backend.js';
import { FrameReader, frame, frameHeader } from './framing.js';
import { secretStream } from './secret-stream.js';
import {
  type BenchKey,
  FLIGHT_FINISHED_BYTES,
  FLIGHT_HELLO_BYTES,
  type SystemName,
  sesameSystem,
  TLS_CIPHER,
  TLS_VERSION,
} from './systems.js';

export interface BenchClient {
  /** Send `message` and resolve with the next message from the server. */
  request(message: Buffer): Promise<Buffer>;
  /** Send `message` without waiting for a reply (call `writable()` before the next send). */
  send(message: Buffer): void;
  /** Resolves once the transport can take more (immediately unless it asked to drain). */
  writable(): Promise<void>;
  /** Close cleanly; resolves when the socket is closed. */
  close(): Promise<void>;
  destroy(): void;
}

/** What the first TLS connection negotiated (the bench prints it). */
export interface TlsCheck {
  readonly protocol: string | null;
  readonly cipher: string;
  readonly keyExchange: string;
  readonly peerCertificate: boolean;
  readonly sessionReused: boolean;
}

export interface Target {
  readonly system: SystemName;
  readonly host: string;
  readonly port: number;
  readonly key: BenchKey;
}

export let tlsCheck: TlsCheck | undefined;

/** Open one authenticated (for raw: plain) connection. */
export async function openClient(t: Target): Promise<BenchClient> {
  switch (t.system) {
    case 'sesame-fs':
    case 'sesame-psk':
    case 'sesame-fs-node':
    case 'sesame-psk-node':
      return sesameClient(t);
    case 'secret-stream':
      return framedClient(await secretStreamSocket(t));
    case 'raw':
    case 'spiped':
      return framedClient(await rawSocket(t));
    case 'raw-flights':
      return flightsClient(await rawSocket(t));
    case 'tls-psk':
      return framedClient(await tlsSocket(t));
  }
}

async function sesameClient(t: Target): Promise<BenchClient> {
  const sesame = sesameSystem(t.system);
  // One load process drives one system: its backend is the system's.
  selectCryptoBackend(sesame?.crypto ?? 'auto');
  const session: Session = await connect(`tcp://${t.host}:${t.port}`, {
    key: { id: t.key.id, principal: 'bench', secret: Buffer.from(t.key.secretHex, 'hex') },
    forwardSecrecy: sesame?.forwardSecrecy ?? true,
  });
  const socket = session.socket;
  return {
    request: (m) => session.request(m),
    send: (m) => session.send(m),
    writable: async () => {
      await Promise.resolve(); // the session flushes once per microtask
      if (socket.writableNeedDrain && !socket.destroyed) await once(socket, 'drain');
    },
    close: () => session.close(),
    destroy: () => session.destroy(),
  };
}

function rawSocket(t: Target): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = netConnect({ host: t.host, port: t.port, noDelay: true });
    s.once('connect', () => {
      s.off('error', reject);
      resolve(s);
    });
    s.once('error', reject);
  });
}

/** A secret-stream initiator over a new TCP connection, once its handshake has completed. */
async function secretStreamSocket(t: Target): Promise<Duplex> {
  const { wrap } = await secretStream();
  const socket = await rawSocket(t);
  const stream = wrap(true, socket);
  await new Promise<void>((resolve, reject) => {
    stream.once('connect', () => {
      stream.off('error', reject);
      resolve();
    });
    stream.once('error', reject);
  });
  return stream;
}

function tlsSocket(t: Target): Promise<TLSSocket> {
  const psk = Buffer.from(t.key.secretHex, 'hex');
  return new Promise((resolve, reject) => {
    const s = tlsConnect({
      host: t.host,
      port: t.port,
      pskCallback: () => ({ psk, identity: t.key.id }),
      ciphers: TLS_CIPHER,
      minVersion: TLS_VERSION,
      maxVersion: TLS_VERSION,
      checkServerIdentity: () => undefined,
    });
    s.once('secureConnect', () => {
      s.off('error', reject);
      s.setNoDelay(true);
      if (tlsCheck === undefined) {
        const eph = s.getEphemeralKeyInfo();
        tlsCheck = {
          protocol: s.getProtocol(),
          cipher: s.getCipher().standardName,
          keyExchange: eph !== null && 'name' in eph && typeof eph.name === 'string' ? eph.name : 'none',
          peerCertificate: Object.keys(s.getPeerCertificate()).length > 0,
          sessionReused: s.isSessionReused(),
        };
      }
      resolve(s);
    });
    s.once('error', reject);
  });
}

interface Waiter {
  resolve(m: Buffer): void;
  reject(e: Error): void;
}

/**
 * A `raw-flights` connection: the "handshake" (a ClientHello-sized request, its ServerHello-sized
 * answer, then a ClientFinished-sized frame on its own write) before it is handed out; `close()`
 * sends an empty frame and the end of the stream, and waits for the server's.
 */
async function flightsClient(socket: Socket): Promise<BenchClient> {
  const c = framedClient(socket, true);
  const sh = await c.request(Buffer.alloc(FLIGHT_HELLO_BYTES, 0x43));
  if (sh.length !== FLIGHT_HELLO_BYTES) throw new Error(`ServerHello of ${sh.length} bytes`);
  socket.write(frame(Buffer.alloc(FLIGHT_FINISHED_BYTES, 0x46)));
  return {
    ...c,
    close: () => {
      socket.end(frameHeader(0));
      return c.close();
    },
  };
}

/** `closeFrame`: the server ends with an empty frame (raw-flights), which is not a reply. */
function framedClient(socket: Duplex, closeFrame = false): BenchClient {
  const reader = new FrameReader();
  const waiters: Waiter[] = [];
  let failure: Error | undefined;
  const fail = (err: Error) => {
    failure ??= err;
    for (const w of waiters.splice(0)) w.reject(failure);
  };
  socket.on('data', (chunk: Buffer) => {
    try {
      reader.push(chunk, (m) => {
        if (closeFrame && m.length === 0 && waiters.length === 0) return;
        const w = waiters.shift();
        if (w === undefined) throw new Error('unexpected message from the server');
        w.resolve(m);
      });
    } catch (err) {
      fail(err as Error);
      socket.destroy();
    }
  });
  socket.on('error', (err) => fail(err));
  socket.on('close', () => fail(new Error('connection closed before the reply')));
  const closed = once(socket, 'close').then(() => {});
  return {
    request: (m) => {
      if (failure !== undefined) return Promise.reject(failure);
      const reply = new Promise<Buffer>((resolve, reject) => waiters.push({ resolve, reject }));
      socket.write(frame(m));
      return reply;
    },
    send: (m) => {
      // Header and payload in one writev, without copying the payload.
      socket.cork();
      socket.write(frameHeader(m.length));
      socket.write(m);
      socket.uncork();
    },
    writable: async () => {
      if (failure !== undefined) throw failure;
      if (socket.writableNeedDrain && !socket.destroyed) await once(socket, 'drain');
    },
    close: () => {
      socket.end();
      return closed;
    },
    destroy: () => socket.destroy(),
  };
}
