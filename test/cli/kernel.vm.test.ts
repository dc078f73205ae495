// SPDX-License-Identifier: GPL-2.0-only
/**
 * `suture kernel fetch|list|info` against the real archive and the reference
 * kernel. The first test fetches it when the cache is cold.
 */
import { describe, expect, it, beforeAll } from 'vitest';
import { existsSync, readFileSync } from 'node:fs';
import { ensureKernel, REFERENCE_KERNEL } from '../helpers/kernel.js';
import { suture, sutureJson } from '../helpers/cli.js';

describe('suture kernel', () => {
  beforeAll(async () => {
    await ensureKernel();
  });

  it('kernel fetch of a ready kernel is a no-op that reports it cached', () => {
    const t0 = Date.now();
    const r = sutureJson(['kernel', 'fetch', REFERENCE_KERNEL]);
    expect(r.status).toBe(0);
    expect(r.json.cached).toBe(true);
    expect(Date.now() - t0).toBeLessThan(10_000);
  });

  it('kernel info --json describes the workspace: versions, compiler, symbols, prepared tree', () => {
    const { status, json } = sutureJson(['kernel', 'info', REFERENCE_KERNEL]);
    expect(status).toBe(0);
    expect(json.release).toBe('6.1.0-56-amd64');
    expect(json.upstreamVersion).toBe('6.1.192');
    expect(json.procVersion).toContain('Linux version 6.1.0-56-amd64');
    expect(json.compiler.text).toBe('gcc-12 (Debian 12.2.0-14+deb12u1) 12.2.0');
    expect(json.compilerPresent).toBe(true);
    expect(json.symbols.count).toBeGreaterThan(90_000);
    // The prepared tree: its config is the shipped one, and kbuild's generated headers exist.
    expect(readFileSync(`${json.paths.source}/.config`, 'utf8')).toContain('CONFIG_LIVEPATCH=y');
    expect(existsSync(`${json.paths.source}/include/generated/autoconf.h`)).toBe(true);
    expect(readFileSync(`${json.paths.source}/include/generated/utsrelease.h`, 'utf8')).toContain('"6.1.0-56-amd64"');
    expect(existsSync(`${json.paths.source}/Module.symvers`)).toBe(true);
    // kallsyms of the real kernel, unrandomised: cmdline_proc_show is a text symbol of vmlinux.
    const ks = readFileSync(json.paths.kallsyms, 'utf8');
    expect(ks).toMatch(/^ffffffff8[0-9a-f]{7} [tT] cmdline_proc_show$/m);
    expect(existsSync(`${json.paths.modules}/modules.dep`)).toBe(true);
  });

  it('kernel list shows the kernel with its version and compiler', () => {
    const r = suture(['kernel', 'list']);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/debian:6\.1\.0-56-amd64\s+6\.1\.192 \(6\.1\.192-2\)\s+gcc-12 \(Debian 12\.2\.0-14\+deb12u1\) 12\.2\.0\s+[\d.]+ GiB\s+ready/);
    const j = sutureJson(['kernel', 'list']);
    expect(j.json.find((k: { name: string }) => k.name === REFERENCE_KERNEL)).toMatchObject({ state: 'ready', upstreamVersion: '6.1.192' });
  });

  it('kernel fetch of a release the archive no longer has lists the ones it has', () => {
    const r = suture(['kernel', 'fetch', 'debian:6.1.0-3-amd64']);
    expect(r.status).toBe(10);
    expect(r.stderr).toMatch(/debian:6\.1\.0-3-amd64 is not in the archive/);
    expect(r.stderr).toMatch(/hint: pick one of: .*6\.1\.0-56-amd64/);
  });

  it('kernel fetch of an unknown series says so and lists what exists', () => {
    const r = suture(['kernel', 'fetch', 'debian:4.9.0-3-amd64']);
    expect(r.status).toBe(10);
    expect(r.stderr).toContain('is not a kernel the archive has');
    expect(r.stderr).toMatch(/hint: pick one of: .*-amd64/);
  });
});
