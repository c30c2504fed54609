/**
 * One end of a native Sesame connection, without I/O ("bring your own sockets").
 *
 * Three calls drive it: `receive(bytes)` returns the events those bytes complete, `send(message)`
 * (and `ping`, `updateKeys`, `close`) queue records, and `takeOutput()` hands over the bytes to
 * write. The clock and the randomness are passed in. Nothing here touches a socket or a timer.
 *
 * States, named for what they expect next:
 *
 *   client: ExpectServerHello -> Open -> (Closed)
 *   server: ExpectClientHello -> ExpectClientFinished -> Open -> (Closed)
 *   any:    -> Failed (sticky: every later call throws the same error)
 *
 * Rules:
 * - The server checks mac1 before any costly work, and an unknown key id runs through the same
 *   steps with a dummy key, so the peer sees the same thing (a close) for both.
 * - `receive` never throws for bad input: it returns the events before the failure followed by
 *   one `error` event, and the connection is failed from then on. The transport must then close.
 * - Application data flows only in Open; the server emits nothing before the client has proved
 *   it holds the key (ClientFinished verified).
 * - An authenticated close record ends a direction; a transport EOF without one is ERR_TRUNCATED.
 */

import { type ErrorCode, isSesameError, type SesameError, sesameError } from '../errors.js';
import { ByteQueue } from './byte-queue.js';
import type { ConnectionEvent, ProtocolConnection, SessionInfo } from './channel.js';
import {
  DEFAULT_KEY_UPDATE_AFTER_RECORDS,
  DEFAULT_MAX_CLOCK_SKEW_MS,
  DEFAULT_MAX_MESSAGE_BYTES,
  DEFAULT_REPLAY_CACHE_ENTRIES,
  FINISHED_BYTES,
  FLAG_X25519,
  HANDSHAKE_HEADER_BYTES,
  MAC1_BYTES,
  MAX_PING_PAYLOAD_BYTES,
  MAX_RECORD_PAYLOAD_BYTES,
  MSG_CLIENT_FINISHED,
  MSG_CLIENT_HELLO,
  MSG_SERVER_HELLO,
  NONCE_BYTES,
  PSK_MIN_BYTES,
  RECORD_CLOSE,
  RECORD_FRAGMENT,
  RECORD_HEADER_BYTES,
  RECORD_KEY_UPDATE,
  RECORD_MESSAGE,
  RECORD_PING,
  RECORD_PONG,
} from './constants.js';
import {
  clientFinished,
  exportKeyingMaterial,
  handshakeSecret,
  type PskSecrets,
  pskSecrets,
  serverFinished,
  sessionSecrets,
} from './key-schedule.js';
import {
  decodeClientFinished,
  decodeClientHello,
  decodeServerHello,
  encodeClientFinished,
  encodeClientHello,
  encodeServerHello,
  mac1Input,
  parseHeader,
  withoutTrailer,
} from './messages.js';
import {
  constantTimeEqual,
  type Entropy,
  hmacSha256,
  sha256,
  type X25519KeyPair,
  x25519,
} from './primitives.js';
import { checkRecordLength, RecordOpener, RecordSealer } from './records.js';
import { ReplayCache } from './replay-cache.js';

/** A pre-shared key as the protocol sees it. */
export interface PresharedKey {
  /** 16 lowercase hex characters (8 bytes on the wire). */
  readonly id: string;
  /** Who holds the key; reported to the application, never sent. */
  readonly principal: string;
  /** At least PSK_MIN_BYTES (32) bytes. */
  readonly secret: Uint8Array;
  /** When true, a server refuses the key (ERR_KEY_REVOKED). */
  readonly revoked?: boolean | undefined;
  /** A server refuses the key before this instant (ERR_KEY_NOT_YET_VALID). */
  readonly notBefore?: Date | undefined;
  /** A server refuses the key from this instant on (ERR_KEY_EXPIRED). */
  readonly notAfter?: Date | undefined;
}

/** Options shared by both roles. */
export interface CommonOptions {
  /** Randomness and ephemeral keys (use `systemEntropy` outside tests). */
  readonly entropy: Entropy;
  /** Wall clock in milliseconds since the epoch. */
  readonly now: () => number;
  /** Largest message accepted after reassembly (default 16 MiB). */
  readonly maxMessageBytes?: number | undefined;
  /** Most records sealed under one key, the key update included (default 2^24). */
  readonly keyUpdateAfterRecords?: number | undefined;
}

/** Options of a {@link ClientConnection}. */
export interface ClientOptions extends CommonOptions {
  /** The key to authenticate with: a well-formed id and a secret of at least 32 bytes. */
  readonly key: PresharedKey;
  /** Ephemeral X25519 for forward secrecy (default true). */
  readonly forwardSecrecy?: boolean | undefined;
}

/** Options of a {@link ServerContext}, and so of every {@link ServerConnection} made from it. */
export interface ServerOptions extends CommonOptions {
  /**
   * The accepted keys; secrets under 32 bytes are left out (refused as unknown). Replace them
   * later with {@link ServerContext.setKeys}.
   */
  readonly keys: Iterable<PresharedKey>;
  /** Refuse clients that do not use ephemeral X25519 (default true). */
  readonly requireForwardSecrecy?: boolean | undefined;
  /** How far a ClientHello's timestamp may be from `now()` (default 120 s). */
  readonly maxClockSkewMs?: number | undefined;
  /** Capacity of the replay cache (default 100,000 nonces). */
  readonly replayCacheEntries?: number | undefined;
}

const KEY_ID_PATTERN = /^[0-9a-f]{16}$/;

function checkKeyId(id: string): void {
  if (!KEY_ID_PATTERN.test(id)) {
    throw sesameError(
      'ERR_INVALID_ARGUMENT',
      `key id ${JSON.stringify(id)} is not 16 lowercase hex characters`,
    );
  }
}

/** Why a key cannot be used now, as an error code, or undefined when it can. */
export function keyRefusal(key: PresharedKey, nowMs: number): ErrorCode | undefined {
  if (key.revoked === true) return 'ERR_KEY_REVOKED';
  if (key.notAfter !== undefined && nowMs >= key.notAfter.getTime()) return 'ERR_KEY_EXPIRED';
  if (key.notBefore !== undefined && nowMs < key.notBefore.getTime()) return 'ERR_KEY_NOT_YET_VALID';
  return undefined;
}

interface ServerKey {
  readonly key: PresharedKey;
  readonly secrets: PskSecrets;
}

/**
 * State a server shares across its connections: the keys (with their per-key secrets computed
 * once), the replay cache and the policy. Swap keys at run time with {@link ServerContext.setKeys}.
 */
export class ServerContext {
  /** The options the context was made with. */
  readonly options: ServerOptions;
  /**
   * Nonces of recent authentic ClientHellos, to refuse replays.
   * @internal
   */
  readonly replayCache: ReplayCache;
  /**
   * Stands in for unknown key ids so that they cost the same work as known ones.
   * @internal
   */
  readonly dummy: PskSecrets;
  private keys = new Map<string, ServerKey>();

  /** @throws LocalError ERR_INVALID_ARGUMENT for a malformed key id. */
  constructor(options: ServerOptions) {
    this.options = options;
    this.replayCache = new ReplayCache(options.replayCacheEntries ?? DEFAULT_REPLAY_CACHE_ENTRIES);
    this.dummy = pskSecrets(options.entropy.bytes(32));
    this.setKeys(options.keys);
  }

  /**
   * Replace the accepted keys. Keys shorter than 256 bits are left out (they are refused as
   * unknown); open connections are not affected.
   * @throws LocalError ERR_INVALID_ARGUMENT for a malformed key id.
   */
  setKeys(keys: Iterable<PresharedKey>): void {
    const next = new Map<string, ServerKey>();
    for (const key of keys) {
      checkKeyId(key.id);
      if (key.secret.length < PSK_MIN_BYTES) continue;
      next.set(key.id, { key, secrets: pskSecrets(key.secret) });
    }
    this.keys = next;
  }

  /** @internal */
  lookup(id: string): ServerKey | undefined {
    return this.keys.get(id);
  }
}

type State = 'ExpectServerHello' | 'ExpectClientHello' | 'ExpectClientFinished' | 'Open' | 'Failed';

/** The parts both roles share: input buffering, the record layer, sticky failure. */
abstract class Connection implements ProtocolConnection {
  protected state: State;
  protected readonly input = new ByteQueue();
  private output: Buffer[] = [];
  private failure: SesameError | undefined;
  private sealer: RecordSealer | undefined;
  private opener: RecordOpener | undefined;
  private exporter: Buffer | undefined;
  private pendingBody = -1; // body length of the record being received, once its header is read
  private fragments: Buffer[] = [];
  private fragmentBytes = 0;
  private closeSent = false;
  private closeReceived = false;
  protected readonly maxMessageBytes: number;
  private readonly keyUpdateAfter: number;
  /** Set when the handshake completes. */
  session: SessionInfo | undefined;

  protected constructor(
    protected readonly common: CommonOptions,
    initial: State,
  ) {
    this.state = initial;
    this.maxMessageBytes = common.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
    this.keyUpdateAfter = common.keyUpdateAfterRecords ?? DEFAULT_KEY_UPDATE_AFTER_RECORDS;
  }

  /** Whether the handshake has completed and the connection has not failed. */
  get isOpen(): boolean {
    return this.state === 'Open';
  }

  /** The sticky error, once failed. */
  get error(): SesameError | undefined {
    return this.failure;
  }

  /** Whether this end has sent its close record. */
  get closed(): boolean {
    return this.closeSent;
  }

  /** Whether the peer has sent its close record. */
  get peerClosed(): boolean {
    return this.closeReceived;
  }

  /** Nothing exists before input: the handshake has not started on the wire. */
  start(): ConnectionEvent[] {
    return [];
  }

  /**
   * Feed received bytes; returns the events they complete, in order. On bad input the last event
   * is `error` and the connection is failed. The connection keeps `data` (without copying) until
   * the records in it are complete: do not change or reuse the buffer after passing it in (Node
   * sockets hand out a fresh buffer for every read).
   * @throws SesameError the sticky error when the connection had already failed.
   */
  receive(data: Uint8Array): ConnectionEvent[] {
    this.throwIfFailed();
    this.input.push(data);
    const events: ConnectionEvent[] = [];
    try {
      this.process(events);
    } catch (err) {
      events.push({ type: 'error', error: this.fail(err) });
    }
    return events;
  }

  /**
   * The transport reached end of input. Returns nothing after the peer's authenticated close,
   * else one `error` event (ERR_TRUNCATED; ERR_AUTH_REFUSED for a client mid-handshake).
   * @throws SesameError the sticky error when the connection had already failed.
   */
  receiveEnd(): ConnectionEvent[] {
    this.throwIfFailed();
    if (this.closeReceived && this.input.length === 0) return [];
    return [{ type: 'error', error: this.fail(this.endError()) }];
  }

  /**
   * Queue `message` for sending, fragmented into records of at most 16 KiB.
   * @throws LocalError ERR_INVALID_STATE before the handshake completes, ERR_CLOSED after close().
   */
  send(message: Uint8Array): void {
    this.checkCanSend();
    let at = 0;
    while (message.length - at > MAX_RECORD_PAYLOAD_BYTES) {
      this.seal(RECORD_FRAGMENT, message.subarray(at, at + MAX_RECORD_PAYLOAD_BYTES));
      at += MAX_RECORD_PAYLOAD_BYTES;
    }
    this.seal(RECORD_MESSAGE, at === 0 ? message : message.subarray(at));
  }

  /** Queue a ping; the peer answers with a pong carrying the same payload (at most 64 bytes). */
  ping(payload: Uint8Array = Buffer.alloc(0)): void {
    this.checkCanSend();
    if (payload.length > MAX_PING_PAYLOAD_BYTES) {
      throw sesameError('ERR_INVALID_ARGUMENT', `ping payload over ${MAX_PING_PAYLOAD_BYTES} bytes`);
    }
    this.seal(RECORD_PING, payload);
  }

  /** Move this direction to the next traffic key; with `requestPeer`, ask the peer to do the same. */
  updateKeys(requestPeer = false): void {
    this.checkCanSend();
    this.sendKeyUpdate(requestPeer);
  }

  /** Queue the authenticated close record. Idempotent; nothing can be sent afterwards. */
  close(): void {
    this.throwIfFailed();
    if (this.closeSent || this.state !== 'Open') return;
    this.seal(RECORD_CLOSE, Buffer.alloc(0));
    this.closeSent = true;
  }

  /** Whether bytes are waiting to be written. */
  get hasOutput(): boolean {
    return this.output.length > 0;
  }

  /** The bytes to write, in order; the queue is emptied. */
  takeOutput(): Buffer[] {
    const out = this.output;
    this.output = [];
    return out;
  }

  /**
   * Keying material for the application, bound to this connection (same value at both ends).
   * @throws LocalError ERR_INVALID_STATE before the handshake completes, ERR_INVALID_ARGUMENT for a
   *   label containing U+0000.
   */
  exportKeyingMaterial(label: string, context: Uint8Array = Buffer.alloc(0)): Buffer {
    if (this.exporter === undefined) throw sesameError('ERR_INVALID_STATE', 'handshake not complete');
    // The label is terminated by a zero byte, so it must not contain one (no two inputs collide).
    if (label.includes('\u0000'))
      throw sesameError('ERR_INVALID_ARGUMENT', 'an exporter label must not contain U+0000');
    return exportKeyingMaterial(this.exporter, label, context);
  }

  /**
   * Fail the connection from outside (a timeout, a socket error). Returns the sticky error: the
   * first failure wins.
   */
  fail(err: unknown): SesameError {
    if (this.failure !== undefined) return this.failure;
    const error = isSesameError(err)
      ? err
      : sesameError('ERR_INVALID_STATE', `internal error: ${String(err)}`, { cause: err });
    this.failure = error;
    this.state = 'Failed';
    this.input.clear();
    this.fragments = [];
    this.sealer = undefined;
    this.opener = undefined;
    return error;
  }

  protected queue(bytes: Buffer): void {
    this.output.push(bytes);
  }

  /** Step the handshake with the bytes buffered; false when more bytes are needed. */
  protected abstract stepHandshake(events: ConnectionEvent[]): boolean;

  protected abstract endError(): SesameError;

  /** Install traffic keys and enter Open. */
  protected establish(
    hs: Buffer,
    transcript: Buffer[],
    isClient: boolean,
    session: Omit<SessionInfo, 'channelBinding' | 'profile'>,
    events: ConnectionEvent[],
  ): void {
    const secrets = sessionSecrets(hs, sha256(...transcript));
    hs.fill(0);
    this.sealer = new RecordSealer(isClient ? secrets.c2s : secrets.s2c);
    this.opener = new RecordOpener(isClient ? secrets.s2c : secrets.c2s);
    this.exporter = secrets.exporter;
    // Every field named, in one order: an object spread here would give each connection's
    // SessionInfo a hidden class of its own (memory per connection, megamorphic reads).
    this.session = {
      profile: 'native',
      keyId: session.keyId,
      principal: session.principal,
      forwardSecrecy: session.forwardSecrecy,
      channelBinding: exportKeyingMaterial(secrets.exporter, 'channel binding', Buffer.alloc(0)),
    };
    this.state = 'Open';
    events.push({ type: 'established', session: this.session });
  }

  private process(events: ConnectionEvent[]): void {
    while (this.state !== 'Open') {
      if (!this.stepHandshake(events)) return;
    }
    const opener = this.opener as RecordOpener;
    for (;;) {
      if (this.closeReceived) {
        if (this.input.length > 0) throw sesameError('ERR_DATA_AFTER_CLOSE', 'data after the close record');
        return;
      }
      if (this.pendingBody < 0) {
        if (this.input.length < RECORD_HEADER_BYTES) return;
        const length = this.input.peek(RECORD_HEADER_BYTES).readUInt16BE(0);
        checkRecordLength(length);
        this.pendingBody = length;
      }
      if (this.input.length < RECORD_HEADER_BYTES + this.pendingBody) return;
      const record = this.input.take(RECORD_HEADER_BYTES + this.pendingBody);
      this.pendingBody = -1;
      const { type, payload } = opener.open(
        record.subarray(0, RECORD_HEADER_BYTES),
        record.subarray(RECORD_HEADER_BYTES),
      );
      this.dispatch(type, payload, opener, events);
    }
  }

  private dispatch(type: number, payload: Buffer, opener: RecordOpener, events: ConnectionEvent[]): void {
    switch (type) {
      case RECORD_MESSAGE:
      case RECORD_FRAGMENT: {
        if (type === RECORD_FRAGMENT && payload.length !== MAX_RECORD_PAYLOAD_BYTES) {
          throw sesameError('ERR_MALFORMED_MESSAGE', 'a fragment record must carry a full 16 KiB payload');
        }
        const total = this.fragmentBytes + payload.length;
        if (total > this.maxMessageBytes) {
          throw sesameError('ERR_MESSAGE_TOO_LARGE', `message over the ${this.maxMessageBytes}-byte limit`);
        }
        if (type === RECORD_FRAGMENT) {
          this.fragments.push(payload);
          this.fragmentBytes = total;
        } else if (this.fragments.length === 0) {
          events.push({ type: 'message', data: payload });
        } else {
          this.fragments.push(payload);
          const data = Buffer.concat(this.fragments, total);
          this.fragments = [];
          this.fragmentBytes = 0;
          events.push({ type: 'message', data });
        }
        return;
      }
      case RECORD_CLOSE:
        if (payload.length !== 0 || this.fragments.length !== 0) {
          throw sesameError('ERR_MALFORMED_MESSAGE', 'close record with a payload or inside a message');
        }
        this.closeReceived = true;
        events.push({ type: 'close' });
        return;
      case RECORD_PING:
        if (payload.length > MAX_PING_PAYLOAD_BYTES)
          throw sesameError('ERR_MALFORMED_MESSAGE', 'ping payload too long');
        if (!this.closeSent) this.seal(RECORD_PONG, payload);
        events.push({ type: 'ping', payload });
        return;
      case RECORD_PONG:
        if (payload.length > MAX_PING_PAYLOAD_BYTES)
          throw sesameError('ERR_MALFORMED_MESSAGE', 'pong payload too long');
        events.push({ type: 'pong', payload });
        return;
      case RECORD_KEY_UPDATE: {
        const request = payload[0];
        if (payload.length !== 1 || (request !== 0 && request !== 1)) {
          throw sesameError('ERR_MALFORMED_MESSAGE', 'malformed key update record');
        }
        opener.update();
        if (request === 1 && !this.closeSent) this.sendKeyUpdate(false);
        return;
      }
      default:
        throw sesameError('ERR_RECORD_TYPE', `unknown record type ${type}`);
    }
  }

  private sendKeyUpdate(requestPeer: boolean): void {
    const sealer = this.sealer as RecordSealer;
    this.queue(sealer.seal(RECORD_KEY_UPDATE, Buffer.of(requestPeer ? 1 : 0)));
    sealer.update();
  }

  private seal(type: number, payload: Uint8Array): void {
    const sealer = this.sealer as RecordSealer;
    // The key update itself is the last record under the old key: at most keyUpdateAfter each.
    if (sealer.seq >= this.keyUpdateAfter - 1) this.sendKeyUpdate(false);
    this.queue(sealer.seal(type, payload));
  }

  private checkCanSend(): void {
    this.throwIfFailed();
    if (this.state !== 'Open') throw sesameError('ERR_INVALID_STATE', 'handshake not complete');
    if (this.closeSent) throw sesameError('ERR_CLOSED', 'connection closed for sending');
  }

  private throwIfFailed(): void {
    if (this.failure !== undefined) throw this.failure;
  }
}

/** The client end: sends ClientHello at construction. */
export class ClientConnection extends Connection {
  private readonly key: PresharedKey;
  private readonly flags: number;
  private readonly clientHello: Buffer;
  private readonly nonce: Buffer;
  private readonly early: Buffer;
  private ephemeral: X25519KeyPair | undefined;

  /**
   * @throws LocalError ERR_KEY_TOO_SHORT for a key under 256 bits, ERR_INVALID_ARGUMENT for a
   *   malformed key id.
   */
  constructor(options: ClientOptions) {
    super(options, 'ExpectServerHello');
    const key = options.key;
    checkKeyId(key.id);
    if (key.secret.length < PSK_MIN_BYTES) {
      throw sesameError(
        'ERR_KEY_TOO_SHORT',
        `key ${key.id} is ${key.secret.length * 8} bits; at least 256 are required`,
      );
    }
    this.key = key;
    const fs = options.forwardSecrecy ?? true;
    this.flags = fs ? FLAG_X25519 : 0;
    this.nonce = options.entropy.bytes(NONCE_BYTES);
    this.ephemeral = fs ? options.entropy.x25519() : undefined;
    const hello = encodeClientHello({
      flags: this.flags,
      keyId: Buffer.from(key.id, 'hex'),
      // Whole milliseconds, never negative, whatever clock the caller passes in.
      timestampMs: Math.max(0, Math.floor(options.now())),
      nonce: this.nonce,
      share: this.ephemeral?.publicKey,
    });
    const { early, gate } = pskSecrets(key.secret);
    this.early = early;
    hmacSha256(gate, mac1Input(hello)).copy(hello, hello.length - MAC1_BYTES, 0, MAC1_BYTES);
    this.clientHello = hello;
    this.queue(hello);
  }

  protected stepHandshake(events: ConnectionEvent[]): boolean {
    if (this.input.length < HANDSHAKE_HEADER_BYTES) return false;
    const { flags, size } = parseHeader(this.input.peek(HANDSHAKE_HEADER_BYTES), MSG_SERVER_HELLO);
    if (flags !== this.flags)
      throw sesameError('ERR_MALFORMED_MESSAGE', 'ServerHello flags differ from ClientHello');
    if (this.input.length < size) return false;
    const bytes = this.input.take(size);
    const sh = decodeServerHello(bytes, flags);
    // Refuse our own values sent back at us (reflection).
    if (
      constantTimeEqual(sh.nonce, this.nonce) ||
      (sh.share !== undefined && constantTimeEqual(sh.share, this.ephemeral?.publicKey ?? Buffer.alloc(0)))
    ) {
      throw sesameError('ERR_REFLECTED_MESSAGE', 'ServerHello echoes the client nonce or key share');
    }
    const shared = this.agree(sh.share);
    const hs = handshakeSecret(this.early, shared);
    const th1 = sha256(this.clientHello, withoutTrailer(bytes, FINISHED_BYTES));
    if (!constantTimeEqual(serverFinished(hs, th1), sh.finished)) {
      throw sesameError('ERR_SERVER_AUTH_FAILED', 'the server did not prove it holds the key');
    }
    const cf = encodeClientFinished(flags, clientFinished(hs, sha256(this.clientHello, bytes)));
    this.queue(cf);
    this.establish(
      hs,
      [this.clientHello, bytes, cf],
      true,
      { keyId: this.key.id, principal: this.key.principal, forwardSecrecy: shared !== undefined },
      events,
    );
    return true;
  }

  protected endError(): SesameError {
    return this.state === 'Open'
      ? sesameError('ERR_TRUNCATED', 'connection ended without a close record')
      : sesameError(
          'ERR_AUTH_REFUSED',
          'the server closed the connection during the handshake: key refused or server unavailable',
        );
  }

  private agree(share: Buffer | undefined): Buffer | undefined {
    const eph = this.ephemeral;
    if (eph === undefined || share === undefined) return undefined;
    this.ephemeral = undefined;
    try {
      return x25519(eph.privateKey, share);
    } catch (cause) {
      throw sesameError('ERR_BAD_KEY_SHARE', 'invalid server key share', { cause });
    }
  }
}

/** The server end: waits for ClientHello. */
export class ServerConnection extends Connection {
  private readonly ctx: ServerContext;
  private clientHello: Buffer | undefined;
  private serverHello: Buffer | undefined;
  private hs: Buffer | undefined;
  private key: PresharedKey | undefined;
  private forwardSecrecy = false;

  constructor(ctx: ServerContext) {
    super(ctx.options, 'ExpectClientHello');
    this.ctx = ctx;
  }

  /** The key id the client named, once its ClientHello authenticated. */
  get keyId(): string | undefined {
    return this.key?.id;
  }

  protected stepHandshake(events: ConnectionEvent[]): boolean {
    if (this.input.length < HANDSHAKE_HEADER_BYTES) return false;
    if (this.state === 'ExpectClientHello') {
      const { flags, size } = parseHeader(this.input.peek(HANDSHAKE_HEADER_BYTES), MSG_CLIENT_HELLO);
      if (this.input.length < size) return false;
      this.consumeClientHello(this.input.take(size), flags);
      return true;
    }
    const { size } = parseHeader(this.input.peek(HANDSHAKE_HEADER_BYTES), MSG_CLIENT_FINISHED);
    if (this.input.length < size) return false;
    this.consumeClientFinished(this.input.take(size), events);
    return true;
  }

  private consumeClientHello(bytes: Buffer, flags: number): void {
    const ch = decodeClientHello(bytes, flags);
    const opts = this.ctx.options;
    const now = opts.now();
    // Verify mac1 first: one HMAC, before any costly work. Unknown ids use the dummy key.
    const id = ch.keyId.toString('hex');
    const known = this.ctx.lookup(id);
    const secrets = known?.secrets ?? this.ctx.dummy;
    const mac1 = hmacSha256(secrets.gate, mac1Input(bytes)).subarray(0, MAC1_BYTES);
    const macOk = constantTimeEqual(mac1, ch.mac1);
    if (known === undefined) throw sesameError('ERR_UNKNOWN_KEY', `unknown key id ${id}`);
    if (!macOk) throw sesameError('ERR_AUTH_FAILED', `wrong key for key id ${id}`);
    // The client holds the key (or replays a hello made with it): check the key's validity.
    const refusal = keyRefusal(known.key, now);
    if (refusal !== undefined)
      throw sesameError(refusal, `key ${id} (${known.key.principal}) refused: ${refusal}`);
    // Protect against replay: a fresh timestamp, and a nonce not seen within the window.
    const skew = opts.maxClockSkewMs ?? DEFAULT_MAX_CLOCK_SKEW_MS;
    if (Math.abs(now - ch.timestampMs) > skew) {
      throw sesameError(
        'ERR_STALE_HELLO',
        `ClientHello timestamp is ${Math.round((now - ch.timestampMs) / 1000)} s from the server clock`,
      );
    }
    // The entry must outlive the last instant the freshness check accepts (now - ts == skew).
    if (!this.ctx.replayCache.check(ch.nonce, now, ch.timestampMs + skew + 1)) {
      throw sesameError('ERR_REPLAYED_HELLO', 'ClientHello nonce seen before');
    }
    const fs = ch.share !== undefined;
    if (!fs && (opts.requireForwardSecrecy ?? true)) {
      throw sesameError('ERR_FORWARD_SECRECY_REQUIRED', 'client did not offer an X25519 key share');
    }
    // Our reply: nonce, key share, and proof that we hold the key too.
    const nonce = opts.entropy.bytes(NONCE_BYTES);
    let shared: Buffer | undefined;
    let share: Buffer | undefined;
    if (ch.share !== undefined) {
      const eph = opts.entropy.x25519();
      share = eph.publicKey;
      try {
        shared = x25519(eph.privateKey, ch.share);
      } catch (cause) {
        throw sesameError('ERR_BAD_KEY_SHARE', 'invalid client key share', { cause });
      }
    }
    const sh = encodeServerHello({ flags, nonce, share });
    const hs = handshakeSecret(secrets.early, shared);
    serverFinished(hs, sha256(bytes, withoutTrailer(sh, FINISHED_BYTES))).copy(
      sh,
      sh.length - FINISHED_BYTES,
    );
    // Keep a copy: `bytes` may be a view of the caller's buffer, kept past this call's records.
    this.clientHello = Buffer.from(bytes);
    this.serverHello = sh;
    this.hs = hs;
    this.key = known.key;
    this.forwardSecrecy = fs;
    this.state = 'ExpectClientFinished';
    this.queue(sh);
  }

  private consumeClientFinished(bytes: Buffer, events: ConnectionEvent[]): void {
    const ch = this.clientHello as Buffer;
    const sh = this.serverHello as Buffer;
    const hs = this.hs as Buffer;
    const key = this.key as PresharedKey;
    if (bytes[6] !== ch[6])
      throw sesameError('ERR_MALFORMED_MESSAGE', 'ClientFinished flags differ from ClientHello');
    if (!constantTimeEqual(clientFinished(hs, sha256(ch, sh)), decodeClientFinished(bytes))) {
      throw sesameError('ERR_AUTH_FAILED', `ClientFinished did not verify for key id ${key.id}`);
    }
    // The transcript is no longer needed: keep per-connection state small.
    this.hs = undefined;
    this.clientHello = undefined;
    this.serverHello = undefined;
    this.establish(
      hs,
      [ch, sh, bytes],
      false,
      { keyId: key.id, principal: key.principal, forwardSecrecy: this.forwardSecrecy },
      events,
    );
  }

  protected endError(): SesameError {
    return sesameError(
      'ERR_TRUNCATED',
      this.state === 'Open'
        ? 'connection ended without a close record'
        : 'client hung up during the handshake',
    );
  }
}
