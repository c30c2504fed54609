/**
 * Request/reply over the IPC channel between the bench orchestrator and its child processes (one
 * server process and one load-generator process per system under test).
 *
 * Rules:
 * - Every request carries an id and gets exactly one reply: a result or an error message.
 * - Every call has a deadline; a child that misses it is killed (by its own PID) and the run fails.
 * - A child exits when its parent goes away (the IPC channel disconnects), so no process outlives
 *   the bench.
 */

import { type ChildProcess, fork } from 'node:child_process';

/** A command table: for each command name, the shape of its arguments and of its result. */
export type Commands<C> = { [K in keyof C]: { args: unknown; result: unknown } };

interface Request {
  readonly id: number;
  readonly cmd: string;
  readonly args: unknown;
}

type Reply =
  | { readonly id: number; readonly ok: true; readonly result: unknown }
  | { readonly id: number; readonly ok: false; readonly error: string };

type Handlers<C extends Commands<C>> = { [K in keyof C]: (args: C[K]['args']) => Promise<C[K]['result']> };

/** In a child: answer the parent's requests with `handlers`, one at a time. */
export function serveRequests<C extends Commands<C>>(handlers: Handlers<C>): void {
  const send = process.send?.bind(process);
  if (send === undefined) throw new Error('this module runs as a child of the bench (no IPC channel)');
  let chain = Promise.resolve();
  process.on('message', (raw: unknown) => {
    const req = raw as Request;
    chain = chain.then(async () => {
      let reply: Reply;
      try {
        const handler = handlers[req.cmd as keyof C];
        if (handler === undefined) throw new Error(`unknown command ${req.cmd}`);
        reply = { id: req.id, ok: true, result: await handler(req.args as C[keyof C]['args']) };
      } catch (err) {
        reply = {
          id: req.id,
          ok: false,
          error: err instanceof Error ? (err.stack ?? err.message) : String(err),
        };
      }
      if (process.connected) send(reply);
    });
  });
  process.on('disconnect', () => process.exit(0));
}

/** The parent's handle on one child process. */
export class Child<C extends Commands<C>> {
  private readonly proc: ChildProcess;
  private nextId = 1;
  private readonly pending = new Map<
    number,
    { resolve(v: unknown): void; reject(e: Error): void; timer: NodeJS.Timeout }
  >();
  private exited = false;
  private readonly exit: Promise<void>;

  constructor(
    readonly name: string,
    modulePath: string,
    execArgv: string[] = [],
  ) {
    this.proc = fork(modulePath, [], { execArgv, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    this.proc.on('message', (raw: unknown) => {
      const reply = raw as Reply;
      const p = this.pending.get(reply.id);
      if (p === undefined) return;
      this.pending.delete(reply.id);
      clearTimeout(p.timer);
      if (reply.ok) p.resolve(reply.result);
      else p.reject(new Error(`${this.name}: ${reply.error}`));
    });
    this.exit = new Promise((resolve) => {
      this.proc.once('exit', (code, signal) => {
        this.exited = true;
        for (const [id, p] of this.pending) {
          clearTimeout(p.timer);
          p.reject(new Error(`${this.name} exited (code ${code}, signal ${signal}) during request ${id}`));
        }
        this.pending.clear();
        resolve();
      });
    });
  }

  get pid(): number | undefined {
    return this.proc.pid;
  }

  /** Run `cmd` in the child; rejects after `timeoutMs` (and kills the child). */
  call<K extends keyof C & string>(cmd: K, args: C[K]['args'], timeoutMs: number): Promise<C[K]['result']> {
    if (this.exited) return Promise.reject(new Error(`${this.name} is not running`));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`${this.name}: ${cmd} did not finish within ${timeoutMs} ms`));
        this.kill();
      }, timeoutMs);
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject, timer });
      this.proc.send({ id, cmd, args } satisfies Request);
    });
  }

  /** Disconnect (the child exits by itself); kill it by PID if it has not exited within `ms`. */
  async stop(ms = 5_000): Promise<void> {
    if (this.exited) return;
    if (this.proc.connected) this.proc.disconnect();
    const timer = setTimeout(() => this.kill(), ms);
    await this.exit;
    clearTimeout(timer);
  }

  /** Kill this child (SIGKILL to its own PID). */
  kill(): void {
    if (!this.exited) this.proc.kill('SIGKILL');
  }
}
