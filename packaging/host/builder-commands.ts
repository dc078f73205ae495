// SPDX-License-Identifier: GPL-2.0-only
/**
 * The builder's and the fleet server's command groups as the host package sees them
 * (scripts/bundle-host.mjs puts this module where src/cli/main.ts imports kernel.js, vm.js,
 * build.js, build-patch.js, catch-up.js, server.js and fleet.js): hidden from --help and the man page, and each
 * one says plainly where it belongs. So the host bundle carries no kernel fetching, VM runner,
 * build pipeline, fleet server or database, and `suture build` on a host is a clear refusal, not a
 * crash over a missing module.
 */
import { Command } from 'commander';
import { SutureError } from '../../src/util/errors.js';

const BUILDER_HINT = 'build patches on a builder (a checkout of suture with Node.js 20.19 or newer, see its README), then copy the patch here and run: suture install PATCH';
const FLEET_HINT = 'run the fleet server and its admin commands from a checkout of suture with Node.js 20.19 or newer (see its README, Fleet)';

/** A command that exists on builders (or the fleet server) only. */
function builderOnly(name: string, what = 'a builder command', hint = BUILDER_HINT): Command {
  const cmd = new Command(name)
    .description(`(${what}: not in the host package)`)
    .argument('[args...]')
    .allowUnknownOption()
    .allowExcessArguments()
    .helpOption(false)
    .action(() => {
      throw new SutureError('environment', `suture ${name} is ${what}: this host package carries the host commands only`, { hint });
    });
  // commander's addCommand(cmd, { hidden: true }) sets this field; main.ts adds these without options
  (cmd as unknown as { _hidden: boolean })._hidden = true;
  return cmd;
}

export const kernelCommand = (): Command => builderOnly('kernel');
export const vmCommand = (): Command => builderOnly('vm');
export const buildCommand = (): Command => builderOnly('build');
export const analyzeCommand = (): Command => builderOnly('analyze');
export const catchUpCommand = (): Command => builderOnly('catch-up');
export const serverCommand = (): Command => builderOnly('server', 'the fleet server', FLEET_HINT);
export const fleetCommand = (): Command => builderOnly('fleet', 'a fleet admin command', FLEET_HINT);
