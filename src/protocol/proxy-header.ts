/**
 * The PROXY protocol header (HAProxy's "proxy-protocol.txt", versions 1 and 2) that a load
 * balancer sends before the client's bytes to tell the server the client's real address.
 *
 * Rules:
 * - Incremental: `parseProxyHeader(bytes)` returns undefined while the header is incomplete, the
 *   header and its length once complete, or throws ERR_PROXY_HEADER. Nothing is buffered here.
 * - Sizes are checked before waiting for more: a v1 line is at most 107 bytes including CRLF
 *   (spec section 2.1); a v2 header at most 16 + MAX_PROXY_V2_BODY_BYTES.
 * - Only the addresses are used; v2 TLVs are skipped. `LOCAL` (v2) and `UNKNOWN` (v1) carry no
 *   client address: the connection's own peer address stands.
 * - No I/O: this module only reads bytes.
 */

import { sesameError } from '../errors.js';

/** The v2 signature (spec section 2.2). */
export const PROXY_V2_SIGNATURE = Buffer.from([
  0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a,
]);
const V1_PREFIX = Buffer.from('PROXY ', 'latin1');
/** Longest v1 header, CRLF included (spec section 2.1). */
export const MAX_PROXY_V1_BYTES = 107;
/** Largest v2 body (addresses and TLVs) accepted; the spec allows up to 65535. */
export const MAX_PROXY_V2_BODY_BYTES = 2048;

export interface ProxyEndpoint {
  readonly address: string;
  readonly port: number;
}

export interface ProxyHeader {
  readonly version: 1 | 2;
  /** `proxy`: relayed for a client; `local`: the proxy's own connection (health checks). */
  readonly command: 'proxy' | 'local';
  /** The client's address, when the header carries one. */
  readonly source: ProxyEndpoint | undefined;
  readonly destination: ProxyEndpoint | undefined;
}

const bad = (why: string) => sesameError('ERR_PROXY_HEADER', `invalid PROXY protocol header: ${why}`);

/**
 * Parse a PROXY header at the start of `data`.
 * @returns undefined when more bytes are needed, else the header and how many bytes it took.
 * @throws PeerError ERR_PROXY_HEADER when the bytes are not a valid v1 or v2 header.
 */
export function parseProxyHeader(data: Buffer): { header: ProxyHeader; length: number } | undefined {
  if (data.length === 0) return undefined;
  const sigLen = Math.min(data.length, PROXY_V2_SIGNATURE.length);
  if (data.subarray(0, sigLen).equals(PROXY_V2_SIGNATURE.subarray(0, sigLen))) {
    return data.length < 16 ? undefined : parseV2(data);
  }
  const preLen = Math.min(data.length, V1_PREFIX.length);
  if (data.subarray(0, preLen).equals(V1_PREFIX.subarray(0, preLen))) return parseV1(data);
  throw bad('neither the v1 "PROXY " prefix nor the v2 signature');
}

function parseV1(data: Buffer): { header: ProxyHeader; length: number } | undefined {
  const end = data.indexOf('\r\n', 0, 'latin1');
  if (end < 0) {
    if (data.length >= MAX_PROXY_V1_BYTES) throw bad(`v1 line longer than ${MAX_PROXY_V1_BYTES} bytes`);
    return undefined;
  }
  const length = end + 2;
  if (length > MAX_PROXY_V1_BYTES) throw bad(`v1 line longer than ${MAX_PROXY_V1_BYTES} bytes`);
  const parts = data.toString('latin1', 0, end).split(' ');
  const proto = parts[1];
  if (proto === 'UNKNOWN') {
    return { header: { version: 1, command: 'local', source: undefined, destination: undefined }, length };
  }
  if ((proto !== 'TCP4' && proto !== 'TCP6') || parts.length !== 6)
    throw bad('v1 line is not "PROXY TCP4|TCP6 src dst sport dport"');
  const family = proto === 'TCP4' ? 4 : 6;
  const [, , src, dst, sport, dport] = parts as [string, string, string, string, string, string];
  if (ipFamily(src) !== family || ipFamily(dst) !== family) throw bad(`v1 addresses are not IPv${family}`);
  return {
    header: {
      version: 1,
      command: 'proxy',
      source: { address: src, port: v1Port(sport) },
      destination: { address: dst, port: v1Port(dport) },
    },
    length,
  };
}

const IPV4 = /^(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/;

/** 4 or 6 for a valid IPv4 or IPv6 address, else 0 (no sockets involved: the URL parser checks IPv6). */
function ipFamily(text: string): 0 | 4 | 6 {
  if (IPV4.test(text)) return 4;
  if (!/^[0-9a-fA-F:.]+$/.test(text) || !text.includes(':')) return 0;
  try {
    new URL(`http://[${text}]/`);
    return 6;
  } catch {
    return 0;
  }
}

function v1Port(text: string): number {
  // Ports are decimal without leading zeros, 0..65535 (spec section 2.1).
  if (!/^(0|[1-9]\d{0,4})$/.test(text) || Number(text) > 65535) throw bad(`v1 port ${JSON.stringify(text)}`);
  return Number(text);
}

function parseV2(data: Buffer): { header: ProxyHeader; length: number } | undefined {
  const verCmd = data[12] as number;
  if (verCmd >> 4 !== 2) throw bad(`v2 version ${verCmd >> 4}`);
  const cmd = verCmd & 0x0f;
  if (cmd > 1) throw bad(`v2 command ${cmd}`);
  const bodyLength = data.readUInt16BE(14);
  if (bodyLength > MAX_PROXY_V2_BODY_BYTES)
    throw bad(`v2 header of ${bodyLength} bytes is over the ${MAX_PROXY_V2_BODY_BYTES}-byte limit`);
  const length = 16 + bodyLength;
  if (data.length < length) return undefined;
  if (cmd === 0)
    return { header: { version: 2, command: 'local', source: undefined, destination: undefined }, length };
  const famProto = data[13] as number;
  const family = famProto >> 4;
  const body = data.subarray(16, length);
  if (family === 1) {
    if (body.length < 12) throw bad('v2 IPv4 addresses truncated');
    return {
      header: {
        version: 2,
        command: 'proxy',
        source: { address: ipv4(body, 0), port: body.readUInt16BE(8) },
        destination: { address: ipv4(body, 4), port: body.readUInt16BE(10) },
      },
      length,
    };
  }
  if (family === 2) {
    if (body.length < 36) throw bad('v2 IPv6 addresses truncated');
    return {
      header: {
        version: 2,
        command: 'proxy',
        source: { address: ipv6(body, 0), port: body.readUInt16BE(32) },
        destination: { address: ipv6(body, 16), port: body.readUInt16BE(34) },
      },
      length,
    };
  }
  if (family === 0 || family === 3) {
    // UNSPEC or a Unix-socket client: no IP address to report.
    return { header: { version: 2, command: 'proxy', source: undefined, destination: undefined }, length };
  }
  throw bad(`v2 address family ${family}`);
}

function ipv4(b: Buffer, at: number): string {
  return `${b[at]}.${b[at + 1]}.${b[at + 2]}.${b[at + 3]}`;
}

function ipv6(b: Buffer, at: number): string {
  const groups: string[] = [];
  for (let i = 0; i < 8; i++) groups.push(b.readUInt16BE(at + 2 * i).toString(16));
  // IPv4-mapped addresses print in the familiar dotted form.
  if (groups.slice(0, 5).every((g) => g === '0') && groups[5] === 'ffff') return `::ffff:${ipv4(b, at + 12)}`;
  return compressIpv6(groups);
}

function compressIpv6(groups: string[]): string {
  // RFC 5952 section 4.2: replace the longest run (2 or more) of zero groups with "::".
  let bestAt = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== '0') {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === '0') j++;
    if (j - i > bestLen) {
      bestAt = i;
      bestLen = j - i;
    }
    i = j;
  }
  if (bestLen < 2) return groups.join(':');
  return `${groups.slice(0, bestAt).join(':')}::${groups.slice(bestAt + bestLen).join(':')}`;
}

/** Encode a v2 PROXY header for a TCP client (for tests and tools). */
export function encodeProxyV2(source: ProxyEndpoint, destination: ProxyEndpoint): Buffer {
  const v6 = source.address.includes(':');
  const body = Buffer.alloc(v6 ? 36 : 12);
  if (v6) {
    writeIpv6(body, 0, source.address);
    writeIpv6(body, 16, destination.address);
    body.writeUInt16BE(source.port, 32);
    body.writeUInt16BE(destination.port, 34);
  } else {
    source.address.split('.').forEach((o, i) => {
      body[i] = Number(o);
    });
    destination.address.split('.').forEach((o, i) => {
      body[4 + i] = Number(o);
    });
    body.writeUInt16BE(source.port, 8);
    body.writeUInt16BE(destination.port, 10);
  }
  const head = Buffer.alloc(16);
  PROXY_V2_SIGNATURE.copy(head);
  head[12] = 0x21;
  head[13] = v6 ? 0x21 : 0x11;
  head.writeUInt16BE(body.length, 14);
  return Buffer.concat([head, body]);
}

function writeIpv6(b: Buffer, at: number, text: string): void {
  // A trailing dotted IPv4 part (::ffff:192.0.2.1) stands for the last two groups.
  const dotted = /^(.*:)(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  const address =
    dotted === null
      ? text
      : `${dotted[1]}${((Number(dotted[2]) << 8) | Number(dotted[3])).toString(16)}:${((Number(dotted[4]) << 8) | Number(dotted[5])).toString(16)}`;
  const [left = '', right] = address.split('::');
  const l = left === '' ? [] : left.split(':');
  const r = right === undefined || right === '' ? [] : right.split(':');
  const groups = [...l, ...Array<string>(8 - l.length - r.length).fill('0'), ...r];
  groups.forEach((g, i) => {
    b.writeUInt16BE(Number.parseInt(g, 16), at + 2 * i);
  });
}
