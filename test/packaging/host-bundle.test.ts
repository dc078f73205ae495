// SPDX-License-Identifier: GPL-2.0-only
/**
 * The host bundle of the Debian package (scripts/bundle-host.mjs): no builder code in it, nothing
 * that Debian 12's nodejs (18.19/18.20) lacks, and the builder's commands refused plainly. The
 * package test (deb.vm.test.ts) runs it under Debian's real nodejs; this catches the same mistakes
 * in a second, and also in code paths a chroot cannot reach (loading a patch needs a kernel).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT } from '../helpers/cli.js';
// imported here so that the typecheck (tsconfig: src, test) covers it too
import { buildCommand } from '../../packaging/host/builder-commands.js';

let dir = '';
let code = '';
let inputs: string[] = [];

/**
 * Node.js APIs newer than 18.19 (each with the release that added it). Syntax is lowered by esbuild
 * (target node18.19); APIs are not, so a use of one of these would fail on Debian 12 at run time.
 */
const NEWER_APIS: [RegExp, string][] = [
  [/import\.meta\.(dirname|filename)/, 'import.meta.dirname/filename (20.11)'],
  [/\bfs\w*\.glob\b|\bglobSync\b/, 'fs.glob (22.0)'],
  [/\b(readdir|opendir|watch)\w*\([^)]*\brecursive\b/, 'readdir/opendir/watch { recursive } (20.1)'],
  [/\bArray\.fromAsync\b/, 'Array.fromAsync (22.0)'],
  [/\bPromise\.withResolvers\b/, 'Promise.withResolvers (22.0)'],
  [/\b(Object|Map)\.groupBy\b/, 'Object.groupBy/Map.groupBy (21.0)'],
  [/\.(toSorted|toReversed|toSpliced)\(/, 'Array.prototype.toSorted/toReversed/toSpliced (20.0)'],
  [/\.(isWellFormed|toWellFormed)\(/, 'String.prototype.isWellFormed (20.0)'],
  [/\bAbortSignal\.any\b/, 'AbortSignal.any (20.3)'],
  [/\bcrypto\w*\.hash\(|\bhash\(\s*['"]sha/, 'crypto.hash (21.7)'],
  [/\bstyleText\b|\bparseEnv\b|\bloadEnvFile\b|\bgetBuiltinModule\b/, 'util.styleText/parseEnv, process.loadEnvFile/getBuiltinModule (20.12+)'],
  // (zod's own z.union/z.intersection are not Set methods)
  [/(?<!\bz)\.(union|intersection|symmetricDifference|isSubsetOf|isSupersetOf|isDisjointFrom)\(/, 'Set methods (22.0)'],
  [/\.transfer(ToFixedLength)?\(\)/, 'ArrayBuffer.prototype.transfer (21.0)'],
  [/\bopenAsBlob\b/, 'fs.openAsBlob (19.8)'],
  [/\bnode:sqlite\b|\bnode:test\b/, 'node:sqlite/node:test'],
];

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'suture-host-bundle-'));
  const r = spawnSync(process.execPath, [join(ROOT, 'scripts/bundle-host.mjs'), join(dir, 'dist/host')], { cwd: ROOT, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`bundle-host failed:\n${r.stderr}`);
  // laid out as in the package: <lib>/package.json, <lib>/dist/host/main.js
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'suture', version: '0.0.0-test', type: 'module' }));
  const files = readdirSync(join(dir, 'dist/host')).filter((f) => f.endsWith('.js'));
  code = files.map((f) => readFileSync(join(dir, 'dist/host', f), 'utf8')).join('\n');
  inputs = Object.keys((JSON.parse(readFileSync(join(dir, 'dist/host/meta.json'), 'utf8')) as { inputs: Record<string, unknown> }).inputs);
});

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('host bundle', () => {
  it('holds the host layer and the fleet agent, and no build pipeline, kernel fetching, VM runner or fleet server', () => {
    expect(inputs).toEqual(expect.arrayContaining(['src/cli/main.ts', 'src/livepatch/loader.ts', 'src/cli/persist.ts']));
    expect(inputs.filter((f) => /^src\/(patchbuild|vm)\//.test(f))).toEqual([]);
    // of the fleet only the agent, and the protocol and client it shares with the server
    expect(inputs.filter((f) => f.startsWith('src/fleet/')).sort()).toEqual(['src/fleet/agent-facts.ts', 'src/fleet/agent.ts', 'src/fleet/client.ts', 'src/fleet/errors.ts', 'src/fleet/protocol.ts']);
    expect(inputs.filter((f) => f.startsWith('src/kernel/') && !/\/(build-id|module-file)\.ts$/.test(f))).toEqual([]);
    expect(inputs.filter((f) => /^src\/cli\/(kernel|vm|build|build-patch|server|fleet)\.ts$/.test(f))).toEqual([]);
    expect(inputs.filter((f) => f.startsWith('node_modules/') && !/^node_modules\/(commander|zod)\//.test(f))).toEqual([]);
  });

  it('uses no Node.js API newer than Debian 12\'s nodejs (18.19)', () => {
    const found: string[] = [];
    for (const [re, what] of NEWER_APIS) {
      const g = new RegExp(re.source, 'g');
      for (const m of code.matchAll(g)) {
        const around = code.slice(Math.max(0, m.index - 60), m.index + 60);
        found.push(`${what}: ...${around.replace(/\s+/g, ' ')}...`);
      }
    }
    expect(found).toEqual([]);
  });

  it('the refusal test above can fail: a Node 20 API in a bundle is found', () => {
    const sample = 'const a = [3,1].toSorted(); const d = import.meta.dirname; readdirSync(d, { recursive: true }); mkdirSync(d, { recursive: true });';
    expect(NEWER_APIS.filter(([re]) => re.test(sample)).map(([, what]) => what.split(' ')[0])).toEqual(['import.meta.dirname/filename', 'readdir/opendir/watch', 'Array.prototype.toSorted/toReversed/toSpliced']);
  });

  it('the builder stand-ins are hidden commands', () => {
    expect((buildCommand() as unknown as { _hidden: boolean })._hidden).toBe(true);
  });

  it('runs: --version, and a builder or fleet server command is refused with exit 12', () => {
    // the package's /usr/lib/suture/bin/suture.js (scripts/package.sh)
    mkdirSync(join(dir, 'bin'), { recursive: true });
    writeFileSync(join(dir, 'bin/suture.js'), "import { main } from '../dist/host/main.js';\nprocess.exitCode = await main(process.argv);\n");
    const run = (args: string[]) => spawnSync(process.execPath, [join(dir, 'bin/suture.js'), ...args], { encoding: 'utf8' });
    expect(run(['--version']).stdout.trim()).toBe('0.0.0-test');
    for (const [cmd, what] of [['kernel', 'a builder command'], ['vm', 'a builder command'], ['build', 'a builder command'], ['analyze', 'a builder command'], ['server', 'the fleet server'], ['fleet', 'a fleet admin command']]) {
      const r = run([cmd!, 'fetch', '--json']);
      expect(r.status, r.stderr).toBe(12);
      expect(`${r.stdout}${r.stderr}`).toContain(`suture ${cmd} is ${what}`);
    }
  });
});
