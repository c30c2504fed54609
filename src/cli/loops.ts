/**
 * The `connect` command's two input loops, for every profile:
 * - on a terminal, the seed client's `>>> ` prompt: one line, one reply; `quit` leaves;
 * - otherwise each non-empty input line is one message, and each reply is shown in input order.
 *   Up to `maxOutstanding` messages may await their replies at once (1: strictly one at a time,
 *   which profiles that frame by `recv` chunks need, since two messages sent together may arrive
 *   as one chunk).
 *
 * Both loops also stop when `ended` settles while they run (the server closed the session, or it
 * failed): the loop rejects with that reason at once, instead of showing a prompt or waiting for
 * input that can no longer be sent. A failed request stops the loop at once too, without waiting
 * for more input.
 */

import { createInterface } from 'node:readline';
import { sesameError } from '../errors.js';
import { DEFAULT_DATAGRAM_PAYLOAD_BYTES } from '../protocol/datagram/options.js';

/** Send one line's message; resolves with its reply. */
export type Ask = (text: string) => Promise<Buffer>;

export interface LoopIo {
  readonly stdin: NodeJS.ReadableStream;
  readonly stdout: NodeJS.WritableStream;
}

/**
 * Room left in a reply datagram for what a service adds to the request: the timestamp service's
 * `[Sun Nov 29 19:26:43 2026] ` is 27 bytes.
 */
export const DATAGRAM_REPLY_ROOM_BYTES = 64;
/**
 * Longest line `connect udp://` sends: a reply must fit in one datagram (1,200 bytes of payload),
 * and a server cannot answer a request whose reply would not, so the client refuses it first.
 */
export const DATAGRAM_REQUEST_MAX_BYTES = DEFAULT_DATAGRAM_PAYLOAD_BYTES - DATAGRAM_REPLY_ROOM_BYTES;

/**
 * `ask`, refusing (LocalError ERR_DATAGRAM_TOO_LARGE) a line longer than `maxBytes` in UTF-8
 * before anything is sent.
 */
export function limitRequest(ask: Ask, maxBytes: number): Ask {
  return (text) => {
    const n = Buffer.byteLength(text, 'utf8');
    if (n <= maxBytes) return ask(text);
    return Promise.reject(
      sesameError(
        'ERR_DATAGRAM_TOO_LARGE',
        `a ${n}-byte line is over the ${maxBytes} bytes a datagram request may carry (its reply must fit in one datagram)`,
      ),
    );
  };
}

/** What the loops watch besides their input: the session's end from the server's side. */
export interface SessionEnd {
  /** Resolves with the reason once the server ended the session (or it failed); never rejects. */
  readonly ended: Promise<Error>;
}

/** An error naming who ended the session, for the one line a failing client prints. */
export class SessionEndedError extends Error {}

/**
 * What a client can say when the server ends a session: a shutdown, an idle timeout and a
 * revocation all end it the same way on the wire (a close record, or the end of the stream).
 */
export const SERVER_CLOSED =
  'the server closed the session (a shutdown, an idle timeout or a revoked key: the wire does not say which)';

/**
 * Watch a stream or datagram session for its end from the server's side: the peer's close (a
 * shutdown, an idle timeout, a revocation all look the same on the wire), a failure, or a datagram
 * session closed by the server.
 */
export function watchSessionEnd(session: {
  on(event: 'peer-close' | 'failed' | 'close', listener: (err?: unknown) => void): unknown;
  readonly error?: Error | undefined;
}): SessionEnd {
  const ended = new Promise<Error>((resolve) => {
    session.on('peer-close', () => resolve(new SessionEndedError(SERVER_CLOSED)));
    session.on('failed', (err) =>
      resolve(err instanceof Error ? err : new SessionEndedError('the session failed')),
    );
    session.on('close', () => resolve(session.error ?? new SessionEndedError('the session was closed')));
  });
  return { ended };
}

/**
 * Run `body` (a loop over `rl`) until it finishes or `end` settles, whichever is first; on `end`,
 * close `rl` so the loop stops, and reject with the reason.
 */
async function untilEnded(
  rl: { close(): void },
  end: SessionEnd | undefined,
  body: () => Promise<void>,
): Promise<void> {
  if (end === undefined) return body();
  let running = true;
  let reason: Error | undefined;
  void end.ended.then((why) => {
    if (!running) return;
    reason = why;
    rl.close();
  });
  try {
    await body();
  } finally {
    running = false;
  }
  if (reason !== undefined) throw reason;
}

/** Ctrl-C at the prompt: the command line ends the line and exits 130, as shells expect. */
export class Interrupted extends Error {}

/**
 * `>>> ` prompt; lines are trimmed as the seed's client does; `quit` leaves.
 * @throws Interrupted after Ctrl-C (the line is ended first).
 */
export async function interactive(
  ask: Ask,
  show: (reply: Buffer) => void,
  io: LoopIo,
  end?: SessionEnd,
): Promise<void> {
  const rl = createInterface({ input: io.stdin, output: io.stdout, prompt: '>>> ' });
  let stopped: Error | undefined;
  let interrupted = false;
  rl.on('SIGINT', () => {
    interrupted = true;
    io.stdout.write('\n');
    rl.close();
  });
  try {
    await untilEnded(rl, end, async () => {
      rl.prompt();
      for await (const raw of rl) {
        const line = raw.trim();
        if (line === 'quit') break;
        if (line !== '') {
          // A reply that will never come (the session ended) must not keep the prompt waiting.
          const reply = await (end === undefined
            ? ask(line)
            : Promise.race([ask(line), end.ended.then(fail)]));
          show(reply);
        }
        rl.prompt();
      }
    });
  } catch (err) {
    stopped = err instanceof Error ? err : new Error(String(err));
  } finally {
    rl.close();
  }
  if (stopped !== undefined) throw stopped;
  if (interrupted) throw new Interrupted('interrupted');
}

function fail(err: Error): never {
  throw err;
}

/** One message per non-empty line; replies shown in order; stops at the first failure. */
export async function piped(
  ask: Ask,
  show: (reply: Buffer) => void,
  io: LoopIo,
  maxOutstanding: number,
  end?: SessionEnd,
): Promise<void> {
  const rl = createInterface({ input: io.stdin, crlfDelay: Number.POSITIVE_INFINITY });
  let failure: unknown;
  let shown = Promise.resolve();
  let outstanding = 0;
  let wake: (() => void) | undefined;
  try {
    await untilEnded(rl, end, async () => {
      for await (const line of rl) {
        if (failure !== undefined) break;
        if (line.trim() === '') continue;
        const reply = ask(line);
        reply.catch(() => {}); // reported in order below
        outstanding++;
        shown = shown.then(async () => {
          try {
            if (failure === undefined) show(await reply);
          } catch (err) {
            failure ??= err;
            rl.close(); // stop at once: more input would not be sent
          }
          outstanding--;
          wake?.();
        });
        while (outstanding >= maxOutstanding && failure === undefined) {
          await new Promise<void>((resolve) => (wake = resolve));
        }
      }
    });
  } catch (err) {
    failure ??= err;
  } finally {
    rl.close();
  }
  await shown;
  if (failure !== undefined) throw failure;
}
