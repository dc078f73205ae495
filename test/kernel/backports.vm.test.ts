// SPDX-License-Identifier: GPL-2.0-only
/**
 * Debian 12's backported 6.12 kernel (bookworm-backports / bookworm-security,
 * `6.12.N+deb12`): built by bookworm's gcc-12, so prepared with the host's
 * compiler where it matches, whatever else the host has (a Rust toolchain on
 * PATH once made olddefconfig change CONFIG_RUSTC_VERSION: the probes are
 * pinned). One patch built, its provenance reproduced, and proven in one boot.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { sutureJson } from '../helpers/cli.js';
import { BACKPORTS_KERNEL, ensureKernel } from '../helpers/kernel.js';

const PATCH = join(import.meta.dirname, '..', 'patches', 'debian-6.12.117+deb13', '01-proc-cmdline-string', 'fix.patch');
let build: { status: number | null; json: any; stderr: string };
let guest: { status: number | null; json: any };

beforeAll(async () => {
  const meta = await ensureKernel(BACKPORTS_KERNEL);
  expect(meta.compiler.text).toMatch(/gcc-12 \(Debian 12\.2\.0-14/);
  const ko = join(mkdtempSync(join(tmpdir(), 'suture-bpo-')), 'lp_bpo.ko');
  build = sutureJson(['build', '--kernel', BACKPORTS_KERNEL, PATCH, '--name', 'lp_bpo', '-o', ko], { timeoutMs: 600_000 });
  if (build.status !== 0) throw new Error(`build failed: ${build.stderr}`);
  guest = sutureJson(['vm', 'run', '--kernel', BACKPORTS_KERNEL, '--load', ko, '--exec', 'cat /proc/cmdline; cat /sys/kernel/livepatch/lp_bpo/replace']);
}, 1_800_000);

describe(`${BACKPORTS_KERNEL}`, () => {
  it('builds with the orig reproducing the shipped bytes', () => {
    expect(build.json.provenance.map((p: { verdict: string }) => p.verdict)).toEqual(['equal']);
  });
  it('loads and patches in its own kernel', () => {
    expect(guest.status, JSON.stringify(guest.json.reason)).toBe(0);
    expect(guest.json.commands[0].output).toMatch(/ suture-fixed\n0\n$/);
  });
});
