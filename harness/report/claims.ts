// The report's "Claims" section: the source documents' tables the scenario names, each published
// row beside the figure measured in the run, with its verdict, the reason and where the figure
// comes from (analysis/claims.ts). Right after the comparison it judges the documents with, summary
// of verdicts on top.
import { claimVerdicts, verdictCounts, type TableVerdicts, type VerdictRow } from '../analysis/claims.js';
import type { VerdictWord } from '../analysis/verdicts.js';
import type { RunRecord } from '../results/types.js';
import { runHead } from './kernels.js';
import { DASH, esc } from './format.js';

const VERDICT_CLASS: Record<VerdictWord, string> = {
  reproduced: 'v-reproduced',
  'same direction, different size': 'v-direction',
  contradicted: 'v-contradicted',
  'not measurable here': 'v-unmeasurable',
};

/** The documents' metric keys (p50_latency_overhead) as words. */
const words = (metric: string) => metric.replace(/_/g, ' ');

export const verdictBadge = (v: VerdictWord) => `<span class="verdict ${VERDICT_CLASS[v]}">${esc(v)}</span>`;

function cellsHtml(row: VerdictRow, key: 'document' | 'measured'): string {
  if (row.cells.length === 0) return DASH;
  const one = row.cells.length === 1;
  return row.cells
    .map((c) => {
      const v = c[key];
      const text = v ? esc(v) : key === 'measured' ? '<span class="note">not measured</span>' : DASH;
      return one ? text : `<span class="cellname">${esc(c.column)}</span> ${text}`;
    })
    .join('<br>');
}

function columnHtml(row: VerdictRow): string {
  if (row.cells.length !== 1) return row.cells.length ? row.cells.map((c) => `${esc(c.column)} → <code>${esc(c.dataplane ?? DASH)}</code>`).join('<br>') : DASH;
  const c = row.cells[0]!;
  return `${esc(c.column)}${c.dataplane ? ` → <code>${esc(c.dataplane)}</code>` : ''}`;
}

function tableHtml(t: TableVerdicts, anchor: string): string {
  const rows = t.rows.map(
    (r) => `<tr class="${r.extrapolated ? 'extrapolated' : ''}">
<td>${esc(words(r.metric))}${r.extrapolated ? ' <span class="tag">extrapolated</span>' : ''}</td>
<td>${columnHtml(r)}</td>
<td class="fig">${cellsHtml(r, 'document')}</td>
<td class="fig">${cellsHtml(r, 'measured')}</td>
<td>${verdictBadge(r.verdict)}</td>
<td class="why">${esc(r.why)}.${r.explanation?.length ? `<div class="explain">Behind it: ${r.explanation.map(esc).join('<br>')}.</div>` : ''}<div class="evidence">Evidence: ${esc(r.evidence)}.</div></td>
</tr>`,
  );
  const here = t.measuredHere
    ? `<h4>Measured here</h4>
<p class="note">${esc(t.measuredHere.caption)}</p>
<div class="scroll"><table class="claims-here"><thead><tr>${t.measuredHere.head.map((h) => `<th>${esc(h)}</th>`).join('')}</tr></thead>
<tbody>
${t.measuredHere.rows.map((r) => `<tr>${r.map((x) => `<td>${esc(x)}</td>`).join('')}</tr>`).join('\n')}
</tbody></table></div>`
    : '';
  return `<div class="claims-table" id="${esc(anchor)}">
<h3>${esc(t.title)} <span class="meta">table <code>${esc(t.id)}</code>${t.source ? ` · source <code>${esc(t.source)}</code>` : ''}</span></h3>
${t.claim ? `<p class="claim">The document: “${esc(t.claim)}”</p>` : ''}
${
  t.rows.length
    ? `<div class="scroll"><table class="claims"><colgroup><col class="c-fig"><col class="c-col"><col class="c-doc"><col class="c-meas"><col class="c-verdict"><col class="c-why"></colgroup><thead><tr><th>figure</th><th>document column → lab dataplane</th><th>document</th><th>measured</th><th>verdict</th><th>why</th></tr></thead>
<tbody>
${rows.join('\n')}
</tbody></table></div>`
    : ''
}
${here}
${t.notes.map((n) => `<p class="note">${esc(n)}</p>`).join('\n')}
</div>`;
}

function scalingHtml(run: RunRecord): string {
  const ref = run.reference!;
  const scaling = Object.entries(ref.scaling ?? {});
  return `${
    scaling.length
      ? `<p class="label">Scaled to this machine (document → lab):</p>
<ul class="scaling">
${scaling.map(([k, v]) => `<li><strong>${esc(k)}</strong>: ${esc(v)}</li>`).join('\n')}
</ul>`
      : ''
  }
${ref.note ? `<p class="note">${esc(ref.note)}</p>` : ''}`;
}

/** The section, or '' when no run names a reference table. */
export function claimsSection(runs: RunRecord[]): string {
  const judged = runs.filter((r) => r.reference?.tables?.length).map((run) => ({ run, tables: claimVerdicts(run) }));
  if (!judged.length) return '';
  const multi = runs.length > 1;
  const counts = verdictCounts(judged.flatMap((j) => j.tables));
  const summaryRows = judged.flatMap(({ run, tables }) =>
    tables.flatMap((t, ti) =>
      t.rows.map(
        (r) =>
          `<tr><td><a href="#claims-${esc(run.runId)}-${ti}">${esc(t.id)}</a>${multi ? ` <code>${esc(run.runId)}</code>` : ''}</td><td>${esc(words(r.metric))}${r.extrapolated ? ' <span class="tag">extrapolated</span>' : ''}</td><td>${esc(r.cells.map((c) => c.column).join(', ') || DASH)}</td><td>${verdictBadge(r.verdict)}</td></tr>`,
      ),
    ),
  );
  const blocks = judged.map(
    ({ run, tables }) => `${multi ? runHead(run) : ''}
${scalingHtml(run)}
${tables.map((t, ti) => tableHtml(t, `claims-${run.runId}-${ti}`)).join('\n')}`,
  );
  return `<section id="claims">
<h2>Claims of the source documents</h2>
<p class="verdict-summary">${counts.map(([w, n]) => `${verdictBadge(w)} <strong>${n}</strong>`).join(' · ')}</p>
<p class="note">Each published figure of the tables this scenario reproduces, beside the lab's figure measured in this run (median [95 % bootstrap interval] over repeats, seeded). Verdicts: <em>reproduced</em> — the measured interval meets the document's figure or range (“~” read as ±25 %); <em>same direction, different size</em> — a cost where the document says there is one, or an order that holds, but not of the published size; <em>contradicted</em> — the other way round beyond the intervals; <em>not measurable here</em> — with the reason. Proxies are stand-ins where the Stand-ins box says so: their figures are the stand-in's.</p>
<div class="scroll"><table class="claims-summary"><thead><tr><th>table</th><th>figure</th><th>document column</th><th>verdict</th></tr></thead>
<tbody>
${summaryRows.join('\n')}
</tbody></table></div>
${blocks.join('\n')}
</section>`;
}

export const CLAIMS_CSS = `
.verdict{display:inline-block;padding:.05em .55em;border-radius:6px;font-size:.8rem;font-weight:600;border:1px solid currentColor;white-space:nowrap}
.v-reproduced{color:var(--ok);background:#dafbe1}
.v-direction{color:var(--warn);background:#fff8c5}
.v-contradicted{color:var(--bad);background:#ffebe9}
.v-unmeasurable{color:var(--muted);background:var(--soft)}
.verdict-summary{font-size:1rem}
.claims-table{margin:1.4rem 0}
.claims-table h3 .meta{font-weight:400}
p.claim{font-style:italic;max-width:70em}
table.claims{width:100%;table-layout:fixed}
table.claims col.c-fig{width:15%}table.claims col.c-col{width:14%}table.claims col.c-doc{width:11%}table.claims col.c-meas{width:13%}table.claims col.c-verdict{width:12%}table.claims col.c-why{width:35%}
table.claims td{overflow-wrap:anywhere}
table.claims td.fig{font-variant-numeric:tabular-nums}
table.claims td.why{font-size:.82rem}
table.claims .verdict{white-space:normal}
table.claims .evidence{color:var(--muted);margin-top:.2rem}
table.claims .explain{margin-top:.2rem;padding-left:.4rem;border-left:3px solid var(--warn)}
table.claims tr.extrapolated td{background:#f6f3ff}
.tag{display:inline-block;padding:0 .4em;border-radius:4px;font-size:.75rem;background:#ebe5ff;color:#5a32a3}
.cellname{color:var(--muted)}
ul.scaling{margin:.2rem 0 .6rem;padding-left:1.2rem;font-size:.88rem}
`.trim();
