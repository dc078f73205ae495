// SPDX-License-Identifier: GPL-2.0-only
/** The suture command line. The only layer that prints or picks exit codes. */
import { Command, CommanderError } from 'commander';
import { createRequire } from 'node:module';
import { killChildren } from '../util/exec.js';
import { buildCommand } from './build.js';
import { EXIT } from './exit-codes.js';
import { hostStatusCommands } from './host-status.js';
import { kernelCommand } from './kernel.js';
import { livepatchCommands } from './livepatch.js';
import { reportError } from './output.js';
import { persistCommands } from './persist.js';
import { vmCommand } from './vm.js';

const pkg = createRequire(import.meta.url)('../../package.json') as { version: string };

export function program(): Command {
  const p = new Command('suture')
    .description('open-source live patching for Linux: build a livepatch from a fix, prove it in a VM, apply it')
    .version(pkg.version)
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();
  p.addCommand(kernelCommand());
  p.addCommand(vmCommand());
  for (const c of [...livepatchCommands(), ...hostStatusCommands(), ...persistCommands()]) p.addCommand(c);
  p.addCommand(buildCommand());
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
    await program().parseAsync(argv);
    return typeof process.exitCode === 'number' ? process.exitCode : EXIT.ok;
  } catch (e) {
    if (e instanceof CommanderError) {
      // help and version exit 0; everything commander rejects is a usage error
      return e.exitCode === 0 ? EXIT.ok : EXIT.usage;
    }
    return reportError(e, json);
  }
}
