import { execFileSync } from 'node:child_process';
import {
  chmod,
  lstat,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  rm,
  stat,
  symlink,
  writeFile,
} from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import util from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isSesameError, type SesameError } from '../../src/errors.js';
import {
  addGeneratedKey,
  defaultKeyringPath,
  ensureKeyring,
  keyringPermissionWarning,
  loadKeyring,
  saveKeyring,
} from '../../src/keyring/file.js';
import { KeyRing, Secret } from '../../src/keyring/keyring.js';

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
const MARKER_BYTES = Buffer.from('SESAME-FILE-SECRET-MARKER-abcdefgh');
const MARKER_B64 = MARKER_BYTES.toString('base64');

let dir: string;

beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'sesame-keyring-'));
});

afterEach(async () => {
  await chmod(dir, 0o700).catch(() => {});
  await rm(dir, { recursive: true, force: true });
});

async function modeOf(p: string): Promise<number> {
  return (await stat(p)).mode & 0o777;
}

async function rejection(promise: Promise<unknown>): Promise<SesameError> {
  try {
    await promise;
  } catch (err) {
    if (isSesameError(err)) return err;
    throw err;
  }
  throw new Error('expected a rejection');
}

function sampleRing(): KeyRing {
  return new KeyRing([
    {
      id: '0123456789abcdef',
      principal: 'alice',
      secret: new Secret(MARKER_BYTES),
      created: new Date('2026-11-29T20:00:00Z'),
      notAfter: new Date('2027-11-29T20:00:00Z'),
      revoked: false,
    },
    {
      id: 'fedcba9876543210',
      principal: 'bob',
      secret: new Secret(Buffer.alloc(32, 3)),
      created: new Date('2026-11-30T20:00:00Z'),
      revoked: true,
    },
  ]);
}

describe('defaultKeyringPath', () => {
  it('prefers $SESAME_KEYRING', () => {
    expect(defaultKeyringPath({ SESAME_KEYRING: '/k/ring.json', XDG_CONFIG_HOME: '/x' }, '/home/u')).toBe(
      '/k/ring.json',
    );
  });

  it('falls back to $XDG_CONFIG_HOME, then ~/.config', () => {
    expect(defaultKeyringPath({ SESAME_KEYRING: '', XDG_CONFIG_HOME: '/x' }, '/home/u')).toBe(
      path.join('/x', 'sesame', 'keyring.json'),
    );
    expect(defaultKeyringPath({}, '/home/u')).toBe(path.join('/home/u', '.config', 'sesame', 'keyring.json'));
    expect(defaultKeyringPath({ XDG_CONFIG_HOME: '' }, '/home/u')).toBe(
      path.join('/home/u', '.config', 'sesame', 'keyring.json'),
    );
    // The XDG spec says relative values are to be ignored.
    expect(defaultKeyringPath({ XDG_CONFIG_HOME: 'relative' }, '/home/u')).toBe(
      path.join('/home/u', '.config', 'sesame', 'keyring.json'),
    );
  });

  it('uses the real environment and home by default', () => {
    const saved = process.env.SESAME_KEYRING;
    process.env.SESAME_KEYRING = '/from/env.json';
    try {
      expect(defaultKeyringPath()).toBe('/from/env.json');
    } finally {
      if (saved === undefined) delete process.env.SESAME_KEYRING;
      else process.env.SESAME_KEYRING = saved;
    }
  });
});

describe('saveKeyring and loadKeyring', () => {
  it('round-trips a ring through a 0600 file', async () => {
    const file = path.join(dir, 'keyring.json');
    const ring = sampleRing();
    await saveKeyring(file, ring);
    expect(await modeOf(file)).toBe(0o600);
    expect(await readFile(file, 'utf8')).toBe(ring.serialize());
    const loaded = await loadKeyring(file);
    expect(loaded.serialize()).toBe(ring.serialize());
    expect(loaded.get('0123456789abcdef')?.secret.bytes()).toEqual(MARKER_BYTES);
    expect(loaded.get('fedcba9876543210')?.revoked).toBe(true);
    expect(await keyringPermissionWarning(file)).toBeUndefined();
  });

  it('creates missing parent directories with mode 0700', async () => {
    const file = path.join(dir, 'a', 'b', 'keyring.json');
    await saveKeyring(file, sampleRing());
    expect(await modeOf(path.join(dir, 'a'))).toBe(0o700);
    expect(await modeOf(path.join(dir, 'a', 'b'))).toBe(0o700);
    expect(await modeOf(file)).toBe(0o600);
  });

  it('leaves existing directories alone', async () => {
    const parent = path.join(dir, 'shared');
    await mkdir(parent, { mode: 0o755 });
    await chmod(parent, 0o755);
    await saveKeyring(path.join(parent, 'keyring.json'), sampleRing());
    expect(await modeOf(parent)).toBe(0o755);
  });

  it('replaces an existing file atomically, fixing its mode and leaving no temp files', async () => {
    const file = path.join(dir, 'keyring.json');
    await writeFile(file, 'old content', { mode: 0o644 });
    await chmod(file, 0o644);
    const before = await stat(file);
    await saveKeyring(file, sampleRing());
    const after = await stat(file);
    // A rename puts a new inode in place; writing in place would keep the old one.
    expect(after.ino).not.toBe(before.ino);
    expect(after.mode & 0o777).toBe(0o600);
    expect(await readdir(dir)).toEqual(['keyring.json']);
    for (let i = 0; i < 5; i++) await saveKeyring(file, sampleRing());
    expect(await readdir(dir)).toEqual(['keyring.json']);
  });

  it('writes through a symlink to the real file, atomically there, and keeps the link', async () => {
    // A server watching the real file must see the change (a replaced link would hide it).
    const real = path.join(dir, 'real');
    await mkdir(real);
    const target = path.join(real, 'target.json');
    const file = path.join(dir, 'keyring.json');
    await writeFile(target, 'old');
    await symlink('real/target.json', file);
    await saveKeyring(file, sampleRing());
    expect((await lstat(file)).isSymbolicLink()).toBe(true);
    expect((await loadKeyring(target)).size).toBe(2);
    expect((await stat(target)).mode & 0o777).toBe(0o600);
    // No temporary file left in either directory.
    expect((await readdir(dir)).sort()).toEqual(['keyring.json', 'real']);
    expect(await readdir(real)).toEqual(['target.json']);
    // A link to a file not there yet: the file is created where the link points.
    const later = path.join(dir, 'later.json');
    await symlink(path.join(real, 'new.json'), later);
    await saveKeyring(later, sampleRing());
    expect((await lstat(later)).isSymbolicLink()).toBe(true);
    expect((await loadKeyring(path.join(real, 'new.json'))).size).toBe(2);
  });

  it('refuses to replace anything but a regular file: FIFOs, directories, links to them, link loops', async () => {
    // A FIFO stands for a device such as /dev/stdout (the test must not touch /dev).
    const fifo = path.join(dir, 'fifo');
    execFileSync('mkfifo', [fifo]);
    const viaLink = path.join(dir, 'fifo-link.json');
    await symlink(fifo, viaLink);
    const loop = path.join(dir, 'loop.json');
    await symlink(loop, loop);
    const folder = path.join(dir, 'folder');
    await mkdir(folder);
    for (const target of [fifo, viaLink, folder, loop]) {
      const err = await saveKeyring(target, sampleRing()).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect([target, isSesameError(err, 'ERR_KEYRING_IO')]).toEqual([target, true]);
    }
    expect((await lstat(viaLink)).isSymbolicLink()).toBe(true);
    expect((await lstat(fifo)).isFIFO()).toBe(true);
    expect((await readdir(dir)).filter((n) => n.endsWith('.tmp'))).toEqual([]);
  });

  it.skipIf(isRoot)('reports an unwritable directory as ERR_KEYRING_IO and leaves the old file', async () => {
    const locked = path.join(dir, 'locked');
    await mkdir(locked);
    const file = path.join(locked, 'keyring.json');
    await saveKeyring(file, sampleRing());
    const original = await readFile(file, 'utf8');
    await chmod(locked, 0o500);
    try {
      const err = await rejection(saveKeyring(file, new KeyRing()));
      expect(err.code).toBe('ERR_KEYRING_IO');
      expect(err.message).toContain(file);
      expect(err.message).toMatch(/permission denied/i);
      expect(err.cause).toBeInstanceOf(Error);
    } finally {
      await chmod(locked, 0o700);
    }
    expect(await readFile(file, 'utf8')).toBe(original);
    expect(await readdir(locked)).toEqual(['keyring.json']);
  });

  it('cleans up its temp file when the final rename fails (works as root too)', async () => {
    // A non-empty directory where the file should be: rename() onto it fails for everyone.
    const file = path.join(dir, 'keyring.json');
    await mkdir(file);
    await writeFile(path.join(file, 'occupant'), '');
    const err = await rejection(saveKeyring(file, sampleRing()));
    expect(err.code).toBe('ERR_KEYRING_IO');
    expect(err.message).toContain(file);
    expect(err.message).toMatch(/replace failed/);
    expect(['EISDIR', 'ENOTEMPTY', 'EEXIST']).toContain((err.cause as NodeJS.ErrnoException).code);
    expect(await readdir(dir)).toEqual(['keyring.json']);
  });

  it('reports a parent that is a file as ERR_KEYRING_IO', async () => {
    await writeFile(path.join(dir, 'plain'), '');
    const err = await rejection(saveKeyring(path.join(dir, 'plain', 'keyring.json'), sampleRing()));
    expect(err.code).toBe('ERR_KEYRING_IO');
    expect(err.message).toContain(path.join(dir, 'plain'));
  });

  it('reports a missing file as ERR_KEYRING_IO with the path and reason', async () => {
    const file = path.join(dir, 'nope.json');
    const err = await rejection(loadKeyring(file));
    expect(err.code).toBe('ERR_KEYRING_IO');
    expect(err.message).toContain(file);
    expect(err.message).toMatch(/no such file or directory/i);
    expect((err.cause as NodeJS.ErrnoException).code).toBe('ENOENT');
  });

  it('reports a directory in place of the file as ERR_KEYRING_IO', async () => {
    const err = await rejection(loadKeyring(dir));
    expect(err.code).toBe('ERR_KEYRING_IO');
    expect((err.cause as NodeJS.ErrnoException).code).toBe('EISDIR');
  });

  it.skipIf(isRoot)('reports an unreadable file as ERR_KEYRING_IO', async () => {
    const file = path.join(dir, 'keyring.json');
    await saveKeyring(file, sampleRing());
    await chmod(file, 0o000);
    const err = await rejection(loadKeyring(file));
    expect(err.code).toBe('ERR_KEYRING_IO');
    expect((err.cause as NodeJS.ErrnoException).code).toBe('EACCES');
  });

  it('reports malformed content as ERR_KEYRING_INVALID prefixed with the path, without the secret', async () => {
    const file = path.join(dir, 'keyring.json');
    const broken = sampleRing()
      .serialize()
      .replace(MARKER_B64, `${MARKER_B64.slice(0, -1)}!`);
    expect(broken).toContain(MARKER_B64.slice(0, 20));
    await writeFile(file, broken, { mode: 0o600 });
    const err = await rejection(loadKeyring(file));
    expect(err.code).toBe('ERR_KEYRING_INVALID');
    expect(err.message.startsWith(`${file}: `)).toBe(true);
    expect(err.message).toMatch(/keys\[0\] \(id 0123456789abcdef\): "secret"/);
    const rendered = [err.message, String(err), `${err}`, util.inspect(err), JSON.stringify(err)];
    for (const out of rendered) expect(out).not.toContain(MARKER_B64.slice(0, 8));
  });

  it('never shows a loaded secret in logs or JSON', async () => {
    const file = path.join(dir, 'keyring.json');
    await saveKeyring(file, sampleRing());
    const ring = await loadKeyring(file);
    const first = ring.list()[0];
    for (const out of [
      JSON.stringify(ring.list()),
      String(first?.secret),
      `${first?.secret}`,
      util.inspect(ring.list(), { depth: 10 }),
      util.format('%o', first),
    ]) {
      expect(out).not.toContain(MARKER_B64.slice(0, 20));
      expect(out).not.toContain('SESAME-FILE-SECRET-MARKER');
      expect(out).toContain('[secret]');
    }
  });
});

describe('ensureKeyring', () => {
  it('creates a ring with one fresh 32-byte key when there is none', async () => {
    const file = path.join(dir, 'conf', 'keyring.json');
    const now = new Date('2026-11-29T20:00:00Z');
    const { ring, created } = await ensureKeyring(file, { principal: 'server', now });
    expect(created).toBe(true);
    expect(ring.size).toBe(1);
    const [key] = ring.list();
    expect(key?.principal).toBe('server');
    expect(key?.secret.length).toBe(32);
    expect(key?.created.toISOString()).toBe(now.toISOString());
    expect(key?.id).toMatch(/^[0-9a-f]{16}$/);
    expect(await modeOf(file)).toBe(0o600);
    expect(await modeOf(path.dirname(file))).toBe(0o700);
    expect(await readdir(path.dirname(file))).toEqual(['keyring.json']);
    expect((await loadKeyring(file)).serialize()).toBe(ring.serialize());
  });

  it('loads an existing ring without changing it', async () => {
    const file = path.join(dir, 'keyring.json');
    await saveKeyring(file, sampleRing());
    const before = await readFile(file, 'utf8');
    const { ring, created } = await ensureKeyring(file, { principal: 'server' });
    expect(created).toBe(false);
    expect(ring.serialize()).toBe(before);
    expect(await readFile(file, 'utf8')).toBe(before);
  });

  it('agrees on one key when several callers race to create it', async () => {
    const file = path.join(dir, 'keyring.json');
    const results = await Promise.all(
      Array.from({ length: 8 }, (_, i) => ensureKeyring(file, { principal: `racer${i}` })),
    );
    expect(results.filter((r) => r.created)).toHaveLength(1);
    const onDisk = await readFile(file, 'utf8');
    for (const r of results) expect(r.ring.serialize()).toBe(onDisk);
    expect(await readdir(dir)).toEqual(['keyring.json']);
  });

  it('refuses a malformed existing file and leaves it alone', async () => {
    const file = path.join(dir, 'keyring.json');
    await writeFile(file, '{"version":1}');
    const err = await rejection(ensureKeyring(file, { principal: 'server' }));
    expect(err.code).toBe('ERR_KEYRING_INVALID');
    expect(await readFile(file, 'utf8')).toBe('{"version":1}');
  });

  it('refuses an invalid principal without creating anything', async () => {
    const file = path.join(dir, 'keyring.json');
    const err = await rejection(ensureKeyring(file, { principal: '' }));
    expect(err.code).toBe('ERR_INVALID_ARGUMENT');
    expect(await readdir(dir)).toEqual([]);
  });
});

describe('addGeneratedKey', () => {
  it('starts a ring when the file is missing', async () => {
    const file = path.join(dir, 'new', 'keyring.json');
    const before = Date.now();
    const entry = await addGeneratedKey(file, 'alice');
    expect(entry.principal).toBe('alice');
    expect(entry.secret.length).toBe(32);
    expect(entry.created.getTime()).toBeGreaterThanOrEqual(before);
    expect(entry.created.getTime()).toBeLessThanOrEqual(Date.now());
    const ring = await loadKeyring(file);
    expect(ring.list().map((e) => e.id)).toEqual([entry.id]);
    expect(ring.get(entry.id)?.secret.bytes()).toEqual(entry.secret.bytes());
    expect(await modeOf(file)).toBe(0o600);
  });

  it('appends to an existing ring, keeping the old keys and order', async () => {
    const file = path.join(dir, 'keyring.json');
    await saveKeyring(file, sampleRing());
    await chmod(file, 0o644);
    const entry = await addGeneratedKey(file, 'carol');
    const ring = await loadKeyring(file);
    expect(ring.list().map((e) => e.id)).toEqual(['0123456789abcdef', 'fedcba9876543210', entry.id]);
    expect(ring.get('0123456789abcdef')?.secret.bytes()).toEqual(MARKER_BYTES);
    expect(await modeOf(file)).toBe(0o600);
    expect(await readdir(dir)).toEqual(['keyring.json']);
  });

  it('refuses to touch a malformed file', async () => {
    const file = path.join(dir, 'keyring.json');
    await writeFile(file, 'garbage');
    const err = await rejection(addGeneratedKey(file, 'carol'));
    expect(err.code).toBe('ERR_KEYRING_INVALID');
    expect(await readFile(file, 'utf8')).toBe('garbage');
  });
});

describe('keyringPermissionWarning', () => {
  it.each([0o640, 0o604, 0o620, 0o602, 0o644, 0o666])('warns about mode %o', async (mode) => {
    const file = path.join(dir, 'keyring.json');
    await saveKeyring(file, sampleRing());
    await chmod(file, mode);
    const warning = await keyringPermissionWarning(file);
    expect(warning).toContain(file);
    expect(warning).toContain(mode.toString(8));
    expect(warning).toMatch(/chmod 600/);
  });

  it.each([0o600, 0o400, 0o700])('is quiet about mode %o', async (mode) => {
    const file = path.join(dir, 'keyring.json');
    await saveKeyring(file, sampleRing());
    await chmod(file, mode);
    expect(await keyringPermissionWarning(file)).toBeUndefined();
  });

  it('is quiet about a missing file', async () => {
    expect(await keyringPermissionWarning(path.join(dir, 'absent.json'))).toBeUndefined();
  });
});
