// SPDX-License-Identifier: GPL-2.0-only
/** `suture install | uninstall | boot`: livepatches that come back after a reboot, with the crash-loop guard. */
import { Command } from 'commander';
import { bootPatches, installPatch, uninstallPatch } from '../livepatch/boot.js';
import { realHost } from '../livepatch/core.js';
import { exitCodeFor, EXIT } from './exit-codes.js';
import { fmtMs, liveDisplay, loadJson, parseTimeout, timeoutMs } from './host-render.js';
import { out, printJson, reporterFor } from './output.js';

export function persistCommands(): Command[] {
  const install = new Command('install')
    .description('keep a livepatch under the state directory for its kernel release; suture boot loads it at every boot')
    .argument('<patch.ko>', 'the livepatch module')
    .option('--json', 'print JSON')
    .action((file: string, o: { json?: boolean }) => {
      const host = realHost();
      const r = installPatch(host, file);
      if (o.json) {
        return printJson({
          command: 'install',
          release: r.release,
          name: r.entry.name,
          path: r.path,
          updated: r.updated,
          superseded: r.superseded.map((s) => s.name),
          otherKernel: r.otherKernel,
          order: host.store.installed(r.release).map((p) => p.name),
        });
      }
      out(`${r.updated ? 'updated' : 'installed'} ${r.entry.name} for ${r.release}: ${r.path}`);
      if (r.superseded.length) out(`it is cumulative, so it supersedes ${r.superseded.map((s) => s.name).join(', ')} (uninstalled)`);
      if (r.otherKernel) out(`note: the running kernel is ${host.fs.osRelease()}; suture boot loads it once ${r.release} runs`);
      else if (!host.fs.readPatch(r.entry.name)) out(`it loads at the next boot; to load it now: suture load ${file}`);
    });

  const uninstall = new Command('uninstall')
    .description('remove an installed livepatch (it stays loaded until suture unload)')
    .argument('<name>', 'the installed livepatch name')
    .option('--release <release>', 'the kernel release it is installed for (default: the running one)')
    .option('--json', 'print JSON')
    .action((name: string, o: { release?: string; json?: boolean }) => {
      const host = realHost();
      const r = uninstallPatch(host, name, o.release);
      const loaded = host.fs.moduleLoaded(name);
      if (o.json) return printJson({ command: 'uninstall', release: r.release, name, stillLoaded: loaded });
      out(`uninstalled ${name} for ${r.release}${loaded ? `; it is still loaded (suture unload ${name} removes it)` : ''}`);
    });

  const boot = new Command('boot')
    .description('load the livepatches installed for the running kernel, in order (run by suture.service early in boot), guarded against crash loops')
    .option('--timeout <seconds>', 'per patch: stop waiting for its transition after this long (0: wait for ever)', parseTimeout, 120)
    .option('--clear-guard', 'clear a tripped crash-loop guard (and nothing else); the next suture boot loads again')
    .option('--json', 'print JSON')
    .action(async (o: { timeout: number; clearGuard?: boolean; json?: boolean }) => {
      const host = realHost();
      if (o.clearGuard) {
        const g = host.store.clearGuard();
        if (o.json) return printJson({ command: 'boot', cleared: !!g, guard: g ?? null });
        out(g ? `crash-loop guard cleared (it tripped at ${g.trippedAt}); suture boot loads the installed patches again` : 'the crash-loop guard was not set');
        return;
      }
      const reporter = reporterFor(o);
      const r = await bootPatches(host, {
        timeoutMs: timeoutMs(o.timeout),
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
          items: r.items.map((i) => ({
            name: i.name,
            outcome: i.outcome,
            error: i.error ?? null,
            load: i.load ? loadJson(i.load, 'load') : null,
          })),
        });
      }
      if (!r.items.length) out(`nothing installed for ${r.release}`);
      for (const i of r.items) {
        if (i.outcome === 'loaded') out(`${i.name}: patching complete in ${fmtMs(i.load!.transition.elapsedMs)}`);
        else if (i.outcome === 'already-loaded') out(`${i.name}: already loaded`);
        else if (i.outcome === 'stalled') out(`${i.name}: transition still running after ${o.timeout} s (see suture status)`);
        else process.stderr.write(`suture: ${i.name}: ${i.error!.message}\n`);
      }
      out(`boot: ${r.items.filter((i) => i.outcome === 'loaded' || i.outcome === 'already-loaded').length} of ${r.items.length} installed patches active; boot marked finished`);
    });

  return [install, uninstall, boot];
}
