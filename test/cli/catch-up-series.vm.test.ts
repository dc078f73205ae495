// SPDX-License-Identifier: GPL-2.0-only
/**
 * `suture catch-up --series` on real fixes cut from Debian's source
 * differences between two 6.1 ABIs (test/patches/catch-up-6.1.0-53/: each
 * fix's expected verdict written down in expected.json, with why): every fix
 * judged as written there, the included ones built into one cumulative
 * livepatch with exactly their functions, proven in one boot of 6.1.0-53.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { sutureJson } from '../helpers/cli.js';
import { ensureKernel } from '../helpers/kernel.js';

const CORPUS = join(import.meta.dirname, '..', 'patches', 'catch-up-6.1.0-53');
interface Expected {
  kernel: string;
  fixes: Record<string, { title: string; cves?: string[]; verdict: string; functions?: string[]; rule?: string; settled?: string[]; why: string }>;
}
const expected = JSON.parse(readFileSync(join(CORPUS, 'expected.json'), 'utf8')) as Expected;
let r: { status: number | null; json: any; stderr: string };
let ko: string;

beforeAll(async () => {
  await ensureKernel(expected.kernel);
  const out = mkdtempSync(join(tmpdir(), 'suture-series-'));
  ko = join(out, 'livepatch_series_53.ko');
  r = sutureJson(['catch-up', '--kernel', expected.kernel, '--series', CORPUS, '-o', ko, '--report', join(out, 'report.html')], { timeoutMs: 1_700_000 });
}, 1_800_000);

describe(`the series of ${Object.keys(expected.fixes).length} fixes against ${expected.kernel}`, () => {
  it('ran, built and proved', () => {
    expect(r.status, `${r.stderr}\n${JSON.stringify(r.json.error ?? r.json.proof)}`).toBe(0);
    expect(r.json.fixes.map((f: any) => f.id)).toEqual(Object.keys(expected.fixes));
  });

  it.each(Object.entries(expected.fixes))('%s: as written in expected.json', (file, e) => {
    const f = r.json.fixes.find((x: any) => x.id === file);
    expect(f, file).toBeDefined();
    expect({ verdict: f.verdict, why: f.why }).toMatchObject({ verdict: e.verdict });
    expect(f.title).toBe(e.title);
    if (e.cves) expect(f.cves).toEqual(e.cves);
    if (e.verdict === 'included') {
      expect(f.functions.filter((x: any) => x.status === 'changed' && !x.carriedOnly).map((x: any) => `${x.object}:${x.name}`).sort()).toEqual([...e.functions!].sort());
    }
    if (e.verdict === 'refused') expect(f.refusals.map((x: any) => x.rule)).toContain(e.rule);
    const settled = new Map<string, string>(r.json.settled.map((s: any) => [s.unit, s.why]));
    for (const u of e.settled ?? []) expect(settled.get(u), `${u} settled from its preprocessed text`).toMatch(/never uses|identical/);
    // A unit whose own file the fix changes is compiled, never settled.
    for (const p of f.files) expect(settled.has(p), `${p} is changed by ${file}: compiled`).toBe(false);
    if (e.verdict === 'included') for (const fn of f.functions) expect(settled.has(fn.unit), `${fn.unit} has a changed function`).toBe(false);
  });

  it('one cumulative module of the included fixes, naming those left out; the newer version not claimed by a series', () => {
    const included = Object.entries(expected.fixes).filter(([, e]) => e.verdict === 'included');
    const refused = Object.entries(expected.fixes).filter(([, e]) => e.verdict === 'refused');
    const modinfo = (field: string) => spawnSync('modinfo', ['-F', field, ko], { encoding: 'utf8' }).stdout.trim().split('\n').filter(Boolean);
    // modinfo lists .modinfo's strings in the order the linker left them: compare as sets.
    expect(modinfo('suture_fix').sort()).toEqual(included.map(([file, e]) => `${file} ${e.title}`).sort());
    expect(modinfo('suture_fix_not_carried').map((l) => l.split(' ')[0]).sort()).toEqual(refused.map(([file]) => file).sort());
    expect(r.json.module.functions.map((x: any) => `${x.object}:${x.name}`).sort()).toEqual(included.flatMap(([, e]) => e.functions!).sort());
    expect(r.json.module.effectiveVersion).toBeUndefined();
    expect(modinfo('suture_effective_version')).toEqual([]);
  });

  it('proven in one boot: every patched module loaded, the smoke workload, a clean kernel log, disabled and unloaded', () => {
    const p = r.json.proof;
    expect(p.proven, JSON.stringify(p)).toBe(true);
    const labels = p.steps.map((s: any) => s.label);
    // Loaded after the livepatch (patched as they come), or before it for the disk (ext4, mbcache).
    for (const m of r.json.module.objects.filter((o: string) => o !== 'vmlinux')) expect(labels.includes(`insmod ${m}`) || p.modules.some((x: any) => x.name === m && x.loaded), m).toBe(true);
    expect(p.steps.every((s: any) => s.status === 0)).toBe(true);
  });
});
