// SPDX-License-Identifier: GPL-2.0-only
/** `suture list | status | info | uname`: what the running kernel has, and what suture knows about it. */
import { Command } from 'commander';
import { existsSync } from 'node:fs';
import { realHost } from '../livepatch/core.js';
import { formatUname, type UnameField } from '../livepatch/effective-version.js';
import { fileInfo, hostStatus, kernelStatus, listPatches, nameInfo, unameFacts, type PatchStatus, type TransitionStatus } from '../livepatch/status.js';
import { SutureError } from '../util/errors.js';
import { EXIT } from './exit-codes.js';
import { blockerJson, blockerLines, objectsText } from './host-render.js';
import { out, printJson, table } from './output.js';

function patchJson(p: PatchStatus) {
  return {
    name: p.name,
    state: p.state,
    enabled: p.enabled,
    transition: p.transition,
    objects: p.objects.map((o) => ({ name: o.name, patched: o.patched, functions: o.functions })),
    replace: p.replace ?? null,
    effectiveVersion: p.effectiveVersion ?? null,
    cves: p.cves,
    description: p.description ?? null,
    loadedAt: p.loadedAt ?? null,
    loadedBySuture: p.loadedBySuture,
    file: p.file ?? null,
    sha256: p.sha256 ?? null,
    forced: p.forced,
    installed: p.installed,
    refcnt: p.refcnt ?? null,
  };
}

function transitionJson(t: TransitionStatus | undefined) {
  if (!t) return null;
  return { patch: t.patch, target: t.target, tasks: t.tasks, pendingTasks: t.pendingTasks, completing: t.completing, blockers: t.blockers.map(blockerJson) };
}

function functionsText(p: PatchStatus): string {
  const n = p.objects.reduce((a, o) => a + o.functions.length, 0);
  return String(n);
}

function listTable(patches: PatchStatus[]): string {
  const rows = [['NAME', 'STATE', 'OBJECTS', 'FUNCS', 'REPLACE', 'VERSION', 'CVES', 'LOADED']];
  for (const p of patches) {
    rows.push([
      p.name,
      p.forced ? `${p.state} (forced)` : p.state,
      objectsText(p),
      functionsText(p),
      p.replace === undefined ? '?' : p.replace ? 'yes' : 'no',
      p.effectiveVersion ?? '-',
      p.cves.join(',') || '-',
      p.loadedAt ? p.loadedAt.replace('T', ' ').replace(/\.\d+Z$/, 'Z') : p.loadedBySuture ? '?' : '(not by suture)',
    ]);
  }
  return table(rows);
}

function transitionText(t: TransitionStatus): string[] {
  const verb = t.target === 'patched' ? 'patching' : 'unpatching';
  const lines = [
    t.completing
      ? `${t.patch} is ${verb}: every task has switched; the kernel is completing the transition (each released function waits for an RCU-tasks grace period)`
      : `${t.patch} is ${verb}: ${t.pendingTasks} of ${t.tasks} tasks still to switch`,
  ];
  for (const b of t.blockers) for (const l of blockerLines(b)) lines.push(`  ${l}`);
  return lines;
}

export function hostStatusCommands(): Command[] {
  const list = new Command('list')
    .description('the livepatches in the running kernel: state, objects, functions, replace, version, CVEs, load time')
    .option('--json', 'print JSON')
    .action((o: { json?: boolean }) => {
      const host = realHost();
      // A kernel without CONFIG_LIVEPATCH (or a chroot without sysfs) has no list to show: say so, exit 1.
      const available = host.fs.livepatchAvailable();
      const patches = available ? listPatches(host) : [];
      if (!available) process.exitCode = EXIT.failure;
      if (o.json) return printJson({ livepatchAvailable: available, patches: patches.map(patchJson) });
      if (!available) return out(`livepatch is not available here: ${host.fs.livepatchDir()} is missing (a kernel without CONFIG_LIVEPATCH, or no sysfs)`);
      if (!patches.length) return out('no livepatches loaded');
      out(listTable(patches));
    });

  const status = new Command('status')
    .description('the running kernel, its effective version, its livepatches, any transition with its blockers, installed patches, the boot guard; exit 1 when something needs attention')
    .option('--json', 'print JSON')
    .action((o: { json?: boolean }) => {
      const s = hostStatus(realHost());
      process.exitCode = s.attention.length ? EXIT.failure : EXIT.ok;
      if (o.json) {
        return printJson({
          kernel: s.kernel,
          patches: s.patches.map(patchJson),
          transition: transitionJson(s.transition),
          installed: s.installed,
          boot: s.boot,
          attention: s.attention,
          exitCode: process.exitCode,
        });
      }
      const k = s.kernel;
      out(`kernel       ${k.release ?? '?'}  ${k.version ?? ''}`);
      out(`build id     ${k.buildId ?? "(unreadable: /sys/kernel/notes)"}`);
      out(
        `effective    ${k.effective.effective ?? '(the kernel shows no version)'}${k.effective.from ? ` (claimed by ${k.effective.from} in its own ${k.effective.declared.find((d) => d.patch === k.effective.from)?.source ?? 'modinfo'}; the kernel's own is ${k.effective.kernel})` : ''}`,
      );
      for (const d of k.effective.ignored) out(`             ignored: ${d.patch} claims ${d.version}, not a version of this kernel's series`);
      out(
        `livepatch    ${k.livepatchAvailable ? 'available' : 'NOT available'}, ftrace ${k.ftraceEnabled === false ? 'DISABLED' : 'enabled'}${k.tainted !== undefined && k.tainted & (1 << 15) ? ', kernel tainted K (a livepatch was loaded this boot)' : ''}`,
      );
      out(`patches      ${s.patches.length ? '' : 'none'}`);
      if (s.patches.length) out(listTable(s.patches).replace(/^/gm, '  '));
      out(`transition   ${s.transition ? '' : 'none'}`);
      if (s.transition) for (const l of transitionText(s.transition)) out(`  ${l}`);
      out(`installed    ${s.installed.length ? `for ${k.release}:` : `none for ${k.release}`}`);
      for (const i of s.installed) out(`  ${i.name}  ${i.loaded ? 'loaded' : 'not loaded'}  installed ${i.installedAt}${i.replace ? '  cumulative' : ''}`);
      const b = s.boot.last;
      const ended = (x: NonNullable<typeof b>) =>
        x.end === undefined
          ? x.phase === 'done'
            ? 'finished'
            : 'STARTED AND NEVER FINISHED'
          : x.end === 'complete'
            ? 'finished'
            : x.end === 'failed'
              ? 'finished with failures'
              : x.end === 'interrupted'
                ? `INTERRUPTED by ${x.reason ?? 'a signal'} (not a crash)`
                : x.end === 'error'
                  ? `ENDED WITH AN ERROR (${x.reason ?? '?'})`
                  : x.end === 'guard'
                    ? 'refused by the crash-loop guard'
                    : 'stopped (suture boot --stop)';
      out(
        `boot         ${b ? `last suture boot ${ended(b)} (boot ${b.bootId}${b.bootId === k.bootId ? ', this boot' : ''}, ${b.startedAt})${b.failed?.length ? `, failed: ${b.failed.map((f) => f.name).join(', ')}` : ''}` : 'suture boot has not run'}`,
      );
      const a = s.boot.armed;
      if (a?.window && a.bootId === k.bootId) out(`             guard window open until uptime ${Math.round(a.window.untilUptime)} s (now ${Math.round(s.boot.uptime ?? 0)} s): a crash before then makes ${a.trial ? a.trial.join(', ') : a.loaded.join(', ')} the suspects`);
      const g = s.boot.guard;
      out(
        `guard        ${g ? `TRIPPED at ${g.trippedAt}: the boot ${g.previous.bootId} ${g.when === 'window' ? 'crashed inside the guard window after loading' : g.when === 'oops' ? `logged a kernel report naming a patch (${g.evidence ?? ''})` : 'crashed while loading'}; ${g.suspects && g.suspects.length > 1 ? `bisecting over boots between ${g.suspects.join(', ')}${g.blame ? `; ${g.blame} not loaded` : ''}` : g.blame ? `suture boot does not load ${g.blame}` : 'suture boot loads nothing'} (clear: suture boot --clear-guard)` : s.boot.stopped ? 'STOPPED: suture boot loads nothing (suture boot --resume)' : 'clear'}`,
      );
      if (s.attention.length) {
        out('attention');
        for (const a of s.attention) out(`  - ${a}`);
      }
    });

  const info = new Command('info')
    .description('everything about one livepatch: a loaded or installed NAME, or a PATCH.ko file (and whether it would load here)')
    .argument('<name|patch.ko>', 'a livepatch name or a module file')
    .option('--json', 'print JSON')
    .action((what: string, o: { json?: boolean }) => {
      const host = realHost();
      const isFile = what.includes('/') || what.endsWith('.ko') || existsSync(what);
      if (isFile) {
        const f = fileInfo(host, what);
        const p = f.patch;
        if (o.json) {
          return printJson({
            kind: 'file',
            file: p.path,
            name: p.name,
            vermagic: p.vermagic,
            release: f.release,
            livepatch: p.livepatch,
            replace: p.structure?.replace ?? null,
            objects: p.structure?.objects ?? null,
            klpRelocObjects: p.klpRelocObjects,
            effectiveVersion: p.effectiveVersion ?? null,
            cves: p.cves,
            description: p.description ?? null,
            sha256: p.sha256,
            signed: p.signed,
            loadable: f.loadable,
            refusal: f.refusal ?? null,
            loaded: f.loaded ? patchJson(f.loaded) : null,
          });
        }
        out(`file         ${p.path}`);
        out(`name         ${p.name}`);
        out(`livepatch    ${p.livepatch ? 'yes' : 'NO (not a livepatch module)'}`);
        out(`built for    ${f.release ?? '?'}  (vermagic '${p.vermagic ?? ''}')`);
        out(`replace      ${p.structure ? (p.structure.replace ? 'yes (cumulative: replaces every loaded patch)' : 'no (stacks on loaded patches)') : '? (klp_patch not found in the file)'}`);
        out(`description  ${p.description ?? '-'}`);
        out(`version      ${p.effectiveVersion ?? '-'}`);
        out(`CVEs         ${p.cves.join(', ') || '-'}`);
        out(`signed       ${p.signed ? 'yes' : 'no'}`);
        out(`sha256       ${p.sha256}`);
        out('functions');
        for (const ob of p.structure?.objects ?? []) {
          for (const fn of ob.functions) out(`  ${ob.name}: ${fn.name}${fn.sympos ? `,${fn.sympos}` : ''}${fn.newFunction ? ` -> ${fn.newFunction}` : ''}`);
        }
        out(`here         ${f.loaded ? `loaded (${f.loaded.state})` : f.loadable ? 'would load' : `would be refused: ${f.refusal}`}`);
        return;
      }
      const n = nameInfo(host, what);
      if (!n) {
        throw new SutureError('not-found', `no livepatch named ${what} is loaded or installed`, { hint: 'see suture list and suture status' });
      }
      if (o.json) {
        return printJson({
          kind: 'name',
          name: n.name,
          loaded: n.loaded ? patchJson(n.loaded) : null,
          installed: n.installed ?? null,
          structure: n.patch?.structure ?? null,
        });
      }
      const p = n.loaded;
      out(`name         ${n.name}`);
      out(`state        ${p ? p.state + (p.forced ? ' (forced)' : '') : 'not loaded'}`);
      out(`installed    ${n.installed ? `yes (${n.installed.installedAt})` : 'no'}`);
      const facts = p ?? n.installed;
      out(`replace      ${facts?.replace === undefined ? '?' : facts.replace ? 'yes (cumulative)' : 'no'}`);
      out(`description  ${facts?.description ?? '-'}`);
      out(`version      ${facts?.effectiveVersion ?? '-'}`);
      out(`CVEs         ${facts?.cves.join(', ') || '-'}`);
      if (p) {
        out(`loaded at    ${p.loadedAt ?? '(not loaded by suture)'}`);
        out(`file         ${p.file ?? '-'}`);
        out('objects');
        for (const ob of p.objects) {
          out(`  ${ob.name}  ${ob.patched === undefined ? '' : ob.patched ? 'patched' : 'not loaded (patched when it loads)'}`);
          for (const fn of ob.functions) out(`    ${fn.name},${fn.sympos}`);
        }
      }
    });

  const uname = new Command('uname')
    .description("like uname, with the effective kernel version the enabled livepatches declare; without flags, the effective version alone")
    .option('-a, --all', 'all fields, the version field carrying the effective version')
    .option('-s, --kernel-name', 'kernel name')
    .option('-n, --nodename', 'host name')
    .option('-r, --kernel-release', 'kernel release (a livepatch never changes it: modules keep loading from /lib/modules/<release>)')
    .option('-v, --kernel-version', "kernel version, with the effective version in place of the kernel's own")
    .option('-m, --machine', 'machine')
    .option('-o, --operating-system', 'operating system')
    .option('--json', 'print JSON')
    .action((o: Record<string, boolean | undefined>) => {
      const host = realHost();
      const k = kernelStatus(host);
      const u = unameFacts(host);
      const keys: Record<string, UnameField> = {
        all: 'a',
        kernelName: 's',
        nodename: 'n',
        kernelRelease: 'r',
        kernelVersion: 'v',
        machine: 'm',
        operatingSystem: 'o',
      };
      const fields = new Set<UnameField>(Object.entries(keys).filter(([k]) => o[k]).map(([, f]) => f));
      if (o.json) {
        return printJson({
          release: u.release,
          version: u.version,
          kernelVersion: k.effective.kernel ?? null,
          effectiveVersion: k.effective.effective ?? null,
          declaredBy: k.effective.from ?? null,
          declaredIn: k.effective.declared.find((d) => d.patch === k.effective.from)?.source ?? null,
          declared: k.effective.declared,
          ignored: k.effective.ignored,
          line: fields.size ? formatUname(u, k.effective, fields) : (k.effective.effective ?? null),
        });
      }
      if (!fields.size) {
        out(k.effective.effective ?? u.release);
        return;
      }
      out(formatUname(u, k.effective, fields));
    });

  return [list, status, info, uname];
}
