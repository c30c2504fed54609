/**
 * spiped (https://www.tarsnap.com/spiped.html) at both ends of a bench connection, when the
 * Debian package is installed: the load generator connects to an encrypting `spiped -e`, which
 * connects to a decrypting `spiped -d`, which connects to a raw framed server. The server's cost
 * is the Node server's plus the decrypting spiped's (CPU from /proc/PID/stat, RSS from
 * /proc/PID/status); the encrypting end is the client's.
 *
 * Rules: loopback only; both processes are started here, in the foreground (-F), and ended here
 * by PID when the process that started them exits, if their caller has not ended them before
 * (the tunnel workload does, between its systems).
 */

import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Whether the `spiped` binary runs here. */
export function spipedInstalled(): boolean {
  try {
    execFileSync('spiped', ['-v'], { stdio: 'ignore', timeout: 5_000 });
    return true;
  } catch {
    return false;
  }
}

/** A free loopback port (closed again at once; spiped binds it right after). */
async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const a = s.address();
  await new Promise<void>((resolve) => s.close(() => resolve()));
  if (a === null || typeof a !== 'object') throw new Error('no port');
  return a.port;
}

/** The two spiped ends in front of a server on `targetPort`. */
export interface SpipedPair {
  /** The port the load generator connects to (the encrypting end). */
  readonly port: number;
  /** The two processes, the encrypting end first, for a caller that ends them itself. */
  readonly processes: readonly ChildProcess[];
  /** CPU time of the decrypting (server) end so far, in µs. */
  serverCpuUs(): number;
  /** RSS of the decrypting end, in bytes. */
  serverRss(): number;
}

const children: ChildProcess[] = [];
process.once('exit', () => {
  // Those a caller ended already (exited or killed by a signal) are left alone.
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGTERM');
});

/**
 * Wait until something accepts connections on `port`. A probe that connects, rather than one that
 * binds, cannot take the port from under spiped while it starts.
 */
async function waitForPort(port: number, child: ChildProcess, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const c = createConnection({ host: '127.0.0.1', port });
      c.once('connect', () => {
        c.destroy();
        resolve(true);
      });
      c.once('error', () => resolve(false));
    });
    if (ok) return;
    if (child.exitCode !== null)
      throw new Error(`spiped exited (${child.exitCode}) before listening on ${port}`);
    if (Date.now() > deadline) throw new Error(`spiped did not listen on ${port}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Start `spiped -d` in front of `targetPort` and `spiped -e` in front of it. */
export async function startSpiped(targetPort: number): Promise<SpipedPair> {
  const dir = mkdtempSync(join(tmpdir(), 'sesame-bench-spiped-'));
  const keyFile = join(dir, 'key');
  writeFileSync(keyFile, randomBytes(32), { mode: 0o600 });
  const decryptPort = await freePort();
  const encryptPort = await freePort();
  const common = ['-F', '-n', '100000', '-k', keyFile];
  const d = spawn(
    'spiped',
    ['-d', '-s', `[127.0.0.1]:${decryptPort}`, '-t', `[127.0.0.1]:${targetPort}`, ...common],
    {
      stdio: 'ignore',
    },
  );
  const e = spawn(
    'spiped',
    ['-e', '-s', `[127.0.0.1]:${encryptPort}`, '-t', `[127.0.0.1]:${decryptPort}`, ...common],
    {
      stdio: 'ignore',
    },
  );
  children.push(d, e);
  await waitForPort(decryptPort, d, 5_000);
  await waitForPort(encryptPort, e, 5_000);
  rmSync(dir, { recursive: true, force: true }); // spiped read the key at start
  const pid = d.pid;
  if (pid === undefined) throw new Error('spiped -d did not start');
  const ticksUs = 1e6 / 100; // USER_HZ is 100 on Linux
  return {
    port: encryptPort,
    processes: [e, d],
    serverCpuUs: () => {
      const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      return (Number(fields[11]) + Number(fields[12])) * ticksUs; // utime, stime
    },
    serverRss: () => {
      const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'latin1'));
      return m === null ? 0 : Number(m[1]) * 1024;
    },
  };
}
