// SPDX-License-Identifier: GPL-2.0-only
/**
 * Which binary a source file ends up in, asked of kbuild itself: each
 * directory's Makefile is evaluated by make against the tree's own
 * include/config/auto.conf, and its obj-y / obj-m / lib-y lists and composite
 * objects (`ext4-y := inode.o ...`) are read back. No build is needed.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, writeFileSync, existsSync, rmSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, posix } from 'node:path';
import { SutureError } from '../util/errors.js';
import { run } from '../util/exec.js';
import { writeAtomic } from '../util/files.js';

export interface DirObjects {
  dir: string;
  objY: string[];
  objM: string[];
  libY: string[];
  /** composite name → its parts (`proc` → [cmdline.o, ...]) */
  composites: Map<string, string[]>;
}

/** Where a translation unit's object goes: into vmlinux, into a module, or nowhere in this config. */
export type ObjectHome =
  | { kind: 'vmlinux'; object: string }
  | { kind: 'module'; module: string; object: string }
  | { kind: 'not-built'; object: string; why: string };

const PROBE = `# written by suture: evaluate one kbuild directory Makefile and print its object lists
srctree := .
objtree := .
src := $(obj)
# What arch/x86/Makefile and the top Makefile would define (x86_64 targets only, for now).
ARCH := x86
SRCARCH := x86
BITS := 64
CONFIG_SHELL := sh
.DEFAULT_GOAL := suture-probe
include include/config/auto.conf
include scripts/Kbuild.include
include $(obj)/Makefile
$(info suture:obj-y=$(obj-y))
$(info suture:obj-m=$(obj-m))
$(info suture:lib-y=$(lib-y))
$(foreach m,$(sort $(patsubst %.o,%,$(filter %.o,$(obj-y) $(obj-m) $(lib-y)))),$(info suture:composite:$(m)=$($(m)-y) $($(m)-objs) $($(m)-m)))
suture-probe: ;
FORCE: ;
`;

/** What one directory's evaluation gave, as kept on disk: its lists, no Makefile, or kbuild's error. */
type Evaluated =
  | { readonly kind: 'dir'; readonly objY: string[]; readonly objM: string[]; readonly libY: string[]; readonly composites: [string, string[]][] }
  | { readonly kind: 'none' }
  | { readonly kind: 'error'; readonly message: string; readonly details: string };

interface CacheFile {
  /** The probe and the tree's config: another of either and nothing kept holds. */
  readonly basis: string;
  /** Directory → the size and mtime of its Makefile and Kbuild, and what make said. */
  readonly dirs: Record<string, { readonly stamp: string; readonly result: Evaluated }>;
}

export class KbuildObjects {
  private readonly cache = new Map<string, DirObjects | null>();
  private readonly probe: string;
  /** Evaluations kept across runs (`cacheFile`): a whole-update catch-up asks about hundreds of directories, one make each. */
  private kept: CacheFile | undefined;
  private keptChanged = false;

  /** `cacheFile`: where evaluations are kept between runs (the tree must not change under it but by its files' stamps). */
  constructor(
    readonly tree: string,
    private readonly cacheFile?: string,
  ) {
    const d = mkdtempSync(join(tmpdir(), 'suture-kbuild-'));
    this.probe = join(d, 'probe.mk');
    writeFileSync(this.probe, PROBE);
  }

  close(): void {
    rmSync(dirname(this.probe), { recursive: true, force: true });
    if (this.cacheFile && this.kept && this.keptChanged) {
      writeAtomic(this.cacheFile, JSON.stringify(this.kept));
    }
  }

  /** A file's size and mtime, '-' when it is missing. */
  private fileStamp(rel: string): string {
    try {
      const st = statSync(join(this.tree, rel));
      return `${st.size}:${st.mtimeMs}`;
    } catch {
      return '-';
    }
  }

  private stamp(dir: string): string {
    return `${this.fileStamp(join(dir, 'Makefile'))}/${this.fileStamp(join(dir, 'Kbuild'))}`;
  }

  private keptFor(): CacheFile {
    if (this.kept) return this.kept;
    const conf = this.fileStamp('include/config/auto.conf');
    const basis = createHash('sha256').update(PROBE).update(conf).digest('hex');
    let kept: CacheFile | undefined;
    if (this.cacheFile && existsSync(this.cacheFile)) {
      try {
        const k = JSON.parse(readFileSync(this.cacheFile, 'utf8')) as CacheFile;
        if (k.basis === basis) kept = k;
      } catch {
        // unreadable (an interrupted write of an older version): evaluated again
      }
    }
    this.kept = kept ?? { basis, dirs: {} };
    return this.kept;
  }

  /** The object lists of one directory, or null when it has no Makefile (or Kbuild). */
  async dir(dir: string): Promise<DirObjects | null> {
    if (this.cache.has(dir)) return this.cache.get(dir)!;
    const kept = this.keptFor();
    const stamp = this.stamp(dir);
    let e = kept.dirs[dir]?.stamp === stamp ? kept.dirs[dir]!.result : undefined;
    if (!e) {
      e = await this.evaluate(dir);
      kept.dirs[dir] = { stamp, result: e };
      this.keptChanged = true;
    }
    if (e.kind === 'error') throw new SutureError('build', e.message, { details: e.details });
    const d = e.kind === 'none' ? null : { dir, objY: e.objY, objM: e.objM, libY: e.libY, composites: new Map(e.composites) };
    this.cache.set(dir, d);
    return d;
  }

  private async evaluate(dir: string): Promise<Evaluated> {
    if (!existsSync(join(this.tree, dir, 'Makefile')) && !existsSync(join(this.tree, dir, 'Kbuild'))) return { kind: 'none' };
    const r = await run(['make', '-s', '--no-print-directory', '-f', this.probe, `obj=${dir}`], { cwd: this.tree });
    if (r.code !== 0) return { kind: 'error', message: `kbuild could not evaluate ${dir}/Makefile in ${this.tree}`, details: r.stderr.trim().split('\n').slice(-5).join('\n') };
    const words = (key: string) =>
      (new RegExp(`^suture:${key}=(.*)$`, 'm').exec(r.stdout)?.[1] ?? '').split(/\s+/).filter(Boolean);
    const composites: [string, string[]][] = [];
    for (const m of r.stdout.matchAll(/^suture:composite:([^=]+)=(.*)$/gm)) {
      const parts = m[2]!.split(/\s+/).filter(Boolean);
      if (parts.length) composites.push([m[1]!, parts]);
    }
    return { kind: 'dir', objY: words('obj-y'), objM: words('obj-m'), libY: words('lib-y'), composites };
  }

  /**
   * Whether a directory's built-in objects reach vmlinux: its parent lists it
   * (`name/`) in obj-y, all the way up to a top-level directory.
   */
  private async dirBuiltIn(dir: string): Promise<boolean> {
    const parent = posix.dirname(dir);
    if (parent === '.' || parent === '') return true; // top-level dirs are linked by the top Makefile
    const p = await this.dir(parent);
    if (!p) return this.dirBuiltIn(parent); // arch/x86 has no own list of kernel/: assume the chain goes on
    const name = `${posix.basename(dir)}/`;
    if (p.objY.includes(name)) return this.dirBuiltIn(parent);
    if (p.objM.includes(name)) return false;
    // Some directories are reached from elsewhere (arch Makefiles, core-y in the top Makefile): trust the parent chain.
    return !(await this.mentionsAnywhere(p, name)) ? this.dirBuiltIn(parent) : false;
  }

  private async mentionsAnywhere(p: DirObjects, name: string): Promise<boolean> {
    return p.libY.includes(name);
  }

  /** Where the object of a .c file (path relative to the tree) is linked. */
  async home(source: string): Promise<ObjectHome> {
    const object = source.replace(/\.[cS]$/, '.o');
    if (!existsSync(join(this.tree, source))) return { kind: 'not-built', object, why: `${source} does not exist in this tree` };
    // The tree is prepared for x86 (ARCH=x86, SRCARCH x86): another architecture's Makefiles evaluated here say nothing true.
    const arch = /^arch\/([^/]+)\//.exec(source);
    if (arch && arch[1] !== 'x86') return { kind: 'not-built', object, why: `another architecture (arch/${arch[1]}); this kernel is x86` };
    const dir = posix.dirname(source);
    const base = posix.basename(object);
    const d = await this.dir(dir);
    if (!d) return { kind: 'not-built', object, why: `${dir} has no Makefile` };
    const stem = base.replace(/\.o$/, '');
    // Direct: obj-m += foo.o is module foo; obj-y/lib-y += foo.o is built in.
    if (d.objM.includes(base)) return { kind: 'module', module: stem.replace(/-/g, '_'), object };
    if (d.objY.includes(base) || d.libY.includes(base)) {
      return (await this.dirBuiltIn(dir)) ? { kind: 'vmlinux', object } : { kind: 'not-built', object, why: `${dir}/ is not linked into vmlinux` };
    }
    // Part of a composite object.
    for (const [comp, parts] of d.composites) {
      if (!parts.includes(base)) continue;
      const compObj = `${comp}.o`;
      if (d.objM.includes(compObj)) return { kind: 'module', module: comp.replace(/-/g, '_'), object };
      if (d.objY.includes(compObj) || d.libY.includes(compObj)) {
        return (await this.dirBuiltIn(dir)) ? { kind: 'vmlinux', object } : { kind: 'not-built', object, why: `${dir}/ is not linked into vmlinux` };
      }
    }
    return { kind: 'not-built', object, why: `${base} is not in obj-y, obj-m or lib-y of ${dir}/Makefile with this config` };
  }
}
