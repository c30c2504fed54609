// The socketserver-style framework: handler lifecycle, hooks and the worker-thread pool.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { connect } from '../../src/net/client.js';
import { BaseRequestHandler, type ConnectionInfo, StreamRequestHandler } from '../../src/net/handlers.js';
import { type ServerOptions, SesameServer } from '../../src/net/stream-server.js';
import { KEY_A, KEY_B } from '../helpers/pair.js';

const servers: SesameServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

async function start(handler: ServerOptions['handler'], over: Partial<ServerOptions> = {}) {
  const server = new SesameServer({ listen: 'tcp://127.0.0.1:0', keys: [KEY_A, KEY_B], handler, ...over });
  servers.push(server);
  const url = await server.listen();
  return { server, url };
}

describe('request handlers', () => {
  it('runs setup, handle and finish in order, with the connection metadata', async () => {
    const calls: string[] = [];
    let seen: ConnectionInfo | undefined;
    class Recorder extends BaseRequestHandler {
      override setup() {
        calls.push('setup');
      }
      async handle() {
        calls.push('handle');
        seen = this.info;
        const m = await this.request.next();
        this.request.send(Buffer.from(`${this.clientAddress} ${m?.toString()}`));
      }
      override finish() {
        calls.push('finish');
      }
    }
    const { url } = await start(Recorder);
    const s = await connect(url, { key: KEY_B });
    const reply = (await s.request(Buffer.from('hi'))).toString();
    await s.close();
    await expect.poll(() => calls).toEqual(['setup', 'handle', 'finish']);
    expect(reply).toMatch(/^127\.0\.0\.1:\d+ hi$/);
    expect(seen).toMatchObject({
      profile: 'native',
      keyId: KEY_B.id,
      principal: 'bob',
      forwardSecrecy: true,
      remoteAddress: '127.0.0.1',
    });
    expect(seen?.channelBinding?.equals(s.info?.channelBinding as Buffer)).toBe(true);
  });

  it('reports a setup() that throws at once, ends that connection only, and leaves no rejection unhandled', async () => {
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown) => unhandled.push(reason);
    process.on('unhandledRejection', onUnhandled);
    try {
      class BadSetup extends StreamRequestHandler {
        override setup(): void {
          if (this.info.principal === 'bob') throw new Error('setup failed');
        }
        override respond(message: Buffer) {
          return message;
        }
      }
      const { server, url } = await start(BadSetup);
      const errors: string[] = [];
      server.on('handler-error', (err: unknown) => errors.push((err as Error).message));
      const bob = await connect(url, { key: KEY_B });
      const outcome = await bob.next().then(
        () => 'resolved',
        (e: unknown) => (e as { code?: string }).code,
      );
      expect(outcome).toMatch(/ERR_TRUNCATED|ERR_CONNECTION_RESET/);
      const alice = await connect(url, { key: KEY_A });
      expect((await alice.request(Buffer.from('fine'))).toString()).toBe('fine');
      await alice.close();
      expect(errors).toEqual(['setup failed']);
      await new Promise((resolve) => setTimeout(resolve, 20));
      expect(unhandled).toEqual([]);
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
  });

  it('runs finish after a throwing handle, reports the error, and keeps serving others', async () => {
    const calls: string[] = [];
    class Faulty extends StreamRequestHandler {
      override respond(message: Buffer) {
        if (message.toString() === 'boom') throw new Error('handler bug');
        return message;
      }
      override finish() {
        calls.push('finish');
      }
    }
    const { server, url } = await start(Faulty);
    const errors: unknown[] = [];
    server.on('handler-error', (e: unknown) => errors.push(e));
    const bad = await connect(url, { key: KEY_A });
    await expect(bad.request(Buffer.from('boom'))).rejects.toMatchObject({ code: 'ERR_TRUNCATED' });
    expect(calls).toEqual(['finish']);
    expect(errors).toEqual([expect.objectContaining({ message: 'handler bug' })]);
    const good = await connect(url, { key: KEY_B });
    expect((await good.request(Buffer.from('fine'))).toString()).toBe('fine');
    await good.close();
  });

  it('StreamRequestHandler: respond() replies to each message in order, text or bytes', async () => {
    class Upper extends StreamRequestHandler {
      override respond(message: Buffer) {
        return message.length === 0 ? undefined : message.toString().toUpperCase();
      }
    }
    const { url } = await start(Upper);
    const s = await connect(url, { key: KEY_A });
    s.send(Buffer.from('a'));
    s.send(Buffer.alloc(0)); // no reply
    s.send(Buffer.from('b'));
    expect([(await s.next())?.toString(), (await s.next())?.toString()]).toEqual(['A', 'B']);
    await s.close();
  });

  it('verifyRequest refuses by principal: the refused client is cut before being served', async () => {
    let served = 0;
    class Counting extends StreamRequestHandler {
      override respond(m: Buffer) {
        served++;
        return m;
      }
    }
    const { server, url } = await start(Counting, { verifyRequest: (info) => info.principal !== 'bob' });
    const refused: ConnectionInfo[] = [];
    server.on('refused', (info: ConnectionInfo) => refused.push(info));
    const bob = await connect(url, { key: KEY_B });
    await expect(bob.request(Buffer.from('let me in'))).rejects.toMatchObject({ code: 'ERR_TRUNCATED' });
    expect(refused.map((i) => i.principal)).toEqual(['bob']);
    const alice = await connect(url, { key: KEY_A });
    expect((await alice.request(Buffer.from('hello'))).toString()).toBe('hello');
    await alice.close();
    expect(served).toBe(1);
  });

  it('verifyRequest can be overridden in a subclass, and may be async', async () => {
    class OnlyKeyA extends SesameServer {
      override async verifyRequest(info: ConnectionInfo) {
        await new Promise((r) => setTimeout(r, 5));
        return info.keyId === KEY_A.id;
      }
    }
    const server = new OnlyKeyA({
      listen: 'tcp://127.0.0.1:0',
      keys: [KEY_A, KEY_B],
      handler: StreamRequestHandler,
    });
    servers.push(server);
    const url = await server.listen();
    const b = await connect(url, { key: KEY_B });
    expect(await b.next().catch((e: { code: string }) => e.code)).toBe('ERR_TRUNCATED');
    const a = await connect(url, { key: KEY_A });
    await a.close();
    expect(a.error).toBeUndefined();
  });

  it('handleTimeout is called when a session is closed for idleness', async () => {
    const timeouts: ConnectionInfo[] = [];
    class Quiet extends StreamRequestHandler {}
    const { server, url } = await start(Quiet, { idleTimeoutMs: 150 });
    server.on('timeout', (info: ConnectionInfo) => timeouts.push(info));
    const s = await connect(url, { key: KEY_A });
    expect(await s.next()).toBeUndefined();
    await s.close();
    expect(timeouts.map((t) => t.principal)).toEqual(['alice']);
  });

  it('runs CPU-heavy work on the worker-thread pool, off the event loop', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sesame-pool-'));
    const task = join(dir, 'task.mjs');
    writeFileSync(
      task,
      `import { pbkdf2Sync } from 'node:crypto';
       import { threadId } from 'node:worker_threads';
       export default ({ text }) => ({ digest: pbkdf2Sync(text, 'salt', 20000, 32, 'sha256').toString('hex'), threadId });`,
    );
    class Hasher extends StreamRequestHandler {
      override async respond(message: Buffer) {
        const r = await this.server.runTask<{ digest: string; threadId: number }>({
          text: message.toString(),
        });
        return `${r.threadId} ${r.digest}`;
      }
    }
    const { url } = await start(Hasher, { workerPool: { filename: task, minThreads: 2, maxThreads: 2 } });
    const s = await connect(url, { key: KEY_A });
    const replies = await Promise.all(['x', 'y', 'z', 'w'].map((t) => s.request(Buffer.from(t))));
    const { pbkdf2Sync } = await import('node:crypto');
    const expected = ['x', 'y', 'z', 'w'].map((t) =>
      pbkdf2Sync(t, 'salt', 20000, 32, 'sha256').toString('hex'),
    );
    expect(replies.map((r) => r.toString().split(' ')[1])).toEqual(expected);
    // ran on worker threads, not the main thread (threadId 0)
    expect(replies.every((r) => Number(r.toString().split(' ')[0]) > 0)).toBe(true);
    await s.close();
  });

  it('runTask without a pool is a typed error', async () => {
    const { server } = await start(StreamRequestHandler);
    expect(() => server.runTask({})).toThrow(expect.objectContaining({ code: 'ERR_INVALID_STATE' }));
  });

  it('serveForever resolves once the server is shut down', async () => {
    const server = new SesameServer({
      listen: 'tcp://127.0.0.1:0',
      keys: [KEY_A],
      handler: StreamRequestHandler,
    });
    let done = false;
    const serving = server.serveForever().then(() => {
      done = true;
    });
    await new Promise((r) => server.once('listening', r));
    expect(done).toBe(false);
    await server.shutdown();
    await serving;
    expect(done).toBe(true);
  });
});

describe('servers keep no startup keys', () => {
  it('neither server holds the keys it was constructed with (a reload must be able to drop them)', async () => {
    const { UdpServer } = await import('../../src/net/datagram-server.js');
    const { DatagramServerEndpoint } = await import('../../src/protocol/datagram/index.js');
    const { systemEntropy } = await import('../../src/protocol/primitives.js');
    const keys = [KEY_A, KEY_B];
    const stream = new SesameServer({ listen: 'tcp://127.0.0.1:0', keys, handler: () => undefined });
    const udp = new UdpServer({ listen: 'udp://127.0.0.1:0', keys, handler: () => undefined });
    const endpoint = new DatagramServerEndpoint({ keys, entropy: systemEntropy, now: Date.now });
    for (const options of [
      stream.options,
      udp.options,
      (endpoint as unknown as { options: object }).options,
    ]) {
      expect(Object.hasOwn(options, 'keys')).toBe(false);
      expect(Object.values(options)).not.toContain(keys);
    }
  });
});
