// SPDX-License-Identifier: GPL-2.0-only
/** Run the built suture CLI (bin/suture.js → dist/) as a user would. */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';

export const ROOT = join(import.meta.dirname, '..', '..');
export const BIN = join(ROOT, 'bin', 'suture.js');

export interface CliResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

export function suture(args: string[], opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): CliResult {
  if (!existsSync(join(ROOT, 'dist', 'bundle', 'main.js'))) {
    throw new Error('dist/ is missing: the CLI tests run the built suture; run `npm run build` first (npm test does)');
  }
  const r = spawnSync(process.execPath, [BIN, ...args], {
    env: opts.env ?? process.env,
    encoding: 'utf8',
    timeout: opts.timeoutMs ?? 600_000,
    stdio: ['ignore', 'pipe', 'pipe'],
    maxBuffer: 256 * 1024 * 1024,
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

export function sutureJson<T = any>(args: string[], opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): { status: number | null; json: T; stderr: string } {
  const r = suture([...args, '--json'], opts);
  let json: T;
  try {
    json = JSON.parse(r.stdout) as T;
  } catch {
    throw new Error(`suture ${args.join(' ')} --json printed no JSON (status ${r.status}):\n${r.stdout}\n${r.stderr}`);
  }
  return { status: r.status, json, stderr: r.stderr };
}
