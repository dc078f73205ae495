// SPDX-License-Identifier: GPL-2.0-only
import { describe, expect, it } from 'vitest';
import { functionLines, touchedBy, touchedDefinitions } from '../../../src/patchbuild/patch/function-lines.js';
import { parseSourcePatch } from '../../../src/patchbuild/patch/parse.js';

// The shape of include/linux/sched/xacct.h in 6.1: the same inlines twice, under #ifdef CONFIG_TASK_XACCT and #else.
const HEADER = `#include <linux/sched.h>

#ifdef CONFIG_TASK_XACCT
static inline void add_rchar(struct task_struct *tsk, ssize_t amt)
{
	tsk->ioac.rchar += amt;
}

static inline void inc_syscr(struct task_struct *tsk)
{
	tsk->ioac.syscr++;
}
#define IO_SLOTS(n) \\
	((n) * 2 + \\
	 1)
#else
static inline void inc_syscr(struct task_struct *tsk)
{
}
#endif
`;

const patchOf = (hunk: string) => parseSourcePatch(`--- a/include/linux/sched/xacct.h\n+++ b/include/linux/sched/xacct.h\n${hunk}`, 'fix.patch')[0]!;

describe('functionLines / touchedBy', () => {
  it('finds the first definition and its closing brace', () => {
    expect(functionLines(HEADER, 'inc_syscr')).toEqual({ first: 9, last: 12 });
    expect(functionLines(HEADER, 'add_rchar.constprop.0')).toEqual({ first: 4, last: 7 });
    expect(functionLines(HEADER, 'nothing_here')).toBeUndefined();
  });
});

describe('touchedDefinitions', () => {
  it('names the inline whose body a hunk changes, and not its neighbours', () => {
    const f = patchOf('@@ -9,4 +9,4 @@\n static inline void inc_syscr(struct task_struct *tsk)\n {\n-\ttsk->ioac.syscr++;\n+\ttsk->ioac.syscr += 1000;\n }\n');
    expect(touchedBy(f, { first: 9, last: 12 })).toBe(true);
    expect(touchedDefinitions(HEADER, f)).toEqual(['inc_syscr']);
  });
  it('names a function-like macro whose continuation lines change', () => {
    const f = patchOf('@@ -13,3 +13,3 @@\n #define IO_SLOTS(n) \\\n \t((n) * 2 + \\\n-\t 1)\n+\t 2)\n');
    expect(touchedDefinitions(HEADER, f)).toEqual(['IO_SLOTS']);
  });
  it('a hunk between definitions names none', () => {
    const f = patchOf('@@ -1,2 +1,3 @@\n #include <linux/sched.h>\n+#include <linux/types.h>\n \n');
    expect(touchedDefinitions(HEADER, f)).toEqual([]);
  });
});
