// SPDX-License-Identifier: GPL-2.0-only
/** `suture install | uninstall | boot`: livepatches that come back after a reboot, with the crash-loop guard. */
import { Command } from 'commander';
import { DEFAULT_GUARD_WINDOW_SEC, STATE_LOCK_WAIT_MS, bootPatches, installPatch, settleWindow, uninstallPatch } from '../livepatch/boot.js';
import { realHost, type Host } from '../livepatch/core.js';
import { admitPatch, bootAdmission } from '../bundle/host.js';
import type { LockHolder } from '../util/lock.js';
import { interruptSignal, onInterruptExit } from '../util/interrupt.js';
import { SutureError } from '../util/errors.js';
import { exitCodeFor, EXIT } from './exit-codes.js';
import { fmtMs, liveDisplay, loadJson, parseTimeout, timeoutMs } from './host-render.js';
import { out, printJson, reporterFor } from './output.js';

/** Say once, on stderr, what a command waits for. */
const sayWait = (h: LockHolder) =>
  process.stderr.write(`suture: waiting for ${h.owner ? `${h.owner.command} (pid ${h.owner.pid})` : 'another suture command'} to finish\n`);

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** `suture boot --watch`: keep the guard window of this boot, then settle it (or trip on a kernel report). */
async function watchWindow(host: Host, json: boolean | undefined): Promise<void> {
  for (;;) {
    const s = settleWindow(host);
    if (s !== 'open') {
      if (json) printJson({ command: 'boot', watch: s });
      else out(s === 'none' ? 'no guard window is open in this boot' : s === 'settled' ? 'guard window ended with no kernel report naming a patch: the boot is settled' : 'a kernel report names a loaded patch: the guard is tripped against it (suture status)');
      if (s === 'tripped') process.exitCode = EXIT.crashLoop;
      return;
    }
    if (interruptSignal.aborted) {
      // a clean stop (shutdown): not a crash
      const t = settleWindow(host, { force: 'shutdown' });
      if (json) printJson({ command: 'boot', watch: t === 'tripped' ? 'tripped' : 'stopped' });
      else out(t === 'tripped' ? 'a kernel report names a loaded patch: the guard is tripped against it' : 'guard window closed by a clean stop');
      return;
    }
    await sleep(1000);
  }
}

export function persistCommands(): Command[] {
  const install = new Command('install')
    .description('keep a livepatch under the state directory for its kernel release; suture boot loads it at every boot')
    .argument('<patch>', 'the signed bundle (NAME.suture), or a bare .ko with --allow-unsigned')
    .option('--allow-unsigned', 'accept a bare .ko (no signed bundle): for modules you built and trust yourself')
    .option('--json', 'print JSON')
    .action(async (file: string, o: { json?: boolean; allowUnsigned?: boolean }) => {
      const host = realHost();
      // Verified before suture's state is touched; the module's bytes are what is installed.
      const admitted = admitPatch(file, { allowUnsigned: o.allowUnsigned, fs: host.fs });
      const r = await installPatch(host, admitted.patch, sayWait, admitted.signer);
      if (o.json) {
        return printJson({
          command: 'install',
          release: r.release,
          name: r.entry.name,
          path: r.path,
          signer: r.entry.signer ?? null,
          updated: r.updated,
          superseded: r.superseded.map((s) => s.name),
          otherKernel: r.otherKernel,
          order: host.store.installed(r.release).map((p) => p.name),
        });
      }
      out(`${r.updated ? 'updated' : 'installed'} ${r.entry.name} for ${r.release}: ${r.path}`);
      if (r.superseded.length) out(`it is cumulative, so it supersedes ${r.superseded.map((s) => s.name).join(', ')} (uninstalled)`);
      if (r.otherKernel) out(`note: the running kernel is ${host.fs.osRelease()}; suture boot loads it once ${r.release} runs`);
      else if (!host.fs.readPatch(r.entry.name)) out(`it loads at the next boot; to load it now: suture load ${file}${r.entry.signer ? '' : ' --allow-unsigned'}`);
    });

  const uninstall = new Command('uninstall')
    .description('remove an installed livepatch (it stays loaded until suture unload)')
    .argument('<name>', 'the installed livepatch name')
    .option('--release <release>', 'the kernel release it is installed for (default: the running one)')
    .option('--json', 'print JSON')
    .action(async (name: string, o: { release?: string; json?: boolean }) => {
      const host = realHost();
      const r = await uninstallPatch(host, name, o.release, sayWait);
      const loaded = host.fs.moduleLoaded(name);
      if (o.json) return printJson({ command: 'uninstall', release: r.release, name, stillLoaded: loaded });
      out(`uninstalled ${name} for ${r.release}${loaded ? `; it is still loaded (suture unload ${name} removes it)` : ''}`);
    });

  const boot = new Command('boot')
    .description('load the livepatches installed for the running kernel, in order (run by suture.service early in boot), guarded against crash loops')
    .option('--timeout <seconds>', 'per patch: stop waiting for its transition after this long (0: wait for ever)', parseTimeout, 120)
    .option('--guard-window <seconds>', 'after loading, a crash within this much uptime still blames the patches (0: none)', parseTimeout, DEFAULT_GUARD_WINDOW_SEC)
    .option('--watch', 'keep the guard window of this boot: wait for its end, watching the kernel log, then settle it (suture-guard.service)')
    .option('--shutdown', 'a clean shutdown: close the guard window of this boot without blaming anything (the unit\'s ExecStop)')
    .option('--clear-guard', 'clear a tripped crash-loop guard, whatever its file holds; the next suture boot loads everything again')
    .option('--stop', 'load nothing at every later boot, until suture boot --resume')
    .option('--resume', 'undo --stop')
    .option('--json', 'print JSON')
    .action(async (o: { timeout: number; guardWindow: number; watch?: boolean; shutdown?: boolean; clearGuard?: boolean; stop?: boolean; resume?: boolean; json?: boolean }) => {
      const host = realHost();
      const flags = [o.watch, o.shutdown, o.clearGuard, o.stop, o.resume].filter(Boolean).length;
      if (flags > 1) throw new SutureError('usage', 'give one of --watch, --shutdown, --clear-guard, --stop, --resume');
      if (o.watch) return watchWindow(host, o.json);
      if (o.clearGuard || o.stop || o.resume || o.shutdown) {
        const lock = await host.lock.wait(`boot ${o.clearGuard ? '--clear-guard' : o.stop ? '--stop' : o.resume ? '--resume' : '--shutdown'}`, { timeoutMs: STATE_LOCK_WAIT_MS, onWait: sayWait });
        try {
          if (o.shutdown) {
            const s = settleWindow(host, { force: 'shutdown' });
            if (o.json) return printJson({ command: 'boot', shutdown: s });
            out(s === 'none' ? 'no guard window open' : s === 'tripped' ? 'a kernel report names a loaded patch: the guard is tripped against it' : 'guard window closed (clean shutdown)');
            return;
          }
          if (o.stop) {
            host.store.stop('suture boot --stop');
            if (o.json) return printJson({ command: 'boot', stopped: true });
            out('suture boot loads nothing at every boot from now on, until: suture boot --resume');
            return;
          }
          if (o.resume) {
            const was = host.store.resume();
            if (o.json) return printJson({ command: 'boot', resumed: was });
            out(was ? 'suture boot loads the installed patches again' : 'suture boot was not stopped');
            return;
          }
          const c = host.store.clearGuard();
          if (o.json) return printJson({ command: 'boot', cleared: !!c.guard || c.damaged || c.armed, guard: c.guard ?? null, damaged: c.damaged });
          if (c.guard) out(`crash-loop guard cleared (it tripped at ${c.guard.trippedAt}${c.guard.blame ? `, blaming ${c.guard.blame}` : ''}); suture boot loads the installed patches again`);
          else if (c.damaged) out(`crash-loop guard cleared (its file was damaged and is removed); suture boot loads the installed patches again`);
          else if (c.armed) out('the armed guard of a boot that never finished was removed; suture boot loads the installed patches again');
          else out('the crash-loop guard was not set');
          return;
        } finally {
          lock.release();
        }
      }
      const reporter = reporterFor(o);
      const r = await bootPatches(host, {
        timeoutMs: timeoutMs(o.timeout),
        windowSec: o.guardWindow,
        signal: interruptSignal,
        onHardExit: onInterruptExit,
        onLockWait: sayWait,
        admit: bootAdmission(host.fs),
        each: (name, load) => reporter.step(`boot: load ${name}`, (s) => load(liveDisplay(reporter, s))),
      });
      const code = r.firstError ? exitCodeFor(r.firstError.kind) : r.items.some((i) => i.outcome === 'stalled') ? EXIT.transitionTimeout : EXIT.ok;
      process.exitCode = code;
      if (o.json) {
        return printJson({
          command: 'boot',
          release: r.release,
          bootId: r.bootId,
          exitCode: code,
          end: r.end,
          stopped: r.stopped ?? null,
          guard: r.guard ?? null,
          windowUntilUptime: r.windowUntil ?? null,
          warnings: r.warnings,
          error: r.firstError ? { kind: r.firstError.kind, message: r.firstError.message, hint: r.firstError.hint ?? null } : null,
          items: r.items.map((i) => ({
            name: i.name,
            outcome: i.outcome,
            error: i.error ?? null,
            load: i.load ? loadJson(i.load, 'load') : null,
          })),
        });
      }
      if (r.stopped) {
        out(`suture boot is stopped (since ${r.stopped.stoppedAt}): nothing loaded; suture boot --resume undoes it`);
        return;
      }
      for (const w of r.warnings) process.stderr.write(`suture: warning: ${w}\n`);
      if (!r.items.length) out(`nothing installed for ${r.release}`);
      for (const i of r.items) {
        if (i.outcome === 'loaded') out(`${i.name}: patching complete in ${fmtMs(i.load!.transition.elapsedMs)}`);
        else if (i.outcome === 'already-loaded') out(`${i.name}: already loaded`);
        else if (i.outcome === 'stalled') out(`${i.name}: transition still running after ${o.timeout} s (see suture status)`);
        else if (i.outcome === 'blamed') out(`${i.name}: not loaded: the crash-loop guard blames it`);
        else if (i.outcome === 'held-back') out(`${i.name}: held back this boot: the crash-loop guard is bisecting over boots (suture status)`);
        else process.stderr.write(`suture: ${i.name}: ${i.error!.message}\n`);
      }
      if (r.firstError && (r.firstError.kind === 'interrupted' || r.firstError.kind === 'crash-loop')) {
        process.stderr.write(`suture: ${r.firstError.message}\n${r.firstError.hint ? `  hint: ${r.firstError.hint}\n` : ''}`);
      }
      out(
        `boot: ${r.items.filter((i) => i.outcome === 'loaded' || i.outcome === 'already-loaded').length} of ${r.items.length} installed patches active; boot ${r.end === 'interrupted' ? 'interrupted (not a crash)' : 'marked finished'}${r.windowUntil ? `; guard window open until uptime ${Math.round(r.windowUntil)} s` : ''}`,
      );
    });

  return [install, uninstall, boot];
}
