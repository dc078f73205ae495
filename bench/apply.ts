// SPDX-License-Identifier: GPL-2.0-only
/**
 * Applying a livepatch: `suture load` against the bare minimum, side by side
 * in one boot of the reference kernel (suture running in the guest).
 *
 *   npx tsx bench/apply.ts [--runs N]
 *
 * Per run, alternating, on an otherwise idle guest (the example cmdline_proc_show livepatch):
 *   suture  from just before `suture load x.ko` starts to the moment its "complete" line is read
 *   raw     from just before `insmod x.ko` to the moment a tight shell loop reads transition = 0
 *   json    `suture load --json`, for suture's own split: validation, insmod, watch
 *   floor   a minimal node program: spawn insmod, read transition every millisecond, print
 *           (what any node tool pays in this guest; suture's own overhead is the rest)
 * each followed by the same raw unload (enabled ← 0, wait for the directory, rmmod).
 * Clock: the guest kernel's own (lines written to /dev/kmsg, µs), which also
 * gives the kernel's transition time ("starting patching transition" →
 * "patching complete"). Also measured: `node -e 0` and `suture list`, the
 * cost of starting node and of loading the host layer's code.
 *
 * Prints each run, the medians, the overhead as a ratio and in ms.
 */
import { spawnSync } from 'node:child_process';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { ensureKernel, REFERENCE_KERNEL } from '../test/helpers/kernel.js';
import { buildFixtureModule } from '../test/helpers/modules.js';
import { median } from './stats.js';

function parseArgs(argv: string[]): { runs: number } {
  let runs = 7;
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--runs') {
      runs = Number(argv[++i]);
      if (!Number.isInteger(runs) || runs <= 0) throw new Error('--runs must be a positive integer');
    } else throw new Error(`unknown option ${argv[i]} (use --runs N)`);
  }
  return { runs };
}


const { runs } = parseArgs(process.argv.slice(2));
const ROOT = join(import.meta.dirname, '..');
const meta = await ensureKernel();
const ko = await buildFixtureModule(meta, 'livepatch-cmdline');
const LP = '/sys/kernel/livepatch/livepatch_cmdline';

// The guest script. `mark` writes to the kernel log: a shell builtin, no fork.
const script = `
mark() { echo "suture-bench: $*" > /dev/kmsg; }
raw_unload() {
  echo 0 > ${LP}/enabled
  while [ -d ${LP} ]; do :; done
  while [ -d /sys/module/livepatch_cmdline ] && [ "$(cat /sys/module/livepatch_cmdline/refcnt 2>/dev/null)" != 0 ]; do :; done
  rmmod livepatch_cmdline 2>/dev/null
}
for i in $(seq 1 3); do mark "node-start $i"; /opt/suture/node -e 0; mark "node-end $i"; done
for i in $(seq 1 3); do mark "list-start $i"; suture list >/dev/null; mark "list-end $i"; done
cat > /tmp/floor.js <<'FLOOR'
// The least any node program can do: spawn insmod, look at transition every millisecond, print.
const { spawn } = require('node:child_process');
const { readFileSync } = require('node:fs');
const rd = (f) => { try { return readFileSync(f, 'utf8').trim(); } catch { return undefined; } };
spawn('insmod', ['/modules/livepatch-cmdline.ko'], { stdio: 'inherit' });
const t0 = Date.now();
(function poll() {
  if (rd('${LP}/enabled') === '1' && rd('${LP}/transition') === '0') return console.log('livepatch_cmdline: patching complete');
  if (Date.now() - t0 > 20000) return console.log('floor: no complete transition within 20 s');
  setTimeout(poll, 1);
})();
FLOOR
i=0
while [ $i -lt ${runs} ]; do
  i=$((i+1))
  mark "suture-start $i"
  suture load /modules/livepatch-cmdline.ko 2>/dev/null | while read -r line; do
    case "$line" in *"patching complete"*) mark "suture-complete $i";; esac
  done
  raw_unload
  mark "raw-start $i"
  insmod /modules/livepatch-cmdline.ko
  while read -r t < ${LP}/transition && [ "$t" = 1 ]; do :; done
  mark "raw-complete $i"
  raw_unload
  suture load --json /modules/livepatch-cmdline.ko > /tmp/load-$i.json 2>/dev/null
  cat /tmp/load-$i.json
  echo "@@"
  raw_unload
  mark "floor-start $i"
  /opt/suture/node /tmp/floor.js | while read -r line; do
    case "$line" in *"patching complete"*) mark "floor-complete $i";; esac
  done
  raw_unload
done
`;

const r = spawnSync(
  process.execPath,
  [join(ROOT, 'bin', 'suture.js'), 'vm', 'run', '--kernel', REFERENCE_KERNEL, '--with-suture', '--timeout', '1500', '--module', ko, '--exec', script, '--json'],
  { encoding: 'utf8', maxBuffer: 256 * 1024 * 1024, timeout: 1_700_000 },
);
const res = JSON.parse(r.stdout);
if (res.outcome !== 'ok') {
  console.error(`the guest run failed: ${res.reason ?? JSON.stringify(res.error)}`);
  console.error((res.commands?.[0]?.output ?? '').slice(-3000));
  process.exit(1);
}

// Kernel-log timestamps of the marks and the livepatch lines.
const marks = new Map<string, number>();
const kernelMs: number[] = [];
/** When the kernel logged "patching complete", per load in order. */
const kernelDone: number[] = [];
let starting: number | undefined;
for (const line of res.dmesg as string[]) {
  const m = /^\[\s*(\d+\.\d+)\]\s+(.*)$/.exec(line);
  if (!m) continue;
  const t = Number(m[1]) * 1000;
  const text = m[2]!;
  const mk = /^suture-bench: (\S+) (\d+)$/.exec(text);
  if (mk) marks.set(`${mk[1]} ${mk[2]}`, t);
  if (text.includes("'livepatch_cmdline': starting patching transition")) starting = t;
  if (text.includes("'livepatch_cmdline': patching complete") && starting !== undefined) {
    kernelMs.push(t - starting);
    kernelDone.push(t);
    starting = undefined;
  }
}
const span = (a: string, b: string, i: number) => {
  const x = marks.get(`${a} ${i}`);
  const y = marks.get(`${b} ${i}`);
  return x !== undefined && y !== undefined ? y - x : NaN;
};
const node = [1, 2, 3].map((i) => span('node-start', 'node-end', i));
const list = [1, 2, 3].map((i) => span('list-start', 'list-end', i));
const sut: number[] = [];
const raw: number[] = [];
/** From the kernel's "patching complete" to the mark after the complete line / the loop's exit. */
const sutLag: number[] = [];
const rawLag: number[] = [];
const floor: number[] = [];
const floorLag: number[] = [];
/** Loads per run, in the guest script's order: suture, raw, suture --json, the node floor. */
const PER_RUN = 4;
for (let i = 1; i <= runs; i++) {
  sut.push(span('suture-start', 'suture-complete', i));
  raw.push(span('raw-start', 'raw-complete', i));
  floor.push(span('floor-start', 'floor-complete', i));
  sutLag.push((marks.get(`suture-complete ${i}`) ?? NaN) - (kernelDone[(i - 1) * PER_RUN] ?? NaN));
  rawLag.push((marks.get(`raw-complete ${i}`) ?? NaN) - (kernelDone[(i - 1) * PER_RUN + 1] ?? NaN));
  floorLag.push((marks.get(`floor-complete ${i}`) ?? NaN) - (kernelDone[(i - 1) * PER_RUN + 3] ?? NaN));
}
const own = (res.commands[0].output as string)
  .split(/^@@\n/m)
  .map((t) => t.trim())
  .filter((t) => t.startsWith('{'))
  .map((t) => JSON.parse(t) as { timing: { totalMs: number; insmodMs: number; transitionMs: number; kernelTransitionMs?: number } });

const f = (ms: number) => (Number.isNaN(ms) ? '   ?' : ms >= 100 ? ms.toFixed(0).padStart(6) : ms.toFixed(1).padStart(6));
const host = cpus();
console.log(`host: ${host.length} cores (${host[0]?.model ?? '?'}); guest: ${REFERENCE_KERNEL} under QEMU ${res.accel.toUpperCase()}, 1 vCPU, suture in the guest; guest clock; ${runs} runs`);
console.log('run   suture load → "complete"   insmod + shell loop   minimal node poller   kernel transition (suture, raw)');
for (let i = 0; i < runs; i++) {
  console.log(
    `${String(i + 1).padStart(3)}   ${f(sut[i]!)} ms                 ${f(raw[i]!)} ms             ${f(floor[i]!)} ms           ${f(kernelMs[i * PER_RUN] ?? NaN)} ms, ${f(kernelMs[i * PER_RUN + 1] ?? NaN)} ms`,
  );
}
const ms = median(sut);
const mr = median(raw);
console.log('');
console.log(`median suture load → complete line:  ${f(ms)} ms`);
console.log(`median insmod + loop → transition 0: ${f(mr)} ms`);
console.log(`overhead: ${(ms / mr).toFixed(1)}x, ${f(ms - mr)} ms`);
console.log(`median minimal node poller (spawn insmod, read transition every 1 ms): ${f(median(floor))} ms`);
console.log(`median kernel transition (dmesg): ${f(median(kernelMs.filter((_, k) => k % PER_RUN === 0)))} ms under suture load, ${f(median(kernelMs.filter((_, k) => k % PER_RUN === 1)))} ms under insmod`);
console.log(
  `median from the kernel's "patching complete" to the complete line read: ${f(median(sutLag))} ms (suture), ${f(median(floorLag))} ms (minimal node poller), ${f(median(rawLag))} ms (shell loop)`,
);
console.log(`node -e 0: ${f(median(node))} ms; suture list: ${f(median(list))} ms (node start, the host layer's code, reading sysfs)`);
if (own.length) {
  console.log(
    `suture load --json, its own split (medians): from reading the file to the end ${f(median(own.map((o) => o.timing.totalMs)))} ms, ` +
      `of which insmod ${f(median(own.map((o) => o.timing.insmodMs)))} ms and watching ${f(median(own.map((o) => o.timing.transitionMs)))} ms`,
  );
}
