/**
 * Listen and connect addresses as URLs: `tcp://HOST:PORT` and `udp://HOST:PORT` (IPv6 hosts in
 * brackets) and `unix:///absolute/path`. Port 0 asks the system for a free port.
 */

import { sesameError } from '../errors.js';

/** A parsed address: see {@link parseAddress} and {@link formatAddress}. */
export type Address =
  | {
      /** A TCP stream socket (`tcp://HOST:PORT`). */
      readonly kind: 'tcp';
      /** Host name or IP address; an IPv6 address without its brackets. */
      readonly host: string;
      /** Port, 0 to 65535 (0: any free port when listening). */
      readonly port: number;
    }
  | {
      /** A UDP socket (`udp://HOST:PORT`). */
      readonly kind: 'udp';
      /** Host name or IP address; an IPv6 address without its brackets. */
      readonly host: string;
      /** Port, 0 to 65535 (0: any free port when listening). */
      readonly port: number;
    }
  | {
      /** A Unix stream socket (`unix:///absolute/path`). */
      readonly kind: 'unix';
      /** Absolute path of the socket file, percent-decoded. */
      readonly path: string;
    };

/** The address `sesame serve` and `npm start` use when none is given. */
export const DEFAULT_ADDRESS = 'tcp://127.0.0.1:9527';

/**
 * Parse an address URL.
 * @throws LocalError ERR_INVALID_ADDRESS naming what is wrong.
 */
export function parseAddress(text: string): Address {
  const bad = (why: string) =>
    sesameError('ERR_INVALID_ADDRESS', `invalid address ${JSON.stringify(text)}: ${why}`);
  if (text.startsWith('unix://')) {
    const path = decodeURIComponent(text.slice('unix://'.length));
    if (!path.startsWith('/')) throw bad('a unix socket path must be absolute (unix:///path)');
    return { kind: 'unix', path };
  }
  const kind = text.startsWith('tcp://') ? 'tcp' : text.startsWith('udp://') ? 'udp' : undefined;
  if (kind === undefined) throw bad('expected tcp://HOST:PORT, udp://HOST:PORT or unix:///path');
  const rest = text.slice(`${kind}://`.length).replace(/\/$/, '');
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:/[\]]+)):(\d{1,5})$/.exec(rest);
  if (m === null) throw bad(`expected ${kind}://HOST:PORT`);
  const port = Number(m[3]);
  if (port > 65535) throw bad('port out of range');
  return { kind, host: (m[1] ?? m[2]) as string, port };
}

/** The URL form of an address. */
export function formatAddress(a: Address): string {
  if (a.kind === 'unix') return `unix://${a.path}`;
  return a.host.includes(':') ? `${a.kind}://[${a.host}]:${a.port}` : `${a.kind}://${a.host}:${a.port}`;
}

/** Whether a TCP host is a loopback address (127.0.0.0/8, ::1, localhost). */
export function isLoopbackHost(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

/**
 * Parse a `udp://HOST:PORT` address.
 * @throws LocalError ERR_INVALID_ADDRESS for anything else.
 */
export function udpAddress(url: string): { host: string; port: number } {
  const a = parseAddress(url);
  if (a.kind !== 'udp') throw sesameError('ERR_INVALID_ADDRESS', `expected udp://HOST:PORT, got ${url}`);
  return { host: a.host, port: a.port };
}
