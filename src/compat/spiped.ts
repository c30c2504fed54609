/**
 * The `spiped` profile: the protocol of Colin Percival's spiped (Tarsnap/spiped, DESIGN.md, with
 * proto/proto_crypt.c and proto/proto_handshake.c for what DESIGN.md leaves open), byte for byte,
 * so that either end of a spiped pipe can be replaced by Sesame.
 *
 * Handshake (both ends send their nonce at once; the client sends its DH value first):
 *
 *   K               = SHA256(key file)                    the whole file, every byte
 *   C -> S          nonce_C (32 random bytes)             S -> C: nonce_S (32 random bytes)
 *   dhmac_C||dhmac_S = PBKDF2-SHA256(K, nonce_C||nonce_S, 1 iteration, 64 bytes)
 *   C -> S          y_C || HMAC-SHA256(dhmac_C, y_C)      y = 2^x mod p (RFC 3526 group 14),
 *   S -> C          y_S || HMAC-SHA256(dhmac_S, y_S)      256 bytes big-endian; y = 1 without FS
 *   y_SC            = y_peer^x mod p (1 when this end sent y = 1)
 *   E_C||H_C||E_S||H_S = PBKDF2-SHA256(K, nonce_C||nonce_S||y_SC, 1 iteration, 128 bytes)
 *
 * Packets, one per 1..1024 plaintext bytes, 1060 bytes each, numbered from 0 per direction:
 *
 *   padded = M || zeros to 1024 || be32(len(M))
 *   P      = AES-256-CTR(E, padded; counter block be64(packet#) || be64(block#))
 *            || HMAC-SHA256(H, ciphertext || be64(packet#))
 *
 * Rules, as spiped applies them:
 * - A DH value whose MAC is wrong, or that is >= p, drops the connection (no announcement on the
 *   wire); with `requireForwardSecrecy` (spiped -g) a peer's y = 1 does too.
 * - The exponent is 2^258 + x for 32 random bytes x (libcperciva's crypto_dh.c); any exponent
 *   would interoperate, this one keeps x at 256 bits of entropy as DESIGN.md asks.
 * - A packet with a wrong MAC, or a length field of 0 or over 1024, fails the connection.
 * - A direction ends with the transport's end of stream (spiped shuts the write side down): an
 *   end on a packet boundary is a clean close, one inside a packet is ERR_TRUNCATED. Nothing on
 *   the wire tells a truncation at a packet boundary from a real end (see docs/profiles.md).
 * - Messages are not preserved: the peer sees a byte stream cut into packets of its own choosing.
 */

import {
  createCipheriv,
  createDiffieHellman,
  createHash,
  createHmac,
  getDiffieHellman,
  pbkdf2Sync,
} from 'node:crypto';
import { type SesameError, sesameError } from '../errors.js';
import { ByteQueue } from '../protocol/byte-queue.js';
import type { ConnectionEvent, SessionInfo } from '../protocol/channel.js';
import { CompatConnection, type Framing, type Randomness, type Role, sameBytes } from './common.js';

/** Bytes of each nonce. */
export const SPIPED_NONCE_BYTES = 32;
/** Bytes of a Diffie-Hellman value y (group 14: 2048 bits, big-endian). */
export const SPIPED_DH_BYTES = 256;
/** Bytes of y || HMAC-SHA256(dhmac, y). */
export const SPIPED_YH_BYTES = SPIPED_DH_BYTES + 32;
/** Most plaintext bytes in one packet. */
export const SPIPED_MAX_DATA_BYTES = 1024;
/** Bytes of every packet on the wire: 1024 + 4 (length) + 32 (MAC). */
export const SPIPED_PACKET_BYTES = SPIPED_MAX_DATA_BYTES + 4 + 32;
/** Bytes of the private exponent's random part. */
export const SPIPED_PRIVATE_BYTES = 32;
/** A key file with less than this many bytes cannot hold the 256 bits of entropy spiped asks for. */
export const SPIPED_MIN_KEY_FILE_BYTES = 32;

/** The RFC 3526 group 14 modulus, 256 bytes big-endian. */
const PRIME = getDiffieHellman('modp14').getPrime();
const PRIME_BIG = BigInt(`0x${PRIME.toString('hex')}`);
const ENCRYPTED_BYTES = SPIPED_MAX_DATA_BYTES + 4;

/** K = SHA256(key file): the protocol secret, from the key file's bytes exactly as stored. */
export function spipedKey(keyFile: Uint8Array): Buffer {
  return createHash('sha256').update(keyFile).digest();
}

/** The two DH-parameter MAC keys of one handshake. */
export interface SpipedDhmacKeys {
  /** dhmac_C: MACs the client's DH value. */
  readonly client: Buffer;
  /** dhmac_S: MACs the server's DH value. */
  readonly server: Buffer;
}

/** The two DH-parameter MAC keys: dk_1 = PBKDF2-SHA256(K, nonce_C || nonce_S, 1) split in two. */
export function spipedDhmac(K: Uint8Array, nonceC: Uint8Array, nonceS: Uint8Array): SpipedDhmacKeys {
  const dk1 = pbkdf2Sync(K, Buffer.concat([nonceC, nonceS]), 1, 64, 'sha256');
  return { client: dk1.subarray(0, 32), server: dk1.subarray(32, 64) };
}

/** y || HMAC-SHA256(dhmac, y): what one end sends in step 4/5. */
export function spipedSignedDh(y: Uint8Array, dhmac: Uint8Array): Buffer {
  return Buffer.concat([y, createHmac('sha256', dhmac).update(y).digest()]);
}

/** One direction's keys: E (AES-256) and H (HMAC-SHA256). */
export interface SpipedDirectionKeys {
  /** The AES-256-CTR key. */
  readonly encrypt: Buffer;
  /** The HMAC-SHA256 key. */
  readonly mac: Buffer;
}

/** The packet keys of both directions. */
export interface SpipedSessionKeys {
  /** E_C, H_C: what the client sends. */
  readonly client: SpipedDirectionKeys;
  /** E_S, H_S: what the server sends. */
  readonly server: SpipedDirectionKeys;
}

/** dk_2 = PBKDF2-SHA256(K, nonce_C || nonce_S || y_SC, 1), parsed as E_C || H_C || E_S || H_S. */
export function spipedSessionKeys(
  K: Uint8Array,
  nonceC: Uint8Array,
  nonceS: Uint8Array,
  ySC: Uint8Array,
): SpipedSessionKeys {
  const dk2 = pbkdf2Sync(K, Buffer.concat([nonceC, nonceS, ySC]), 1, 128, 'sha256');
  return {
    client: { encrypt: dk2.subarray(0, 32), mac: dk2.subarray(32, 64) },
    server: { encrypt: dk2.subarray(64, 96), mac: dk2.subarray(96, 128) },
  };
}

/** A 2048-bit big-endian value, left-padded. */
function fixed(bytes: Uint8Array): Buffer {
  const out = Buffer.alloc(SPIPED_DH_BYTES);
  out.set(
    bytes.subarray(Math.max(0, bytes.length - SPIPED_DH_BYTES)),
    SPIPED_DH_BYTES - Math.min(bytes.length, SPIPED_DH_BYTES),
  );
  return out;
}

/** The big-endian 1 a no-forward-secrecy end sends as y, and uses as y_SC. */
const ONE = fixed(Buffer.from([1]));

function isOne(y: Buffer): boolean {
  return y.equals(ONE);
}

/** 2^258 + x as a big-endian exponent (libcperciva's crypto_dh.c). */
function exponent(x: Uint8Array): Buffer {
  const e = Buffer.alloc(SPIPED_PRIVATE_BYTES + 1);
  e.set(x, 1);
  e[0] = 4; // 2^258 = 4 * 2^256
  return e;
}

function modPow(base: bigint, exp: bigint, mod: bigint): bigint {
  let result = 1n;
  let b = base % mod;
  let e = exp;
  while (e > 0n) {
    if ((e & 1n) === 1n) result = (result * b) % mod;
    b = (b * b) % mod;
    e >>= 1n;
  }
  return result;
}

/** One end's ephemeral Diffie-Hellman in group 14. */
export interface SpipedDhKeyPair {
  /** The public value y, 256 bytes big-endian. */
  readonly y: Buffer;
  /** y_peer raised to this end's exponent, mod p: y_SC, 256 bytes big-endian. */
  agree(peer: Buffer): Buffer;
}

/**
 * y = 2^(2^258 + x) mod p, and a function giving y_peer^(2^258 + x) mod p: the DH of one end with
 * forward secrecy, from 32 random bytes `x`.
 */
export function spipedDhKeyPair(x: Uint8Array): SpipedDhKeyPair {
  const e = exponent(x);
  const dh = createDiffieHellman(PRIME, 2);
  dh.setPrivateKey(e);
  const y = fixed(dh.generateKeys());
  return {
    y,
    agree(peer: Buffer): Buffer {
      try {
        return fixed(dh.computeSecret(peer));
      } catch {
        // OpenSSL refuses degenerate values (0, 1, p - 1) that spiped accepts: compute them as it does.
        const r = modPow(BigInt(`0x${peer.toString('hex')}`), BigInt(`0x${e.toString('hex')}`), PRIME_BIG);
        return fixed(Buffer.from(r.toString(16).padStart(2 * SPIPED_DH_BYTES, '0'), 'hex'));
      }
    },
  };
}

function counterBlock(packet: number): Buffer {
  const iv = Buffer.alloc(16);
  iv.writeUInt32BE(Math.floor(packet / 0x1_0000_0000), 0);
  iv.writeUInt32BE(packet >>> 0, 4);
  return iv;
}

function packetNumber(packet: number): Buffer {
  return counterBlock(packet).subarray(0, 8);
}

/** Seals one direction's plaintext into packets (packet numbers from 0). */
export class SpipedSealer {
  private readonly keys: SpipedDirectionKeys;
  private packet = 0;

  constructor(keys: SpipedDirectionKeys) {
    this.keys = keys;
  }

  /** One 1060-byte packet carrying 1..1024 bytes of `data`. */
  seal(data: Uint8Array): Buffer {
    if (data.length === 0 || data.length > SPIPED_MAX_DATA_BYTES) {
      throw sesameError(
        'ERR_INVALID_ARGUMENT',
        `a spiped packet carries 1 to 1024 bytes, not ${data.length}`,
      );
    }
    const padded = Buffer.alloc(ENCRYPTED_BYTES);
    padded.set(data, 0);
    padded.writeUInt32BE(data.length, SPIPED_MAX_DATA_BYTES);
    const out = Buffer.allocUnsafe(SPIPED_PACKET_BYTES);
    const cipher = createCipheriv('aes-256-ctr', this.keys.encrypt, counterBlock(this.packet));
    const n = cipher.update(padded).copy(out, 0);
    cipher.final().copy(out, n);
    const encrypted = out.subarray(0, ENCRYPTED_BYTES);
    createHmac('sha256', this.keys.mac)
      .update(encrypted)
      .update(packetNumber(this.packet))
      .digest()
      .copy(out, ENCRYPTED_BYTES);
    this.packet++;
    return out;
  }
}

/** Opens one direction's packets (packet numbers from 0). */
export class SpipedOpener {
  private readonly keys: SpipedDirectionKeys;
  private packet = 0;

  constructor(keys: SpipedDirectionKeys) {
    this.keys = keys;
  }

  /**
   * The plaintext of one 1060-byte packet.
   * @throws PeerError ERR_RECORD_DECRYPT (wrong MAC), ERR_RECORD_LENGTH (length field 0 or over 1024).
   */
  open(packet: Buffer): Buffer {
    const encrypted = packet.subarray(0, ENCRYPTED_BYTES);
    const mac = createHmac('sha256', this.keys.mac)
      .update(encrypted)
      .update(packetNumber(this.packet))
      .digest();
    if (!sameBytes(mac, packet.subarray(ENCRYPTED_BYTES, SPIPED_PACKET_BYTES))) {
      throw sesameError('ERR_RECORD_DECRYPT', `spiped packet ${this.packet} failed authentication`);
    }
    const decipher = createCipheriv('aes-256-ctr', this.keys.encrypt, counterBlock(this.packet));
    const plain = decipher.update(encrypted);
    const length = plain.readUInt32BE(SPIPED_MAX_DATA_BYTES);
    if (length === 0 || length > SPIPED_MAX_DATA_BYTES) {
      throw sesameError('ERR_RECORD_LENGTH', `spiped packet ${this.packet} has a length field of ${length}`);
    }
    this.packet++;
    return plain.subarray(0, length);
  }
}

/** The data phase: bytes in 1060-byte packets; a message is whatever one packet carried. */
class PacketFraming implements Framing {
  private readonly input = new ByteQueue();
  private readonly sealer: SpipedSealer;
  private readonly opener: SpipedOpener;

  constructor(sealer: SpipedSealer, opener: SpipedOpener) {
    this.sealer = sealer;
    this.opener = opener;
  }

  /** Bytes of a packet not complete yet (at most one packet's worth). */
  get bufferedBytes(): number {
    return this.input.length;
  }

  push(data: Buffer, events: ConnectionEvent[]): void {
    this.input.push(data);
    while (this.input.length >= SPIPED_PACKET_BYTES) {
      events.push({ type: 'message', data: this.opener.open(this.input.take(SPIPED_PACKET_BYTES)) });
    }
  }

  end(): void {
    if (this.input.length > 0) {
      throw sesameError(
        'ERR_TRUNCATED',
        `the stream ended ${this.input.length} bytes into a ${SPIPED_PACKET_BYTES}-byte spiped packet`,
      );
    }
  }

  encode(message: Uint8Array): Buffer[] {
    const out: Buffer[] = [];
    for (let at = 0; at < message.length; at += SPIPED_MAX_DATA_BYTES) {
      out.push(this.sealer.seal(message.subarray(at, at + SPIPED_MAX_DATA_BYTES)));
    }
    return out;
  }
}

/** Options of a {@link SpipedConnection}. */
export interface SpipedOptions {
  /** The key file's bytes, exactly as stored (K is their SHA-256). */
  readonly keyFile: Uint8Array;
  /** Randomness for the nonce and the private exponent. */
  readonly entropy: Randomness;
  /** Ephemeral Diffie-Hellman (default true); false sends y = 1, as `spiped -f`. */
  readonly forwardSecrecy?: boolean | undefined;
  /** Refuse a peer that sends y = 1 (as `spiped -g`); default false, as spiped. */
  readonly requireForwardSecrecy?: boolean | undefined;
}

type State = 'ExpectNonce' | 'ExpectDh';

/** One end of a spiped connection: `client` is `spiped -e`'s side, `server` is `spiped -d`'s. */
export class SpipedConnection extends CompatConnection {
  private K: Buffer;
  private readonly forwardSecrecy: boolean;
  private readonly requireForwardSecrecy: boolean;
  private readonly entropy: Randomness;
  private readonly nonce: Buffer;
  private state: State = 'ExpectNonce';
  private peerNonce: Buffer | undefined;
  private dhmac: SpipedDhmacKeys | undefined;
  private dh: SpipedDhKeyPair | undefined;

  /** @throws LocalError ERR_KEY_TOO_SHORT for an empty key file. */
  constructor(role: Role, options: SpipedOptions) {
    super(role, 'spiped');
    if (options.keyFile.length === 0)
      throw sesameError('ERR_KEY_TOO_SHORT', 'profile spiped: the key file is empty');
    this.K = spipedKey(options.keyFile);
    this.forwardSecrecy = options.forwardSecrecy ?? true;
    this.requireForwardSecrecy = options.requireForwardSecrecy ?? false;
    this.entropy = options.entropy;
    this.nonce = Buffer.from(this.entropy.bytes(SPIPED_NONCE_BYTES));
    // C1/S1: both ends send their nonce without waiting for the other's.
    this.queue(this.nonce);
  }

  /** spiped authenticates every packet, but defines no exporter: there is nothing to bind to. */
  override exportKeyingMaterial(_label: string, _context?: Uint8Array): Buffer {
    throw sesameError('ERR_INVALID_STATE', 'profile spiped defines no keying-material exporter');
  }

  protected stepHandshake(events: ConnectionEvent[]): boolean {
    if (this.state === 'ExpectNonce') {
      if (this.input.length < SPIPED_NONCE_BYTES) return false;
      const peer = this.input.take(SPIPED_NONCE_BYTES);
      if (peer.equals(this.nonce)) {
        throw sesameError('ERR_REFLECTED_MESSAGE', 'the peer sent our own nonce back');
      }
      this.peerNonce = peer;
      this.dhmac =
        this.role === 'client'
          ? spipedDhmac(this.K, this.nonce, peer)
          : spipedDhmac(this.K, peer, this.nonce);
      // C4: the client sends its DH value first; the server answers after checking it (S4, S5).
      if (this.role === 'client') this.sendDh(this.dhmac.client);
      this.state = 'ExpectDh';
      return true;
    }
    if (this.input.length < SPIPED_YH_BYTES) return false;
    const yh = this.input.take(SPIPED_YH_BYTES);
    const dhmac = this.dhmac as SpipedDhmacKeys;
    const y = this.checkPeerDh(yh, this.role === 'client' ? dhmac.server : dhmac.client);
    if (this.role === 'server') this.sendDh(dhmac.server);
    const ySC = this.dh === undefined ? ONE : this.dh.agree(y);
    const nonceC = this.role === 'client' ? this.nonce : (this.peerNonce as Buffer);
    const nonceS = this.role === 'client' ? (this.peerNonce as Buffer) : this.nonce;
    const keys = spipedSessionKeys(this.K, nonceC, nonceS, ySC);
    const [ours, theirs] = this.role === 'client' ? [keys.client, keys.server] : [keys.server, keys.client];
    const info: SessionInfo = {
      profile: 'spiped',
      keyId: undefined,
      principal: undefined,
      forwardSecrecy: this.dh !== undefined && !isOne(y),
      channelBinding: undefined,
    };
    this.dropHandshake();
    this.authenticate(new PacketFraming(new SpipedSealer(ours), new SpipedOpener(theirs)), events, info);
    return true;
  }

  protected endDuringHandshake(): SesameError {
    return this.role === 'client'
      ? sesameError(
          'ERR_AUTH_REFUSED',
          'the spiped server closed the connection during the handshake: the key differs, or it is not spiped',
        )
      : sesameError('ERR_TRUNCATED', 'spiped client hung up during the handshake');
  }

  protected override release(): void {
    super.release();
    this.dropHandshake();
  }

  /** S4/C5: y || h must carry the peer's MAC and y must be < p (and not 1 when FS is required). */
  private checkPeerDh(yh: Buffer, dhmac: Buffer): Buffer {
    const y = yh.subarray(0, SPIPED_DH_BYTES);
    const expected = createHmac('sha256', dhmac).update(y).digest();
    if (!sameBytes(expected, yh.subarray(SPIPED_DH_BYTES))) {
      throw this.role === 'server'
        ? sesameError(
            'ERR_AUTH_FAILED',
            "the spiped client's Diffie-Hellman value has a wrong MAC: the key differs",
          )
        : sesameError(
            'ERR_SERVER_AUTH_FAILED',
            "the spiped server's Diffie-Hellman value has a wrong MAC: the key differs",
          );
    }
    if (Buffer.compare(y, PRIME) >= 0) {
      throw sesameError(
        'ERR_BAD_KEY_SHARE',
        'the peer sent a Diffie-Hellman value not below the group modulus',
      );
    }
    if (this.requireForwardSecrecy && isOne(y)) {
      throw sesameError('ERR_FORWARD_SECRECY_REQUIRED', 'the peer does not use forward secrecy (spiped -f)');
    }
    return Buffer.from(y);
  }

  private sendDh(dhmac: Buffer): void {
    if (this.forwardSecrecy) {
      this.dh = spipedDhKeyPair(this.entropy.bytes(SPIPED_PRIVATE_BYTES));
      this.queue(spipedSignedDh(this.dh.y, dhmac));
    } else {
      this.queue(spipedSignedDh(ONE, dhmac));
    }
  }

  /** The handshake secrets are not needed once the packet keys exist. */
  private dropHandshake(): void {
    this.K.fill(0);
    this.dhmac?.client.fill(0);
    this.dhmac?.server.fill(0);
    this.dhmac = undefined;
    this.peerNonce = undefined;
    this.dh = undefined;
  }
}
