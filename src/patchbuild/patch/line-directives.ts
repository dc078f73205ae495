// SPDX-License-Identifier: GPL-2.0-only
/**
 * Keep __LINE__ stable outside the changed lines.
 *
 * Inserting two lines near the top of a large file shifts the line number of
 * everything below; WARN_ON, BUG_ON, pr_* with __LINE__, might_sleep() and the
 * __bug_table record that number, so every function below would look changed
 * (measured on real 6.1 fixes: about 30 untouched functions in one file). The
 * remedy klp-build uses: after each hunk that adds or removes lines, a
 * `#line N` directive gives the following line its original number again.
 * Lines inside the hunk keep their new numbers; the functions there changed anyway.
 */
import type { FilePatch, Hunk } from './parse.js';

/** Whether a line continues onto the next (a `#line` cannot go after it). */
function continues(line: string): boolean {
  return /\\\s*$/.test(line);
}

/** Whether an open block comment or string continues past this text (a directive there would not be a directive). */
function insideComment(textBefore: string[]): boolean {
  let open = false;
  for (const l of textBefore) {
    let i = 0;
    while (i < l.length) {
      if (!open && l.startsWith('//', i)) break;
      if (!open && l.startsWith('/*', i)) {
        open = true;
        i += 2;
      } else if (open && l.startsWith('*/', i)) {
        open = false;
        i += 2;
      } else i++;
    }
  }
  return open;
}

/**
 * Add `#line` directives to one hunk. Returns the hunk unchanged when its line
 * count does not change or no safe place exists.
 */
export function stabilizeHunk(h: Hunk): Hunk {
  const delta = h.newLines - h.oldLines;
  if (delta === 0) return h;
  // After the last changed line, before trailing context: the next old line number there.
  let last = -1;
  h.lines.forEach((l, i) => {
    if (l[0] === '+' || l[0] === '-') last = i;
  });
  if (last < 0) return h;
  // Old line number of the line that follows `last` in the new file.
  let oldNo = h.oldStart;
  const newText: string[] = []; // new-file text up to the insertion point, for the comment check
  let insertAt = -1;
  for (let i = 0; i < h.lines.length; i++) {
    const l = h.lines[i]!;
    if (l[0] === '\\') continue;
    if (i > last && insertAt < 0) {
      // Candidate: before context line i (an unchanged line, old number oldNo).
      const prev = newText[newText.length - 1] ?? '';
      if (!continues(prev) && !insideComment(newText)) insertAt = i;
    }
    if (l[0] === ' ' || l[0] === '-') oldNo++;
    if (l[0] === ' ' || l[0] === '+') newText.push(l.slice(1));
    if (insertAt === i) break;
  }
  if (insertAt < 0) return h; // no safe spot inside the hunk: leave it (the diff engine will see shifted lines)
  // oldNo was advanced past line insertAt; the directive names line insertAt's own old number.
  let n = h.oldStart;
  for (let i = 0; i < insertAt; i++) {
    const c = h.lines[i]![0];
    if (c === ' ' || c === '-') n++;
  }
  const lines = [...h.lines.slice(0, insertAt), `+#line ${n}`, ...h.lines.slice(insertAt)];
  return { ...h, newLines: h.newLines + 1, lines };
}

/** Apply stabilizeHunk to every hunk of C sources and headers. */
export function stabilizeLines(files: readonly FilePatch[]): FilePatch[] {
  return files.map((f) => {
    if (f.change !== 'modify' || (f.kind !== 'c' && f.kind !== 'header')) return f;
    // Each directive adds a line to the new file: later hunks start one line further per directive before them.
    let shift = 0;
    const hunks = f.hunks.map((h) => {
      const s = stabilizeHunk(h);
      const moved = { ...s, newStart: s.newStart + shift };
      shift += s.lines.length - h.lines.length;
      return moved;
    });
    return { ...f, hunks };
  });
}
