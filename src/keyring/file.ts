/**
 * Reading and writing the keyring file.
 *
 * Rules:
 * - Every failure is a Sesame error: ERR_KEYRING_IO when the file system refuses (the message has
 *   the path and the OS reason, `cause` has the OS error), ERR_KEYRING_INVALID when the content is
 *   malformed (the message starts with the path). Messages never contain secrets.
 * - The keyring is only ever replaced whole: a temp file in the same directory (created 0600),
 *   written, fsynced, then renamed over the old file, so readers see the old ring or the new one and
 *   never a torn one. The final file is mode 0600.
 * - A symlink at the path is followed to the real file (also a dangling one, to where it points),
 *   and the real file is replaced there, in its own directory: the link stays a link, and a server
 *   watching the real file sees the change. A path that is, or leads to, anything but a regular
 *   file (a device such as /dev/stdout, a FIFO, a socket) is refused with ERR_KEYRING_IO before
 *   anything is written: renaming over it would replace it, and a secret would land where it
 *   should not. (A directory there makes the final rename fail.)
 * - Directories created on the way are mode 0700; existing directories are left as they are.
 * - Creating a keyring ({@link ensureKeyring}) never overwrites one that appeared meanwhile.
 *   {@link addGeneratedKey} is a read-modify-write without a lock: two running at once can lose one
 *   of the keys (the file itself stays whole).
 */

import { randomBytes } from 'node:crypto';
import {
  constants,
  type FileHandle,
  link,
  lstat,
  mkdir,
  open,
  readFile,
  readlink,
  rename,
  stat,
  unlink,
} from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { isSesameError, sesameError } from '../errors.js';
import { type KeyEntry, KeyRing } from './keyring.js';

const FILE_MODE = 0o600;
const DIR_MODE = 0o700;

/**
 * Where the keyring lives by default: `$SESAME_KEYRING` when set and non-empty, else
 * `$XDG_CONFIG_HOME/sesame/keyring.json` when XDG_CONFIG_HOME is set to an absolute path (the XDG
 * spec says to ignore relative ones), else `<home>/.config/sesame/keyring.json`.
 */
export function defaultKeyringPath(
  env: NodeJS.ProcessEnv = process.env,
  home: string = os.homedir(),
): string {
  const explicit = env.SESAME_KEYRING;
  if (explicit !== undefined && explicit !== '') return explicit;
  const xdg = env.XDG_CONFIG_HOME;
  const configHome = xdg !== undefined && path.isAbsolute(xdg) ? xdg : path.join(home, '.config');
  return path.join(configHome, 'sesame', 'keyring.json');
}

/**
 * Read and parse the keyring at `file`.
 *
 * @throws ERR_KEYRING_IO when the file is missing or cannot be read.
 * @throws ERR_KEYRING_INVALID when its content is not a valid keyring.
 */
export async function loadKeyring(file: string): Promise<KeyRing> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw ioError(`cannot read key ring ${file}`, err);
  }
  return parseAt(file, text);
}

/**
 * Write `ring` to `file` atomically, mode 0600, creating missing parent directories (mode 0700).
 *
 * @throws ERR_KEYRING_IO when a directory or the file cannot be created, written or renamed.
 */
export async function saveKeyring(file: string, ring: KeyRing): Promise<void> {
  await writeAtomically(file, ring.serialize(), false);
}

/**
 * Load the keyring at `file`, or when there is none, create one holding a single freshly generated
 * key for `principal` (created at `now`, the current time by default) and save it. If another
 * process creates the file first, that one is loaded instead and `created` is false.
 *
 * @throws ERR_KEYRING_IO when the file cannot be read or written.
 * @throws ERR_KEYRING_INVALID when an existing file is malformed.
 * @throws ERR_INVALID_ARGUMENT when a new key is needed and `principal` is invalid.
 */
export async function ensureKeyring(
  file: string,
  opts: { principal: string; now?: Date },
): Promise<{
  /** The keyring now at `file`: the one found there, or the new one. */
  ring: KeyRing;
  /** Whether this call created the file. */
  created: boolean;
}> {
  const text = await readKeyringText(file);
  if (text !== undefined) return { ring: parseAt(file, text), created: false };
  const ring = new KeyRing([
    KeyRing.generate({ principal: opts.principal, now: opts.now ?? new Date(), random: randomBytes }),
  ]);
  if (await writeAtomically(file, ring.serialize(), true)) return { ring, created: true };
  return { ring: await loadKeyring(file), created: false };
}

/**
 * Generate a key for `principal`, append it to the keyring at `file` (starting an empty ring when
 * the file does not exist), save, and return the new entry. Backs `sesame keygen`.
 *
 * @throws ERR_KEYRING_IO when the file cannot be read or written.
 * @throws ERR_KEYRING_INVALID when an existing file is malformed (it is then left untouched).
 * @throws ERR_INVALID_ARGUMENT when `principal` is invalid.
 */
export async function addGeneratedKey(file: string, principal: string): Promise<KeyEntry> {
  const text = await readKeyringText(file);
  const ring = text === undefined ? new KeyRing() : parseAt(file, text);
  let entry = KeyRing.generate({ principal, now: new Date(), random: randomBytes });
  // A 64-bit id collision is next to impossible, but cheap to rule out.
  while (ring.get(entry.id) !== undefined) {
    entry = KeyRing.generate({ principal, now: entry.created, random: randomBytes });
  }
  ring.add(entry);
  await saveKeyring(file, ring);
  return entry;
}

/**
 * A warning to show when the keyring at `file` is readable or writable by its group or by others,
 * or `undefined` when it is not (or cannot be examined, or on Windows where modes mean little).
 */
export async function keyringPermissionWarning(file: string): Promise<string | undefined> {
  if (process.platform === 'win32') return undefined;
  let mode: number;
  try {
    mode = (await stat(file)).mode;
  } catch {
    return undefined;
  }
  if ((mode & 0o066) === 0) return undefined;
  const shown = (mode & 0o777).toString(8).padStart(4, '0');
  return `key ring ${file} is accessible by other users (mode ${shown}); run: chmod 600 '${file}'`;
}

// ---------------------------------------------------------------------------------------------
// Internals.

/** The file's text, or `undefined` when it does not exist. */
async function readKeyringText(file: string): Promise<string | undefined> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return undefined;
    throw ioError(`cannot read key ring ${file}`, err);
  }
}

function parseAt(file: string, text: string): KeyRing {
  try {
    return KeyRing.parse(text);
  } catch (err) {
    if (isSesameError(err, 'ERR_KEYRING_INVALID')) {
      throw sesameError('ERR_KEYRING_INVALID', `${file}: ${err.message}`, { cause: err });
    }
    throw err;
  }
}

/**
 * Replace (or, when `exclusive`, create) `file` with `text` through a synced temp file. Returns false
 * when `exclusive` and the file already exists; nothing is written then.
 */
async function writeAtomically(given: string, text: string, exclusive: boolean): Promise<boolean> {
  const file = await realTarget(given);
  const dir = path.dirname(file);
  try {
    await mkdir(dir, { recursive: true, mode: DIR_MODE });
  } catch (err) {
    throw ioError(`cannot create key ring directory ${dir}`, err);
  }
  const temp = path.join(dir, `.${path.basename(file)}.${randomBytes(6).toString('hex')}.tmp`);
  let handle: FileHandle | undefined;
  let step = 'create temporary file';
  try {
    handle = await open(temp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, FILE_MODE);
    step = 'write';
    // The umask can only clear bits; make the mode exactly 0600 whatever it is.
    await handle.chmod(FILE_MODE);
    await handle.writeFile(text, 'utf8');
    step = 'sync';
    await handle.sync();
    await handle.close();
    handle = undefined;
    if (exclusive) {
      // link() fails when the target exists, unlike rename(): nobody else's keyring is clobbered.
      step = 'create';
      try {
        await link(temp, file);
      } catch (err) {
        if (errnoCode(err) === 'EEXIST') return false;
        throw err;
      }
    } else {
      step = 'replace';
      await rename(temp, file);
    }
  } catch (err) {
    throw ioError(`cannot save key ring ${file} (${step} failed)`, err);
  } finally {
    await handle?.close().catch(() => {});
    // After a rename the temp name is gone and this fails harmlessly; otherwise it cleans up.
    await unlink(temp).catch(() => {});
  }
  await syncDirectory(dir);
  return true;
}

/** Most symlinks followed before giving up (Linux's own limit is 40). */
const MAX_SYMLINK_HOPS = 40;

/**
 * The regular file `file` stands for: itself, or the end of its chain of symlinks (which need not
 * exist yet). Relative link targets are resolved against the link's directory.
 * @throws LocalError ERR_KEYRING_IO when the path is, or leads to, a device, FIFO or socket, or
 *   the links loop.
 */
async function realTarget(file: string): Promise<string> {
  let current = path.resolve(file);
  for (let hop = 0; hop <= MAX_SYMLINK_HOPS; hop++) {
    let info: Awaited<ReturnType<typeof lstat>>;
    try {
      info = await lstat(current);
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') return current; // to be created
      throw ioError(`cannot examine keyring path ${current}`, err);
    }
    // A directory is left to rename(), which refuses to replace it with its own error.
    if (info.isFile() || info.isDirectory()) return current;
    if (!info.isSymbolicLink()) {
      throw sesameError(
        'ERR_KEYRING_IO',
        `cannot save keyring ${file}: ${current === path.resolve(file) ? 'it' : `it leads to ${current}, which`} is not a regular file`,
      );
    }
    let target: string;
    try {
      target = await readlink(current);
    } catch (err) {
      throw ioError(`cannot read the symlink ${current}`, err);
    }
    current = path.resolve(path.dirname(current), target);
  }
  throw sesameError('ERR_KEYRING_IO', `cannot save keyring ${file}: more than ${MAX_SYMLINK_HOPS} symlinks`);
}

/** Make the rename durable. Best effort: some platforms cannot open or fsync a directory. */
async function syncDirectory(dir: string): Promise<void> {
  let handle: FileHandle | undefined;
  try {
    handle = await open(dir, 'r');
    await handle.sync();
  } catch {
    // Ignored: the data is written; only durability across a crash is at stake.
  } finally {
    await handle?.close().catch(() => {});
  }
}

function errnoCode(err: unknown): string | undefined {
  if (typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'string')
    return err.code;
  return undefined;
}

/** The OS reason of a file system error, without the path Node repeats in its message. */
function osReason(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const code = errnoCode(err);
  // Node's messages read "ENOENT: no such file or directory, open '/the/path'".
  const m = /^([A-Z0-9_]+): (.*?), \w+ '.*'$/s.exec(err.message);
  if (m?.[2] !== undefined) return `${m[2]} (${m[1]})`;
  return code !== undefined && !err.message.includes(code) ? `${err.message} (${code})` : err.message;
}

function ioError(what: string, err: unknown) {
  return sesameError('ERR_KEYRING_IO', `${what}: ${osReason(err)}`, { cause: err });
}
