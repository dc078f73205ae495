// SPDX-License-Identifier: GPL-2.0-only
/**
 * `suture catch-up` on Debian's own updates, end to end (the pristine sources
 * fetched, the fixes formed and matched to the changelog, built, proven in
 * one boot each): 6.1.0-55 → 6.1.0-56 (ext4: fix NULL folio dereference in
 * mballoc) and 6.1.0-56 → 6.1.0-57 (nfsd: preflight SEQUENCE replies,
 * CVE-2026-99362). And the bad input, refused before anything is built.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { suture, sutureJson } from '../helpers/cli.js';
import { ensureKernel, REFERENCE_KERNEL } from '../helpers/kernel.js';

const K55 = 'debian:6.1.0-55-amd64';
const K57 = 'debian:6.1.0-57-amd64';
let out: string;

beforeAll(async () => {
  await ensureKernel(K55);
  await ensureKernel(REFERENCE_KERNEL);
  out = mkdtempSync(join(tmpdir(), 'suture-catch-up-'));
});

const modName = (v: string) => `cu_${v.replace(/[.-]/g, '_')}`;
/** QEMU processes still running a proof's disk (`suture-proof-*`): none once a catch-up has exited. */
const proofGuestsLeft = () =>
  readdirSync('/proc')
    .filter((pid) => /^\d+$/.test(pid))
    .map((pid) => {
      try {
        return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ');
      } catch {
        return ''; // gone meanwhile
      }
    })
    .filter((cmd) => /qemu-system/.test(cmd) && /suture-proof-/.test(cmd));
const modinfo = (ko: string, field: string) => spawnSync('modinfo', ['-F', field, ko], { encoding: 'utf8' }).stdout.trim().split('\n').filter(Boolean);

describe('bad input: a clear line each, nothing built', () => {
  const refused = (args: string[], status: number, message: RegExp) => {
    const ko = join(out, `bad-${Math.random().toString(36).slice(2)}.ko`);
    const r = suture(['catch-up', ...args, '-o', ko, '--no-prove']);
    expect(r.stderr).toMatch(message);
    expect(r.status, r.stderr).toBe(status);
    expect(existsSync(ko)).toBe(false);
  };
  it('the same kernel twice', () => refused(['--kernel', REFERENCE_KERNEL, '--to', REFERENCE_KERNEL], 2, /--to debian:6\.1\.0-56-amd64 is the running kernel itself/));
  it('an older --to', () => refused(['--kernel', REFERENCE_KERNEL, '--to', K55], 2, /linux 6\.1\.192-1\) is not newer than debian:6\.1\.0-56-amd64 \(linux 6\.1\.192-2\)/));
  it('versions of different series', () => refused(['--kernel', REFERENCE_KERNEL, '--to', 'debian:6.12.117+deb13-amd64'], 2, /is of another series than debian:6\.1\.0-56-amd64 \(6\.12 trixie amd64 against 6\.1 bookworm amd64\)/));
  it('neither --to nor --series, and both', () => {
    refused(['--kernel', REFERENCE_KERNEL], 2, /say what to catch up with: --to <newer kernel> or --series <dir>/);
    refused(['--kernel', REFERENCE_KERNEL, '--to', K57, '--series', out], 2, /--to and --series exclude each other/);
  });
  it('an empty series', () => {
    const dir = join(out, 'empty-series');
    mkdirSync(dir);
    refused(['--kernel', REFERENCE_KERNEL, '--series', dir], 2, /empty-series holds no patch file/);
  });
  it('a series file that does not apply: the file and the hunk named', () => {
    const dir = join(out, 'bad-series');
    mkdirSync(dir);
    const cmdline = readFileSync(join(import.meta.dirname, '..', 'patches', 'debian-6.1.0-56', '01-proc-cmdline-string', 'fix.patch'), 'utf8');
    writeFileSync(join(dir, '0001-proc-cmdline.patch'), cmdline);
    // A second fix whose context is not the kernel's text (nor the first fix's result).
    writeFileSync(join(dir, '0002-again.patch'), cmdline.replace("\tseq_putc(m, '\\n');", "\tseq_putc(m, '\\r');"));
    refused(['--kernel', REFERENCE_KERNEL, '--series', dir], 11, /0002-again\.patch does not apply after the 1 fix before it[\s\S]*fs\/proc\/cmdline\.c: .*Hunk #1 FAILED/);
  });
  it('--exclude naming no fix, or not a fix name at all', () => {
    const dir = join(out, 'one-series');
    mkdirSync(dir);
    writeFileSync(join(dir, '0001-proc-cmdline.patch'), readFileSync(join(import.meta.dirname, '..', 'patches', 'debian-6.1.0-56', '01-proc-cmdline-string', 'fix.patch'), 'utf8'));
    refused(['--kernel', REFERENCE_KERNEL, '--series', dir, '--exclude', '0002-proc-cmdline.patch'], 2, /--exclude 0002-proc-cmdline\.patch: no fix of series .*one-series \(1 fix\) is called that/);
    refused(['--kernel', REFERENCE_KERNEL, '--series', dir, '--exclude', 'CVE-2026-1234'], 2, /--exclude CVE-2026-1234: no fix of series .* is for that CVE/);
    refused(['--kernel', REFERENCE_KERNEL, '--series', dir, '--exclude', 'proc cmdline'], 2, /proc cmdline is not a fix id \(F0042\), a series file name/);
  });
});

it('--exclude leaves a fix out before anything is compiled, and a later fix on its lines with it', () => {
  const dir = join(out, 'exclude-series');
  mkdirSync(dir);
  const cmdline = readFileSync(join(import.meta.dirname, '..', 'patches', 'debian-6.1.0-56', '01-proc-cmdline-string', 'fix.patch'), 'utf8');
  writeFileSync(join(dir, '0001-proc-cmdline.patch'), cmdline);
  // A second fix on top of the first one's result.
  writeFileSync(
    join(dir, '0002-proc-cmdline-twice.patch'),
    `--- a/fs/proc/cmdline.c\n+++ b/fs/proc/cmdline.c\n@@ -8,6 +8,7 @@\n {\n \tseq_puts(m, saved_command_line);\n \tseq_puts(m, " suture-fixed");\n+\tseq_puts(m, " twice");\n \tseq_putc(m, '\\n');\n \treturn 0;\n }\n`,
  );
  const ko = join(out, 'excluded.ko');
  const { status, json: r, stderr } = sutureJson<{ fixes: { id: string; verdict: string; refusals: { rule: string; symbol: string }[] }[]; unitsCompiled: number; module?: unknown }>([
    'catch-up', '--kernel', REFERENCE_KERNEL, '--series', dir, '--exclude', '0001-proc-cmdline.patch', '-o', ko, '--no-prove',
  ]);
  // Every fix refused: no module, the exit code of an unsupported change.
  expect(status, stderr).toBe(18);
  expect(r.fixes.map((f) => [f.id, f.verdict, f.refusals.map((x) => x.rule)])).toEqual([
    ['0001-proc-cmdline.patch', 'refused', ['excluded']],
    ['0002-proc-cmdline-twice.patch', 'refused', ['entangled']],
  ]);
  expect(r.unitsCompiled).toBe(0);
  expect(r.module).toBeUndefined();
  expect(existsSync(ko)).toBe(false);
});

describe.each([
  {
    from: K55,
    to: REFERENCE_KERNEL,
    version: '6.1.192-2',
    title: 'ext4: fix NULL folio dereference in mballoc',
    cves: [] as string[],
    functions: ['ext4:ext4_mb_init_group', 'ext4:ext4_mb_load_buddy_gfp'],
    objects: ['ext4'],
  },
  {
    from: REFERENCE_KERNEL,
    to: K57,
    version: '6.1.192-3',
    title: 'nfsd: preflight SEQUENCE replies before accepting a slot',
    cves: ['CVE-2026-99362'],
    functions: ['nfsd:nfsd4_sequence'],
    objects: ['nfsd'],
  },
])('catch-up $from → $to', (c) => {
  let r: { status: number | null; json: any; stderr: string };
  let ko: string;
  let html: string;
  beforeAll(() => {
    ko = join(out, `${modName(c.version)}.ko`);
    html = join(out, `${modName(c.version)}.html`);
    // The second case also signs its module into a bundle, as a builder ships it.
    const sign = c.cves.length ? ['--sign', join(out, 'builder.key')] : [];
    if (sign.length) expect(suture(['key', 'generate', join(out, 'builder')]).status).toBe(0);
    r = sutureJson(['catch-up', '--kernel', c.from, '--to', c.to, '-o', ko, '--report', html, ...sign], { timeoutMs: 1_200_000 });
  }, 1_500_000);

  it.runIf(c.cves.length > 0)('--sign: a bundle of the proven module that suture verifies with the builder key, its manifest naming the CVE', () => {
    expect(r.json.bundle).toMatchObject({ path: ko.replace(/\.ko$/, '.suture') });
    const v = sutureJson(['bundle', 'verify', r.json.bundle.path, '--pub', join(out, 'builder.pub')]);
    expect(v.status, v.stderr).toBe(0);
    const info = sutureJson(['bundle', 'info', r.json.bundle.path]).json;
    expect(JSON.stringify(info)).toContain('CVE-2026-99362');
  });

  it('one fix, matched to its changelog entry, included with exactly its functions', () => {
    expect(r.status, JSON.stringify(r.json)).toBe(0);
    expect(r.json.fixes).toHaveLength(1);
    const f = r.json.fixes[0];
    expect(f).toMatchObject({ verdict: 'included', title: c.title, cves: c.cves });
    expect(f.changelog.map((e: any) => e.version)).toEqual([c.version]);
    expect(f.functions.filter((x: any) => x.status === 'changed' && !x.carriedOnly).map((x: any) => `${x.object}:${x.name}`).sort()).toEqual(c.functions);
    expect(r.json.cvesCarried).toEqual(c.cves);
    expect(r.json.cvesNotCarried).toEqual([]);
  });

  it('one atomic-replace module that says what it carries and claims the newer version', () => {
    expect(r.json.module).toMatchObject({ path: ko, effectiveVersion: c.version, objects: c.objects });
    expect(modinfo(ko, 'suture_effective_version')).toEqual([c.version]);
    expect(modinfo(ko, 'suture_fix')).toEqual([`F001 ${c.title}`]);
    expect(modinfo(ko, 'suture_cve')).toEqual(c.cves);
    expect(modinfo(ko, 'livepatch')).toEqual(['Y']);
  });

  it('proven in one boot: patched module loaded, transition complete, smoke workload, clean log, unloaded', () => {
    const p = r.json.proof;
    expect(p.proven, JSON.stringify(p)).toBe(true);
    expect(p.logProblems).toEqual([]);
    const labels = p.steps.map((s: any) => s.label);
    // ext4 is the disk's (loaded before the patch); nfsd is loaded after it, and patched as it comes.
    for (const m of c.objects) expect(labels.includes(`insmod ${m}`) || p.modules.some((x: any) => x.name === m && x.loaded), m).toBe(true);
    expect(labels).toEqual(expect.arrayContaining([`load ${modName(c.version)}.ko`, 'smoke workload', `disable and unload ${modName(c.version)}`]));
    expect(p.steps.every((s: any) => s.status === 0)).toBe(true);
    // the log was clean, so the boot without the patch beside it was stopped unasked: no QEMU of it is left
    expect(p.baseline).toBeUndefined();
    expect(proofGuestsLeft()).toEqual([]);
  });

  it('an HTML report a person can read', () => {
    const text = readFileSync(html, 'utf8');
    expect(text).toMatch(/^<!DOCTYPE html>/);
    expect(text).toContain(c.title.replace(/'/g, '&#39;'));
    expect(text).toContain('Proven');
    expect(text).toMatch(/<svg role="img" aria-label="time per stage"/);
  });
});
