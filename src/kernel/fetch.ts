// SPDX-License-Identifier: GPL-2.0-only
/**
 * `suture kernel fetch`: bring a Debian kernel's packages, unpack them without
 * installing, prepare its source tree with the kernel's own config and
 * compiler, and capture its exact symbol table by booting it once.
 *
 * Each step leaves a stamp in .steps/ when it completes; a step without a stamp
 * is redone from scratch, so an interrupted fetch resumes cleanly. The
 * workspace counts as ready only when kernel.json is written, last.
 */
import { accessSync, constants as fsConstants, copyFileSync, cpSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statfsSync, statSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { compareVersions } from '../util/debian-version.js';
import { SutureError, fsError } from '../util/errors.js';
import { requireTool, runChecked } from '../util/exec.js';
import { Lock } from '../util/lock.js';
import type { Reporter } from '../util/progress.js';
import { vmError } from '../vm/outcome.js';
import { runVm } from '../vm/run.js';
import { findMirrors, openApt, type Apt } from './apt.js';
import { installedImage } from './installed.js';
import { checkLocalDeb, mergedShow, readDebsDir, type LocalDeb } from './local-debs.js';
import { PACKAGE_ROLES, planPackages } from './packages.js';
import { compilerText, parseKconfig } from './config.js';
import { formatKernelRef, parseKernelRef, type KernelRef } from './ref.js';
import { treeMakeArgs } from './kbuild.js';
import { ensureToolchain, type Toolchain } from './toolchain.js';
import { WORKSPACE_SCHEMA, workspacePaths, workspaceState, writeMetadata, type KernelMetadata, type PackageInfo, type WorkspacePaths } from './workspace.js';

/** Free space a fetch needs: packages (~250 MB), unpacked image and headers (~500 MB), source tree (~1.5 GB). */
const NEEDED_BYTES = 2.5 * 1024 ** 3;

export interface FetchOptions {
  home: string;
  reporter: Reporter;
  /** Refresh package lists even if they are recent. */
  refresh?: boolean;
  /** A folder of .deb files to use before asking the archive (`--debs`). */
  debs?: string;
  /** Where this host's installed kernels are looked for (`/`; tests give a prepared root). */
  hostRoot?: string;
}

export interface FetchResult {
  meta: KernelMetadata;
  /** True when the kernel was already ready and nothing was done. */
  cached: boolean;
}

/** Which releases of a kind the archive has (linux-image-<release> names). */
export async function archiveReleases(apt: Apt): Promise<string[]> {
  const names = await apt.names('linux-image-');
  return names
    .map((n) => /^linux-image-(\d[\w.+~-]*-(?:amd64|cloud-amd64|rt-amd64))$/.exec(n)?.[1])
    .filter((r): r is string => !!r && !/-dbg$|-unsigned$/.test(r))
    .sort((a, b) => compareVersions(a, b));
}

/** The release is not in the archive: say which releases of its series are. */
async function releaseNotInArchive(apt: Apt, ref: KernelRef): Promise<never> {
  const name = formatKernelRef(ref);
  const all = await archiveReleases(apt);
  // Releases of the same series, flavour and Debian release (6.12+deb12 and 6.12+deb13 are different kernels).
  const same = all.filter((r) => {
    try {
      const o = parseKernelRef(`debian:${r}`);
      return o.series === ref.series && o.flavour === ref.flavour && o.codename === ref.codename;
    } catch {
      return false;
    }
  });
  const range = same.length ? `${same[0]} … ${same[same.length - 1]}` : 'none';
  throw new SutureError(
    'not-found',
    same.length
      ? `${name} is not in the archive (no longer, or not yet); this series has ${same.length} releases there: ${range}`
      : `${name} is not a kernel the archive has`,
    {
      hint: `pick one of: ${(same.length ? same : all.filter((r) => r.endsWith('-amd64'))).slice(-8).join(', ')} (as debian:<release>), or pass its packages with --debs DIR`,
    },
  );
}

function checkWritable(home: string): void {
  try {
    mkdirSync(join(home, 'kernels'), { recursive: true });
    const probe = join(home, 'kernels', `.write-test-${process.pid}`);
    writeFileSync(probe, '');
    unlinkSync(probe);
  } catch (e) {
    // A recursive mkdir on a read-only filesystem can report ENOENT: ask the nearest existing ancestor why.
    let dir = home;
    while (!existsSync(dir) && dirname(dir) !== dir) dir = dirname(dir);
    try {
      accessSync(dir, fsConstants.W_OK);
    } catch (why) {
      throw fsError(why, 'the suture cache', home);
    }
    throw fsError(e, 'the suture cache', home);
  }
}

function checkSpace(dir: string, needed: number): void {
  const s = statfsSync(dir);
  const free = Number(s.bavail) * Number(s.bsize);
  if (free < needed) {
    throw new SutureError(
      'environment',
      `not enough disk space under ${dir}: a kernel workspace needs about ${(needed / 1024 ** 3).toFixed(1)} GB, ${(free / 1024 ** 3).toFixed(1)} GB are free`,
      { hint: 'free some space, or set SUTURE_HOME to a larger filesystem' },
    );
  }
}

function hasFiles(dir: string): boolean {
  return existsSync(dir) && readdirSync(dir).some((f) => !f.startsWith('.'));
}

function du(p: string): number {
  let total = 0;
  const stack = [p];
  while (stack.length) {
    const cur = stack.pop()!;
    const st = lstatSync(cur);
    total += st.blocks * 512;
    if (st.isDirectory()) for (const e of readdirSync(cur)) stack.push(join(cur, e));
  }
  return total;
}

/** A step that runs once: skipped when its stamp exists, its outputs wiped before it runs again. */
async function once<T extends object | void>(
  paths: WorkspacePaths,
  reporter: Reporter,
  timings: Record<string, number>,
  id: string,
  title: string,
  outputs: string[],
  fn: (update: (d: string) => void) => Promise<T>,
): Promise<T | undefined> {
  const stamp = join(paths.steps, id);
  if (existsSync(stamp)) {
    await reporter.step(title, async (s) => s.skip('done earlier'));
    const saved = readFileSync(stamp, 'utf8');
    return saved ? (JSON.parse(saved) as T) : undefined;
  }
  const t0 = performance.now();
  return reporter.step(title, async (s) => {
    for (const o of outputs) rmSync(o, { recursive: true, force: true });
    const r = await fn((d) => s.update(d));
    mkdirSync(paths.steps, { recursive: true });
    writeFileSync(stamp, r === undefined ? '' : JSON.stringify(r));
    timings[id] = Math.round((performance.now() - t0) / 100) / 10;
    return r;
  });
}

export async function fetchKernel(ref: KernelRef, opts: FetchOptions): Promise<FetchResult> {
  const { home } = opts;
  const st = workspaceState(home, ref);
  if (st.state === 'ready') return { meta: st.meta, cached: true };
  // Bad input is refused before the cache is touched.
  const local = opts.debs ? await readDebsDir(opts.debs) : [];
  checkWritable(home);
  const paths = workspacePaths(home, ref);
  const name = formatKernelRef(ref);
  if (st.state === 'absent') checkSpace(join(home, 'kernels'), NEEDED_BYTES);
  mkdirSync(join(home, 'kernels'), { recursive: true });
  const lock = new Lock(join(home, 'kernels', `.${basename(paths.root)}.lock`), { what: `the cache entry of ${name}` }).take(`suture kernel fetch ${name}`);
  try {
    rmSync(paths.metadata, { force: true }); // stale (older schema): ready again only when this fetch completes
    return { meta: await fetchSteps(ref, paths, opts, local), cached: false };
  } catch (e) {
    // Nothing worth resuming (no step done, no package downloaded): leave no trace in the cache.
    if (!existsSync(paths.steps) && !hasFiles(paths.debs)) rmSync(paths.root, { recursive: true, force: true });
    throw e;
  } finally {
    lock.release();
  }
}

async function fetchSteps(ref: KernelRef, paths: WorkspacePaths, opts: FetchOptions, local: readonly LocalDeb[]): Promise<KernelMetadata> {
  const { home, reporter } = opts;
  const timings: Record<string, number> = {};
  // Every tool the steps run, checked before anything is downloaded.
  for (const tool of ['apt-get', 'apt-cache', 'dpkg-deb', 'tar', 'xz', 'depmod', 'qemu-system-x86_64']) requireTool(tool);
  const mirrors = findMirrors();
  // suture's apt was one root for bookworm before trixie came: its lists and cache are of no use now.
  for (const legacy of ['lists', 'cache', 'preferences.d', 'sources.list', 'sources.list.d', 'status']) rmSync(join(home, 'apt', legacy), { recursive: true, force: true });
  const apt = openApt(join(home, 'apt', ref.codename), mirrors, ref.codename);

  const plan = await reporter.step(`Resolving ${formatKernelRef(ref)} in the archive`, async (s) => {
    s.update('refreshing package lists');
    await apt.update(opts.refresh ? 0 : undefined);
    const installed = await installedImage(ref.release, opts.hostRoot);
    const p = await planPackages(mergedShow(apt, local), ref, () => releaseNotInArchive(apt, ref), installed);
    s.update(`${p.headers.version}`);
    return p;
  });
  const records = PACKAGE_ROLES.map((role) => plan[role]);
  const fromArchive = records.filter((r) => !r.localFile && !r.installedAt);
  const totalMb = fromArchive.reduce((n, r) => n + (r.size ?? 0), 0) / 1e6;
  const title = fromArchive.length === records.length
    ? `Downloading ${records.length} packages (${totalMb.toFixed(0)} MB)`
    : `Downloading ${fromArchive.length} packages (${totalMb.toFixed(0)} MB), ${records.length - fromArchive.length} supplied`;

  const packages = (await once(paths, reporter, timings, 'download', title, [], async (update) => {
    // Supplied files are checked whole before any of them is used.
    for (const r of records) {
      if (r.localFile) {
        update(`checking ${r.localFile}`);
        await checkLocalDeb({ ...r, localFile: r.localFile }, r.sha256);
      }
    }
    const out: PackageInfo[] = [];
    const partial = join(paths.debs, '.partial');
    for (const r of records) {
      const info = { name: r.package, version: r.version, role: r.role, why: r.why };
      if (r.installedAt) {
        out.push({ ...info, file: r.installedAt, size: 0, origin: 'installed' });
        continue;
      }
      const final = join(paths.debs, `${r.package}_${r.version.replace(/:/g, '%3a')}_amd64.deb`);
      if (r.localFile) {
        update(`${r.package} ${r.version} from ${r.localFile}`);
        mkdirSync(paths.debs, { recursive: true });
        copyFileSync(r.localFile, `${final}.tmp`);
        renameSync(`${final}.tmp`, final);
      } else if (!(existsSync(final) && r.size !== undefined && statSync(final).size === r.size)) {
        update(`${r.package} ${r.version} (${((r.size ?? 0) / 1e6).toFixed(0)} MB)`);
        rmSync(partial, { recursive: true, force: true });
        const got = await apt.download(r.package, r.version, partial);
        mkdirSync(paths.debs, { recursive: true });
        renameSync(got, final);
      }
      out.push({ ...info, file: final, size: statSync(final).size, origin: r.localFile ? 'debs' : 'archive' });
    }
    rmSync(partial, { recursive: true, force: true });
    return out;
  }))!;
  const deb = (pkg: string) => packages.find((p) => p.name === pkg)!.file;

  await once(paths, reporter, timings, 'unpack', 'Unpacking image and headers', [paths.image, join(paths.root, 'headers')], async (update) => {
    update(plan.image.package);
    if (plan.image.installedAt) copyInstalledImage(plan.image.installedAt, ref.release, paths.image);
    else await runChecked(['dpkg-deb', '-x', deb(plan.image.package), paths.image], { kind: 'environment', what: 'dpkg-deb' });
    // Debian 13's packages install under /usr/lib/modules (merged /usr): give the image the /lib of a merged-/usr system.
    if (!existsSync(join(paths.image, 'lib')) && existsSync(join(paths.image, 'usr', 'lib', 'modules'))) symlinkSync(join('usr', 'lib'), join(paths.image, 'lib'));
    for (const r of [plan.headers, plan.common, plan.kbuild]) {
      update(r.package);
      await runChecked(['dpkg-deb', '-x', deb(r.package), join(paths.root, 'headers')], { kind: 'environment', what: 'dpkg-deb' });
    }
    if (!existsSync(paths.vmlinuz)) throw new SutureError('archive', `${plan.image.package} has no ${basename(paths.vmlinuz)}`);
    relocateHeaders(paths, ref);
    const compressed = await decompressModules(paths.modules, update);
    if (compressed) update(`${compressed} compressed modules decompressed`);
    update('depmod');
    // Debian generates modules.dep at install time; the package does not carry it.
    await runChecked(['depmod', '-b', paths.image, ref.release], { kind: 'environment', what: 'depmod' });
  });

  const sourceRoot = dirname(paths.source);
  await once(paths, reporter, timings, 'source', `Extracting linux-source-${ref.series}`, [sourceRoot], async (update) => {
    const tmp = join(paths.root, '.source-deb');
    rmSync(tmp, { recursive: true, force: true });
    update('unpacking the package');
    await runChecked(['dpkg-deb', '-x', deb(plan.source.package), tmp], { kind: 'environment', what: 'dpkg-deb' });
    const srcDir = join(tmp, 'usr', 'src');
    const tarball = readdirSync(srcDir).find((f) => /^linux-source-.*\.tar\.(xz|gz|bz2|zst)$/.test(f));
    if (!tarball) throw new SutureError('archive', `${plan.source.package} carries no linux-source tarball in /usr/src`);
    mkdirSync(sourceRoot, { recursive: true });
    update(`extracting ${tarball}`);
    await runChecked(['tar', '-I', 'xz -T0', '-xf', join(srcDir, tarball), '-C', sourceRoot], {
      kind: 'environment',
      what: 'extracting the kernel source',
    });
    rmSync(tmp, { recursive: true, force: true });
    if (!existsSync(join(paths.source, 'Makefile'))) {
      throw new SutureError('archive', `${tarball} did not unpack to ${paths.source}`);
    }
  });

  const config = parseKconfig(readFileSync(paths.config, 'utf8'));
  const ccText = compilerText(config);
  if (!ccText) throw new SutureError('invalid-input', `${paths.config} has no CONFIG_CC_VERSION_TEXT`);
  let toolchain!: Toolchain;
  await reporter.step(`Finding the kernel's compiler (${ccText})`, async (s) => {
    toolchain = await ensureToolchain({ ccVersionText: ccText, suite: ref.codename, home, mirrors, onProgress: (l) => s.update(l) });
    s.update(toolchain.info.via === 'host' ? 'the host compiler matches' : `build root ${toolchain.info.buildroot}`);
  });

  // The stamp names what the tree was prepared for: another toolchain or other flags prepare it again.
  await once(paths, reporter, timings, `prepare-${toolchain.info.via}-sections-pinned`, 'Preparing the source tree (olddefconfig, modules_prepare)', [join(paths.root, 'orig-objects'), join(paths.root, 'patched-objects')], async (update) => {
    const cc = toolchain.info.command;
    const jobs = String(Math.max(1, cpus().length));
    const make = treeMakeArgs(cc, ref.release, Number(jobs));
    // A prepare done by another toolchain must not be mixed with this one.
    await toolchain.run(['make', 'mrproper'], paths.source);
    cpSync(paths.config, join(paths.source, '.config'));
    update('olddefconfig');
    await checked(toolchain, [...make, 'olddefconfig'], paths.source, 'make olddefconfig');
    const after = parseKconfig(readFileSync(join(paths.source, '.config'), 'utf8'));
    const changed = [...config.keys()].filter((k) => after.get(k) !== config.get(k));
    if (changed.length) {
      throw new SutureError(
        'build',
        `olddefconfig changed ${changed.length} options of the shipped config: ${changed
          .slice(0, 5)
          .map((k) => `${k} ${String(config.get(k))} → ${String(after.get(k) ?? 'unset')}`)
          .join(', ')}`,
        {
          hint: 'the source package and the image disagree, or a tool differs from the one that built the kernel (the compiler; pahole for CONFIG_PAHOLE_*)',
        },
      );
    }
    update('modules_prepare');
    await checked(toolchain, [...make, 'modules_prepare'], paths.source, 'make modules_prepare', (l) => update(l.trim().slice(0, 100)));
    cpSync(join(paths.headers, 'Module.symvers'), join(paths.source, 'Module.symvers'));
  });

  const sym = (await once(paths, reporter, timings, 'symbols', 'Capturing the symbol table (booting the kernel once, nokaslr)', [paths.symbols], async (update) => {
    const r = await runVm({
      kernelImage: paths.vmlinuz,
      kaslr: false,
      stateDir: join(home, 'vm'),
      commands: [
        { label: 'gzip /proc/kallsyms', script: 'gzip -1 -c /proc/kallsyms' },
        { label: 'cat /proc/version', script: 'cat /proc/version' },
      ],
      onEvent: (e) => {
        if (e.type === 'ready') update(`booted in ${(e.bootMs / 1000).toFixed(1)} s, reading /proc/kallsyms`);
      },
    });
    const failed = vmError(r, 'booting the kernel to read its symbols');
    if (failed) throw failed;
    const text = gunzipSync(r.commands[0]!.raw).toString('utf8');
    const count = text.split('\n').filter(Boolean).length;
    // Addresses read as zero when kptr_restrict hides them; _stext is never at zero.
    const stext = /^([0-9a-f]{16}) [Tt] _stext$/m.exec(text)?.[1];
    if (count < 10_000 || !stext || /^0+$/.test(stext)) {
      throw new SutureError('internal', `the captured kallsyms looks wrong (${count} lines, _stext at ${stext ?? 'nowhere'})`);
    }
    mkdirSync(paths.symbols, { recursive: true });
    writeFileSync(paths.kallsyms, text);
    return { count, procVersion: r.commands[1]!.output.trim() };
  }))!;

  return reporter.step('Recording the workspace', async () => {
    const makefile = readFileSync(join(paths.source, 'Makefile'), 'utf8');
    const mk = (k: string) => new RegExp(`^${k} = (\\S*)`, 'm').exec(makefile)?.[1] ?? '';
    const meta: KernelMetadata = {
      schema: WORKSPACE_SCHEMA,
      name: formatKernelRef(ref),
      distro: ref.distro,
      release: ref.release,
      series: ref.series,
      packageVersion: plan.headers.version,
      upstreamVersion: `${mk('VERSION')}.${mk('PATCHLEVEL')}.${mk('SUBLEVEL')}`,
      procVersion: sym.procVersion,
      compiler: toolchain.info,
      packages,
      paths,
      symbols: { count: sym.count, source: '/proc/kallsyms of the kernel booted with nokaslr' },
      sizeBytes: du(paths.root),
      fetchedAt: new Date().toISOString(),
      timings,
    };
    writeMetadata(meta);
    return meta;
  });
}

/** This host's installed image of `release` (under `root`), copied as `dpkg-deb -x` would unpack the package. */
function copyInstalledImage(root: string, release: string, dest: string): void {
  mkdirSync(join(dest, 'boot'), { recursive: true });
  for (const f of [`vmlinuz-${release}`, `config-${release}`]) copyFileSync(join(root, 'boot', f), join(dest, 'boot', f));
  const from = join(root, 'lib', 'modules', release);
  // build/ and source/ point at the host's headers, and modules.* indexes are made again by depmod.
  cpSync(from, join(dest, 'lib', 'modules', release), {
    recursive: true,
    filter: (src) => {
      const rel = src.slice(from.length + 1);
      return rel !== 'build' && rel !== 'source' && !/^modules\.(?!order$|builtin$|builtin\.modinfo$)/.test(rel);
    },
  });
}

/**
 * Debian 13's kernels ship every module as `.ko.xz` (CONFIG_MODULE_COMPRESS_XZ).
 * The workspace keeps them decompressed, once, with xz itself, so that every
 * later reader (module symbols, provenance, the VM's insmod, modules.dep)
 * sees plain ELF. Returns how many were decompressed.
 */
async function decompressModules(modules: string, update: (d: string) => void): Promise<number> {
  const files: string[] = [];
  const stack = [modules];
  while (stack.length) {
    const dir = stack.pop()!;
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      if (e.isDirectory()) stack.push(join(dir, e.name));
      else if (e.isFile() && /\.ko\.(xz|zst)$/.test(e.name)) files.push(join(dir, e.name));
    }
  }
  const batch = 200;
  for (let i = 0; i < files.length; i += batch) {
    update(`decompressing modules: ${i} of ${files.length}`);
    const chunk = files.slice(i, i + batch);
    const xz = chunk.filter((f) => f.endsWith('.xz'));
    const zst = chunk.filter((f) => f.endsWith('.zst'));
    if (xz.length) await runChecked(['xz', '-d', '-T1', '--', ...xz], { kind: 'archive', what: `decompressing ${xz.length} .ko.xz modules` });
    if (zst.length) await runChecked(['zstd', '-q', '-d', '--rm', '--', ...zst], { kind: 'archive', what: `decompressing ${zst.length} .ko.zst modules` });
  }
  return files.length;
}

/**
 * Debian's linux-headers-<release>/Makefile includes the -common tree by its
 * installed path (/usr/src/...). Point it at the unpacked copy instead.
 */
function relocateHeaders(paths: WorkspacePaths, ref: KernelRef): void {
  const makefile = join(paths.headers, 'Makefile');
  const common = join(dirname(paths.headers), `linux-headers-${ref.abi}-common`);
  const text = readFileSync(makefile, 'utf8');
  const fixed = text.replace(/^include \/usr\/src\/(linux-headers-[^/\s]+-common)\/Makefile$/m, (_m, dir: string) => {
    if (join(dirname(paths.headers), dir) !== common) throw new SutureError('archive', `${makefile} includes an unexpected tree: ${dir}`);
    return `include ${common}/Makefile`;
  });
  if (!existsSync(join(common, 'Makefile'))) throw new SutureError('archive', `${common}/Makefile is missing from the headers packages`);
  writeFileSync(makefile, fixed);
}

async function checked(tc: Toolchain, argv: string[], cwd: string, what: string, onLine?: (l: string) => void): Promise<void> {
  const r = await tc.run(argv, cwd, { onLine: onLine ? (l) => onLine(l) : undefined });
  if (r.code !== 0) {
    throw new SutureError('build', `${what} failed in ${cwd} (exit ${r.code})`, {
      details: (r.stderr.trim() || r.stdout.trim()).split('\n').slice(-15).join('\n'),
    });
  }
}
