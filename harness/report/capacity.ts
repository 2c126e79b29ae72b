// The report's "Capacity" section, for runs made with `run --find-capacity`: per dataplane ×
// workload the highest offered rate that met the objective, every step of the search, and the
// saturation chart (p50 and p99 response time against offered rate, log scale, one line per
// search, the objective as a rule). Lays out run.json's `capacity`; computes nothing.
import type { CapacitySearch, CapacityStep, RunRecord } from '../results/types.js';
import { renderChart, type RenderedChart } from './charts.js';
import { DASH, esc, int, jsonForScript, pct, qps, us } from './format.js';

export const CAPACITY_CHART = 'capacity-saturation';

interface SearchView {
  run: RunRecord;
  c: CapacitySearch;
  label: string;
}

export interface SaturationRow {
  search: string;
  percentile: string;
  offeredRps: number;
  ms: number;
  status: string;
}

function views(runs: readonly RunRecord[]): SearchView[] {
  const multi = runs.filter((r) => r.capacity?.length).length > 1;
  return runs.flatMap((run) => (run.capacity ?? []).map((c) => ({ run, c, label: `${c.dataplane} · ${c.workload}${multi ? ` · ${run.runId}` : ''}` })));
}

/** The objective's percentile and p50/p99, the lines the chart draws. */
const percentilesOf = (c: CapacitySearch): ('p50' | 'p99' | 'objective')[] =>
  c.objective.metric === 'p50' || c.objective.metric === 'p99' ? ['p50', 'p99'] : ['p50', 'p99', 'objective'];

/** Per rate the attempt that decided it: the one that met the objective, else the last. */
export function decidingSteps(steps: readonly CapacityStep[]): CapacityStep[] {
  const byRate = new Map<number, CapacityStep>();
  for (const s of steps) if (byRate.get(s.offeredRps)?.status !== 'meets') byRate.set(s.offeredRps, s);
  return [...byRate.values()].sort((a, b) => a.offeredRps - b.offeredRps);
}

/** One row per rate × percentile with a latency (log scale: only > 0), in offered-rate order. */
export function saturationRows(vs: readonly SearchView[]): SaturationRow[] {
  const rows: SaturationRow[] = [];
  for (const v of vs) {
    const steps = decidingSteps(v.c.steps);
    for (const p of percentilesOf(v.c))
      for (const s of steps) {
        const val = p === 'p50' ? s.p50Us : p === 'p99' ? s.p99Us : s.metricUs;
        const name = p === 'objective' ? v.c.objective.metric : p;
        if (typeof val === 'number' && val > 0) rows.push({ search: v.label, percentile: name, offeredRps: s.offeredRps, ms: val / 1000, status: s.status });
      }
  }
  return rows;
}

export function saturationSpec(rows: SaturationRow[], labels: string[], rules: { ms: number; label: string }[]): Record<string, unknown> {
  const percentiles = [...new Set(rows.map((r) => r.percentile))].sort();
  const x = { field: 'offeredRps', type: 'quantitative', title: 'offered rate (requests/s)' };
  const y = { field: 'ms', type: 'quantitative', title: 'response time (ms, log scale)', scale: { type: 'log' } };
  const color = { field: 'search', type: 'nominal', title: 'search', scale: { domain: labels, scheme: labels.length <= 10 ? 'tableau10' : 'tableau20' } };
  const top = { orient: 'top', direction: 'horizontal', columns: 3, titleOrient: 'left' };
  return {
    width: 560,
    height: 320,
    layer: [
      {
        data: { values: rows },
        mark: { type: 'line' },
        encoding: {
          x,
          y,
          color,
          strokeDash: {
            field: 'percentile',
            type: 'nominal',
            title: 'percentile',
            legend: top,
            scale: { domain: percentiles, range: percentiles.map((p) => (p === 'p50' ? [5, 3] : p === 'p99' ? [1, 0] : [1, 2])) },
          },
        },
      },
      {
        data: { values: rows },
        mark: { type: 'point', filled: true, size: 45, opacity: 1 },
        encoding: {
          x,
          y,
          color,
          shape: {
            field: 'status',
            type: 'nominal',
            title: 'step',
            legend: top,
            scale: { domain: ['meets', 'misses', 'invalid'], range: ['circle', 'square', 'cross'] },
          },
        },
      },
      {
        data: { values: rules },
        mark: { type: 'rule', color: '#cf222e', strokeWidth: 1.5, strokeDash: [6, 4] },
        encoding: { y: { field: 'ms', type: 'quantitative' } },
      },
      {
        data: { values: rules },
        mark: { type: 'text', align: 'left', baseline: 'bottom', dx: 4, dy: -3, color: '#cf222e', fontSize: 11 },
        encoding: { y: { field: 'ms', type: 'quantitative' }, x: { value: 0 }, text: { field: 'label' } },
      },
    ],
  };
}

/** The saturation chart, or undefined when no search measured a step with a latency. */
export async function capacityCharts(runs: readonly RunRecord[]): Promise<RenderedChart[]> {
  const vs = views(runs);
  const rows = saturationRows(vs);
  if (!rows.length) return [];
  const labels = vs.map((v) => v.label).filter((l) => rows.some((r) => r.search === l));
  const rules = [
    ...new Map(
      vs.map((v) => [v.c.objective.maxUs, { ms: v.c.objective.maxUs / 1000, label: `objective ${v.c.objective.metric} ≤ ${msText(v.c.objective.maxUs)}` }]),
    ).values(),
  ];
  return [
    await renderChart(
      CAPACITY_CHART,
      'Saturation: response time against offered rate',
      'Each point is one rate of a capacity search (open-loop load at a fixed rate; latency from the intended send time, so queueing shows), the attempt that decided it; its shape says whether it met the objective, missed it, or was invalid. Solid: p99; dashed: p50; log scale. The red rule is the objective.',
      saturationSpec(rows, labels, rules),
    ),
  ];
}

const msText = (x: number) => (x >= 1000 ? `${Math.round(x) / 1000} ms` : `${x} µs`);
// The page's badge colours: ok green, degraded amber, failed red.
const STATUS_CLASS: Record<string, string> = {
  found: 'ok',
  none: 'degraded',
  failed: 'failed',
  interrupted: 'failed',
  meets: 'ok',
  misses: 'degraded',
  invalid: 'failed',
};
const badge = (s: string) => `<span class="badge status-${STATUS_CLASS[s] ?? 'failed'}">${esc(s)}</span>`;

function foundCell(c: CapacitySearch): string {
  if (c.foundRps === null) return `<strong>none</strong>`;
  const atLeast = c.capped
    ? ' <span class="meta">(at least: the cap)</span>'
    : c.lowerBound
      ? ' <span class="meta">(at least: the load generator’s limit)</span>'
      : '';
  return `<strong>${int(c.foundRps)}</strong>${atLeast}`;
}

function stepRow(s: CapacityStep): string {
  const cell = (h: string, cls = 'num') => `<td class="${cls}">${h}</td>`;
  return `<tr>${[
    cell(int(s.offeredRps)),
    cell(qps(s.achievedRps)),
    cell(us(s.p50Us)),
    cell(us(s.p99Us)),
    cell(us(s.maxUs)),
    cell(int(s.errors)),
    cell(s.generatorCpu !== undefined ? pct(s.generatorCpu * 100) : DASH),
    cell(badge(s.status), ''),
    cell(esc(s.reasons.join('; ') || DASH), 'reasons'),
  ].join('')}</tr>`;
}

function searchDetails(v: SearchView): string {
  const steps = v.c.steps;
  const idle = v.c.hostIdleBefore !== undefined ? `; the host was ${pct(v.c.hostIdleBefore * 100)} % idle before it` : '';
  return `<details><summary><code>${esc(v.label)}</code>: ${steps.length} step${steps.length === 1 ? '' : 's'} in search order${idle}</summary>
<div class="scroll"><table>
<thead><tr><th class="num">offered rps</th><th class="num">achieved rps</th><th class="num">p50 µs</th><th class="num">p99 µs</th><th class="num">max µs</th><th class="num">errors</th><th class="num" title="the load generator's CPU over its run, % of the CPUs it may use">generator CPU %</th><th>status</th><th>reasons</th></tr></thead>
<tbody>
${steps.map(stepRow).join('\n')}
</tbody>
</table></div></details>`;
}

/** The section (empty when no run searched), with the chart from `capacityCharts`. */
export function capacitySection(runs: readonly RunRecord[], chart: RenderedChart | undefined): string {
  const vs = views(runs);
  if (!vs.length) return '';
  const first = vs[0]!.c;
  const rows = vs.map(
    (v) =>
      `<tr><th scope="row"><code>${esc(v.c.dataplane)}</code></th><td>${esc(v.c.workload)}${v.label.includes(v.run.runId) ? ` <span class="meta">${esc(v.run.runId)}</span>` : ''}</td><td><code>${esc(v.c.objective.text)}</code></td><td class="num">${foundCell(v.c)}</td><td>${badge(v.c.outcome)}</td><td class="num">${v.c.steps.length}</td><td>${esc(v.c.why)}</td></tr>`,
  );
  const fig = chart
    ? `<figure class="chart" id="chart-${esc(chart.name)}">
<figcaption><strong>${esc(chart.title)}.</strong> ${esc(chart.caption)} <span class="file">Also as <code>${esc(chart.name)}.svg</code>.</span></figcaption>
${chart.svg}
<script type="application/json" class="vega-spec" data-chart="${esc(chart.name)}">${jsonForScript(chart.spec)}</script>
</figure>`
    : '<p class="note">No saturation chart: no step of any search measured a latency.</p>';
  return `<section id="capacity">
<h2>Capacity</h2>
<div class="scroll"><table class="capacity">
<thead><tr><th>dataplane</th><th>workload</th><th>objective</th><th class="num">highest rate meeting it (rps)</th><th>outcome</th><th class="num">steps</th><th>how the search ended</th></tr></thead>
<tbody>
${rows.join('\n')}
</tbody>
</table></div>
<p class="note">Found by <code>meshbench run --find-capacity</code>: from the workload's rate the offered rate doubles until a step misses the objective (or halves until one meets it), then bisects to within ${pct(first.limits.tolerance * 100)} %. Every step is ${esc(first.stepWarmupS)} s of warm-up and ${esc(first.stepDurationS)} s measured at a fixed rate on one lab built per search: ${esc(first.engineNote)}; ${first.connections} connections, ${esc(first.arrival)} arrivals. A step whose load generator was at least ${pct(first.limits.maxGeneratorCpu * 100)} % busy or whose achieved rate fell short is <em>invalid</em> (not a measurement of the dataplane) and counts as missing; a rate that did not meet was measured ${first.limits.retriesOnMiss + 1} times and misses only when every attempt did; “none” means no rate met the objective, even the lowest tried.</p>
${fig}
${vs.map(searchDetails).join('\n')}
</section>`;
}
