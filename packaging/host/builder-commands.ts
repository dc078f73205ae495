// SPDX-License-Identifier: GPL-2.0-only
/**
 * The builder's command groups as the host package sees them (scripts/bundle-host.mjs puts this
 * module where src/cli/main.ts imports kernel.js, vm.js, build.js and build-patch.js): hidden from
 * --help and the man page, and each one says plainly that it belongs to a builder. So the host
 * bundle carries no kernel fetching, VM runner or build pipeline, and `suture build` on a host is
 * a clear refusal, not a crash over a missing module.
 */
import { Command } from 'commander';
import { SutureError } from '../../src/util/errors.js';

/** A command that exists on builders only. */
function builderOnly(name: string): Command {
  const cmd = new Command(name)
    .description(`(builder only: not in the host package)`)
    .argument('[args...]')
    .allowUnknownOption()
    .allowExcessArguments()
    .helpOption(false)
    .action(() => {
      throw new SutureError('environment', `suture ${name} is a builder command: this host package carries the host commands only`, {
        hint: 'build patches on a builder (a checkout of suture with Node.js 20.19 or newer, see its README), then copy the patch here and run: suture install PATCH',
      });
    });
  // commander's addCommand(cmd, { hidden: true }) sets this field; main.ts adds these without options
  (cmd as unknown as { _hidden: boolean })._hidden = true;
  return cmd;
}

export const kernelCommand = (): Command => builderOnly('kernel');
export const vmCommand = (): Command => builderOnly('vm');
export const buildCommand = (): Command => builderOnly('build');
export const analyzeCommand = (): Command => builderOnly('analyze');
