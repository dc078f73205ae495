// SPDX-License-Identifier: GPL-2.0-only
/**
 * GCC's clones of a name (`foo.isra.0`, `foo.constprop.0`, `foo.cold`), looked
 * up by the name: an index built once per symbol table, since a missing name
 * is looked up for every reference a patch's code makes to a module's
 * dependency (thousands in a whole-update catch-up) and a scan of the table
 * each time cost half a minute there.
 */
export class CloneIndex {
  readonly #byBase = new Map<string, string[]>();

  /** `names` in table order; each is listed under every prefix that ends before one of its dots. */
  constructor(names: Iterable<string>) {
    for (const name of names) {
      for (let dot = name.indexOf('.', 1); dot > 0; dot = name.indexOf('.', dot + 1)) {
        const base = name.slice(0, dot);
        const list = this.#byBase.get(base);
        if (!list) this.#byBase.set(base, [name]);
        else if (list[list.length - 1] !== name && !list.includes(name)) list.push(name);
      }
    }
  }

  /** The names that start with `name.`, in table order, at most `limit`. */
  of(name: string, limit = Infinity): string[] {
    return (this.#byBase.get(name) ?? []).slice(0, limit);
  }
}
