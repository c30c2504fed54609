/**
 * The `connect` command's two input loops, for every profile:
 * - on a terminal, the seed client's `>>> ` prompt: one line, one reply; `quit` leaves;
 * - otherwise each non-empty input line is one message, and each reply is shown in input order.
 *   Up to `maxOutstanding` messages may await their replies at once (1: strictly one at a time,
 *   which profiles that frame by `recv` chunks need, since two messages sent together may arrive
 *   as one chunk).
 */

import { createInterface } from 'node:readline';

/** Send one line's message; resolves with its reply. */
export type Ask = (text: string) => Promise<Buffer>;

export interface LoopIo {
  readonly stdin: NodeJS.ReadableStream;
  readonly stdout: NodeJS.WritableStream;
}

/** Ctrl-C at the prompt: the command line ends the line and exits 130, as shells expect. */
export class Interrupted extends Error {}

/**
 * `>>> ` prompt; lines are trimmed as the seed's client does; `quit` leaves.
 * @throws Interrupted after Ctrl-C (the line is ended first).
 */
export async function interactive(ask: Ask, show: (reply: Buffer) => void, io: LoopIo): Promise<void> {
  const rl = createInterface({ input: io.stdin, output: io.stdout, prompt: '>>> ' });
  let interrupted = false;
  rl.on('SIGINT', () => {
    interrupted = true;
    io.stdout.write('\n');
    rl.close();
  });
  try {
    rl.prompt();
    for await (const raw of rl) {
      const line = raw.trim();
      if (line === 'quit') break;
      if (line !== '') show(await ask(line));
      rl.prompt();
    }
  } finally {
    rl.close();
  }
  if (interrupted) throw new Interrupted('interrupted');
}

/** One message per non-empty line; replies shown in order; stops at the first failure. */
export async function piped(
  ask: Ask,
  show: (reply: Buffer) => void,
  io: LoopIo,
  maxOutstanding: number,
): Promise<void> {
  const rl = createInterface({ input: io.stdin, crlfDelay: Number.POSITIVE_INFINITY });
  let failure: unknown;
  let shown = Promise.resolve();
  let outstanding = 0;
  let wake: (() => void) | undefined;
  try {
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
        }
        outstanding--;
        wake?.();
      });
      while (outstanding >= maxOutstanding) await new Promise<void>((resolve) => (wake = resolve));
    }
  } finally {
    rl.close();
  }
  await shown;
  if (failure !== undefined) throw failure;
}
