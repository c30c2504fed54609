/**
 * Key ring hot reload for `sesame serve`: on SIGHUP, and when the file changes, read the ring
 * again and hand the new keys to the server.
 *
 * Rules:
 * - The directory is watched, not the file: tools that replace the file by renaming a new one
 *   over it (editors, `sesame keys`, Kubernetes Secret volumes swapping a `..data` symlink) leave
 *   a watch on the old file blind. Events are debounced, and a reload that would not change the
 *   ring's text is skipped.
 * - A ring that does not load (missing, unreadable, malformed) is refused with a logged error;
 *   the keys in force stay in force.
 * - A key whose secret is under 256 bits is left out by the server (refused as unknown), as a
 *   client refuses to use it: each load and reload names such keys in a warning.
 * - New keys are accepted and revoked or expired keys refused from the next handshake on;
 *   established sessions keep running, unless `closeRevoked` is set: then sessions whose key is
 *   no longer valid (revoked, expired, or gone) are closed gracefully.
 */

import { type FSWatcher, watch } from 'node:fs';
import { basename, dirname } from 'node:path';
import { isSesameError } from '../errors.js';
import { loadKeyring } from '../keyring/file.js';
import { type KeyRing, keyStatus } from '../keyring/keyring.js';
import { presharedKeys } from '../keyring/preshared.js';
import type { BaseServer } from '../net/base-server.js';
import { PSK_MIN_BYTES } from '../protocol/constants.js';
import type { Logger } from './logger.js';

export interface ReloadOptions {
  readonly file: string;
  /** The server whose keys to replace (and, with closeRevoked, whose sessions to close). */
  readonly server: Pick<BaseServer, 'setKeys' | 'closeSessions'>;
  readonly log: Logger;
  readonly closeRevoked: boolean;
  /** Called after each attempt with its result. */
  readonly onResult?: ((result: 'ok' | 'error') => void) | undefined;
  /** How long to wait for a burst of file events to settle, in ms (default 100). */
  readonly debounceMs?: number | undefined;
}

/**
 * Warn about each key of `ring` whose secret is shorter than 256 bits: the server cannot use it
 * (clients refuse it with ERR_KEY_TOO_SHORT), so the operator must hear of it at load.
 * @returns the ids of those keys.
 */
export function warnShortKeys(ring: KeyRing, file: string, log: Logger): string[] {
  const short = ring.list().filter((e) => e.secret.length < PSK_MIN_BYTES);
  for (const e of short) {
    log.warn(
      { event: 'short-key', keyId: e.id, principal: e.principal, bits: e.secret.length * 8, keyring: file },
      `key ${e.id} (${e.principal}) in ${file} is ${e.secret.length * 8} bits; at least ${PSK_MIN_BYTES * 8} are required: the server refuses it as unknown`,
    );
  }
  return short.map((e) => e.id);
}

/**
 * Start reloading on SIGHUP and file changes; returns a function that stops it. The initial ring
 * is checked for short keys at once (see {@link warnShortKeys}).
 */
export function watchKeyring(initial: KeyRing, options: ReloadOptions): () => void {
  const { file, server, log } = options;
  warnShortKeys(initial, file, log);
  let current = initial.serialize();
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> = Promise.resolve();

  const reload = async (why: string): Promise<void> => {
    let ring: KeyRing;
    try {
      ring = await loadKeyring(file);
    } catch (err) {
      const code = isSesameError(err) ? err.code : 'ERR_KEYRING_IO';
      log.error(
        { event: 'reload', result: 'error', code, keyring: file },
        `key ring reload refused (${why}): ${(err as Error).message}; the previous keys stay in force`,
      );
      options.onResult?.('error');
      return;
    }
    const text = ring.serialize();
    if (text === current && why === 'file change') return;
    current = text;
    warnShortKeys(ring, file, log);
    server.setKeys(presharedKeys(ring));
    let closed = 0;
    if (options.closeRevoked) {
      const now = new Date();
      closed = server.closeSessions((info) => {
        const entry = info.keyId === undefined ? undefined : ring.get(info.keyId);
        return info.keyId !== undefined && (entry === undefined || keyStatus(entry, now) !== 'valid');
      });
    }
    log.info(
      { event: 'reload', result: 'ok', keys: ring.size, closed, keyring: file },
      `key ring reloaded (${why}): ${ring.size} keys${closed > 0 ? `, closed ${closed} sessions of keys no longer valid` : ''}`,
    );
    options.onResult?.('ok');
  };
  const schedule = (why: string, delayMs: number): void => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      running = running
        .then(() => reload(why))
        .catch((err: unknown) => {
          log.error({ event: 'reload', result: 'error' }, `key ring reload failed (${why}): ${String(err)}`);
          options.onResult?.('error');
        });
    }, delayMs);
  };

  const onHup = (): void => schedule('SIGHUP', 0);
  process.on('SIGHUP', onHup);
  const name = basename(file);
  let watcher: FSWatcher | undefined;
  try {
    watcher = watch(dirname(file), (_event, changed) => {
      // Kubernetes swaps a `..data` symlink beside the file: any change in the folder may matter.
      if (changed === null || changed === name || changed.startsWith('..'))
        schedule('file change', options.debounceMs ?? 100);
    });
    watcher.on('error', (err) =>
      log.warn(
        { event: 'reload', keyring: file },
        `cannot watch ${dirname(file)}: ${err.message}; SIGHUP still reloads`,
      ),
    );
  } catch (err) {
    log.warn(
      { event: 'reload', keyring: file },
      `cannot watch ${dirname(file)}: ${(err as Error).message}; SIGHUP still reloads`,
    );
  }
  return () => {
    process.off('SIGHUP', onHup);
    clearTimeout(timer);
    watcher?.close();
  };
}
