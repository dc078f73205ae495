// SPDX-License-Identifier: GPL-2.0-only
/** The suture command line. The only layer that prints or picks exit codes. */
import { Command, CommanderError } from 'commander';
import { createRequire } from 'node:module';
import { killChildren } from '../util/exec.js';
import { EXIT } from './exit-codes.js';
import { reportError } from './output.js';

const pkg = createRequire(import.meta.url)('../../package.json') as { version: string };

/**
 * The commands a production host runs (at boot too): they load only the host
 * layer (src/livepatch), not the kernel fetching, VM or build code, so that
 * node starts them as fast as it can.
 */
const HOST_COMMANDS = new Set(['load', 'replace', 'disable', 'unload', 'force', 'list', 'status', 'info', 'uname', 'install', 'uninstall', 'boot']);

async function hostCommands(): Promise<Command[]> {
  const [lp, st, ps] = await Promise.all([import('./livepatch.js'), import('./host-status.js'), import('./persist.js')]);
  return [...lp.livepatchCommands(), ...st.hostStatusCommands(), ...ps.persistCommands()];
}

/** The commands for this command line: the host commands alone when one of them is asked for, else all. */
export async function commandsFor(argv: readonly string[]): Promise<Command[]> {
  const args = argv.slice(2);
  // `suture --version` needs no command at all
  if (args.length === 1 && (args[0] === '--version' || args[0] === '-V')) return [];
  const first = args.find((a) => !a.startsWith('-'));
  if (first && HOST_COMMANDS.has(first)) return hostCommands();
  const [kernel, vm, build, analyze, host] = await Promise.all([import('./kernel.js'), import('./vm.js'), import('./build.js'), import('./build-patch.js'), hostCommands()]);
  return [kernel.kernelCommand(), vm.vmCommand(), ...host, build.buildCommand(), analyze.analyzeCommand()];
}

export function program(commands: Command[]): Command {
  const p = new Command('suture')
    .description('open-source live patching for Linux: build a livepatch from a fix, prove it in a VM, apply it')
    .version(pkg.version)
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();
  for (const c of commands) p.addCommand(c);
  for (const c of p.commands) {
    c.exitOverride();
    for (const s of c.commands) s.exitOverride();
  }
  return p;
}

export async function main(argv: string[]): Promise<number> {
  const json = argv.includes('--json');
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(sig, () => {
      // Children first, so nothing keeps writing into the cache; the step stamps make the next run resume.
      killChildren('SIGTERM');
      process.stderr.write(`\nsuture: interrupted (${sig}); run the same command again to resume\n`);
      process.exit(EXIT.interrupted);
    });
  }
  process.exitCode = undefined;
  try {
    await program(await commandsFor(argv)).parseAsync(argv);
    return typeof process.exitCode === 'number' ? process.exitCode : EXIT.ok;
  } catch (e) {
    if (e instanceof CommanderError) {
      // help and version exit 0; everything commander rejects is a usage error
      return e.exitCode === 0 ? EXIT.ok : EXIT.usage;
    }
    return reportError(e, json);
  }
}
