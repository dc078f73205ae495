// SPDX-License-Identifier: GPL-2.0-only
/**
 * Where GNU patch really put each hunk.
 *
 * A patch made for a nearby kernel applies with an offset: its `@@ -N` says
 * line N, but the same context sits K lines lower in this tree (a fix for
 * 6.1's kernel/sys.c lands 19 lines lower in 6.12's). Everything that reasons
 * about line numbers after the apply (the `#line` directives that keep
 * __LINE__ stable, "the patch does not touch this function's lines") must use
 * the lines the hunk was applied at, or it shifts and misjudges every
 * function below. GNU patch says where: `Hunk #2 succeeded at 955 (offset 67
 * lines).` (the offset is from the `-N` it states; the line is in the new file).
 *
 * Fuzz is refused, not followed. A hunk applied with fuzz matched with some
 * of its context lines ignored: the context is the only evidence that the
 * change lands in the function its author meant, and with it ignored the
 * hunk can land in another one (6.1's fs/namei.c fix for may_open applies to
 * 6.12 with fuzz 2, 77 lines lower). A build that then proves and loads a
 * misplaced change into a running kernel is worse than a refusal the author
 * fixes by refreshing the patch against this tree.
 */
import { SutureError } from '../../util/errors.js';
import type { FilePatch, Hunk } from './parse.js';

export interface HunkPlacement {
  /** 1-based hunk number within its file section, as GNU patch counts. */
  readonly hunk: number;
  /** Lines from the `-N` the hunk states to where it applied (negative: higher up). */
  readonly offset: number;
  /** Context lines ignored to make it apply (0: exact). */
  readonly fuzz: number;
  /** GNU patch's own line, for messages. */
  readonly text: string;
}

export interface SectionPlacements {
  /** The file as GNU patch named it (after -p1). */
  readonly file: string;
  /** Hunks that did not apply exactly where stated; the others are absent (offset 0, no fuzz). */
  readonly hunks: readonly HunkPlacement[];
}

/** Each file section of GNU patch's output, in order, with the hunks it moved or fuzzed. */
export function readPlacements(output: string): SectionPlacements[] {
  const out: { file: string; hunks: HunkPlacement[] }[] = [];
  for (const line of output.split('\n')) {
    const f = /^(?:checking|patching) file (.+)$/.exec(line);
    if (f) {
      out.push({ file: f[1]!.replace(/^'(.*)'$/, '$1'), hunks: [] });
      continue;
    }
    const h = /^Hunk #(\d+) succeeded at \d+(?: with fuzz (\d+))?(?: \(offset (-?\d+) lines?\))?\.?$/.exec(line);
    if (h && out.length) out[out.length - 1]!.hunks.push({ hunk: Number(h[1]), fuzz: Number(h[2] ?? 0), offset: Number(h[3] ?? 0), text: line });
  }
  return out;
}

function moved(h: Hunk, offset: number): Hunk {
  return offset === 0 ? h : { ...h, oldStart: h.oldStart + offset, newStart: h.newStart + offset };
}

/**
 * The files of a patch with every hunk at the lines GNU patch applied it
 * (its dry-run output against this tree); a hunk that needed fuzz is refused.
 * `files` must be the sections of the patch that produced `output`, in order.
 */
export function locateHunks(files: readonly FilePatch[], output: string, label: string): FilePatch[] {
  const sections = readPlacements(output);
  const names = (f: FilePatch) => [f.oldPath, f.newPath].filter((n): n is string => n !== undefined);
  if (sections.length !== files.length || sections.some((s, i) => !names(files[i]!).includes(s.file))) {
    throw new SutureError('internal', `GNU patch reported ${sections.length} file sections for ${label}, suture read ${files.length}`, {
      details: `patch: ${sections.map((s) => s.file).join(', ')}\nsuture: ${files.map((f) => f.path).join(', ')}`,
    });
  }
  const fuzzed = sections.flatMap((s, i) => s.hunks.filter((h) => h.fuzz > 0).map((h) => ({ file: files[i]!, h })));
  if (fuzzed.length) {
    throw new SutureError('invalid-input', `${label} applies to this kernel's source only with fuzz (${fuzzed.map(({ file, h }) => `${file.path} hunk #${h.hunk}`).join(', ')})`, {
      details: fuzzed
        .map(({ file, h }) => {
          const hunk = file.hunks[h.hunk - 1];
          return `${file.path}: hunk #${h.hunk}${hunk ? ` (@@ -${hunk.oldStart} @@)` : ''} matched with ${h.fuzz} context line${h.fuzz === 1 ? '' : 's'} at each end ignored, ${Math.abs(h.offset)} lines ${h.offset < 0 ? 'higher' : 'lower'} than it says: ${h.text}`;
        })
        .join('\n'),
      hint: 'a hunk applied by fuzz can land in another function than its author meant; make the patch against this kernel\'s source (apply it by hand, check where each hunk went, diff again)',
    });
  }
  return files.map((f, i) => {
    const offsets = new Map(sections[i]!.hunks.map((h) => [h.hunk, h.offset]));
    if (!offsets.size) return f;
    return { ...f, hunks: f.hunks.map((h, j) => moved(h, offsets.get(j + 1) ?? 0)) };
  });
}
