// SPDX-License-Identifier: GPL-2.0-only
/** The suture command line. The only layer that prints or picks exit codes. */
import { Command, CommanderError } from 'commander';
import { createRequire } from 'node:module';
import { killChildren } from '../util/exec.js';
import { interrupt, runInterruptHooks } from '../util/interrupt.js';
import { EXIT } from './exit-codes.js';
import { reportError } from './output.js';

const pkg = createRequire(import.meta.url)('../../package.json') as { version: string };

/**
 * The commands a production host runs (at boot too): they load only the host
 * layer (src/livepatch), not the kernel fetching, VM or build code, so that
 * node starts them as fast as it can.
 */
const HOST_COMMANDS = new Set(['load', 'replace', 'disable', 'unload', 'force', 'list', 'status', 'info', 'uname', 'install', 'uninstall', 'boot', 'key', 'bundle', 'agent']);

/** The host commands that change livepatch state or suture's state (they take the lock). */
const CHANGING_COMMANDS = new Set(['load', 'replace', 'disable', 'unload', 'force', 'install', 'uninstall', 'boot']);

async function hostCommands(): Promise<Command[]> {
  const [lp, st, ps, bd, ag] = await Promise.all([import('./livepatch.js'), import('./host-status.js'), import('./persist.js'), import('./bundle.js'), import('./agent.js')]);
  return [...lp.livepatchCommands(), ...st.hostStatusCommands(), ...ps.persistCommands(), ...bd.bundleCommands(), ag.agentCommand()];
}

/** The fleet server and its admin commands (src/fleet); server.ts loads Fastify and the database only when it runs. */
async function fleetCommands(): Promise<Command[]> {
  const [srv, fl] = await Promise.all([import('./server.js'), import('./fleet.js')]);
  return [srv.serverCommand(), fl.fleetCommand()];
}

/** The commands for this command line: the host commands alone when one of them is asked for, else all. */
export async function commandsFor(argv: readonly string[]): Promise<Command[]> {
  const args = argv.slice(2);
  // `suture --version` needs no command at all
  if (args.length === 1 && (args[0] === '--version' || args[0] === '-V')) return [];
  const first = args.find((a) => !a.startsWith('-'));
  if (first && HOST_COMMANDS.has(first)) return hostCommands();
  const [kernel, vm, build, analyze, catchUp, host, fleet] = await Promise.all([import('./kernel.js'), import('./vm.js'), import('./build.js'), import('./build-patch.js'), import('./catch-up.js'), hostCommands(), fleetCommands()]);
  return [kernel.kernelCommand(), vm.vmCommand(), ...host, build.buildCommand(), analyze.analyzeCommand(), catchUp.catchUpCommand(), ...fleet];
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

/** How long a host command may take to stop on its own after a signal before it is made to exit (ms). */
export const STOP_GRACE_MS = 20_000;

/** The first argument that is not an option: the command. */
function commandOf(argv: readonly string[]): string | undefined {
  return argv.slice(2).find((a) => !a.startsWith('-'));
}

export async function main(argv: string[]): Promise<number> {
  const json = argv.includes('--json');
  const first = commandOf(argv);
  // Host commands stop on their own at a signal: they stop waiting, finish or record what must be
  // finished (the boot record, a pending rmmod, the lock), and say what state the kernel is in.
  // insmod/rmmod are never killed halfway. A second signal, or no end within STOP_GRACE_MS, exits at once.
  // The fleet server stops on its own too: it closes its listener and database at SIGTERM/SIGINT;
  // the agent stops waiting and lets a load it is watching end its own way.
  const cooperative = !!first && (CHANGING_COMMANDS.has(first) || first === 'server' || first === 'agent');
  let signals = 0;
  const hardExit = (sig: NodeJS.Signals) => {
    runInterruptHooks();
    killChildren('SIGTERM');
    process.stderr.write(`\nsuture: interrupted (${sig}); run the same command again to resume\n`);
    process.exit(EXIT.interrupted);
  };
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(sig, () => {
      signals++;
      if (!cooperative || signals > 1) return hardExit(sig);
      interrupt(sig);
      setTimeout(() => hardExit(sig), STOP_GRACE_MS).unref();
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
