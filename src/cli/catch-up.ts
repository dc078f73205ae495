// SPDX-License-Identifier: GPL-2.0-only
/** `suture catch-up`: a newer Debian kernel's fixes (or a series) as one cumulative, proven livepatch. */
import { Command, InvalidArgumentError } from 'commander';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { findMirrors, openApt } from '../kernel/apt.js';
import { readModuleIndex, resolveModules } from '../kernel/modules.js';
import { formatKernelRef, parseKernelRef, type KernelRef } from '../kernel/ref.js';
import { fetchSourceRelease, sourceVersionOfRelease } from '../kernel/source-release.js';
import { requireWorkspace, type KernelMetadata } from '../kernel/workspace.js';
import { catchUp, defaultCatchUpName, type CatchUpResult } from '../patchbuild/catch-up/catch-up.js';
import { checkModuleName } from '../patchbuild/generate.js';
import { fixesFromSeries, fixesFromTree, seriesFiles } from '../patchbuild/catch-up/fixes.js';
import { renderCatchUpHtml } from '../patchbuild/catch-up/report.js';
import { suspectFixes, type Suspect } from '../patchbuild/catch-up/suspects.js';
import { treeChanges, treeChangesCacheFile } from '../patchbuild/catch-up/tree-diff.js';
import { readSecretKey } from '../bundle/keys.js';
import { compareVersions } from '../util/debian-version.js';
import { SutureError } from '../util/errors.js';
import { sutureHome } from '../util/paths.js';
import type { Reporter } from '../util/progress.js';
import { DISK_KMODS } from '../vm/disk.js';
import { proofEvidence, provePatch, type ProofResult } from '../vm/prove.js';
import { outcomeErrorKind } from '../vm/outcome.js';
import { parseMaxUnits, show } from './build-patch.js';
import { signModuleFile } from './bundle.js';
import { EXIT, exitCodeFor } from './exit-codes.js';
import { out, printJson, reporterFor, table } from './output.js';

interface CatchUpFlags {
  kernel: string;
  to?: string;
  series?: string;
  output?: string;
  name?: string;
  sign?: string;
  json?: boolean;
  report?: string;
  jsonFile?: string;
  prove: boolean;
  check: string[];
  maxUnits?: number;
  timeout: number;
  exclude: string[];
}

const collect = (v: string, prev: string[] = []) => [...prev, v];

/** Everything about the two kernels that can be said wrong without the network. */
export function checkKernelPair(from: KernelRef, to: KernelRef): void {
  if (from.release === to.release) {
    throw new SutureError('usage', `--to ${formatKernelRef(to)} is the running kernel itself`, { hint: 'name a newer Debian kernel of the same series, e.g. the next ABI (6.1.0-57-amd64 after 6.1.0-56-amd64)' });
  }
  if (from.series !== to.series || from.codename !== to.codename || from.flavour !== to.flavour) {
    throw new SutureError('usage', `--to ${formatKernelRef(to)} is of another series than ${formatKernelRef(from)} (${to.series} ${to.codename} ${to.flavour} against ${from.series} ${from.codename} ${from.flavour})`, {
      hint: 'a catch-up follows one Debian kernel series: name a newer kernel of the same series, release and flavour',
    });
  }
}

export function catchUpCommand(): Command {
  return new Command('catch-up')
    .description("a newer Debian kernel's fixes, or a series of fix patches, as one cumulative livepatch for the running kernel, proven in a VM")
    .requiredOption('--kernel <kernel>', 'the running kernel, e.g. debian:6.1.0-56-amd64 (fetched with `suture kernel fetch`)')
    .option('--to <kernel>', 'the newer Debian kernel whose source changes to carry, e.g. debian:6.1.0-57-amd64')
    .option('--series <dir>', 'a directory of patch files, one per fix, applied in name order (or as its `series` file lists them)')
    .option('-o, --output <file.ko>', 'where to write the livepatch (default: ./<name>.ko)')
    .option('--name <name>', 'module name (default: livepatch_catchup_<version or series directory>)')
    .option('--sign <file.key>', 'sign the module into NAME.suture beside it (what hosts load)')
    .option('--report <file.html>', 'write an HTML report a person can read in a browser')
    .option('--no-prove', 'skip the proof in a VM (the patch is then unproven: say so when you ship it)')
    .option('--check <script.sh>', 'a check of your own, run in the VM after the smoke workload with the patch applied; repeatable', collect, [])
    .option('--exclude <fix>', 'leave out a fix: its id from a previous run (F0042, a series file) or a CVE id (every fix that carries it); repeatable', (v: string, prev: string[] = []) => {
      if (!/^(F\d+|CVE-\d{4}-\d{4,})$/.test(v) && !/^[\w.+-]+\.(patch|diff)$/.test(v)) throw new InvalidArgumentError(`${v} is not a fix id (F0042), a series file name (0003-foo.patch) or a CVE id (CVE-2026-12345)`);
      return [...prev, v];
    }, [])
    .option('--max-units <n>', 'most units one changed header may reach (each unit is compiled twice)', parseMaxUnits)
    .option('--timeout <seconds>', 'give up on the VM proof after this long', (v: string) => {
      const n = Number(v);
      if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError('--timeout must be a positive whole number');
      return n;
    }, 600)
    .option('--json', 'print one JSON object: every fix with its verdict, the module, the proof')
    .option('--json-file <file>', 'write that JSON object to a file too, and show progress and the table as without --json')
    .action(async (o: CatchUpFlags) => {
      process.exitCode = await runCatchUp(o);
    });
}

async function runCatchUp(o: CatchUpFlags): Promise<number> {
  // Everything that can be wrong with the arguments is said before anything is fetched or built.
  if (!!o.to === !!o.series) throw new SutureError('usage', o.to ? '--to and --series exclude each other' : 'say what to catch up with: --to <newer kernel> or --series <dir>', { hint: 'suture catch-up --kernel debian:6.1.0-56-amd64 --to debian:6.1.0-57-amd64' });
  const ref = parseKernelRef(o.kernel);
  const toRef = o.to ? parseKernelRef(o.to) : undefined;
  if (toRef) checkKernelPair(ref, toRef);
  const series = o.series ? seriesFiles(resolve(o.series)) : undefined;
  for (const c of o.check) if (!existsSync(c) || !statSync(c).isFile()) throw new SutureError('not-found', `--check ${c}: no such file`);
  if (o.sign) readSecretKey(o.sign);
  const name = o.name ?? (o.output ? basename(o.output).replace(/\.ko$/, '') : defaultCatchUpName(toRef ? toRef.abi : `series_${basename(resolve(o.series!))}`));
  checkModuleName(name, o.name ? '--name' : o.output ? 'module name (from -o; choose one with --name)' : 'module name');
  if (o.output && !o.output.endsWith('.ko')) throw new SutureError('usage', `-o ${o.output}: a kernel module file must end in .ko`);
  const home = sutureHome();
  const meta = requireWorkspace(home, ref);
  const reporter = reporterFor(o);

  let newer: { version: string } | undefined;
  let formFixes: Parameters<typeof catchUp>[0]['formFixes'];
  let what: string;
  if (toRef) {
    const apt = openApt(join(home, 'apt', ref.codename), findMirrors(), ref.codename);
    const toVersion = await reporter.step(`Resolving ${formatKernelRef(toRef)} in the archive`, async (s) => {
      await apt.update();
      const v = await sourceVersionOfRelease(apt, toRef);
      s.update(`linux ${v}`);
      return v;
    });
    if (compareVersions(toVersion, meta.packageVersion) <= 0) {
      throw new SutureError('usage', `--to ${formatKernelRef(toRef)} (linux ${toVersion}) is not newer than ${meta.name} (linux ${meta.packageVersion})`, { hint: 'catch-up carries a newer kernel\'s fixes to an older one: swap the two, or name a newer --to' });
    }
    newer = { version: toVersion };
    what = `Debian linux ${toVersion} (${toRef.release})`;
    const fromSrc = meta.packages.find((p) => p.role === 'source');
    formFixes = async (_buildRoot, step) => {
      const pkg = `linux-source-${ref.series}`;
      const older = await fetchSourceRelease({ home, pkg, version: meta.packageVersion, ...(fromSrc && existsSync(fromSrc.file) ? { deb: fromSrc.file } : { apt }), reporter });
      const newerSrc = await fetchSourceRelease({ home, pkg, version: toVersion, apt, reporter });
      const cacheFile = treeChangesCacheFile(older, newerSrc);
      const changes = await step('changes', `Comparing linux ${meta.packageVersion} with ${toVersion}`, (update) =>
        treeChanges(older.tree, newerSrc.tree, `linux ${meta.packageVersion}..${toVersion}`, (d, t) => update(`${d} of ${t} changed files`), cacheFile),
      );
      return step('fixes', `Forming fixes from ${changes.length} changed files and matching the changelog`, () =>
        fixesFromTree({ changes, tree: meta.paths.source, graphCache: join(meta.paths.root, 'include-graph.json'), fromTree: older.tree, changelogText: readFileSync(newerSrc.changelog, 'utf8'), fromVersion: meta.packageVersion, toVersion }),
      );
    };
  } else {
    what = `series ${o.series} (${series!.length} fix${series!.length === 1 ? '' : 'es'})`;
    formFixes = (buildRoot, step) => step('fixes', `Reading ${series!.length} series files and checking that they apply in order`, () => fixesFromSeries(series!, meta.paths.source, buildRoot));
  }
  const t0 = performance.now();
  const result = await catchUp({ meta, home, reporter, formFixes, what, name, output: o.output, newerVersion: newer?.version, maxUnits: o.maxUnits, exclude: o.exclude });
  const proof = result.module && o.prove ? await prove(meta, home, result, o, reporter) : undefined;
  const bundle = result.module && o.sign ? signModuleFile(result.module.path, o.sign, {}) : undefined;
  const totalMs = Math.round(performance.now() - t0);
  const suspects = result.module && proof && !proof.proven ? suspectFixes(result.fixes, result.module.name, proofEvidence(proof)) : [];
  if (o.report) writeFileSync(o.report, renderCatchUpHtml(result, proof, { totalMs, generatedAt: new Date().toISOString(), suspects }));
  const exit = !result.module ? (result.fixes.some((f) => f.verdict === 'refused') ? EXIT.unsupportedChange : EXIT.noChange) : proof && !proof.proven ? proofExit(proof) : EXIT.ok;
  const json = { ...result, proof: proof ? { ...proofJson(proof), suspects } : o.prove ? null : 'skipped (--no-prove)', bundle: bundle ? { path: bundle.path, sha256: bundle.sha256, keyId: bundle.keyId } : undefined, report: o.report, totalMs, exitCode: exit };
  if (o.jsonFile) writeFileSync(o.jsonFile, `${JSON.stringify(json, null, 2)}\n`);
  if (o.json) {
    printJson(json);
  } else {
    printText(result, proof, o, suspects);
    if (bundle) out(`signed ${show(bundle.path)} (key ${bundle.keyId}, sha256 ${bundle.sha256})`);
    if (o.report) out(`report: ${show(o.report)}`);
  }
  return exit;
}

function proofExit(p: ProofResult): number {
  return p.vm.outcome === 'ok' || p.vm.outcome === 'command-failed' ? EXIT.failure : exitCodeFor(outcomeErrorKind(p.vm.outcome));
}

async function prove(meta: KernelMetadata, home: string, r: CatchUpResult, o: CatchUpFlags, reporter: Reporter): Promise<ProofResult> {
  const m = r.module!;
  const index = readModuleIndex(meta.paths.modules);
  const disk = resolveModules(index, meta.paths.modules, DISK_KMODS).loads;
  const patched = resolveModules(index, meta.paths.modules, m.objects.filter((x) => x !== 'vmlinux')).loads.filter((x) => !disk.some((d) => d.name === x.name));
  return reporter.step(`Proving ${m.name} in ${meta.name} (load, transition, smoke workload${o.check.length ? ', your checks' : ''}, kernel log, unload)`, async (s) => {
    const p = await provePatch({
      kernelImage: meta.paths.vmlinuz,
      kmods: disk,
      modules: patched,
      patch: m.path,
      patchName: m.name,
      checks: o.check.map((c) => ({ label: c, script: readFileSync(c, 'utf8') })),
      stateDir: join(home, 'vm'),
      timeoutMs: o.timeout * 1000,
      onEvent: (e) => {
        if (e.type === 'ready') s.update(`guest up in ${(e.bootMs / 1000).toFixed(1)} s`);
        else if (e.type === 'step-start') s.update(e.label);
      },
    });
    s.update(p.proven ? `proven${p.transitionMs !== undefined ? ` (transition ${p.transitionMs} ms)` : ''}` : `NOT proven: ${p.reason}`);
    return p;
  });
}

function proofJson(p: ProofResult) {
  return {
    proven: p.proven,
    reason: p.reason,
    transitionMs: p.transitionMs,
    accel: p.vm.accel,
    bootMs: p.vm.bootMs,
    totalMs: Math.round(p.vm.totalMs),
    // A failed step's output says why (a stuck transition names its tasks and their stacks); the disable's
    // says how long it took and, past 30 s, what it waited for.
    steps: p.steps.map((s) => ({ label: s.label, status: s.status, durationMs: s.durationMs, ...(s.status !== 0 || s.label.startsWith('disable and unload') ? { output: s.output } : {}) })),
    modules: p.modules,
    logProblems: p.logProblems,
    logContext: p.logContext,
    baseline: p.baseline,
  };
}

function printText(r: CatchUpResult, p: ProofResult | undefined, o: CatchUpFlags, suspects: readonly Suspect[]): void {
  out(`catch-up of ${r.kernel} to ${r.what}: ${r.fixes.length} fix${r.fixes.length === 1 ? '' : 'es'}, ${r.unitsCompiled} units compiled, ${r.unitsSettled} settled by the preprocessor`);
  out('');
  out(table([['fix', 'verdict', 'title / files', 'why'], ...r.fixes.map((f) => [f.id, f.verdict, trim(f.title ?? f.label, 60), trim(f.why, 90)])]));
  const refused = r.fixes.filter((f) => f.verdict === 'refused');
  if (refused.length) {
    out('');
    out('refused (left out whole):');
    for (const f of refused) for (const x of f.refusals) out(`  ${f.id}: ${x.file === x.symbol ? x.file : `${x.file}: ${x.symbol}`}: ${x.reason}\n      rule: ${x.rule}\n      instead: ${x.instead}`);
  }
  if (r.cvesNotCarried.length) {
    out('');
    out('CVEs not carried:');
    for (const c of r.cvesNotCarried) out(`  ${c.cve}  ${trim(c.title, 70)}  (${c.why})`);
  }
  if (r.cvesCarried.length) out(`\nCVEs carried: ${r.cvesCarried.join(', ')}`);
  if (r.cvesNeedNoPatch.length) out(`CVEs that need no patch here: ${r.cvesNeedNoPatch.length} (not built, no functional change, or another architecture's: see --json or --report)`);
  out('');
  if (!r.module) {
    out('no livepatch: no fix changes code this kernel runs' + (refused.length ? ' that a livepatch can carry' : ''));
    return;
  }
  out(`${show(r.module.path)}: ${r.module.functions.length} function${r.module.functions.length === 1 ? '' : 's'} in ${r.module.objects.join(', ')}, atomic replace; effective version ${r.module.effectiveVersion ?? 'not claimed (a fix is left out)'}`);
  const notLoaded = p?.modules.filter((x) => !x.loaded) ?? [];
  if (notLoaded.length) out(`patched modules that do not load in the VM (their part waits for them on a host): ${notLoaded.map((x) => `${x.name} (${x.why})`).join(', ')}`);
  if (!o.prove) out('not proven (--no-prove)');
  else if (p) out(p.proven ? `proven in the VM: transition ${p.transitionMs === undefined ? '?' : p.transitionMs.toFixed(1)} ms, smoke workload ok, kernel log clean, disabled and unloaded` : `NOT proven: ${p.reason}`);
  const own = p?.baseline?.preexisting ?? [];
  if (own.length) out(`the kernel's own log problems, printed without the patch too (a second boot beside the proof, ${((p!.baseline!.ms) / 1000).toFixed(0)} s), not counted: ${own.length} line${own.length === 1 ? '' : 's'}, first: ${trim(own[0]!.trim(), 120)}`);
  if (suspects.length) {
    out('the kernel log names code these fixes carry:');
    for (const s of suspects) out(`  ${s.fix} ${trim(s.title, 70)}: ${s.functions.join(', ')}\n      ${trim(s.lines[0]!, 150)}`);
    out(`leave them out with ${suspects.map((s) => `--exclude ${s.fix}`).join(' ')}`);
  }
}

function trim(s: string, n: number): string {
  return s.length > n ? `${s.slice(0, n - 1)}…` : s;
}
