/**
 * Bad arguments on the command line: the one error that means exit status 2.
 *
 * Rules:
 * - A command throws {@link UsageError} for anything wrong with what it was given (an unknown key
 *   id, a date range that ends before it starts, a file that is not a config file); main.ts prints
 *   it as one `sesame: error: ...` line and exits 2. Failures of the world (a socket refused, a
 *   port in use, a key ring that cannot be written) stay exit 1.
 * - The message names the argument or option at fault first, so that a script's log says what
 *   to fix.
 */

/** A bad argument or option; the command line exits 2. */
export class UsageError extends Error {
  /** @param message what is wrong, naming the argument or option first. */
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}
