// The report's "Where the time and memory go" section: per dataplane the waterfall of its added
// p50 over the baseline (baseline → +capture → +proxy → +TLS → +tunnel → total, whichever rungs
// the run measured), with p99 and dataplane memory per step beside it, each step labelled with
// what it is inferred from and any stand-in or host limit it carries. Lays out
// analysis/attribution.ts; computes nothing itself.
import { attribution, type AttributionStep, type Waterfall } from '../analysis/attribution.js';
import type { RunRecord } from '../results/types.js';
import { runHead } from './kernels.js';
import { DASH, esc } from './format.js';

const num = (x: number, unit: string) => `${x >= 0 ? '+' : ''}${x.toFixed(unit === 'ms' ? 3 : 1)}`;
const interval = (i: { estimate: number; low: number; high: number; n: number }, unit: string) =>
  `${num(i.estimate, unit)} ${unit}${i.n > 1 ? ` <span class="meta">[${i.low.toFixed(unit === 'ms' ? 3 : 1)}, ${i.high.toFixed(unit === 'ms' ? 3 : 1)}]</span>` : ''}`;

/** A bar from the running total before the step to the one after, on a scale of 0…max. */
function bar(start: number, delta: number, max: number, cls: string): string {
  if (!(max > 0)) return '';
  const [a, b] = [start, start + delta].sort((x, y) => x - y) as [number, number];
  const left = (Math.max(0, a) / max) * 100;
  const width = Math.max(0.5, ((Math.max(0, b) - Math.max(0, a)) / max) * 100);
  return `<div class="wf-track"><div class="wf-bar ${cls}${delta < 0 ? ' wf-neg' : ''}" style="margin-left:${left.toFixed(1)}%;width:${width.toFixed(1)}%"></div></div>`;
}

const PART_NAME: Readonly<Record<string, string>> = { bpf: 'BPF' };

/** The parts measured on their own in the dataplane's cases, as one line. */
function measuredHtml(w: Waterfall): string {
  if (!w.measured.length) return '';
  const what =
    w.metric === 'memory'
      ? 'memory by part (PSS of each role, BPF maps)'
      : 'CPU time per request by part (work done for it, not latency: a step larger than its part’s CPU is mostly waiting)';
  return `<p class="note">Measured in <code>${esc(w.dataplane)}</code>'s cases, ${what}: ${w.measured
    .map(
      (m) =>
        `<span title="${esc(m.source)}">${esc(PART_NAME[m.part] ?? m.part)} ${m.value.estimate.toFixed(1)}${m.value.n > 1 ? ` [${m.value.low.toFixed(1)}, ${m.value.high.toFixed(1)}]` : ''} ${esc(m.unit === 'MiB' ? 'MiB' : 'µs')}</span>`,
    )
    .join(' · ')}.</p>`;
}

const sameStep = (a: AttributionStep, b: AttributionStep) => a.from === b.from && a.to === b.to;

function waterfallHtml(w: Waterfall, p99: Waterfall | undefined, mem: Waterfall | undefined): string {
  const max = Math.max(w.total.high, w.sum, ...w.steps.map((_, i) => w.steps.slice(0, i + 1).reduce((s, x) => s + Math.max(0, x.added.estimate), 0)));
  let run = 0;
  // Caveats as numbered notes under the table (the same stand-in recurs on several steps).
  const caveats = [...new Set(w.steps.flatMap((s) => (s.caveat ? [`${s.caveat.kind}: ${s.caveat.text}`] : [])))];
  const mark = (s: AttributionStep) =>
    s.caveat
      ? ` <sup class="wf-caveat" title="${esc(s.caveat.text)}">${esc(s.caveat.kind)} ${caveats.indexOf(`${s.caveat.kind}: ${s.caveat.text}`) + 1}</sup>`
      : '';
  const rows = w.steps.map((s) => {
    const start = run;
    run += s.added.estimate;
    const q = p99?.steps.find((x) => sameStep(x, s));
    const m = mem?.steps.find((x) => sameStep(x, s));
    return `<tr><th scope="row">+ ${esc(s.label)}<div class="wf-pair"><code>${esc(s.to)}</code> − <code>${esc(s.from)}</code></div></th><td class="num">${interval(s.added, 'ms')}</td><td>${bar(start, s.added.estimate, max, 'wf-step')}</td><td class="num">${q ? interval(q.added, 'ms') : DASH}</td><td class="num">${m ? interval(m.added, 'MiB') : DASH}</td><td class="wf-basis">inferred${mark(s)}</td></tr>`;
  });
  return `<div class="scroll"><table class="waterfall">
<caption><code>${esc(w.dataplane)}</code> · ${esc(w.workload)} <span class="meta">(${w.total.n} paired repeat${w.total.n === 1 ? '' : 's'})</span></caption>
<thead><tr><th>step <span class="meta">(cases compared, paired by repeat)</span></th><th>p50 added</th><th>p50, baseline → total</th><th>p99 added</th><th>dataplane memory added</th><th>basis</th></tr></thead>
<tbody>
${rows.join('\n')}
<tr class="wf-total"><th scope="row">total over baseline<div class="wf-pair"><code>${esc(w.dataplane)}</code> − <code>baseline</code></div></th><td class="num">${interval(w.total, 'ms')}</td><td>${bar(0, w.total.estimate, max, 'wf-all')}</td><td class="num">${p99 ? interval(p99.total, 'ms') : DASH}</td><td class="num">${mem ? interval(mem.total, 'MiB') : DASH}</td><td class="wf-basis">measured</td></tr>
</tbody></table></div>
${caveats.length ? `<ol class="wf-notes">${caveats.map((c) => `<li>${esc(c)}</li>`).join('')}</ol>` : ''}
<p class="note${w.agrees ? '' : ' wf-disagree'}">${esc(w.note)}</p>
${measuredHtml(w)}${mem ? measuredHtml(mem) : ''}`;
}

/** The section, or '' when no dataplane of the runs sits on an ablation ladder. */
export function attributionSection(runs: readonly RunRecord[]): string {
  const blocks = runs.flatMap((run) => {
    const p50 = attribution(run.cases, 'p50');
    if (!p50.length) return [];
    const p99 = attribution(run.cases, 'p99');
    const mem = attribution(run.cases, 'memory');
    const find = (ws: Waterfall[], w: Waterfall) => ws.find((x) => x.dataplane === w.dataplane && x.workload === w.workload);
    // A rung's own waterfall is the first rows of the one above it: shown there, not again.
    const shown = p50.filter(
      (w) => !p50.some((o) => o !== w && o.workload === w.workload && o.steps.length > w.steps.length && o.steps[w.steps.length - 1]?.to === w.dataplane),
    );
    return [`${runs.length > 1 ? runHead(run) : ''}${shown.map((w) => waterfallHtml(w, find(p99, w), find(mem, w))).join('\n')}`];
  });
  if (!blocks.length) return '';
  return `<section id="attribution">
<h2>Where the time and memory go</h2>
<p class="note">Each dataplane's added latency over the baseline, split into components by ablation variants measured in the same run (<code>kind[key=value]</code>, docs/attribution.md): every step is the paired difference between two cases one component apart, so a component is inferred, not measured on its own. Rungs the run did not measure merge into the next step; a rung's own waterfall is the first rows of the one above it. Intervals are 95 % bootstrap intervals over paired repeats. Below each, what <em>is</em> measured per component: its CPU time per request.</p>
${blocks.join('\n')}
</section>`;
}

export const ATTRIBUTION_CSS = `
table.waterfall{margin:.8rem 0 .2rem;width:100%}
table.waterfall th[scope=row]{min-width:18em}
.wf-pair{font-weight:400;font-size:.75rem;color:var(--muted)}
td.wf-basis{font-size:.78rem}
ol.wf-notes{font-size:.8rem;color:var(--warn);margin:.2rem 0;padding-left:1.4rem}
table.waterfall caption{text-align:left;font-weight:600;padding:.2rem 0}
table.waterfall th[scope=row]{text-align:left;font-weight:500}
table.waterfall tr.wf-total th,table.waterfall tr.wf-total td{border-top:2px solid var(--muted);font-weight:600}
.wf-track{width:8rem;background:var(--soft);height:.8rem}
.wf-bar{height:.8rem;background:#0969da}
.wf-bar.wf-all{background:#57606a}
.wf-bar.wf-neg{background:#2da44e}
.wf-caveat{color:var(--warn)}
p.wf-disagree{color:var(--bad)}
`.trim();
