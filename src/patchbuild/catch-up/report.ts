// SPDX-License-Identifier: GPL-2.0-only
/**
 * The catch-up report as one self-contained HTML page (no scripts, no
 * outside resources): fixes by verdict with their reasons, CVEs, functions
 * and the basis each fix was formed on; the CVEs not carried; the proof;
 * the time of each stage as a bar chart. Every text from a source tree or a
 * changelog is escaped. Pure: a result in, a string out.
 */
import type { Suspect } from './suspects.js';
import type { ProofResult } from '../../vm/prove.js';
import type { CatchUpResult } from './catch-up.js';
import type { FixVerdict } from './judge.js';

const plural = (n: number, one: string, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;
const esc = (s: string) => s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

const ORDER: readonly FixVerdict[] = ['included', 'refused', 'no-functional-change', 'not-built'];
const COLOUR: Record<FixVerdict, string> = { included: '#1a7f37', refused: '#cf222e', 'no-functional-change': '#6e7781', 'not-built': '#8c959f' };

function timingChart(timings: Readonly<Record<string, number>>): string {
  const rows = Object.entries(timings).filter(([, ms]) => ms > 0);
  if (!rows.length) return '';
  const max = Math.max(...rows.map(([, ms]) => ms));
  const h = 22;
  const bars = rows
    .map(([k, ms], i) => {
      const w = Math.max(1, Math.round((ms / max) * 420));
      return `<text x="0" y="${i * h + 15}" font-size="12">${esc(k)}</text><rect x="120" y="${i * h + 4}" width="${w}" height="14" fill="#0969da"/><text x="${126 + w}" y="${i * h + 15}" font-size="12">${(ms / 1000).toFixed(1)} s</text>`;
    })
    .join('');
  return `<svg role="img" aria-label="time per stage" width="640" height="${rows.length * h + 4}" xmlns="http://www.w3.org/2000/svg">${bars}</svg>`;
}

export function renderCatchUpHtml(r: CatchUpResult, proof: ProofResult | undefined, meta: { totalMs: number; generatedAt: string; suspects?: readonly Suspect[] }): string {
  const count = (v: FixVerdict) => r.fixes.filter((f) => f.verdict === v).length;
  const summary = ORDER.map((v) => `<span class="pill" style="background:${COLOUR[v]}">${esc(v)}: ${count(v)}</span>`).join(' ');
  const sections = ORDER.map((v) => {
    const fixes = r.fixes.filter((f) => f.verdict === v);
    if (!fixes.length) return '';
    const rows = fixes
      .map((f) => {
        const fns = f.functions.filter((x) => x.status === 'changed' && !x.carriedOnly).map((x) => `${x.object}:${x.name}`);
        return `<tr><td>${esc(f.id)}</td><td>${esc(f.title ?? f.label)}${f.cves.length ? `<br><small>${f.cves.map(esc).join(', ')}</small>` : ''}</td>
<td>${esc(f.why)}${f.refusals.map((x) => `<div class="refusal"><b>${esc(x.rule)}</b> ${esc(x.file)}${x.symbol !== x.file ? `: ${esc(x.symbol)}` : ''} — ${esc(x.reason)}<br><i>instead:</i> ${esc(x.instead)}</div>`).join('')}</td>
<td>${fns.length ? `<code>${fns.map(esc).join('<br>')}</code>` : ''}</td>
<td><small>${f.files.map(esc).join('<br>')}</small><details><summary>basis</summary><small>${f.basis.map(esc).join('<br>')}</small></details></td></tr>`;
      })
      .join('\n');
    return `<h2 style="color:${COLOUR[v]}">${esc(v)} (${fixes.length})</h2>
<table><thead><tr><th>fix</th><th>title, CVEs</th><th>why</th><th>functions</th><th>files</th></tr></thead><tbody>
${rows}
</tbody></table>`;
  }).join('\n');
  const cves = r.cvesNotCarried.length
    ? `<h2>CVEs not carried (${r.cvesNotCarried.length})</h2><table><thead><tr><th>CVE</th><th>title</th><th>why</th></tr></thead><tbody>${r.cvesNotCarried.map((c) => `<tr><td>${esc(c.cve)}</td><td>${esc(c.title)}</td><td>${esc(c.why)}</td></tr>`).join('')}</tbody></table>`
    : '<h2>CVEs not carried</h2><p>none</p>';
  const noPatch = r.cvesNeedNoPatch.length
    ? `<h2>CVEs that need no patch here (${r.cvesNeedNoPatch.length})</h2><table><thead><tr><th>CVE</th><th>title</th><th>why</th></tr></thead><tbody>${r.cvesNeedNoPatch.map((c) => `<tr><td>${esc(c.cve)}</td><td>${esc(c.title)}</td><td>${esc(c.why)}</td></tr>`).join('')}</tbody></table>`
    : '';
  const mod = r.module
    ? `<p><b>${esc(r.module.name)}</b> at <code>${esc(r.module.path)}</code>: ${plural(r.module.functions.length, 'function')} in ${esc(r.module.objects.join(', '))}, atomic replace. Effective version: ${esc(r.module.effectiveVersion ?? 'not claimed (a fix is left out)')}.</p>`
    : '<p>No livepatch: nothing to carry.</p>';
  const pr = !proof
    ? '<p>Not proven in a VM.</p>'
    : `<p class="${proof.proven ? 'ok' : 'bad'}">${proof.proven ? 'Proven' : `NOT proven: ${esc(proof.reason ?? '')}`} (${esc(proof.vm.accel)}, boot ${proof.vm.bootMs === null ? '?' : (proof.vm.bootMs / 1000).toFixed(1)} s, transition ${proof.transitionMs ?? '?'} ms)</p>
<table><thead><tr><th>step</th><th>status</th><th>time</th></tr></thead><tbody>${proof.steps.map((s) => `<tr><td>${esc(s.label)}</td><td>${s.status ?? '—'}</td><td>${s.durationMs === null ? '' : `${(s.durationMs / 1000).toFixed(1)} s`}</td></tr>`).join('')}</tbody></table>
${proof.logProblems.length ? `<pre>${(proof.logContext.length ? proof.logContext.map((b) => b.join('\n')) : proof.logProblems).map(esc).join('\n\n')}</pre>` : '<p>Kernel log: no BUG, Oops, WARNING or hung task.</p>'}
${proof.steps.filter((x) => x.status !== 0).map((x) => `<p class="bad">${esc(x.label)} failed:</p><pre>${esc(x.output.trim())}</pre>`).join('')}
${proof.baseline?.preexisting.length ? `<p>The kernel's own log problems, printed without the patch too (a second boot of the same kernel, modules and workload), not counted:</p><pre>${proof.baseline.preexisting.map(esc).join('\n')}</pre>` : ''}
${suspects(meta.suspects ?? [])}`;
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>suture catch-up: ${esc(r.kernel)} to ${esc(r.what)}</title>
<style>body{font:14px system-ui,sans-serif;margin:2em;max-width:1400px}table{border-collapse:collapse;width:100%;margin-bottom:1em}td,th{border:1px solid #d0d7de;padding:4px 6px;vertical-align:top;text-align:left}.pill{color:#fff;padding:2px 8px;border-radius:10px}.refusal{margin-top:4px}.ok{color:#1a7f37}.bad{color:#cf222e}code{font-size:12px}</style></head>
<body><h1>Catch-up of ${esc(r.kernel)} to ${esc(r.what)}</h1>
<p>${plural(r.fixes.length, 'fix', 'fixes')}, ${plural(r.unitsCompiled, 'unit')} compiled, ${plural(r.unitsSettled, 'unit')} settled from the preprocessed text (reached only through a header whose change they do not use), ${(meta.totalMs / 1000).toFixed(1)} s in all; generated ${esc(meta.generatedAt)}.</p>
<p>${summary}</p>
<h2>The livepatch</h2>${mod}
<h2>Proof</h2>${pr}
${cves}
${noPatch}
${sections}
<h2>Time per stage</h2>${timingChart(r.timings)}
</body></html>
`;
}

/** The included fixes whose carried code a failed proof names (suspects.ts), with the option that leaves them out. */
function suspects(s: readonly Suspect[]): string {
  if (!s.length) return '';
  return `<p class="bad">The kernel log names code these fixes carry; leave them out with ${s.map((x) => `<code>--exclude ${esc(x.fix)}</code>`).join(' ')}:</p><ul>${s.map((x) => `<li>${esc(x.fix)} ${esc(x.title)}: ${x.functions.map((f) => `<code>${esc(f)}</code>`).join(', ')}</li>`).join('')}</ul>`;
}
