// SPDX-License-Identifier: GPL-2.0-only
/** `suture load | replace | disable | unload | force`: changing the livepatches of the running kernel. */
import { Command } from 'commander';
import { basename } from 'node:path';
import { disablePatch, forcePatch, loadPrepared, prepareLoad, realHost, requireKnown, type LoadResult } from '../livepatch/core.js';
import { scanPending } from '../livepatch/blockers.js';
import { matcherFor } from '../livepatch/core.js';
import { EXIT } from './exit-codes.js';
import {
  blockerJson,
  blockersText,
  fmtMs,
  liveDisplay,
  loadJson,
  outcomeExit,
  parseTimeout,
  printCompleteLine,
  round,
  stalledAdvice,
  timeoutMs,
  watchJson,
} from './host-render.js';
import { out, printJson, reporterFor } from './output.js';
import { interruptSignal } from '../util/interrupt.js';
import { admitPatch } from '../bundle/host.js';

const ALLOW_UNSIGNED = 'accept a bare .ko (no signed bundle): for modules you built and trust yourself';

interface LoadOptions {
  timeout: number;
  allowUnsigned?: boolean;
  revertOnTimeout?: boolean;
  json?: boolean;
}

async function runLoad(file: string, o: LoadOptions, replace: boolean): Promise<void> {
  const host = realHost();
  const reporter = reporterFor(o);
  // Refusals come before any progress output: one line, the kernel untouched.
  // A signed bundle is read once and verified; its module's bytes are what is staged and loaded.
  const admitted = admitPatch(file, { allowUnsigned: o.allowUnsigned, fs: host.fs });
  const prep = prepareLoad(host, admitted.patch, { replace });
  let printed = false;
  const r: LoadResult = await reporter.step(`${replace ? 'replace with' : 'load'} ${basename(file)}`, (s) =>
    loadPrepared(host, prep, {
      timeoutMs: timeoutMs(o.timeout),
      revertOnTimeout: !!o.revertOnTimeout,
      signal: interruptSignal,
      onEvent: liveDisplay(reporter, s, (e) => {
        if (!o.json) printed = printCompleteLine(e);
      }),
    }),
  );
  process.exitCode = outcomeExit(r.outcome);
  if (o.json) {
    printJson(loadJson(r, replace ? 'replace' : 'load'));
    return;
  }
  switch (r.outcome) {
    case 'complete':
      if (!printed) out(`${r.patch}: patching complete in ${fmtMs(r.transition.elapsedMs)}`);
      if (r.kernelTransitionMs !== undefined) out(`${r.patch}: the kernel logged the transition as ${fmtMs(r.kernelTransitionMs)}`);
      if (r.replaced.length) {
        out(`${r.patch} replaced ${r.replaced.join(', ')}${r.removed.length ? ` (modules removed: ${r.removed.join(', ')})` : ''}`);
        const left = r.replaced.filter((n) => !r.removed.includes(n));
        if (left.length) out(`their modules are still loaded: suture unload ${left.join(' / ')} removes them`);
      }
      break;
    case 'reversed':
      process.stderr.write(
        `suture: the transition of ${r.patch} did not complete within ${o.timeout} s; it was reversed after ${fmtMs(r.transition.reversedAtMs)} and the module removed: the kernel runs the code it ran before\n`,
      );
      if (r.transition.blockers) process.stderr.write(`${blockersText(r.transition.blockers)}\n`);
      break;
    case 'stalled':
    case 'reverse-stalled':
      process.stderr.write(
        `suture: the transition of ${r.patch} did not complete within ${o.timeout} s${r.outcome === 'reverse-stalled' ? ', nor its reversal' : ''}\n`,
      );
      if (r.transition.blockers) process.stderr.write(`${blockersText(r.transition.blockers)}\n`);
      process.stderr.write(`${stalledAdvice(r.patch)}\n`);
      break;
    case 'forced':
      out(`${r.patch}: the transition was forced (by suture force) after ${fmtMs(r.transition.elapsedMs)}`);
      break;
  }
}

interface DisableOptions {
  timeout: number;
  json?: boolean;
}

async function runDisable(name: string, o: DisableOptions, unload: boolean): Promise<void> {
  const host = realHost();
  requireKnown(host, name);
  const reporter = reporterFor(o);
  const r = await reporter.step(`${unload ? 'unload' : 'disable'} ${name}`, (s) =>
    disablePatch(host, name, { timeoutMs: timeoutMs(o.timeout), revertOnTimeout: false, unload, signal: interruptSignal, onEvent: liveDisplay(reporter, s) }),
  );
  process.exitCode = outcomeExit(r.outcome);
  if (o.json) {
    printJson({
      command: unload ? 'unload' : 'disable',
      patch: r.patch,
      outcome: r.outcome,
      exitCode: outcomeExit(r.outcome),
      removed: r.removed,
      timing: r.transition ? { transitionMs: round(r.transition.elapsedMs), kernelTransitionMs: r.kernelTransitionMs } : undefined,
      transition: watchJson(r.transition),
    });
    return;
  }
  const kernel = r.kernelTransitionMs !== undefined ? ` (kernel: ${fmtMs(r.kernelTransitionMs)})` : '';
  if (r.outcome === 'already-disabled') {
    out(unload ? `${name} was already disabled; module removed` : `${name} is already disabled (its module is still loaded: suture unload ${name} removes it)`);
  } else if (r.outcome === 'complete') {
    out(`${name}: unpatching complete in ${fmtMs(r.transition!.elapsedMs)}${kernel}${unload ? '; module removed' : ''}`);
    if ((r.transition!.completingMs ?? 0) >= 1000) {
      out(`${name}: ${fmtMs(r.transition!.completingMs!)} of it after every task had switched: the kernel releasing the patched functions' ftrace handlers`);
    }
    if (!unload) {
      out(`a disabled livepatch cannot be enabled again (the kernel refuses); to apply it again: suture unload ${name}, then suture load FILE`);
    }
  } else {
    process.stderr.write(`suture: the unpatching transition of ${name} did not complete within ${o.timeout} s\n`);
    if (r.transition?.blockers) process.stderr.write(`${blockersText(r.transition.blockers)}\n`);
    process.stderr.write(`the transition is left running; see it with suture status, or re-enable by reloading later\n`);
  }
}

const FORCE_EXPLAINED = (name: string) =>
  [
    `suture force ${name} writes 1 to /sys/kernel/livepatch/${name}/force: the kernel marks every task as switched at once, without checking their stacks.`,
    `  - Tasks still inside a function the transition changes (listed below and by suture status) go on running the code they are in while`,
    `    the others run the other version: the consistency the transition exists to guarantee is gone for them.`,
    `  - When the transition removes code (a disable, or a cumulative patch replacing others), the kernel keeps the modules being removed`,
    `    for good: they are never removed (rmmod) until the next reboot.`,
    `  - Upstream's advice: use it only when the patch's author says the blocked tasks are safe, then plan a reboot and apply no more patches.`,
    `Instead you can wait (suture status), or reverse the transition (suture disable ${name}).`,
    `To force it: suture force ${name} --yes`,
  ].join('\n');

export function livepatchCommands(): Command[] {
  const load = new Command('load')
    .description('load a livepatch into the running kernel and watch its transition to the end')
    .argument('<patch>', 'the signed bundle (NAME.suture), or a bare .ko with --allow-unsigned')
    .option('--allow-unsigned', ALLOW_UNSIGNED)
    .option('--timeout <seconds>', 'stop waiting for the transition after this long (0: wait for ever)', parseTimeout, 60)
    .option('--revert-on-timeout', 'on timeout, reverse the transition and remove the module: back to where it was')
    .option('--json', 'print one JSON object with the outcome, timings, blockers and the sysfs state')
    .action((file: string, o: LoadOptions) => runLoad(file, o, false));

  const replace = new Command('replace')
    .description('load a cumulative livepatch (replace = true): it replaces every loaded patch atomically; their modules are removed')
    .argument('<patch>', 'the cumulative livepatch: a signed bundle, or a bare .ko with --allow-unsigned')
    .option('--allow-unsigned', ALLOW_UNSIGNED)
    .option('--timeout <seconds>', 'stop waiting for the transition after this long (0: wait for ever)', parseTimeout, 60)
    .option('--revert-on-timeout', 'on timeout, reverse the transition: the old patches stay in place')
    .option('--json', 'print one JSON object')
    .action((file: string, o: LoadOptions) => runLoad(file, o, true));

  const disable = new Command('disable')
    .description('disable a livepatch (unpatch) and keep its module loaded; it cannot be enabled again')
    .argument('<name>', 'the livepatch name (as in suture list)')
    .option('--timeout <seconds>', 'stop waiting for the transition after this long (0: wait for ever)', parseTimeout, 60)
    .option('--json', 'print one JSON object')
    .action((name: string, o: DisableOptions) => runDisable(name, o, false));

  const unload = new Command('unload')
    .description('disable a livepatch, wait until the kernel has let go of it, and remove its module')
    .argument('<name>', 'the livepatch name (as in suture list)')
    .option('--timeout <seconds>', 'stop waiting for the transition after this long (0: wait for ever)', parseTimeout, 60)
    .option('--json', 'print one JSON object')
    .action((name: string, o: DisableOptions) => runDisable(name, o, true));

  const force = new Command('force')
    .description('complete a stuck transition at once (last resort; explains what it means without --yes)')
    .argument('<name>', 'the livepatch in transition')
    .option('--yes', 'really force it')
    .option('--json', 'print one JSON object')
    .action(async (name: string, o: { yes?: boolean; json?: boolean }) => {
      const host = realHost();
      if (!o.yes) {
        const p = host.fs.readPatch(name);
        let text = FORCE_EXPLAINED(name);
        if (p?.transition) {
          const target = p.enabled ? 1 : 0;
          const scan = scanPending(host.fs, target, matcherFor(host.fs, name, target));
          if (scan.pending) text = `${text}\n\nTasks that would be forced through now:\n${blockersText(scan)}`;
        }
        if (o.json) printJson({ error: { kind: 'usage', message: 'not forced: suture force needs --yes', explanation: text, exitCode: EXIT.usage } });
        else process.stderr.write(`${text}\n`);
        process.exitCode = EXIT.usage;
        return;
      }
      const r = await forcePatch(host, name);
      if (o.json) {
        printJson({
          command: 'force',
          patch: name,
          exitCode: EXIT.ok,
          completed: r.completed,
          pendingTasks: r.forcedThrough.pending,
          forcedThrough: r.forcedThrough.blockers.map(blockerJson),
          pinned: r.pinned,
        });
        return;
      }
      out(`${name}: transition forced (${r.forcedThrough.pending} task${r.forcedThrough.pending === 1 ? '' : 's'} switched without a stack check)${r.completed ? '; complete' : '; the kernel completes it at its next retry'}`);
      if (r.forcedThrough.blockers.length) out(blockersText(r.forcedThrough));
      if (r.pinned.length) out(`the kernel now keeps the module${r.pinned.length > 1 ? 's' : ''} of ${r.pinned.join(', ')} for good (no rmmod until reboot)`);
    });

  return [load, replace, disable, unload, force];
}
