/**
 * `--config PATH`: the options of `serve` and `connect` from a JSON file.
 *
 * Rules (docs/operations.md shows an example):
 * - The file is one JSON object (JSON needs no parser beyond the runtime's; a comment can go in
 *   a `"//"` key, which is ignored).
 * - A key is an option's long name without the dashes (`listen`, `handshake-timeout`,
 *   `trusted-proxy`), so every option can be set, and under the same name as on the command line.
 *   A negated flag is set through its positive name: `forward-secrecy = false`.
 * - Keys at the top level apply to both commands; a `"serve"` or `"connect"` object applies to
 *   that command only and wins over the top level. `connect` also takes `url`.
 * - Values are what one would type: strings go through the option's own parser (so durations,
 *   addresses and choices are checked exactly as on the command line), a number is taken as its
 *   decimal text (a bare number of milliseconds for a duration), a flag takes `true` or `false`,
 *   a repeatable option takes a list.
 * - Flags given on the command line override the file; the file overrides the defaults.
 * - An unknown key, a value of the wrong type or one its parser refuses is a bad argument (exit
 *   2) naming the file and the key: a typo must not silently fall back to a default.
 */

import { readFile } from 'node:fs/promises';
import { type Command, InvalidArgumentError, type Option } from 'commander';
import { UsageError } from './usage.js';

/** The commands a config file configures. */
export type ConfigSection = 'serve' | 'connect';
const SECTIONS: readonly ConfigSection[] = ['serve', 'connect'];

/** Keys that are not options: `url` is connect's argument; `config` and `help` make no sense. */
const NOT_OPTIONS = new Set(['config', 'help', 'version']);

type Table = Record<string, unknown>;

function isTable(value: unknown): value is Table {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof Date);
}

/**
 * The settings in `path` for `section`: the top-level keys, then the section's table over them.
 * @throws UsageError when the file cannot be read or parsed, or is not a table of settings.
 */
export async function readConfig(path: string, section: ConfigSection): Promise<Table> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new UsageError(`--config ${path}: cannot read it (${(err as NodeJS.ErrnoException).code ?? err})`);
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new UsageError(`--config ${path}: not valid JSON: ${(err as Error).message.split('\n')[0]}`);
  }
  if (!isTable(doc)) throw new UsageError(`--config ${path}: expected a JSON object of settings`);
  const settings: Table = {};
  for (const [key, value] of Object.entries(doc)) {
    if ((SECTIONS as readonly string[]).includes(key)) {
      if (!isTable(value)) throw new UsageError(`--config ${path}: "${key}" must be an object`);
      continue;
    }
    if (key !== '//') settings[key] = value;
  }
  const own = doc[section];
  if (isTable(own)) for (const [key, value] of Object.entries(own)) if (key !== '//') settings[key] = value;
  return settings;
}

/** The option of `command` that `key` names, or undefined. */
function optionFor(command: Command, key: string): Option | undefined {
  return (
    command.options.find((o) => o.long === `--${key}` && !o.negate) ??
    command.options.find((o) => o.long === `--no-${key}` && o.negate)
  );
}

/** One config value as the option's parser takes it. */
function asText(value: unknown, where: string): string {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' && Number.isFinite(value)) return String(value);
  throw new UsageError(`${where}: expected a string or a number`);
}

/**
 * Set every option of `command` that `settings` names and the command line did not give.
 * Returns the settings that are not options (`url`) for the caller.
 * @throws UsageError for an unknown key or a bad value, naming `where` and the key.
 */
export function applyConfig(
  command: Command,
  settings: Table,
  where: string,
  extra: readonly string[] = [],
): Table {
  const rest: Table = {};
  for (const [key, value] of Object.entries(settings)) {
    const at = `--config ${where}: ${key}`;
    if (extra.includes(key)) {
      rest[key] = value;
      continue;
    }
    const option = NOT_OPTIONS.has(key) ? undefined : optionFor(command, key);
    if (option === undefined) throw new UsageError(`${at}: not an option of sesame ${command.name()}`);
    const name = option.attributeName();
    const source = command.getOptionValueSource(name);
    if (source !== undefined && source !== 'default' && source !== 'implied') continue; // the command line wins
    command.setOptionValueWithSource(name, parsed(option, value, at), 'config');
  }
  return rest;
}

function parsed(option: Option, value: unknown, at: string): unknown {
  const takesValue = option.required || option.optional;
  if (!takesValue) {
    if (typeof value !== 'boolean') throw new UsageError(`${at}: expected true or false`);
    return value; // a negated flag's attribute is the positive name: forward-secrecy = false
  }
  const one = (item: unknown, previous: unknown): unknown => {
    const text = asText(item, at);
    if (option.argChoices !== undefined && !option.argChoices.includes(text)) {
      throw new UsageError(`${at}: ${JSON.stringify(text)} is not one of ${option.argChoices.join(', ')}`);
    }
    if (option.parseArg === undefined) return text;
    try {
      return option.parseArg(text, previous);
    } catch (err) {
      if (err instanceof InvalidArgumentError) throw new UsageError(`${at}: ${err.message}`);
      throw err;
    }
  };
  if (Array.isArray(option.defaultValue)) {
    const items = Array.isArray(value) ? value : [value];
    return items.reduce<unknown>((acc, item) => one(item, acc), []);
  }
  if (Array.isArray(value)) throw new UsageError(`${at}: expected one value, not a list`);
  return one(value, undefined);
}
