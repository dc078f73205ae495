// SPDX-License-Identifier: GPL-2.0-only
/**
 * The function report of a patch build: every changed and new function with
 * the reasons it is in the patch. The diff says what changed; this stage says
 * why a changed function the patch does not touch is there (it inlines or
 * reads what changed, through a changed header, or it is a syscall's entry
 * whose body the macro inlined), and, on request, disassembles the first
 * instruction that differs. A patch whose functions all compare equal stops
 * here: no functional change.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { SutureError } from '../util/errors.js';
import { run } from '../util/exec.js';
import type { Verdicts, UnitVerdict } from './verdicts.js';
import type { FunctionVerdict } from './diff/diff.js';
import { functionLines, touchedBy, touchedDefinitions } from './patch/function-lines.js';
import type { FilePatch } from './patch/parse.js';

export interface FunctionReport {
  readonly object: string;
  readonly unit: string;
  readonly name: string;
  readonly status: 'changed' | 'new';
  /** Set once the replaced function is resolved in the kernel's symbols (replaced.ts). */
  readonly sympos?: number;
  readonly reasons: readonly string[];
  /** Patched through its callers: it has no ftrace call site of its own. */
  readonly carriedOnly?: boolean;
  readonly firstDifference?: number;
  /** The instructions at the first difference (with --show-first-changed), as objdump prints them. */
  readonly firstChanged?: { orig?: string; patched?: string };
}

/** Definitions (inlines, macros) each changed header's hunks touch. */
function headerDefinitions(tree: string, files: readonly FilePatch[]): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const h of files.filter((x) => x.kind === 'header')) {
    try {
      out.set(h.path, touchedDefinitions(readFileSync(join(tree, h.path), 'utf8'), h));
    } catch {
      // a header the patch creates: nothing of it to name
    }
  }
  return out;
}

/** Why a changed function is in the patch beyond what the diff said (nothing when the patch touches its lines). */
function whyChanged(
  f: FunctionVerdict,
  d: UnitVerdict,
  ctx: { tree: string; files: readonly FilePatch[]; viaHeader: ReadonlyMap<string, readonly string[]>; headerDefs: ReadonlyMap<string, readonly string[]> },
): string[] {
  const unit = d.compiled.unit;
  let text: string;
  try {
    text = readFileSync(join(ctx.tree, unit), 'utf8');
  } catch {
    return [];
  }
  const out: string[] = [];
  const range = functionLines(text, f.name);
  const entry = /^__(?:x64|ia32)_(?:compat_)?sys_(\w+)$/.exec(f.name);
  const lifted = entry && d.diff.functions.find((x) => x.status === 'new' && x.name === `__kpatch_do_sys_${entry[1]}`);
  const carriedFor = f.reasons.some((r) => r.startsWith('calls '));
  if (!range && lifted) {
    out.push(`the entry of the ${entry![1]} syscall: KPATCH_SYSCALL_DEFINE (kpatch-syscall.h) moved its body into the new ${lifted.name}`);
  } else if (!range && entry && !carriedFor) {
    out.push(`the entry of the ${entry[1]} syscall (${f.name.includes('compat') ? 'COMPAT_SYSCALL_DEFINE' : 'SYSCALL_DEFINE'} in ${unit}): its body is inlined into it`);
  }
  // A caller pulled in for a notrace function already says so.
  const fp = ctx.files.find((x) => x.path === unit);
  if (!range || (fp && touchedBy(fp, range)) || carriedFor) return out;
  const body = text.split('\n').slice(range.first - 1, range.last).join('\n');
  // Through a changed header: name the inline or macro its text uses, when it does so directly.
  const used = (ctx.viaHeader.get(unit) ?? []).flatMap((h) => (ctx.headerDefs.get(h) ?? []).filter((n) => new RegExp(`\\b${n}\\b`).test(body)).map((n) => `${n} (${h})`));
  out.push(
    used.length
      ? `the patch does not touch its lines (${unit}:${range.first}-${range.last}): it uses ${used.join(', ')}, which the patch changes`
      : `the patch does not touch its lines (${unit}:${range.first}-${range.last}): it inlines or uses code that changed`,
  );
  return out;
}

/** Every changed and new function of the patch, with its reasons. */
export function functionReports(verdicts: Verdicts, tree: string, files: readonly FilePatch[], viaHeader: ReadonlyMap<string, readonly string[]>): FunctionReport[] {
  const ctx = { tree, files, viaHeader, headerDefs: headerDefinitions(tree, files) };
  return verdicts.units.flatMap((d) =>
    d.diff.functions.map((f) => ({
      object: d.object,
      unit: d.compiled.unit,
      name: f.name,
      status: f.status,
      reasons: [...f.reasons, ...(f.status === 'changed' ? whyChanged(f, d, ctx) : [])],
      ...(d.diff.carriedOnly.has(f.name) ? { carriedOnly: true } : {}),
      ...(f.firstDifference !== undefined ? { firstDifference: f.firstDifference } : {}),
    })),
  );
}

/** The functions the livepatch replaces (klp_func): changed, and not only carried through their callers. */
export function replacedFunctions(functions: readonly FunctionReport[]): FunctionReport[] {
  return functions.filter((f) => f.status === 'changed' && !f.carriedOnly);
}

/** Stop when the patch compiles to the same code everywhere (and names no callback): nothing to livepatch. */
export function requireChange(verdicts: Verdicts, functions: readonly FunctionReport[]): void {
  if (replacedFunctions(functions).length || verdicts.callbacks.size) return;
  throw new SutureError('no-change', 'no functional change: the patch compiles to the same code in every unit it touches', {
    details: verdicts.units.map((d) => `${d.compiled.unit}: ${d.diff.unchanged} functions compared, all equal`).join('\n'),
    hint: 'comments, line moves and changes the compiler folds away need no livepatch',
  });
}

/** The reports with the first differing instruction of each changed function, orig and patched (--show-first-changed). */
export async function withFirstChanged(functions: readonly FunctionReport[], verdicts: Verdicts): Promise<FunctionReport[]> {
  const out: FunctionReport[] = [];
  for (const f of functions) {
    if (f.status !== 'changed' || f.firstDifference === undefined) {
      out.push(f);
      continue;
    }
    const u = verdicts.units.find((x) => x.compiled.unit === f.unit)!.compiled;
    out.push({ ...f, firstChanged: { orig: await instructionAt(u.files.orig, f.name, f.firstDifference), patched: await instructionAt(u.files.patched, f.name, f.firstDifference) } });
  }
  return out;
}

/** The instruction of a function (in its own section, as -ffunction-sections puts it) that covers an offset. */
async function instructionAt(file: string, fn: string, offset: number): Promise<string | undefined> {
  const r = await run(['objdump', '-d', '--no-show-raw-insn', `--disassemble=${fn}`, file], { maxCapture: 4 << 20 });
  if (r.code !== 0) return undefined;
  let best: string | undefined;
  for (const line of r.stdout.split('\n')) {
    const m = /^\s*([0-9a-f]+):\s+(.*)$/.exec(line);
    if (!m) continue;
    if (parseInt(m[1]!, 16) <= offset) best = `+0x${m[1]}: ${m[2]!.replace(/\s+/g, ' ').trim()}`;
    else break;
  }
  return best;
}
