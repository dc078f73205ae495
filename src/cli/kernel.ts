// SPDX-License-Identifier: GPL-2.0-only
/** `suture kernel fetch|list|info` */
import { Command } from 'commander';
import { which } from '../util/exec.js';
import { sutureHome } from '../util/paths.js';
import { fetchKernel } from '../kernel/fetch.js';
import { parseKernelRef } from '../kernel/ref.js';
import { listWorkspaces, requireWorkspace, type KernelMetadata } from '../kernel/workspace.js';
import { fmtBytes, out, printJson, reporterFor, table } from './output.js';

function compilerPresent(meta: KernelMetadata): boolean {
  return meta.compiler.via === 'buildroot' ? true : !!which(meta.compiler.command);
}

function summary(meta: KernelMetadata) {
  return {
    name: meta.name,
    release: meta.release,
    packageVersion: meta.packageVersion,
    upstreamVersion: meta.upstreamVersion,
    compiler: meta.compiler.text,
    compilerVia: meta.compiler.via,
    compilerPresent: compilerPresent(meta),
    sizeBytes: meta.sizeBytes,
    root: meta.paths.root,
  };
}

export function kernelCommand(): Command {
  const cmd = new Command('kernel').description('target kernels: fetch, list, inspect');

  cmd
    .command('fetch')
    .description('download, unpack and prepare a Debian kernel (cached; a second fetch does nothing)')
    .argument('<kernel>', 'e.g. debian:6.1.0-56-amd64, debian:6.12.57+deb13-amd64')
    .option('--debs <dir>', 'a folder of .deb files (a host\'s /var/cache/apt/archives, a snapshot download) to use before asking the archive')
    .option('--refresh', 'refresh the package lists even if they are recent')
    .option('--json', 'print the workspace metadata as JSON')
    .addHelpText(
      'after',
      '\nPackages are picked by the relations Debian wrote: the headers\' exact common package, the newest linux-kbuild that\n' +
        'satisfies their >= relation, the image and source built from the same linux source version. A kernel whose\n' +
        'packages left the archive: pass them with --debs DIR; on a host running that kernel, its installed /boot and\n' +
        '/lib/modules stand in for the image package.',
    )
    .action(async (name: string, o: { refresh?: boolean; json?: boolean; debs?: string }) => {
      const ref = parseKernelRef(name);
      const reporter = reporterFor(o);
      const t0 = performance.now();
      const r = await fetchKernel(ref, { home: sutureHome(), reporter, refresh: o.refresh, debs: o.debs });
      if (o.json) return printJson({ cached: r.cached, ...r.meta });
      const secs = ((performance.now() - t0) / 1000).toFixed(1);
      out(
        r.cached
          ? `${r.meta.name} is ready (cached at ${r.meta.paths.root})`
          : `${r.meta.name} is ready in ${secs} s: Linux ${r.meta.upstreamVersion}, ${r.meta.symbols.count} symbols, ${fmtBytes(r.meta.sizeBytes)} at ${r.meta.paths.root}`,
      );
    });

  cmd
    .command('list')
    .description('the kernels in the cache')
    .option('--json', 'print as JSON')
    .action((o: { json?: boolean }) => {
      const home = sutureHome();
      const all = listWorkspaces(home);
      if (o.json) {
        return printJson(
          all.map((w) => (w.meta ? { state: 'ready', ...summary(w.meta) } : { state: w.error ? 'broken' : 'incomplete', name: w.name, root: w.dir, error: w.error })),
        );
      }
      if (!all.length) return out(`no kernels in ${home}; fetch one: suture kernel fetch debian:6.1.0-56-amd64`);
      const rows = [['KERNEL', 'VERSION', 'COMPILER', 'SIZE', 'STATE']];
      for (const w of all) {
        if (!w.meta) rows.push([w.name, '-', '-', '-', w.error ? `broken: ${w.error}` : 'incomplete (fetch again to finish)']);
        else {
          const m = w.meta;
          const cc = `${m.compiler.text}${m.compiler.via === 'buildroot' ? ' [build root]' : ''}${compilerPresent(m) ? '' : ' [MISSING]'}`;
          rows.push([m.name, `${m.upstreamVersion} (${m.packageVersion})`, cc, fmtBytes(m.sizeBytes), 'ready']);
        }
      }
      out(table(rows));
      out(`\ncache: ${home}`);
    });

  cmd
    .command('info')
    .description('everything suture knows about a cached kernel')
    .argument('<kernel>', 'e.g. debian:6.1.0-56-amd64')
    .option('--json', 'print as JSON')
    .action((name: string, o: { json?: boolean }) => {
      const meta = requireWorkspace(sutureHome(), parseKernelRef(name));
      if (o.json) return printJson({ ...meta, compilerPresent: compilerPresent(meta) });
      const rows = [
        ['kernel', meta.name],
        ['release', meta.release],
        ['upstream version', meta.upstreamVersion],
        ['package version', meta.packageVersion],
        ['/proc/version', meta.procVersion],
        ['compiler', `${meta.compiler.text} (${meta.compiler.via === 'host' ? 'the host\'s' : `build root ${meta.compiler.buildroot}`}${compilerPresent(meta) ? '' : ', MISSING'})`],
        ['symbols', `${meta.symbols.count} (${meta.symbols.source})`],
        ['vmlinuz', meta.paths.vmlinuz],
        ['config', meta.paths.config],
        ['modules', meta.paths.modules],
        ['headers', meta.paths.headers],
        ['source tree', meta.paths.source],
        ['kallsyms', meta.paths.kallsyms],
        ['size', fmtBytes(meta.sizeBytes)],
        ['fetched', meta.fetchedAt],
        ['packages', meta.packages.map((p) => `${p.name} ${p.version}${p.why ? `\n${' '.repeat(20)}(${p.why})` : ''}`).join('\n' + ' '.repeat(18))],
      ];
      out(table(rows));
    });
  return cmd;
}
