/**
 * A stream server behind a load balancer: which addresses may send PROXY headers, and reading
 * that header off an accepted socket before the handshake (the parser itself is sans-I/O, in
 * src/protocol/proxy-header.ts).
 */

import { BlockList, isIP, type Socket } from 'node:net';
import { type SesameError, sesameError } from '../errors.js';
import { type ProxyHeader, parseProxyHeader } from '../protocol/proxy-header.js';

/** A BlockList of the CIDRs (or single addresses) given. @throws LocalError ERR_INVALID_ARGUMENT. */
export function parseTrustedProxies(cidrs: readonly string[]): BlockList {
  const list = new BlockList();
  for (const cidr of cidrs) {
    const [address = '', prefix] = cidr.split('/');
    const family = isIP(address);
    const bits = prefix === undefined ? (family === 6 ? 128 : 32) : Number(prefix);
    if (family === 0 || !Number.isInteger(bits) || bits < 0 || bits > (family === 6 ? 128 : 32)) {
      throw sesameError(
        'ERR_INVALID_ARGUMENT',
        `trusted proxy ${JSON.stringify(cidr)} is not an address or CIDR`,
      );
    }
    list.addSubnet(address, bits, family === 6 ? 'ipv6' : 'ipv4');
  }
  return list;
}

/** Whether `address` (an IPv4-mapped IPv6 address counts as its IPv4 form too) is in `list`. */
export function isTrusted(list: BlockList, address: string): boolean {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped !== null) return list.check(mapped[1] as string, 'ipv4') || list.check(address, 'ipv6');
  return list.check(address, isIP(address) === 6 ? 'ipv6' : 'ipv4');
}

/** Read a PROXY header from `socket`; the socket is left paused, `rest` is what followed it. */
export function readProxyHeader(
  socket: Socket,
  timeoutMs: number,
): Promise<{ header: ProxyHeader; rest: Buffer }> {
  return new Promise((resolve, reject) => {
    let buffered: Buffer = Buffer.alloc(0);
    const finish = (err: SesameError | undefined, value?: { header: ProxyHeader; rest: Buffer }) => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('end', onEnd);
      socket.off('error', onEnd);
      socket.off('close', onEnd);
      socket.pause();
      if (err !== undefined) reject(err);
      else resolve(value as { header: ProxyHeader; rest: Buffer });
    };
    const onData = (chunk: Buffer) => {
      buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
      try {
        const parsed = parseProxyHeader(buffered);
        if (parsed !== undefined)
          finish(undefined, { header: parsed.header, rest: buffered.subarray(parsed.length) });
      } catch (err) {
        finish(err as SesameError);
      }
    };
    const onEnd = () => finish(sesameError('ERR_TRUNCATED', 'connection ended before the PROXY header'));
    const timer = setTimeout(
      () => finish(sesameError('ERR_HANDSHAKE_TIMEOUT', `no PROXY header after ${timeoutMs} ms`)),
      timeoutMs,
    );
    socket.on('data', onData);
    socket.once('end', onEnd);
    socket.once('error', onEnd);
    socket.once('close', onEnd);
  });
}
