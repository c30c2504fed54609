/**
 * Constants of the native protocol (docs/protocol.md), then the implementation's default limits.
 *
 * Protocol constants are part of the wire format: changing one is a new protocol version.
 * Implementation limits are defaults that configuration may change; units are in the names.
 */

// ---------------------------------------------------------------------------------------------
// Protocol constants (docs/protocol.md)
// ---------------------------------------------------------------------------------------------

/** First four bytes of every handshake message: ASCII "SESM". */
export const MAGIC = Buffer.from('SESM', 'latin1');
/** The only protocol version this implementation speaks (2: ChaCha20-Poly1305 records; 1 used AES-256-GCM). */
export const PROTOCOL_VERSION = 2;

// Handshake message types (byte 5 of the header).
/** Handshake message type of ClientHello. */
export const MSG_CLIENT_HELLO = 1;
/** Handshake message type of ServerHello. */
export const MSG_SERVER_HELLO = 2;
/** Handshake message type of ClientFinished. */
export const MSG_CLIENT_FINISHED = 3;

/** Handshake flag bit 0: ephemeral X25519 key shares (forward secrecy). */
export const FLAG_X25519 = 0x01;
/** Every flag bit this version defines; any other bit set is malformed. */
export const KNOWN_FLAGS = FLAG_X25519;

/** Size of the header every handshake message starts with. */
export const HANDSHAKE_HEADER_BYTES = 8;
/** Size of a key id on the wire (16 hex characters in text). */
export const KEY_ID_BYTES = 8;
/** Size of the ClientHello timestamp (milliseconds since the epoch, u64). */
export const TIMESTAMP_BYTES = 8;
/** Size of the client and server nonces. */
export const NONCE_BYTES = 32;
/** Size of an X25519 public key share (RFC 7748). */
export const X25519_PUBLIC_BYTES = 32;
/** Size of the ClientHello gate MAC (truncated HMAC-SHA256). */
export const MAC1_BYTES = 16;
/** Size of the Finished values (HMAC-SHA256). */
export const FINISHED_BYTES = 32;
/** Size of a SHA-256 hash and of every derived secret. */
export const HASH_BYTES = 32;
/** Shortest pre-shared key the native protocol accepts (256 bits). */
export const PSK_MIN_BYTES = 32;

/** ClientHello: header, key id, timestamp, nonce, [key share], mac1. */
export const CLIENT_HELLO_PSK_BYTES =
  HANDSHAKE_HEADER_BYTES + KEY_ID_BYTES + TIMESTAMP_BYTES + NONCE_BYTES + MAC1_BYTES; // 72
/** ClientHello size with an X25519 key share. */
export const CLIENT_HELLO_X25519_BYTES = CLIENT_HELLO_PSK_BYTES + X25519_PUBLIC_BYTES; // 104
/** ServerHello: header, nonce, [key share], server finished. */
export const SERVER_HELLO_PSK_BYTES = HANDSHAKE_HEADER_BYTES + NONCE_BYTES + FINISHED_BYTES; // 72
/** ServerHello size with an X25519 key share. */
export const SERVER_HELLO_X25519_BYTES = SERVER_HELLO_PSK_BYTES + X25519_PUBLIC_BYTES; // 104
/** ClientFinished: header, client finished. */
export const CLIENT_FINISHED_BYTES = HANDSHAKE_HEADER_BYTES + FINISHED_BYTES; // 40

/** Record layer: u16 length, then AEAD ciphertext of (type || payload) with a 16-byte tag. */
export const RECORD_HEADER_BYTES = 2;
/** Size of the AEAD's authentication tag (the cipher is named in aead.ts). */
export const AEAD_TAG_BYTES = 16;
/** Size of an AEAD key. */
export const AEAD_KEY_BYTES = 32;
/** Size of an AEAD nonce (96 bits). */
export const AEAD_NONCE_BYTES = 12;
/** Largest payload one record carries; longer messages are fragmented. */
export const MAX_RECORD_PAYLOAD_BYTES = 16384;
// Bounds on the length field: one type byte and the tag at least; a full payload at most.
/** Smallest record length field: a type byte and the tag. */
export const MIN_RECORD_BODY_BYTES = 1 + AEAD_TAG_BYTES;
/** Largest record length field: a type byte, a full payload and the tag. */
export const MAX_RECORD_BODY_BYTES = 1 + MAX_RECORD_PAYLOAD_BYTES + AEAD_TAG_BYTES;

// Record types (first byte of the decrypted body).
/** Record type: a whole message, or the last fragment of one. */
export const RECORD_MESSAGE = 1;
/** Record type: a full 16 KiB fragment of a longer message; more follow. */
export const RECORD_FRAGMENT = 2;
/** Record type: authenticated close; the sender sends nothing more. */
export const RECORD_CLOSE = 3;
/** Record type: ping; the receiver answers with a pong carrying the same payload. */
export const RECORD_PING = 4;
/** Record type: the answer to a ping. */
export const RECORD_PONG = 5;
/** Record type: the sender moves to its next traffic key after this record. */
export const RECORD_KEY_UPDATE = 6;
/**
 * Record type (version 2): several whole messages in one record, each as
 * `length (u16) || message`; the entries fill the payload exactly.
 */
export const RECORD_BATCH = 7;
/** Size of the length of each message in a batch record. */
export const BATCH_ENTRY_HEADER_BYTES = 2;
/** Largest message a batch record carries: a whole payload but its length field. */
export const MAX_BATCH_MESSAGE_BYTES = MAX_RECORD_PAYLOAD_BYTES - BATCH_ENTRY_HEADER_BYTES;

/** Largest ping/pong payload. */
export const MAX_PING_PAYLOAD_BYTES = 64;

// HKDF labels (info strings), one per purpose and per direction.
/** HKDF-Extract salt of the early secret. */
export const LABEL_EXTRACT_SALT = 'sesame v1';
/** Label of the gate key (mac1). */
export const LABEL_GATE = 'sesame v1 gate';
/** Label of the server Finished key. */
export const LABEL_SERVER_FINISHED = 'sesame v1 server finished';
/** Label of the client Finished key. */
export const LABEL_CLIENT_FINISHED = 'sesame v1 client finished';
/** Label of the client-to-server traffic secret. */
export const LABEL_C2S = 'sesame v1 c2s';
/** Label of the server-to-client traffic secret. */
export const LABEL_S2C = 'sesame v1 s2c';
/** Label of the exporter secret. */
export const LABEL_EXPORTER = 'sesame v1 exporter';
/** Label of a record key, from a traffic secret. */
export const LABEL_KEY = 'sesame v1 key';
/** Label of a record IV, from a traffic secret. */
export const LABEL_IV = 'sesame v1 iv';
/** Label of the next traffic secret after a key update. */
export const LABEL_KEY_UPDATE = 'sesame v1 key update';

// ---------------------------------------------------------------------------------------------
// Implementation limits (defaults; configurable)
// ---------------------------------------------------------------------------------------------

/** Largest reassembled message. */
export const DEFAULT_MAX_MESSAGE_BYTES = 16 * 1024 * 1024;
/** How far a ClientHello timestamp may be from the server's clock. */
export const DEFAULT_MAX_CLOCK_SKEW_MS = 120_000;
/** How many recent ClientHello nonces the server remembers to refuse replays. */
export const DEFAULT_REPLAY_CACHE_ENTRIES = 100_000;
/**
 * Most records sealed under one key; the last of them is a key update. ChaCha20-Poly1305 has no
 * limit this close (RFC 8446 section 5.5); 2^24 keeps the key lifetime of version 1.
 */
export const DEFAULT_KEY_UPDATE_AFTER_RECORDS = 2 ** 24;
