// SPDX-License-Identifier: GPL-2.0-only
/**
 * An interrupted fetch resumes: Ctrl-C in the middle of extracting the source
 * leaves the workspace incomplete (never marked ready); the next fetch skips
 * the steps that finished and redoes the interrupted one from scratch.
 *
 * To spare the network, the packages of the warm reference workspace are
 * linked into a fresh cache first; every other step runs for real.
 */
import { spawn } from 'node:child_process';
import { existsSync, linkSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ensureKernel, REFERENCE_KERNEL } from '../helpers/kernel.js';
import { BIN, suture } from '../helpers/cli.js';
import { sutureHome } from '../../src/util/paths.js';

// On the same filesystem as the warm cache, so the packages can be hard-linked.
const home = mkdtempSync(join(sutureHome(), '..', 'suture-resume-test-'));
const env = { ...process.env, SUTURE_HOME: home, CI: '1' };
afterAll(() => rmSync(home, { recursive: true, force: true }));

function fetchUntil(pattern: RegExp): Promise<{ stderr: string; code: number | null; signal: NodeJS.Signals | null }> {
  return new Promise((resolve) => {
    // Its own process group, so the interrupt reaches suture and its children the way Ctrl-C does.
    const child = spawn(process.execPath, [BIN, 'kernel', 'fetch', REFERENCE_KERNEL], { env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    let sent = false;
    child.stderr.on('data', (b: Buffer) => {
      stderr += b.toString();
      if (!sent && pattern.test(stderr)) {
        sent = true;
        setTimeout(() => process.kill(-child.pid!, 'SIGINT'), 1500);
      }
    });
    child.on('close', (code, signal) => resolve({ stderr, code, signal }));
  });
}

describe('kernel fetch, interrupted', () => {
  it('resumes after Ctrl-C: done steps are skipped, the interrupted one is redone, and only then is it ready', async () => {
    const warm = await ensureKernel();
    const debs = join(home, 'kernels', `debian-${warm.release}`, 'debs');
    mkdirSync(debs, { recursive: true });
    for (const p of warm.packages) linkSync(p.file, join(debs, p.file.split('/').pop()!));

    const first = await fetchUntil(/==> Extracting linux-source/);
    expect(first.code).toBe(130);
    expect(first.stderr).toContain('interrupted (SIGINT)');
    const ws = join(home, 'kernels', `debian-${warm.release}`);
    expect(existsSync(join(ws, 'kernel.json'))).toBe(false);
    expect(readdirSync(join(ws, '.steps')).sort()).toEqual(['download', 'unpack']);
    const info = suture(['kernel', 'info', REFERENCE_KERNEL], { env });
    expect(info.status).toBe(10);
    expect(info.stderr).toContain('is only partly fetched (done: download, unpack)');
    expect(suture(['kernel', 'list'], { env }).stdout).toMatch(/debian:6\.1\.0-56-amd64 .*incomplete/);

    const second = suture(['kernel', 'fetch', REFERENCE_KERNEL], { env, timeoutMs: 900_000 });
    expect(second.status, second.stderr).toBe(0);
    expect(second.stderr).toMatch(/==> Downloading 5 packages \(\d+ MB\)\n    skipped: done earlier/);
    expect(second.stderr).toMatch(/==> Unpacking image and headers\n    skipped: done earlier/);
    expect(second.stderr).toMatch(/==> Extracting linux-source-6\.1\n(?!    skipped)/);
    expect(second.stdout).toMatch(/debian:6\.1\.0-56-amd64 is ready in [\d.]+ s: Linux 6\.1\.192, 94\d{3} symbols/);
    expect(readdirSync(join(ws, '.steps')).sort()).toEqual(['download', 'prepare-host-sections-pinned', 'source', 'symbols', 'unpack']);
    expect(existsSync(join(ws, '.source-deb'))).toBe(false);
  });
});
