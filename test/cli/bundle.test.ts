// SPDX-License-Identifier: GPL-2.0-only
/** `suture key` and `suture bundle` as a user runs them (the built CLI), on a gcc-compiled fake livepatch. */
import { existsSync, mkdtempSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { suture, sutureJson } from '../helpers/cli.js';
import { buildFakePatches } from '../livepatch/fake-kernel.js';

let ko: (n: string) => string;
let dir: string;
const env = { ...process.env, SUTURE_KEYS_DIR: '/nonexistent/keys.d' };

beforeAll(() => {
  ko = buildFakePatches();
  dir = mkdtempSync(join(tmpdir(), 'suture-cli-bundle-'));
}, 120_000);

describe('suture key / bundle', () => {
  it('generate, sign, verify, info, revoke', () => {
    const g = sutureJson(['key', 'generate', join(dir, 'b')], { env });
    expect(g.status).toBe(0);
    expect(g.json.keyId).toMatch(/^[0-9A-F]{16}$/);
    expect(statSync(join(dir, 'b.key')).mode & 0o777).toBe(0o600);
    expect(suture(['key', 'generate', join(dir, 'o')], { env }).status).toBe(0);
    const s = suture(['bundle', 'sign', ko('fake_bound'), '--key', join(dir, 'b.key'), '-o', join(dir, 'f.suture')], { env });
    expect(s.status, s.stderr).toBe(0);
    expect(s.stdout).toMatch(new RegExp(`^signed .*f\\.suture: fake_bound for 6\\.1\\.0-56-amd64 \\(build eb4f[0-9a-f]+\\), key ${g.json.keyId}\\n$`));
    const v = suture(['bundle', 'verify', join(dir, 'f.suture'), '--pub', join(dir, 'b.pub')], { env });
    expect(v.status, v.stderr).toBe(0);
    expect(v.stdout).toContain(`good signature by key ${g.json.keyId}`);
    const bad = suture(['bundle', 'verify', join(dir, 'f.suture'), '--pub', join(dir, 'o.pub')], { env });
    expect(bad.status).toBe(37);
    expect(bad.stderr).toMatch(new RegExp(`f\\.suture is signed by key ${g.json.keyId}, which is not trusted on this host`));
    const nokeys = suture(['bundle', 'verify', join(dir, 'f.suture')], { env });
    expect(nokeys.status).toBe(37);
    expect(nokeys.stderr).toMatch(/^suture: no trusted keys: \/nonexistent\/keys\.d does not exist/);
    const i = sutureJson(['bundle', 'info', join(dir, 'f.suture')], { env });
    expect(i.json).toMatchObject({ keyId: g.json.keyId, manifest: { patch: { name: 'fake_bound' }, kernel: { release: '6.1.0-56-amd64' } } });
    const unsignedBuildId = suture(['bundle', 'sign', ko('fake_patch'), '--key', join(dir, 'b.key')], { env });
    expect(unsignedBuildId.status).toBe(2);
    expect(unsignedBuildId.stderr).toContain('has no modinfo suture_build_id: give the GNU build ID');
    const r = sutureJson(['key', 'revoke', '--key', join(dir, 'b.key'), '--revoke-key', join(dir, 'o.pub'), '--revoke-module', join(dir, 'f.suture'), '-o', join(dir, 'revoked.json')], { env });
    expect(r.status).toBe(0);
    expect(r.json.modules).toEqual([i.json.manifest.module.sha256]);
    // the serial only grows: --merge goes above the merged list, an explicit one not above it is refused before anything is written
    expect(r.json.serial).toBeGreaterThanOrEqual(Math.floor(Date.now() / 1000) - 600);
    const m = sutureJson(['key', 'revoke', '--key', join(dir, 'b.key'), '--merge', join(dir, 'revoked.json'), '--serial', String(r.json.serial + 5), '--revoke-key', join(dir, 'b.pub'), '-o', join(dir, 'revoked2.json')], { env });
    expect(m.status).toBe(0);
    expect(m.json).toMatchObject({ serial: r.json.serial + 5, modules: [i.json.manifest.module.sha256] });
    const low = suture(['key', 'revoke', '--key', join(dir, 'b.key'), '--merge', join(dir, 'revoked2.json'), '--serial', String(r.json.serial + 5), '--revoke-key', join(dir, 'b.pub'), '-o', join(dir, 'revoked3.json')], { env });
    expect(low.status).toBe(2);
    expect(low.stderr).toContain(`--serial ${r.json.serial + 5} is not above the merged list's serial ${r.json.serial + 5}`);
    expect(existsSync(join(dir, 'revoked3.json'))).toBe(false);
    expect(suture(['key', 'revoke', '--key', join(dir, 'b.key'), '-o', join(dir, 'x.json')], { env }).status).toBe(2);
  });
});
