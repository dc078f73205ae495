// SPDX-License-Identifier: GPL-2.0-only
/**
 * HTML and SVG for the dashboard, made on the server: a tagged template that
 * escapes every value put into it (a host name `<script>` stays text), and
 * two plots drawn as inline SVG (nothing loaded from anywhere at runtime).
 */

/** Markup already made safe (by `html`, or the few constants that build it). */
export class Html {
  constructor(readonly text: string) {}
  toString(): string {
    return this.text;
  }
}

const ESC: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
export const escape = (s: string): string => s.replace(/[&<>"']/g, (c) => ESC[c]!);

type Value = Html | string | number | null | undefined | boolean | readonly Value[];

function render(v: Value): string {
  if (v instanceof Html) return v.text;
  if (Array.isArray(v)) return v.map(render).join('');
  if (v === null || v === undefined || v === false) return '';
  return escape(String(v));
}

/** html`<p>${name}</p>`: every interpolated value is escaped unless it is Html already. */
export function html(strings: TemplateStringsArray, ...values: Value[]): Html {
  let out = strings[0]!;
  values.forEach((v, i) => {
    out += render(v) + strings[i + 1]!;
  });
  return new Html(out);
}

// ---------- plots ----------

const W = 640;
const H = 220;
const PAD = { l: 48, r: 12, t: 12, b: 36 };
export const COLORS = { assigned: '#8a8f98', applied: '#2f6fde', healthy: '#1f9d55', failed: '#d64545' } as const;

const fmtTime = (ms: number) => new Date(ms).toISOString().slice(11, 19);

/** Cumulative counts over time, one step line per series. */
export function progressPlot(series: readonly { at: number; assigned: number; applied: number; healthy: number; failed: number }[], title: string): Html {
  if (!series.length) return html`<p class="empty">No host has been assigned yet.</p>`;
  const t0 = series[0]!.at;
  const t1 = Math.max(series.at(-1)!.at, t0 + 1000);
  const ymax = Math.max(1, ...series.map((p) => p.assigned));
  const x = (t: number) => PAD.l + ((t - t0) / (t1 - t0)) * (W - PAD.l - PAD.r);
  const y = (n: number) => H - PAD.b - (n / ymax) * (H - PAD.t - PAD.b);
  const lines = (Object.keys(COLORS) as (keyof typeof COLORS)[]).map((k) => {
    let d = `M${x(t0).toFixed(1)},${y(0).toFixed(1)}`;
    let prev = 0;
    for (const p of series) {
      d += ` H${x(p.at).toFixed(1)} V${y(prev).toFixed(1)} V${y(p[k]).toFixed(1)}`;
      prev = p[k];
    }
    d += ` H${x(t1).toFixed(1)}`;
    return html`<path d="${d}" fill="none" stroke="${COLORS[k]}" stroke-width="2"><title>${k}: ${prev}</title></path>`;
  });
  const legend = (Object.keys(COLORS) as (keyof typeof COLORS)[]).map((k, i) => html`<rect x="${PAD.l + i * 110}" y="${H - 14}" width="10" height="10" fill="${COLORS[k]}"/><text x="${PAD.l + 14 + i * 110}" y="${H - 5}">${k} ${series.at(-1)![k]}</text>`);
  return html`<svg class="plot" role="img" aria-label="${title}" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" xmlns="http://www.w3.org/2000/svg">
<title>${title}</title>
<line x1="${PAD.l}" y1="${y(0)}" x2="${W - PAD.r}" y2="${y(0)}" stroke="#999"/><line x1="${PAD.l}" y1="${PAD.t}" x2="${PAD.l}" y2="${y(0)}" stroke="#999"/>
<text x="${PAD.l - 6}" y="${y(ymax) + 4}" text-anchor="end">${ymax}</text><text x="${PAD.l - 6}" y="${y(0) + 4}" text-anchor="end">0</text>
<text x="${PAD.l}" y="${y(0) + 14}">${fmtTime(t0)}</text><text x="${W - PAD.r}" y="${y(0) + 14}" text-anchor="end">${fmtTime(t1)} UTC</text>
${lines}${legend}</svg>`;
}

const fmtSec = (s: number | null) => (s === null ? '> 300 s' : s < 1 ? `≤ ${Math.round(s * 1000)} ms` : `≤ ${s} s`);

/** A histogram of transition times. */
export function transitionPlot(buckets: readonly { le: number | null; count: number }[], title: string): Html {
  const total = buckets.reduce((a, b) => a + b.count, 0);
  if (!total) return html`<p class="empty">No host has reported a transition for this patch yet.</p>`;
  const ymax = Math.max(...buckets.map((b) => b.count));
  const bw = (W - PAD.l - PAD.r) / buckets.length;
  const y = (n: number) => H - PAD.b - (n / ymax) * (H - PAD.t - PAD.b);
  const bars = buckets.map((b, i) => {
    const cx = (PAD.l + i * bw + bw / 2).toFixed(1);
    return html`<rect class="bar" x="${(PAD.l + i * bw + 2).toFixed(1)}" y="${y(b.count).toFixed(1)}" width="${(bw - 4).toFixed(1)}" height="${(y(0) - y(b.count)).toFixed(1)}" fill="#2f6fde"><title>${fmtSec(b.le)}: ${b.count}</title></rect><text x="${cx}" y="${y(0) + 14}" text-anchor="middle" font-size="9">${fmtSec(b.le)}</text>${b.count ? html`<text x="${cx}" y="${(y(b.count) - 3).toFixed(1)}" text-anchor="middle">${b.count}</text>` : ''}`;
  });
  return html`<svg class="plot" role="img" aria-label="${title}" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" xmlns="http://www.w3.org/2000/svg">
<title>${title}</title>
<line x1="${PAD.l}" y1="${y(0)}" x2="${W - PAD.r}" y2="${y(0)}" stroke="#999"/>
${bars}</svg>`;
}
