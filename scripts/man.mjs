// SPDX-License-Identifier: GPL-2.0-only
// suture(8) in roff, generated from the commands' own commander help (descriptions, usage,
// arguments, options and the text each command adds after its help), so the man page says what
// `suture CMD --help` says. Used by scripts/package.sh on the host bundle:
//
//   node scripts/man.mjs path/to/main.js > suture.8
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const entry = process.argv[2] ?? 'dist/host/main.js';
const cli = await import(pathToFileURL(resolve(entry)).href);
const program = cli.program(await cli.commandsFor(['node', 'suture', '--help']));
const help = program.createHelp();
const pkgVersion = program.version();

/** Text for roff: backslashes, hyphens (\-), and no line starting with a control character. */
function esc(s) {
  return s
    .replace(/\\/g, '\\e')
    .replace(/-/g, '\\-')
    .split('\n')
    .map((l) => (/^[.']/.test(l) ? `\\&${l}` : l))
    .join('\n');
}

/** What addHelpText('after', ...) prints for a command. */
function afterText(cmd) {
  let text = '';
  for (const listener of cmd.listeners('afterHelp')) listener({ error: false, command: cmd, write: (s) => (text += s) });
  return text.replace(/\s+$/, '');
}

/** A command's full name from the top: "boot", "kernel fetch". */
function fullName(cmd) {
  const names = [];
  for (let c = cmd; c && c.parent; c = c.parent) names.unshift(c.name());
  return names.join(' ');
}

/**
 * The exit statuses, read from src/cli/exit-codes.ts (the one place that defines them): each
 * `name: N,` of the EXIT object with the doc comment above it, if any.
 */
function exitCodes() {
  const src = readFileSync(join(dirname(fileURLToPath(import.meta.url)), '../src/cli/exit-codes.ts'), 'utf8');
  const body = /export const EXIT = \{([\s\S]*?)\n\} as const/.exec(src)?.[1] ?? '';
  const codes = [];
  let doc = '';
  for (const line of body.split('\n')) {
    const c = /^\s*\/\*\*\s*(.*?)\s*\*\/\s*$/.exec(line);
    if (c) {
      doc = c[1];
      continue;
    }
    const m = /^\s*(\w+):\s*(\d+),/.exec(line);
    if (m) {
      const words = m[1].replace(/([A-Z])/g, ' $1').toLowerCase();
      codes.push({ code: Number(m[2]), text: doc ? `${words}: ${doc}` : words });
      doc = '';
    }
  }
  return codes;
}

const lines = [];
const emit = (...l) => lines.push(...l);

function describe(cmd) {
  const name = fullName(cmd);
  const group = help.visibleCommands(cmd).some((c) => c.name() !== 'help');
  emit(`.SS "${esc(group ? `suture ${name}` : `suture ${name} ${cmd.usage()}`.trim())}"`);
  const d = help.commandDescription(cmd);
  if (d) emit(esc(d));
  const args = help.visibleArguments(cmd).filter((a) => a.description);
  for (const a of args) emit('.TP', `.I ${esc(help.argumentTerm(a))}`, esc(help.argumentDescription(a)));
  const opts = help.visibleOptions(cmd).filter((o) => o.long !== '--help');
  for (const o of opts) emit('.TP', `.B ${esc(help.optionTerm(o))}`, esc(help.optionDescription(o)));
  const after = afterText(cmd);
  if (after) emit('.PP', '.nf', esc(after), '.fi');
  for (const sub of help.visibleCommands(cmd).filter((c) => c.name() !== 'help')) describe(sub);
}

const date = new Date(Number(process.env.SOURCE_DATE_EPOCH ?? Date.now() / 1000) * 1000).toISOString().slice(0, 10);
emit(
  `.TH SUTURE 8 "${date}" "suture ${pkgVersion}" "System Administration"`,
  '.SH NAME',
  'suture \\- apply Linux livepatches without a reboot, keep them across boots (host commands)',
  '.SH SYNOPSIS',
  '.B suture',
  '.I command',
  '[\\fIoptions\\fR] [\\fIarguments\\fR]',
  '.br',
  '.B suture',
  '[\\fB\\-\\-version\\fR | \\fB\\-\\-help\\fR]',
  '.SH DESCRIPTION',
  'suture applies livepatch modules to the running Linux kernel without a reboot, watches the',
  "kernel's consistency\\-model transition to its end, keeps patches installed for the running kernel",
  'and loads them again early at every boot.',
  'This page describes the host commands, as installed by the Debian package; patches are built',
  'and proven in a VM on a builder, from a checkout of suture.',
  'Every command takes \\fB\\-\\-help\\fR.',
  '.SH COMMANDS',
);
for (const cmd of help.visibleCommands(program).filter((c) => c.name() !== 'help')) describe(cmd);
emit(
  '.SH FILES',
  '.TP',
  '.I /var/lib/suture/',
  'installed patches (per kernel release) and suture\'s records: boot records, the guard, the lock.',
  '.TP',
  '.I /etc/suture/keys.d/',
  'public keys of the builders whose signed bundles this host trusts (root\\-owned).',
  '.TP',
  '.I /sys/kernel/livepatch/',
  "the kernel's livepatch interface (CONFIG_LIVEPATCH).",
  '.TP',
  '.I suture.service, suture\\-guard.service',
  'load the installed patches early at boot; watch the crash\\-loop guard window after that.',
  '.SH EXIT STATUS',
  'Each kind of failure has its own status; with \\fB\\-\\-json\\fR the error object carries it as',
  '\\fBexitCode\\fR, beside its \\fBkind\\fR, \\fBmessage\\fR and \\fBhint\\fR.',
  ...exitCodes().flatMap(({ code, text }) => ['.TP', `.B ${code}`, esc(text)]),
  '.SH EXAMPLES',
  'Trust a builder\\(aqs public key, then install a signed patch for the running kernel (it loads now',
  'and at every boot) and see the result:',
  '.PP',
  '.nf',
  '.RS',
  'install \\-m 0644 builder.pub /etc/suture/keys.d/',
  'suture install fix\\-cve\\-2026\\-1234.suture',
  'suture status',
  '.RE',
  '.fi',
  '.PP',
  'Skip every patch at one boot: add \\fBsuture.boot=0\\fR to the kernel command line.',
  'Stop loading patches at boot until told otherwise: \\fBsuture boot \\-\\-stop\\fR.',
  '.SH SEE ALSO',
  '.BR systemctl (1),',
  '.BR insmod (8),',
  '.BR rmmod (8),',
  '.BR modinfo (8)',
);
process.stdout.write(`${lines.join('\n')}\n`);
