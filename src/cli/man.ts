/**
 * The man page, `sesame(1)`, generated in roff from the command tree that also makes `--help`:
 * every command, argument and option with commander's own description of it (defaults and
 * choices included), so the page and the help say the same. The build writes it to
 * `dist/sesame.1`, which package.json's `man` field installs (`man sesame`); `sesame man` prints it.
 *
 * Rules: only the sections that cannot come from the tree (exit status, environment, files,
 * examples) are written here, and they state facts the code enforces (main.ts, logger.ts,
 * keyring/file.ts). The page has no date, so that the same sources build the same bytes.
 */

import type { Command } from 'commander';
import { VERSION } from './version.js';

/** Escape `text` for roff: backslashes, hyphens as minus signs, no control word at a line start. */
export function roff(text: string): string {
  return text
    .replaceAll('\\', '\\e')
    .replaceAll('-', '\\-')
    .split('\n')
    .map((line) => (/^[.']/.test(line) ? `\\&${line}` : line))
    .join('\n');
}

function visible(command: Command): Command[] {
  return command.commands.filter((c) => !(c as unknown as { _hidden?: boolean })._hidden);
}

/** The usage line, arguments and options of one command. */
function section(command: Command): string {
  const help = command.createHelp();
  // commandUsage spells the whole path already: `sesame keys add [options] <...>`.
  const out = [`.SS "${roff(help.commandUsage(command))}"`];
  out.push(roff(command.description()));
  for (const arg of help.visibleArguments(command)) {
    out.push('.TP', `.I ${roff(arg.name())}`, roff(help.argumentDescription(arg)));
  }
  for (const option of help.visibleOptions(command)) {
    if (option.long === '--help') continue;
    out.push('.TP', `.B ${roff(option.flags)}`, roff(help.optionDescription(option)));
  }
  return out.join('\n');
}

const STATIC = {
  exit: `.TP
.B 0
success (a server after a graceful shutdown on SIGINT or SIGTERM)
.TP
.B 1
a failure at run time: refused, unreachable, address in use, key ring unreadable
.TP
.B 2
a bad argument or option, named in the one line on standard error
.TP
.B 130
Ctrl\\-C at the interactive prompt of connect`,
  env: `.TP
.B SESAME_KEYRING
the default key ring file
.TP
.B XDG_CONFIG_HOME
when set to an absolute path and SESAME_KEYRING is not, the default key ring is
$XDG_CONFIG_HOME/sesame/keyring.json
.TP
.B SESAME_LOG_LEVEL
the log level of serve when \\-\\-log\\-level is not given: trace, debug, info, warn, error,
fatal or silent; any other value is a bad argument`,
  files: `.TP
.I ~/.config/sesame/keyring.json
the default key ring: JSON, mode 0600, replaced atomically on every change (its format: docs/keyring.md)`,
  examples: `.nf
sesame keys add \\-\\-keyring server.json \\-\\-principal alice
sesame keys export ID \\-\\-keyring server.json \\-\\-out alice.json
sesame serve \\-\\-listen tcp://0.0.0.0:9527 \\-\\-keyring server.json
sesame connect tcp://server:9527 \\-\\-keyring alice.json
sesame serve \\-\\-config /etc/sesame/serve.json
.fi`,
};

/** The whole man page of `program`, in roff. */
export function manPage(program: Command): string {
  const name = program.name();
  const parts = [
    `.TH ${name.toUpperCase()} 1 "" "${name} ${VERSION}" "User Commands"`,
    '.SH NAME',
    `${name} \\- ${roff(program.description().replace(/^./, (c) => c.toLowerCase()))}`,
    '.SH SYNOPSIS',
    `.B ${name}`,
    '.I command',
    '[options]',
    '.br',
    `.B ${name}`,
    '\\-\\-version | \\-\\-help',
    '.SH DESCRIPTION',
    roff(
      'Sesame authenticates both ends of a connection from a shared 256-bit key and protects every later byte. ' +
        'serve runs a service; connect talks to one; keys manages key rings. Durations are written 500ms, 5s, ' +
        '24h, 1h30m or 7d (a bare number is milliseconds); dates as 2027-01-01 (midnight UTC) or in ISO 8601.',
    ),
    '.SH COMMANDS',
  ];
  const walk = (command: Command, path: string) => {
    for (const sub of visible(command)) {
      const subPath = `${path} ${sub.name()}`;
      if (visible(sub).length > 0) {
        parts.push(`.SS "${roff(subPath)}"`, roff(sub.description()));
        walk(sub, subPath);
      } else {
        parts.push(section(sub));
      }
    }
  };
  walk(program, name);
  parts.push(
    '.SH EXIT STATUS',
    STATIC.exit,
    '.SH ENVIRONMENT',
    STATIC.env,
    '.SH FILES',
    STATIC.files,
    '.SH EXAMPLES',
    STATIC.examples,
    '.SH SEE ALSO',
    'The README and docs/ shipped in the package: protocol.md, operations.md, keyring.md, errors.md.',
  );
  return `${parts.join('\n')}\n`;
}
