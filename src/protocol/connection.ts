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
 * Each state is an object that owns exactly the data its step needs (the queues and sticky
 * failure are the skeleton's, in sans-io.ts). Leaving a handshake state drops its material: the
 * ephemeral key, the early and handshake secrets, the transcript, the nonces; secrets are wiped
 * as they go, and the traffic secrets once the record layer holds its own copies.
 *
 * Rules:
 * - The server checks mac1 before any costly work, and an unknown key id runs through the same
 *   steps with a dummy key, so the peer sees the same thing (a close) for both.
 * - `receive` never throws for bad input: it returns the events before the failure followed by
 *   one `error` event, and the connection is failed from then on. The transport must then close.
 * - Application data flows only in Open; the server emits nothing before the client has proved
 *   it holds the key (ClientFinished verified).
 * - An authenticated close record ends a direction; a transport EOF without one is ERR_TRUNCATED.
 * - Messages sent between two `takeOutput()` calls are sealed together when output is taken: as
 *   few batch records as the record size allows, or one message record when there is one message
 *   (the same bytes as sealing at once). An empty message is always a record of its own. Any other record (ping, pong, key update, close, the
 *   fragments of a long message) seals the waiting messages first, so the order on the wire is
 *   the order of the calls.
 */

import { type ErrorCode, type SesameError, sesameError } from '../errors.js';
import type { ConnectionEvent, PresharedKey, ServerProfile, SessionInfo } from './channel.js';
import {
  BATCH_ENTRY_HEADER_BYTES,
  DEFAULT_KEY_UPDATE_AFTER_RECORDS,
  DEFAULT_MAX_CLOCK_SKEW_MS,
  DEFAULT_MAX_MESSAGE_BYTES,
  DEFAULT_REPLAY_CACHE_ENTRIES,
  FINISHED_BYTES,
  FLAG_X25519,
  HANDSHAKE_HEADER_BYTES,
  HASH_BYTES,
  MAC1_BYTES,
  MAX_BATCH_MESSAGE_BYTES,
  MAX_PING_PAYLOAD_BYTES,
  MAX_RECORD_PAYLOAD_BYTES,
  MSG_CLIENT_FINISHED,
  MSG_CLIENT_HELLO,
  MSG_SERVER_HELLO,
  NONCE_BYTES,
  PSK_MIN_BYTES,
  RECORD_BATCH,
  RECORD_CLOSE,
  RECORD_FRAGMENT,
  RECORD_HEADER_BYTES,
  RECORD_KEY_UPDATE,
  RECORD_MESSAGE,
  RECORD_PING,
  RECORD_PONG,
} from './constants.js';
import {
  channelBinding,
  clientFinished,
  clientFinishedKey,
  exportKeyingMaterial,
  finishedMac,
  handshakeSecret,
  type PskOnlySecrets,
  type PskSecrets,
  pskOnlySecrets,
  pskSecrets,
  serverFinished,
  serverFinishedKey,
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
  CLIENT_POLICY_RULES,
  type ClientPolicy,
  checkOptions,
  ENVIRONMENT_RULES,
  type Environment,
  type OptionRules,
  type RecordPolicy,
  SERVER_POLICY_RULES,
  type ServerPolicy,
} from './options.js';
import { constantTimeEqual, hmacSha256, sha256, type X25519KeyPair, x25519 } from './primitives.js';
import {
  checkRecordLength,
  EXPORTER_AT,
  OPENER_STATE_AT,
  RecordOpener,
  RecordSealer,
  recordStateMemory,
  SEALER_STATE_AT,
} from './records.js';
import { ReplayCache } from './replay-cache.js';
import { SansIoConnection } from './sans-io.js';

// Callers that name the key type next to the connections keep importing it from here.
export type { PresharedKey } from './channel.js';

/** Options shared by both roles: the environment and the record layer's policy. */
export interface CommonOptions extends Environment, RecordPolicy {}

/** Options of a {@link ClientConnection}. */
export interface ClientOptions extends CommonOptions, ClientPolicy {
  /** The key to authenticate with: a well-formed id and a secret of at least 32 bytes. */
  readonly key: PresharedKey;
}

/** Options of a {@link ServerContext}, and so of every {@link ServerConnection} made from it. */
export interface ServerOptions extends CommonOptions, ServerPolicy {
  /**
   * The accepted keys; secrets under 32 bytes are left out (refused as unknown). Replace them
   * later with {@link ServerContext.setKeys}.
   */
  readonly keys: Iterable<PresharedKey>;
}

/** Rules of every {@link ClientOptions} field but `key`. */
const CLIENT_RULES: OptionRules<Omit<ClientOptions, 'key'>> = {
  ...ENVIRONMENT_RULES,
  ...CLIENT_POLICY_RULES,
};
/** Rules of every {@link ServerOptions} field but `keys`. */
const SERVER_RULES: OptionRules<Omit<ServerOptions, 'keys'>> = {
  ...ENVIRONMENT_RULES,
  ...SERVER_POLICY_RULES,
};

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

function wipeSecrets(secrets: PskSecrets): void {
  secrets.early.fill(0);
  secrets.gate.fill(0);
}

interface ServerKey {
  readonly key: PresharedKey;
  readonly secrets: PskSecrets;
  /** The PSK-only handshake secret and Finished keys, made at the key's first PSK-only handshake. */
  pskOnly: PskOnlySecrets | undefined;
}

function wipeServerKey(entry: ServerKey): void {
  wipeSecrets(entry.secrets);
  const p = entry.pskOnly;
  if (p === undefined) return;
  p.hs.fill(0);
  p.serverFinishedKey.fill(0);
  p.clientFinishedKey.fill(0);
}

/**
 * State a server shares across its connections: the keys (with their per-key secrets computed
 * once), the replay cache and the policy. Swap keys at run time with {@link ServerContext.setKeys}.
 *
 * The context keeps no reference to a key set it was given: only the map built from it, whose
 * per-key secrets are wiped when a reload replaces them.
 */
export class ServerContext {
  /** The options the context was made with, without `keys` (see {@link ServerContext.setKeys}). */
  readonly options: Omit<ServerOptions, 'keys'>;
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

  /** @throws LocalError ERR_INVALID_ARGUMENT for a malformed key id or an option out of range. */
  constructor(options: ServerOptions) {
    checkOptions(options, SERVER_RULES);
    const { keys, ...policy } = options;
    this.options = policy;
    this.replayCache = new ReplayCache(options.replayCacheEntries ?? DEFAULT_REPLAY_CACHE_ENTRIES);
    this.dummy = pskSecrets(options.entropy.bytes(32));
    this.setKeys(keys);
  }

  /**
   * Replace the accepted keys. Keys shorter than 256 bits are left out (they are refused as
   * unknown); open connections are not affected (their secrets are their own). The per-key
   * secrets of the previous set are wiped. On a malformed key id nothing changes.
   * @throws LocalError ERR_INVALID_ARGUMENT for a malformed key id.
   */
  setKeys(keys: Iterable<PresharedKey>): void {
    const next = new Map<string, ServerKey>();
    try {
      for (const key of keys) {
        checkKeyId(key.id);
        if (key.secret.length < PSK_MIN_BYTES) continue;
        // A repeated id: the last one wins, and the secrets derived for the earlier one go.
        const repeated = next.get(key.id);
        if (repeated !== undefined) wipeServerKey(repeated);
        next.set(key.id, { key, secrets: pskSecrets(key.secret), pskOnly: undefined });
      }
    } catch (err) {
      for (const entry of next.values()) wipeServerKey(entry);
      throw err;
    }
    const previous = this.keys;
    this.keys = next;
    // Nothing holds these past a ClientHello step (lookup() is read synchronously; a handshake
    // in progress holds copies of its own), so they can go.
    for (const entry of previous.values()) wipeServerKey(entry);
  }

  /** @internal */
  lookup(id: string): ServerKey | undefined {
    return this.keys.get(id);
  }
}

/** The native profile over a {@link ServerContext}: one {@link ServerConnection} per socket. */
export function nativeServerProfile(context: ServerContext): ServerProfile {
  return {
    name: 'native',
    createConnection: () => new ServerConnection(context),
    setKeys: (keys) => context.setKeys(keys),
  };
}

// The states, named for what they expect next. Each carries exactly what that step needs, so the
// handshake material is unreachable once the connection leaves the handshake. Transcript buffers
// that were queued as output (our own hellos, ClientFinished) are dropped but not wiped: the
// transport may still be writing them, and they are on the wire anyway. Secrets we derived
// (early, handshake and traffic secrets) are wiped as they are dropped.

/** Client, ClientHello sent: what checking ServerHello and sending ClientFinished need. */
interface ExpectServerHello {
  readonly name: 'ExpectServerHello';
  /** The flags of our ClientHello; ServerHello must echo them. */
  readonly flags: number;
  readonly key: PresharedKey;
  /** Queued as output: dropped, never wiped. */
  readonly clientHello: Buffer;
  readonly nonce: Buffer;
  /** The key's early secret (our own copy). */
  readonly early: Buffer;
  readonly ephemeral: X25519KeyPair | undefined;
}

/** Server, nothing received: the context holds all it needs. */
interface ExpectClientHello {
  readonly name: 'ExpectClientHello';
}

/** Server, ServerHello sent: the transcript so far, the handshake secret and the client's key. */
interface ExpectClientFinished {
  readonly name: 'ExpectClientFinished';
  /** Our own copy of the client's bytes. */
  readonly clientHello: Buffer;
  /** Queued as output: dropped, never wiped. */
  readonly serverHello: Buffer;
  readonly hs: Buffer;
  /** Our own copy of the client's Finished key when it was known at ClientHello (PSK-only). */
  readonly clientFinishedKey: Buffer | undefined;
  readonly key: PresharedKey;
  readonly forwardSecrecy: boolean;
}

/** Either role, authenticated: the record layer and the message being reassembled. */
interface Open {
  readonly name: 'Open';
  readonly sealer: RecordSealer;
  readonly opener: RecordOpener;
  /** Body length of the record being received, once its header is read; -1 before. */
  pendingBody: number;
  /** The fragments of the message being received; undefined between messages (most of the time). */
  fragments: Buffer[] | undefined;
  fragmentBytes: number;
}

/** Either role, after the first error: nothing is kept. */
interface Failed {
  readonly name: 'Failed';
}

type Handshake = ExpectServerHello | ExpectClientHello | ExpectClientFinished;

// The states without data are shared by every connection.
const EXPECT_CLIENT_HELLO: ExpectClientHello = Object.freeze({ name: 'ExpectClientHello' });
const FAILED: Failed = Object.freeze({ name: 'Failed' });

/** The parts both roles share: the record layer and the end of a direction, over the skeleton. */
abstract class Connection<H extends Handshake> extends SansIoConnection {
  protected state: H | Open | Failed;
  /**
   * The memory holding the exporter secret at EXPORTER_AT (and the record state before it): like
   * `session`, it outlives the state that derived it.
   */
  private exporter: Buffer | undefined;
  private closeSent = false;
  private closeReceived = false;
  /** Messages sent since the last takeOutput(), sealed together then (references, not copies). */
  private batch: Uint8Array[] = [];
  /** The batch array sealBatch() hands back, so a flush allocates no array. */
  private spareBatch: Uint8Array[] | undefined;
  protected readonly maxMessageBytes: number;
  private readonly keyUpdateAfter: number;
  /** Set when the handshake completes. */
  session: SessionInfo | undefined;

  protected constructor(common: CommonOptions, initial: H) {
    super();
    this.state = initial;
    this.maxMessageBytes = common.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
    this.keyUpdateAfter = common.keyUpdateAfterRecords ?? DEFAULT_KEY_UPDATE_AFTER_RECORDS;
  }

  /** Whether the handshake has completed and the connection has not failed. */
  get isOpen(): boolean {
    return this.state.name === 'Open';
  }

  /** Whether this end has sent its close record. */
  get closed(): boolean {
    return this.closeSent;
  }

  /** Whether the peer has sent its close record. */
  get peerClosed(): boolean {
    return this.closeReceived;
  }

  /** Whether bytes are waiting to be taken with `takeOutput()`, messages to seal included. */
  override get hasOutput(): boolean {
    return this.batch.length > 0 || super.hasOutput;
  }

  /** The bytes to write, in order, the messages sent since the last call sealed first. */
  override takeOutput(): Buffer[] {
    if (this.batch.length > 0 && this.state.name === 'Open') this.sealBatch(this.state);
    return super.takeOutput();
  }

  /**
   * Queue `message` for sending, fragmented into records of at most 16 KiB. A message of 1 to
   * MAX_BATCH_MESSAGE_BYTES bytes is kept (not copied) until the next `takeOutput()`, which seals
   * every such message together: do not change its bytes before then.
   * @throws LocalError ERR_INVALID_STATE before the handshake completes, ERR_CLOSED after close().
   */
  send(message: Uint8Array): void {
    const open = this.openForSending();
    // An empty message goes in a record of its own (19 bytes, against 2 in a batch), so that a
    // flood of them reaches a receiver no denser than before batching: its input accounting
    // pauses reading per chunk, and each message costs it far more than its wire bytes.
    if (message.length > 0 && message.length <= MAX_BATCH_MESSAGE_BYTES) {
      this.batch.push(message);
      return;
    }
    if (this.batch.length > 0) this.sealBatch(open);
    let at = 0;
    while (message.length - at > MAX_RECORD_PAYLOAD_BYTES) {
      this.seal(open, RECORD_FRAGMENT, message.subarray(at, at + MAX_RECORD_PAYLOAD_BYTES));
      at += MAX_RECORD_PAYLOAD_BYTES;
    }
    this.seal(open, RECORD_MESSAGE, at === 0 ? message : message.subarray(at));
  }

  /** Queue a ping; the peer answers with a pong carrying the same payload (at most 64 bytes). */
  ping(payload: Uint8Array = Buffer.alloc(0)): void {
    const open = this.openForSending();
    if (payload.length > MAX_PING_PAYLOAD_BYTES) {
      throw sesameError('ERR_INVALID_ARGUMENT', `ping payload over ${MAX_PING_PAYLOAD_BYTES} bytes`);
    }
    this.seal(open, RECORD_PING, payload);
  }

  /** Move this direction to the next traffic key; with `requestPeer`, ask the peer to do the same. */
  updateKeys(requestPeer = false): void {
    this.sendKeyUpdate(this.openForSending(), requestPeer);
  }

  /** Queue the authenticated close record. Idempotent; nothing can be sent afterwards. */
  close(): void {
    this.throwIfFailed();
    const state = this.state;
    if (this.closeSent || state.name !== 'Open') return;
    this.seal(state, RECORD_CLOSE, Buffer.alloc(0));
    this.closeSent = true;
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
    return exportKeyingMaterial(
      this.exporter.subarray(EXPORTER_AT, EXPORTER_AT + HASH_BYTES),
      label,
      context,
    );
  }

  /** Step the handshake in `state` with the bytes buffered; false when more bytes are needed. */
  protected abstract stepHandshake(state: H, events: ConnectionEvent[]): boolean;

  protected abstract endError(): SesameError;

  /** Wipe the secrets a handshake state holds, as it is dropped. */
  protected abstract wipeHandshake(state: H): void;

  protected end(): void {
    if (this.closeReceived && this.input.length === 0) return;
    throw this.endError();
  }

  protected override heldBytes(): number {
    const state = this.state;
    return state.name === 'Open' ? state.fragmentBytes : 0;
  }

  protected release(): void {
    const state = this.state;
    this.state = FAILED;
    this.batch = [];
    if (state.name !== 'Open' && state.name !== 'Failed') this.wipeHandshake(state);
  }

  /**
   * Install traffic keys and enter Open, leaving the handshake state behind. `hs` and the
   * traffic secrets are wiped here: the record layer keeps copies of its own.
   */
  protected establish(
    hs: Buffer,
    transcript: Buffer[],
    isClient: boolean,
    session: Omit<SessionInfo, 'channelBinding' | 'profile'>,
    events: ConnectionEvent[],
  ): void {
    const secrets = sessionSecrets(hs, sha256(...transcript));
    hs.fill(0);
    const memory = recordStateMemory();
    const sealer = new RecordSealer(isClient ? secrets.c2s : secrets.s2c, memory, SEALER_STATE_AT);
    const opener = new RecordOpener(isClient ? secrets.s2c : secrets.c2s, memory, OPENER_STATE_AT);
    secrets.c2s.fill(0);
    secrets.s2c.fill(0);
    memory.set(secrets.exporter, EXPORTER_AT);
    this.exporter = memory;
    // Every field named, in one order: an object spread here would give each connection's
    // SessionInfo a hidden class of its own (memory per connection, megamorphic reads).
    this.session = {
      profile: 'native',
      keyId: session.keyId,
      principal: session.principal,
      forwardSecrecy: session.forwardSecrecy,
      channelBinding: channelBinding(secrets.exporter),
    };
    secrets.exporter.fill(0);
    this.state = { name: 'Open', sealer, opener, pendingBody: -1, fragments: undefined, fragmentBytes: 0 };
    events.push({ type: 'established', session: this.session });
  }

  protected consume(data: Uint8Array, events: ConnectionEvent[]): void {
    this.input.push(data);
    let state = this.state;
    while (state.name !== 'Open') {
      // Failed cannot be seen here: receive() throws first, and a failing step throws.
      if (state.name === 'Failed' || !this.stepHandshake(state, events)) return;
      state = this.state;
    }
    const opener = state.opener;
    for (;;) {
      if (this.closeReceived) {
        if (this.input.length > 0) throw sesameError('ERR_DATA_AFTER_CLOSE', 'data after the close record');
        return;
      }
      if (state.pendingBody < 0) {
        if (this.input.length < RECORD_HEADER_BYTES) return;
        const length = this.input.peekUint16BE();
        checkRecordLength(length);
        state.pendingBody = length;
      }
      if (this.input.length < RECORD_HEADER_BYTES + state.pendingBody) return;
      const record = this.input.take(RECORD_HEADER_BYTES + state.pendingBody);
      state.pendingBody = -1;
      const plain = opener.open(record);
      this.dispatch(state, plain[0] as number, plain.subarray(1), events);
    }
  }

  private dispatch(open: Open, type: number, payload: Buffer, events: ConnectionEvent[]): void {
    switch (type) {
      case RECORD_MESSAGE:
      case RECORD_FRAGMENT: {
        if (type === RECORD_FRAGMENT && payload.length !== MAX_RECORD_PAYLOAD_BYTES) {
          throw sesameError('ERR_MALFORMED_MESSAGE', 'a fragment record must carry a full 16 KiB payload');
        }
        const total = open.fragmentBytes + payload.length;
        if (total > this.maxMessageBytes) {
          throw sesameError('ERR_MESSAGE_TOO_LARGE', `message over the ${this.maxMessageBytes}-byte limit`);
        }
        if (type === RECORD_FRAGMENT) {
          if (open.fragments === undefined) open.fragments = [payload];
          else open.fragments.push(payload);
          open.fragmentBytes = total;
        } else if (open.fragments === undefined) {
          events.push({ type: 'message', data: payload });
        } else {
          open.fragments.push(payload);
          const data = Buffer.concat(open.fragments, total);
          open.fragments = undefined;
          open.fragmentBytes = 0;
          events.push({ type: 'message', data });
        }
        return;
      }
      case RECORD_BATCH:
        this.unbatch(open, payload, events);
        return;
      case RECORD_CLOSE:
        if (payload.length !== 0 || open.fragments !== undefined) {
          throw sesameError('ERR_MALFORMED_MESSAGE', 'close record with a payload or inside a message');
        }
        this.closeReceived = true;
        events.push({ type: 'close' });
        return;
      case RECORD_PING:
        if (payload.length > MAX_PING_PAYLOAD_BYTES)
          throw sesameError('ERR_MALFORMED_MESSAGE', 'ping payload too long');
        if (!this.closeSent) this.seal(open, RECORD_PONG, payload);
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
        open.opener.update();
        if (request === 1 && !this.closeSent) this.sendKeyUpdate(open, false);
        return;
      }
      default:
        throw sesameError('ERR_RECORD_TYPE', `unknown record type ${type}`);
    }
  }

  /**
   * The messages of a batch record's payload, in order. The whole layout is checked before any
   * message is delivered: a malformed batch delivers nothing.
   */
  private unbatch(open: Open, payload: Buffer, events: ConnectionEvent[]): void {
    if (open.fragments !== undefined) {
      throw sesameError('ERR_MALFORMED_MESSAGE', 'a batch record inside a fragmented message');
    }
    if (payload.length === 0) throw sesameError('ERR_MALFORMED_MESSAGE', 'an empty batch record');
    const end = payload.length;
    let at = 0;
    while (at < end) {
      if (end - at < BATCH_ENTRY_HEADER_BYTES) {
        throw sesameError('ERR_MALFORMED_MESSAGE', 'a batch entry cut inside its length');
      }
      const n = ((payload[at] as number) << 8) | (payload[at + 1] as number);
      at += BATCH_ENTRY_HEADER_BYTES;
      if (n > end - at) throw sesameError('ERR_MALFORMED_MESSAGE', 'a batch entry past its record');
      if (n > this.maxMessageBytes) {
        throw sesameError('ERR_MESSAGE_TOO_LARGE', `message over the ${this.maxMessageBytes}-byte limit`);
      }
      at += n;
    }
    for (at = 0; at < end; ) {
      const n = ((payload[at] as number) << 8) | (payload[at + 1] as number);
      at += BATCH_ENTRY_HEADER_BYTES;
      events.push({ type: 'message', data: payload.subarray(at, at + n) });
      at += n;
    }
  }

  private sendKeyUpdate(open: Open, requestPeer: boolean): void {
    // Messages sent before the update go under the old key (sealBatch empties the batch first).
    if (this.batch.length > 0) this.sealBatch(open);
    this.queue(open.sealer.seal(RECORD_KEY_UPDATE, Buffer.of(requestPeer ? 1 : 0)));
    open.sealer.update();
  }

  private seal(open: Open, type: number, payload: Uint8Array): void {
    if (this.batch.length > 0) this.sealBatch(open);
    this.sealNow(open, type, payload);
  }

  private sealNow(open: Open, type: number, payload: Uint8Array): void {
    // The key update itself is the last record under the old key: at most keyUpdateAfter each.
    if (open.sealer.seq >= this.keyUpdateAfter - 1) this.sendKeyUpdate(open, false);
    this.queue(open.sealer.seal(type, payload));
  }

  /**
   * Seal the waiting messages: one message record for a lone message, else batch records, each
   * filled with as many whole messages, in order, as its payload holds.
   */
  private sealBatch(open: Open): void {
    // The two arrays take turns: a key update sealed from inside this loop finds the batch empty.
    const batch = this.batch;
    this.batch = this.spareBatch ?? [];
    this.spareBatch = undefined;
    const n = batch.length;
    let from = 0;
    while (from < n) {
      let to = from;
      let bytes = 0;
      while (to < n) {
        const entry = BATCH_ENTRY_HEADER_BYTES + (batch[to] as Uint8Array).length;
        if (bytes + entry > MAX_RECORD_PAYLOAD_BYTES) break;
        bytes += entry;
        to++;
      }
      if (to - from === 1) {
        this.sealNow(open, RECORD_MESSAGE, batch[from] as Uint8Array);
      } else {
        if (open.sealer.seq >= this.keyUpdateAfter - 1) this.sendKeyUpdate(open, false);
        this.queue(open.sealer.sealBatch(batch, from, to, bytes));
      }
      from = to;
    }
    batch.length = 0; // drop the references: the messages may be reused once sealed
    this.spareBatch = batch;
  }

  /** The Open state, when application records may be sent. */
  private openForSending(): Open {
    this.throwIfFailed();
    const state = this.state;
    if (state.name !== 'Open') throw sesameError('ERR_INVALID_STATE', 'handshake not complete');
    if (this.closeSent) throw sesameError('ERR_CLOSED', 'connection closed for sending');
    return state;
  }
}

/** The client end: sends ClientHello at construction. */
export class ClientConnection extends Connection<ExpectServerHello> {
  /**
   * @throws LocalError ERR_KEY_TOO_SHORT for a key under 256 bits, ERR_INVALID_ARGUMENT for a
   *   malformed key id or an option out of range.
   */
  constructor(options: ClientOptions) {
    checkOptions(options, CLIENT_RULES);
    const key = options.key;
    checkKeyId(key.id);
    if (key.secret.length < PSK_MIN_BYTES) {
      throw sesameError(
        'ERR_KEY_TOO_SHORT',
        `key ${key.id} is ${key.secret.length * 8} bits; at least 256 are required`,
      );
    }
    const fs = options.forwardSecrecy ?? true;
    const flags = fs ? FLAG_X25519 : 0;
    const nonce = options.entropy.bytes(NONCE_BYTES);
    const ephemeral = fs ? options.entropy.x25519() : undefined;
    const hello = encodeClientHello({
      flags,
      keyId: Buffer.from(key.id, 'hex'),
      // Whole milliseconds, never negative, whatever clock the caller passes in.
      timestampMs: Math.max(0, Math.floor(options.now())),
      nonce,
      share: ephemeral?.publicKey,
    });
    const { early, gate } = pskSecrets(key.secret);
    hmacSha256(gate, mac1Input(hello)).copy(hello, hello.length - MAC1_BYTES, 0, MAC1_BYTES);
    gate.fill(0); // a client needs the gate for mac1 only
    super(options, { name: 'ExpectServerHello', flags, key, clientHello: hello, nonce, early, ephemeral });
    this.queue(hello);
  }

  protected stepHandshake(state: ExpectServerHello, events: ConnectionEvent[]): boolean {
    if (this.input.length < HANDSHAKE_HEADER_BYTES) return false;
    const { flags, size } = parseHeader(this.input.peek(HANDSHAKE_HEADER_BYTES), MSG_SERVER_HELLO);
    if (flags !== state.flags)
      throw sesameError('ERR_MALFORMED_MESSAGE', 'ServerHello flags differ from ClientHello');
    if (this.input.length < size) return false;
    const bytes = this.input.take(size);
    const sh = decodeServerHello(bytes, flags);
    // Refuse our own values sent back at us (reflection).
    if (
      constantTimeEqual(sh.nonce, state.nonce) ||
      (sh.share !== undefined && constantTimeEqual(sh.share, state.ephemeral?.publicKey ?? Buffer.alloc(0)))
    ) {
      throw sesameError('ERR_REFLECTED_MESSAGE', 'ServerHello echoes the client nonce or key share');
    }
    const shared = agree(state.ephemeral, sh.share);
    const hs = handshakeSecret(state.early, shared);
    shared?.fill(0);
    const th1 = sha256(state.clientHello, withoutTrailer(bytes, FINISHED_BYTES));
    if (!constantTimeEqual(serverFinished(hs, th1), sh.finished)) {
      hs.fill(0);
      throw sesameError('ERR_SERVER_AUTH_FAILED', 'the server did not prove it holds the key');
    }
    const cf = encodeClientFinished(flags, clientFinished(hs, sha256(state.clientHello, bytes)));
    this.queue(cf);
    this.wipeHandshake(state);
    this.establish(
      hs,
      [state.clientHello, bytes, cf],
      true,
      { keyId: state.key.id, principal: state.key.principal, forwardSecrecy: shared !== undefined },
      events,
    );
    return true;
  }

  protected wipeHandshake(state: ExpectServerHello): void {
    state.early.fill(0);
    state.nonce.fill(0);
    state.ephemeral?.privateKey.fill(0);
  }

  protected endError(): SesameError {
    return this.state.name === 'Open'
      ? sesameError('ERR_TRUNCATED', 'connection ended without a close record')
      : sesameError(
          'ERR_AUTH_REFUSED',
          'the server closed the connection during the handshake: key refused or server unavailable',
        );
  }
}

/** X25519 with our ephemeral key, when both ends offered a share. */
function agree(eph: X25519KeyPair | undefined, share: Buffer | undefined): Buffer | undefined {
  if (eph === undefined || share === undefined) return undefined;
  try {
    return x25519(eph.privateKey, share);
  } catch (cause) {
    throw sesameError('ERR_BAD_KEY_SHARE', 'invalid server key share', { cause });
  } finally {
    eph.privateKey.fill(0); // one agreement per ephemeral key
  }
}

/** The server end: waits for ClientHello. */
export class ServerConnection extends Connection<ExpectClientHello | ExpectClientFinished> {
  private readonly ctx: ServerContext;
  /** The id of the key the client's ClientHello authenticated with; outlives the handshake. */
  private namedKeyId: string | undefined;

  constructor(ctx: ServerContext) {
    super(ctx.options, EXPECT_CLIENT_HELLO);
    this.ctx = ctx;
  }

  /** The key id the client named, once its ClientHello authenticated. */
  get keyId(): string | undefined {
    return this.namedKeyId;
  }

  protected stepHandshake(
    state: ExpectClientHello | ExpectClientFinished,
    events: ConnectionEvent[],
  ): boolean {
    if (this.input.length < HANDSHAKE_HEADER_BYTES) return false;
    if (state.name === 'ExpectClientHello') {
      const { flags, size } = parseHeader(this.input.peek(HANDSHAKE_HEADER_BYTES), MSG_CLIENT_HELLO);
      if (this.input.length < size) return false;
      this.consumeClientHello(this.input.take(size), flags);
      return true;
    }
    const { size } = parseHeader(this.input.peek(HANDSHAKE_HEADER_BYTES), MSG_CLIENT_FINISHED);
    if (this.input.length < size) return false;
    this.consumeClientFinished(state, this.input.take(size), events);
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
      } finally {
        eph.privateKey.fill(0); // one agreement per ephemeral key
      }
    }
    const sh = encodeServerHello({ flags, nonce, share });
    const th1 = sha256(bytes, withoutTrailer(sh, FINISHED_BYTES));
    let hs: Buffer;
    let cfKey: Buffer | undefined;
    if (shared === undefined) {
      // PSK-only: the handshake secret and Finished keys are the key's own, computed once.
      known.pskOnly ??= pskOnlySecrets(known.secrets.early);
      const p = known.pskOnly;
      // Copies: this connection wipes its own, and a reload wipes the key's.
      hs = Buffer.from(p.hs);
      cfKey = Buffer.from(p.clientFinishedKey);
      finishedMac(p.serverFinishedKey, th1).copy(sh, sh.length - FINISHED_BYTES);
    } else {
      hs = handshakeSecret(known.secrets.early, shared);
      shared.fill(0);
      const sfKey = serverFinishedKey(hs);
      finishedMac(sfKey, th1).copy(sh, sh.length - FINISHED_BYTES);
      sfKey.fill(0);
    }
    this.namedKeyId = known.key.id;
    this.state = {
      name: 'ExpectClientFinished',
      // A copy: `bytes` may be a view of the caller's buffer, kept past this call's records.
      clientHello: Buffer.from(bytes),
      serverHello: sh,
      hs,
      clientFinishedKey: cfKey,
      key: known.key,
      forwardSecrecy: fs,
    };
    this.queue(sh);
  }

  private consumeClientFinished(state: ExpectClientFinished, bytes: Buffer, events: ConnectionEvent[]): void {
    const { clientHello: ch, serverHello: sh, hs, key } = state;
    if (bytes[6] !== ch[6])
      throw sesameError('ERR_MALFORMED_MESSAGE', 'ClientFinished flags differ from ClientHello');
    const cfKey = state.clientFinishedKey ?? clientFinishedKey(hs);
    const expected = finishedMac(cfKey, sha256(ch, sh));
    cfKey.fill(0);
    if (!constantTimeEqual(expected, decodeClientFinished(bytes))) {
      throw sesameError('ERR_AUTH_FAILED', `ClientFinished did not verify for key id ${key.id}`);
    }
    // Revocation holds for handshakes in progress: a reload between ClientHello and
    // ClientFinished may have revoked, expired, removed or replaced the key (docs/security.md).
    const current = this.ctx.lookup(key.id);
    if (current === undefined || !constantTimeEqual(current.key.secret, key.secret)) {
      throw sesameError(
        'ERR_KEY_REVOKED',
        `key ${key.id} (${key.principal}) was removed during the handshake`,
      );
    }
    const refusal = keyRefusal(current.key, this.ctx.options.now());
    if (refusal !== undefined) {
      throw sesameError(
        refusal,
        `key ${key.id} (${key.principal}) refused at handshake completion: ${refusal}`,
      );
    }
    // establish() hashes the transcript first and leaves this state behind: then nothing of the
    // handshake stays with the connection.
    this.establish(
      hs,
      [ch, sh, bytes],
      false,
      { keyId: key.id, principal: key.principal, forwardSecrecy: state.forwardSecrecy },
      events,
    );
    ch.fill(0);
  }

  protected wipeHandshake(state: ExpectClientHello | ExpectClientFinished): void {
    if (state.name !== 'ExpectClientFinished') return;
    state.hs.fill(0);
    state.clientFinishedKey?.fill(0);
    state.clientHello.fill(0);
  }

  protected endError(): SesameError {
    return sesameError(
      'ERR_TRUNCATED',
      this.state.name === 'Open'
        ? 'connection ended without a close record'
        : 'client hung up during the handshake',
    );
  }
}
