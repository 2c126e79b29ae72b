// The HTML report: reports/<scenario>/index.html from one or more run.json files of one scenario,
// plus one static SVG per chart beside it.
//
// The page is self-contained and static: CSS inline, charts inlined as SVG rendered at build time
// (each chart's compiled Vega spec is embedded as <script type="application/json" class="vega-spec">
// for reuse, never executed), no fonts, scripts, styles or images from anywhere else, and a
// Content-Security-Policy that forbids loading any. It is deterministic: the same run files give
// byte-identical output (no render time, ordering fixed by run start/id, case index and plain
// string order of roles and keys).
//
// It opens with the dataplanes side by side (overview.ts), then the claims (claims.ts), then one
// section per kind of figure; every figure comes from analysis/ (figures.ts, metrics.ts) and this
// file only lays them out. Every stand-in is named with its version and config size, its figures
// never presented as the real component's (docs/results.md, "The report").
//
// Over 500 lines by choice: one function per section of the page, sharing the table helpers below.
import { existsSync, unlinkSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { inputError } from '../errors.js';
import { makeDir, readRun, writeError, writeFileAtomic } from '../results/write.js';
import type { CaseResult, DataplanePath, Environment, Histogram, Provenance, RunRecord } from '../results/types.js';
import {
  PERCENTILES,
  cdfSpec,
  percentileSpec,
  renderChart,
  stackedRoleSpec,
  type CdfRow,
  type PercentileRow,
  type RenderedChart,
  type RoleRow,
} from './charts.js';
import { BASE_CSS, DASH, byString, esc, gibOf, int, jsonForScript, kibOf, mibOf, ms, pct, qps, secs, signedUs, us } from './format.js';
import { edgeState, renderFlowMap } from './flowmap.js';
import { CLAIMS_CSS, claimsSection } from './claims.js';
import { ATTRIBUTION_CSS, attributionSection } from './attribution.js';
import { caseAddedOverBaseline, cpuPercent, notOkReason } from '../analysis/figures.js';
import { metricOf } from '../analysis/metrics.js';
import { functionalOnlyNote, kernelsSection } from './kernels.js';
import { OVERVIEW_CSS, overviewSection } from './overview.js';
import { CAPACITY_CHART, capacityCharts, capacitySection } from './capacity.js';

export interface ReportOptions {
  /** Reports go to `<reportsRoot>/<scenario>/`; default `reports`. */
  reportsRoot?: string;
  /** Write into this directory instead (takes precedence over reportsRoot). */
  outDir?: string;
}

export interface ReportFiles {
  /** Absolute path of index.html. */
  html: string;
  /** Absolute paths of the chart SVGs, in page order. */
  svgs: string[];
}

/** Every chart the report may write; files of charts not drawn this time are removed (no stale charts). */
export const CHART_NAMES = [
  'latency-percentiles',
  'latency-cdf',
  'memory-pss-by-role',
  'cpu-by-role',
  'memory-pss-per-pod',
  'memory-pss-per-node',
  'cpu-per-pod',
  'cpu-per-node',
  'startup-timeline',
  CAPACITY_CHART,
] as const;

/** At most this many points per case in the CDF chart (every point kept is exact; ones between are dropped). */
const CDF_MAX_POINTS = 300;

interface RunInput {
  file: string;
  record: RunRecord;
}

interface CaseView {
  run: RunRecord;
  c: CaseResult;
  /** Unique label used in tables and chart legends. */
  label: string;
}

interface Ctx {
  runs: RunRecord[];
  cases: CaseView[];
  multiRun: boolean;
}

/** Read the run files, render the report and write it. Returns absolute paths. */
export async function writeReport(files: string[], opts: ReportOptions = {}): Promise<ReportFiles> {
  if (files.length === 0) throw inputError('no run.json given', [], 'pass one or more results/<scenario>/<run-id>/run.json files');
  const inputs: RunInput[] = files.map((file) => ({ file, record: checkRecord(file, readRun(file)) }));
  const scenario = sameScenario(inputs);
  const outDir = opts.outDir !== undefined ? resolve(opts.outDir) : resolve(opts.reportsRoot ?? 'reports', safeDirName(scenario, inputs));
  const { html, charts } = await renderReport(inputs.map((i) => i.record));

  const hint = 'choose a writable directory with --reports <dir> (or --out <dir>), or free space on that file system';
  try {
    makeDir(outDir);
  } catch (err) {
    throw writeError('the report directory', outDir, err, hint);
  }
  const svgs: string[] = [];
  for (const ch of charts) {
    const f = join(outDir, `${ch.name}.svg`);
    writeTextAtomic(f, ch.svg + '\n', hint);
    svgs.push(f);
  }
  for (const name of CHART_NAMES) {
    const f = join(outDir, `${name}.svg`);
    try {
      if (!svgs.includes(f) && existsSync(f)) unlinkSync(f);
    } catch (err) {
      throw writeError('the report directory', outDir, err, hint);
    }
  }
  const htmlFile = join(outDir, 'index.html');
  writeTextAtomic(htmlFile, html, hint);
  return { html: htmlFile, svgs };
}

/** Render the page and its charts from run records of one scenario (no file system access). */
export async function renderReport(records: RunRecord[]): Promise<{ html: string; charts: RenderedChart[] }> {
  const ctx = context(records);
  const charts = [...(await buildCharts(ctx)), ...(await capacityCharts(ctx.runs))];
  const byName = new Map(charts.map((c) => [c.name, c]));
  const scenario = ctx.runs[0]!.scenario;

  const body = [
    headerSection(ctx),
    kernelsSection(ctx.runs),
    overviewSection(ctx.runs),
    claimsSection(ctx.runs),
    attributionSection(ctx.runs),
    latencySection(ctx, byName),
    capacitySection(ctx.runs, byName.get(CAPACITY_CHART)),
    resourcesSection(ctx, byName),
    kernelSection(ctx),
    startupSection(ctx, byName),
    pathSection(ctx),
    flowsSection(ctx),
    provenanceSection(ctx),
    environmentSection(ctx),
    methodSection(ctx),
    `<footer>Generated by meshbench from run record${ctx.runs.length > 1 ? 's' : ''} ${ctx.runs.map((r) => `<code>${esc(r.runId)}</code>`).join(', ')}. Figures are those recorded in ${ctx.runs.length > 1 ? 'these run records' : 'this run record'}, taken on the host${ctx.runs.length > 1 ? 's' : ''} described under “Environment”.</footer>`,
  ].join('\n');

  const html = `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<meta name="generator" content="meshbench">
<title>meshbench · ${esc(scenario)}</title>
<style>${CSS}
${OVERVIEW_CSS}
${CLAIMS_CSS}
${ATTRIBUTION_CSS}</style>
</head>
<body>
<main>
${body}
</main>
</body>
</html>
`;
  return { html, charts };
}

// ---------------------------------------------------------------------------------------------
// Input

function checkRecord(file: string, r: RunRecord): RunRecord {
  if (typeof r.scenario !== 'string' || r.scenario === '') throw inputError(`${file}:1: run record has no scenario name`);
  if (typeof r.runId !== 'string' || r.runId === '') throw inputError(`${file}:1: run record has no runId`);
  if (!Array.isArray(r.cases)) throw inputError(`${file}:1: run record has no cases array`);
  return r;
}

function sameScenario(inputs: RunInput[]): string {
  const scenarios = [...new Set(inputs.map((i) => i.record.scenario))];
  if (scenarios.length > 1) {
    const details = inputs.map((i) => `${i.file}: scenario ${JSON.stringify(i.record.scenario)}`);
    throw inputError(
      `cannot combine runs of different scenarios in one report: ${inputs.map((i) => `${i.file} (${i.record.scenario})`).join(', ')}`,
      details,
      'give `meshbench report` run.json files of one scenario, or use `meshbench compare` for two runs of different scenarios',
    );
  }
  const seen = new Map<string, string>();
  for (const i of inputs) {
    const prev = seen.get(i.record.runId);
    if (prev !== undefined) throw inputError(`run ${i.record.runId} given twice: ${prev} and ${i.file}`, [], 'give each run.json once');
    seen.set(i.record.runId, i.file);
  }
  return scenarios[0]!;
}

function safeDirName(scenario: string, inputs: RunInput[]): string {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(scenario) || scenario.includes('..')) {
    throw inputError(
      `${inputs[0]!.file}:1: scenario name ${JSON.stringify(scenario)} cannot be used as a directory name`,
      [],
      'pass --out <dir> to choose where the report goes',
    );
  }
  return scenario;
}

function writeTextAtomic(file: string, text: string, hint: string): void {
  try {
    writeFileAtomic(file, text, 'the report file');
  } catch (err) {
    throw writeError('the report file', file, (err as Error).cause ?? err, hint);
  }
}

function context(records: RunRecord[]): Ctx {
  if (records.length === 0) throw inputError('no run records given');
  const runs = [...records].sort((a, b) => byString(a.startedAt ?? '', b.startedAt ?? '') || byString(a.runId, b.runId));
  const multiRun = runs.length > 1;
  const cases: CaseView[] = [];
  const used = new Set<string>();
  for (const run of runs) {
    const ordered = run.cases.map((c, i) => ({ c, i })).sort((a, b) => (a.c.index ?? a.i) - (b.c.index ?? b.i) || a.i - b.i);
    for (const { c } of ordered) {
      let label = `${c.dataplane} · ${c.workload} · r${c.repeat}`;
      if (multiRun) label = `${label} · ${run.runId}`;
      if (used.has(label)) label = `${label} · case ${c.index}`;
      used.add(label);
      cases.push({ run, c, label });
    }
  }
  return { runs, cases, multiRun };
}

// ---------------------------------------------------------------------------------------------
// Charts

/**
 * Only ok cases are results: a degraded or failed case's figures (latency over the survivors of
 * a broken measurement) stay in its record for diagnosis but never enter a chart or a figures
 * table; the report lists such cases apart, with their reasons.
 */
const isResult = (v: CaseView) => v.c.status === 'ok';

async function buildCharts(ctx: Ctx): Promise<RenderedChart[]> {
  const charts: RenderedChart[] = [];
  const withLatency = ctx.cases.filter((v) => isResult(v) && v.c.latencyUs && PERCENTILES.some(([k]) => Number.isFinite(v.c.latencyUs![k])));
  if (withLatency.length > 0) {
    const labels = withLatency.map((v) => v.label);
    const rows: PercentileRow[] = [];
    for (const v of withLatency) {
      for (const [k, name] of PERCENTILES) {
        const val = v.c.latencyUs![k];
        if (Number.isFinite(val)) rows.push({ case: v.label, percentile: name, us: val });
      }
    }
    charts.push(
      await renderChart(
        'latency-percentiles',
        'Latency percentiles',
        'One line per case with latency figures; x is the percentile, y the latency in µs. Only ok cases: failed, degraded and interrupted cases are left out.',
        percentileSpec(rows, labels),
      ),
    );
  }

  const cdf: CdfRow[] = [];
  const cdfLabels: string[] = [];
  for (const v of withLatency) {
    const pts = cdfPoints(v.c.latencyUs!.histogram, v.label);
    if (pts.length > 0) {
      cdf.push(...pts);
      cdfLabels.push(v.label);
    }
  }
  if (cdf.length > 0) {
    const res = [...new Set(withLatency.map((v) => v.c.latencyUs!.histogram?.resolutionUs).filter((r) => Number.isFinite(r)))];
    charts.push(
      await renderChart(
        'latency-cdf',
        'Latency distribution (CDF)',
        `Cumulative fraction of requests at or below each latency, from each case's latency histogram (bucket width ${res.map((r) => `${r} µs`).join(', ')}; each point is the end of a bucket).`,
        cdfSpec(cdf, cdfLabels),
      ),
    );
  }

  const withRes = ctx.cases.filter((v) => isResult(v) && v.c.resources && Object.keys(v.c.resources.byRole ?? {}).length > 0);
  if (withRes.length > 0) {
    const roles = [...new Set(withRes.flatMap((v) => Object.keys(v.c.resources!.byRole)))].sort(byString);
    const labels = withRes.map((v) => v.label);
    const mem: RoleRow[] = [];
    const cpu: RoleRow[] = [];
    for (const v of withRes) {
      const r = v.c.resources!;
      for (const role of Object.keys(r.byRole).sort(byString)) {
        const rr = r.byRole[role]!;
        if (Number.isFinite(rr.pssBytes)) mem.push({ case: v.label, role, value: round(rr.pssBytes / 1048576, 3) });
        const c = cpuPercent(rr.cpuSeconds, r.windowS);
        if (c !== undefined) cpu.push({ case: v.label, role, value: round(c, 3) });
      }
    }
    if (mem.length > 0) {
      charts.push(
        await renderChart(
          'memory-pss-by-role',
          'Memory (PSS) by role',
          'Proportional set size of every lab process, summed per role, stacked per case (MiB). Shared pages are split among the processes that map them.',
          stackedRoleSpec(mem, labels, roles, 'PSS (MiB)'),
        ),
      );
    }
    if (cpu.length > 0) {
      charts.push(
        await renderChart(
          'cpu-by-role',
          'CPU by role',
          'User + system CPU of every lab process, summed per role, as a percentage of one CPU over the measured window, stacked per case. Kernel time no process owns (softirq) is not included; see “Kernel”.',
          stackedRoleSpec(cpu, labels, roles, 'CPU (% of one CPU over the window)'),
        ),
      );
    }
  }

  // The same per meshed pod and per node (resources.normalized), where a sidecar's cost and a
  // node proxy's compare on one scale.
  const withNorm = withRes.filter((v) => v.c.resources!.normalized);
  for (const [scope, unit] of [
    ['perPod', 'pod'],
    ['perNode', 'node'],
  ] as const) {
    if (!withNorm.length) break;
    const roles = [...new Set(withNorm.flatMap((v) => Object.keys(v.c.resources!.normalized![scope])))].sort(byString);
    const labels = withNorm.map((v) => v.label);
    const mem: RoleRow[] = [];
    const cpu: RoleRow[] = [];
    for (const v of withNorm) {
      const r = v.c.resources!;
      for (const role of Object.keys(r.normalized![scope]).sort(byString)) {
        const x = r.normalized![scope][role]!;
        if (Number.isFinite(x.pssBytes)) mem.push({ case: v.label, role, value: round(x.pssBytes / 1048576, 3) });
        const c = cpuPercent(x.cpuSeconds, r.windowS);
        if (c !== undefined) cpu.push({ case: v.label, role, value: round(c, 4) });
      }
    }
    const each = `each role's total divided by the case's ${unit === 'pod' ? 'meshed pods' : 'nodes'}`;
    if (mem.length)
      charts.push(
        await renderChart(
          `memory-pss-per-${unit}`,
          `Memory (PSS) per ${unit}`,
          `PSS in MiB, ${each}, stacked by role.`,
          stackedRoleSpec(mem, labels, roles, `PSS per ${unit} (MiB)`),
        ),
      );
    if (cpu.length)
      charts.push(
        await renderChart(
          `cpu-per-${unit}`,
          `CPU per ${unit}`,
          `User + system CPU as a percentage of one CPU over the window, ${each}, stacked by role.`,
          stackedRoleSpec(cpu, labels, roles, `CPU per ${unit} (% of one CPU)`),
        ),
      );
  }

  // Start-up: the slowest pod's path, phase after phase (namespace, certificate, capture, proxy, app).
  const phaseRows: RoleRow[] = [];
  const phaseLabels: string[] = [];
  const phaseNames: string[] = [];
  for (const v of ctx.cases.filter(isResult)) {
    const s = v.c.startup;
    const slowest = Object.entries(s?.podReadyMs ?? {})
      .filter(([, t]) => Number.isFinite(t))
      .sort((a, b) => b[1] - a[1] || byString(a[0], b[0]))[0];
    const phases = slowest && s?.phases?.[slowest[0]];
    if (!phases) continue;
    phaseLabels.push(v.label);
    for (const [k, ms] of Object.entries(phases)) {
      if (!Number.isFinite(ms)) continue;
      const name = k.replace(/Ms$/, '');
      if (!phaseNames.includes(name)) phaseNames.push(name);
      phaseRows.push({ case: v.label, role: name, value: ms });
    }
  }
  // In the order a pod goes through them (run.ts podStartup), names not known here last.
  const PHASE_ORDER = ['namespace', 'certificate', 'capture', 'proxy', 'app'];
  const rank = (p: string) => (PHASE_ORDER.includes(p) ? PHASE_ORDER.indexOf(p) : PHASE_ORDER.length);
  phaseNames.sort((a, b) => rank(a) - rank(b) || byString(a, b));
  if (phaseRows.length > 0) {
    charts.push(
      await renderChart(
        'startup-timeline',
        'Start-up of the slowest pod',
        "Each case's slowest pod from the start of the case to ready, phase after phase as the run measured them (ms): namespace (the topology build), then what the dataplane adds (certificate, capture rules, proxy start), then the app until it listens.",
        stackedRoleSpec(phaseRows, phaseLabels, phaseNames, 'time from the start of the case (ms)', 'phase'),
      ),
    );
  }
  return charts;
}

function round(n: number, decimals: number): number {
  const f = 10 ** decimals;
  return Math.round(n * f) / f;
}

/** Cumulative fraction at the end of every bucket (plus 0 at the first bucket's start), thinned to CDF_MAX_POINTS. */
export function cdfPoints(h: Histogram | undefined, label: string): CdfRow[] {
  if (!h || !Array.isArray(h.buckets)) return [];
  const buckets = h.buckets
    .filter((b) => Array.isArray(b) && Number.isFinite(b[0]) && Number.isFinite(b[1]) && b[1] > 0)
    .slice()
    .sort((a, b) => a[0] - b[0]);
  const total = buckets.reduce((s, b) => s + b[1], 0);
  if (total <= 0) return [];
  const res = Number.isFinite(h.resolutionUs) && h.resolutionUs > 0 ? h.resolutionUs : 1;
  const pts: CdfRow[] = [];
  if (buckets[0]![0] > 0) pts.push({ case: label, us: buckets[0]![0], fraction: 0 });
  let cum = 0;
  for (const [start, count] of buckets) {
    cum += count;
    pts.push({ case: label, us: start + res, fraction: round(cum / total, 6) });
  }
  if (pts.length <= CDF_MAX_POINTS) return pts;
  const step = Math.ceil(pts.length / CDF_MAX_POINTS);
  return pts.filter((_, i) => i % step === 0 || i === pts.length - 1);
}

function figure(ch: RenderedChart | undefined, missing: string): string {
  if (!ch) return `<p class="note">${esc(missing)}</p>`;
  return `<figure class="chart" id="chart-${esc(ch.name)}">
<figcaption><strong>${esc(ch.title)}.</strong> ${esc(ch.caption)} <span class="file">Also as <code>${esc(ch.name)}.svg</code>.</span></figcaption>
${ch.svg}
<script type="application/json" class="vega-spec" data-chart="${esc(ch.name)}">${jsonForScript(ch.spec)}</script>
</figure>`;
}

// ---------------------------------------------------------------------------------------------
// Sections

const badge = (status: string) => `<span class="badge status-${esc(status.replace(/[^a-z-]/gi, ''))}">${esc(status)}</span>`;

function table(head: string[], rows: string[], cls = ''): string {
  return `<div class="scroll"><table${cls ? ` class="${cls}"` : ''}>
<thead><tr>${head.join('')}</tr></thead>
<tbody>
${rows.join('\n')}
</tbody>
</table></div>`;
}

const th = (text: string, num = false, title?: string) => `<th${num ? ' class="num"' : ''}${title ? ` title="${esc(title)}"` : ''}>${text}</th>`;
const td = (html: string, num = false, cls = '') => `<td${num || cls ? ` class="${[num ? 'num' : '', cls].filter(Boolean).join(' ')}"` : ''}>${html}</td>`;

function caseCells(ctx: Ctx, v: CaseView): string[] {
  const cells = [td(esc(v.c.dataplane)), td(esc(v.c.workload)), td(esc(v.c.repeat), true)];
  if (ctx.multiRun) cells.unshift(td(`<code>${esc(v.run.runId)}</code>`));
  return cells;
}

function caseHead(ctx: Ctx): string[] {
  const h = [th('dataplane'), th('workload'), th('repeat', true)];
  if (ctx.multiRun) h.unshift(th('run'));
  return h;
}

function standIns(ctx: Ctx): { sentence: string; short: string; details: string[] }[] {
  const groups = new Map<string, { p: Provenance; uses: string[] }>();
  for (const v of ctx.cases) {
    for (const role of Object.keys(v.c.provenance ?? {}).sort(byString)) {
      const p = v.c.provenance[role]!;
      if (!p?.standInFor) continue;
      const key = JSON.stringify([p.engine, p.standInFor, p.version ?? '', p.configBytes ?? null]);
      const g = groups.get(key) ?? { p, uses: [] };
      g.uses.push(`role ${role} in ${v.label}`);
      groups.set(key, g);
    }
  }
  return [...groups.values()].map(({ p, uses }) => ({
    sentence: standInSentence(p),
    short: `${esc(p.engine)} for ${esc(p.standInFor)}`,
    details: [
      `version ${p.version ?? 'not recorded'}`,
      `config ${p.configBytes !== undefined ? `${int(p.configBytes)} bytes` : 'size not recorded'}`,
      `used as ${uses.join('; ')}`,
    ],
  }));
}

/** "<engine> standing in for <standInFor> — figures are the stand-in's, not <standInFor>'s" (escaped HTML). */
function standInSentence(p: Provenance): string {
  return `${esc(p.engine)} standing in for ${esc(p.standInFor)} — figures are the stand-in's, not ${esc(p.standInFor)}'s`;
}

function headerSection(ctx: Ctx): string {
  const scenario = ctx.runs[0]!.scenario;
  const descriptions = [...new Set(ctx.runs.map((r) => r.description).filter((d): d is string => !!d))];
  const counts = new Map<string, number>();
  for (const v of ctx.cases) counts.set(v.c.status, (counts.get(v.c.status) ?? 0) + 1);
  const countText = [...counts.entries()]
    .sort((a, b) => byString(a[0], b[0]))
    .map(([s, n]) => `${n} ${esc(s)}`)
    .join(', ');
  const runs = ctx.runs
    .map((r) => {
      const opts = r.options
        ? `dataplanes ${esc((r.options.dataplanes ?? []).join(', ') || DASH)}; repeats ${esc(r.options.repeats ?? DASH)}${r.options.quick ? '; quick' : ''}${r.options.durationS ? `; duration ${esc(r.options.durationS)} s` : ''}`
        : '';
      return `<div class="run">
<p><span class="label">Run</span> <code>${esc(r.runId)}</code> ${badge(r.status ?? 'unknown')}</p>
<p class="meta">started ${esc(r.startedAt ?? DASH)} · finished ${esc(r.finishedAt ?? 'not recorded')}${opts ? ` · ${opts}` : ''}${r.scenarioFile ? ` · scenario file <code>${esc(r.scenarioFile)}</code>` : ''}</p>
${r.error ? `<p class="run-error"><strong>Run error:</strong> ${esc(r.error)}</p>` : ''}
</div>`;
    })
    .join('\n');
  const si = standIns(ctx);
  // One line per distinct sentence, so the comparison below stays in view; versions, config sizes
  // and uses one click away (and in “Provenance”).
  const standInBox = si.length
    ? `<div class="standins" id="stand-ins">
<h2>Stand-ins</h2>
<ul>
${[...new Set(si.map((s) => s.sentence))].map((s) => `<li><strong class="standin-sentence">${s}.</strong></li>`).join('\n')}
</ul>
<details><summary>Versions, config sizes and where each is used</summary>
<ul>
${si.map((s) => `<li>${s.short}: <span class="meta">${s.details.map(esc).join(' · ')}</span></li>`).join('\n')}
</ul>
</details>
</div>`
    : '';
  return `<header>
<p class="kicker">meshbench report</p>
<h1>Scenario <code>${esc(scenario)}</code></h1>
${descriptions.map((d) => `<p class="description">${esc(d)}</p>`).join('\n')}
<p class="meta">${ctx.runs.length} run${ctx.runs.length > 1 ? 's' : ''}, ${ctx.cases.length} case${ctx.cases.length === 1 ? '' : 's'}${countText ? ` (${countText})` : ''}.</p>
${runs}
${functionalOnlyNote(ctx.runs)}
${standInBox}
</header>`;
}

/** This case minus its run's baseline case of the same workload and repeat (analysis/figures.ts). */
const addedOf = (v: CaseView, metric: 'p50' | 'p99') => caseAddedOverBaseline(v.run.cases, v.c, metric);

/** An open-loop case (engine openloop): its latency is the response time, its service time is beside it. */
const isOpenLoopCase = (c: CaseResult) => c.load?.requested?.engine === 'openloop';

/** The load model in a few words, for a table that holds open-loop cases (docs/load.md). */
function modelLabel(c: CaseResult): string {
  const r = c.load?.requested;
  if (isOpenLoopCase(c)) return `open loop, ${r?.arrival ?? 'uniform'} arrivals, latency from intended send time`;
  if (typeof r?.qps === 'number') return 'fixed rate with catch-up (closed loop per connection), latency from actual send';
  return c.load?.model ?? DASH;
}

function latencySection(ctx: Ctx, charts: Map<string, RenderedChart>): string {
  const withLatency = ctx.cases.filter((v) => isResult(v) && v.c.latencyUs);
  const hasBaseline = withLatency.some((v) => addedOf(v, 'p50') !== undefined);
  // Only a report with open-loop cases gets the service-time columns: a fortio-only one reads as before.
  const openLoop = withLatency.some((v) => isOpenLoopCase(v.c));
  const fromIntended = 'open-loop cases: response time, from the intended send time; other cases: from the actual send';
  const serviceTitle = 'open-loop cases: service time, from the actual send time (what fortio measures)';
  const head = [
    ...caseHead(ctx),
    th('p50 µs', true, openLoop ? fromIntended : undefined),
    th('p90 µs', true, openLoop ? fromIntended : undefined),
    th('p99 µs', true, openLoop ? fromIntended : undefined),
    th('p99.9 µs', true, openLoop ? fromIntended : undefined),
    th('max µs', true, openLoop ? fromIntended : undefined),
    ...(openLoop ? [th('service p50 µs', true, serviceTitle), th('service p99 µs', true, serviceTitle), th('service max µs', true, serviceTitle)] : []),
    ...(hasBaseline
      ? [
          th('p50 added over baseline µs', true, 'this case minus the baseline case with the same workload and repeat in the same run'),
          th('p99 added over baseline µs', true, 'this case minus the baseline case with the same workload and repeat in the same run'),
        ]
      : []),
    th('requests', true),
    th('errors', true),
    th('qps requested', true),
    th('qps actual', true),
    th('load model'),
  ];
  const rows = withLatency.map((v) => {
    const L = v.c.latencyUs!;
    const a = v.c.load?.actual;
    return `<tr>${[
      ...caseCells(ctx, v),
      td(us(L.p50), true),
      td(us(L.p90), true),
      td(us(L.p99), true),
      td(us(L.p999), true),
      td(us(L.max), true),
      ...(openLoop ? [td(us(v.c.serviceTimeUs?.p50), true), td(us(v.c.serviceTimeUs?.p99), true), td(us(v.c.serviceTimeUs?.max), true)] : []),
      ...(hasBaseline ? [td(signedUs(addedOf(v, 'p50')), true, 'added'), td(signedUs(addedOf(v, 'p99')), true, 'added')] : []),
      td(int(a?.requests), true),
      td(int(a?.errors), true, a?.errors ? 'bad' : ''),
      td(requestedQps(v.c.load?.requested?.qps), true),
      td(qps(a?.qps), true),
      td(esc(openLoop ? modelLabel(v.c) : (v.c.load?.model ?? DASH)), false, 'model'),
    ].join('')}</tr>`;
  });
  const failed = ctx.cases.filter((v) => !isResult(v) || v.c.error);
  const failedList = failed.length
    ? `<h3 id="not-results">Cases that are not results</h3>
<p class="note">A case is a result only when it is <em>ok</em>: every lab process stayed up through the measured window, errors stayed within the scenario's bound and a fixed-rate load reached its rate. Failed, degraded and interrupted cases are left out of every table of figures, chart and verdict; what they measured is shown here for diagnosis only.</p>
<ul class="failed">
${failed.map((v) => `<li>${badge(v.c.status)} <strong>${esc(v.label)}</strong>${v.c.latencyUs ? '' : ' (no latency figures)'}: <span class="error-text">${esc(reasonsOf(v.c))}</span>${diagnosis(v.c)}</li>`).join('\n')}
</ul>`
    : '';
  return `<section id="latency">
<h2>Latency</h2>
${withLatency.length ? table(head, rows, 'latency') : '<p class="note">No case produced latency figures.</p>'}
<p class="note">Ok cases only${failed.some((v) => !isResult(v)) ? ' (the others are listed below with their reasons)' : ''}. All latencies in µs, 1 decimal. ${hasBaseline ? `“Added over baseline” is this case minus the <code>baseline</code> case with the same workload and repeat in the same run (${DASH} where there is none).` : 'No case has a <code>baseline</code> case with the same workload and repeat in its run to compare with, so there are no “added over baseline” columns.'} qps requested “max” means closed loop as fast as possible.</p>
${openLoop ? `<p class="note">Open-loop cases (load model “open loop”) send on a schedule fixed in advance whatever the responses, and time each request from its <em>intended</em> send time: p50…max are that response time, which counts the queueing a stall causes; “service” columns time the same requests from their actual send, as a fixed-rate-with-catch-up generator (fortio) does, which hides a stall behind the sends it delayed (coordinated omission). ${DASH} where a case has no service time.</p>` : ''}
${failedList}
${figure(charts.get('latency-percentiles'), 'No percentile chart: no case produced latency figures.')}
${figure(charts.get('latency-cdf'), 'No latency distribution chart: no case has a latency histogram.')}
</section>`;
}

const reasonsOf = notOkReason;

/** What a case that is not a result measured, said as diagnosis (never in a figures table). */
function diagnosis(c: CaseResult): string {
  const a = c.load?.actual;
  if (!c.latencyUs && !((a?.requests ?? 0) > 0)) return '';
  const parts = [`${int(a?.requests)} requests, ${int(a?.errors)} errors`, `${qps(a?.qps)} qps achieved of ${requestedQps(c.load?.requested?.qps)} requested`];
  if (c.latencyUs) parts.push(`p50 ${us(c.latencyUs.p50)} µs and p99 ${us(c.latencyUs.p99)} µs over the successful requests only`);
  return ` <span class="meta diagnosis">Measured, for diagnosis only: ${parts.join('; ')}.</span>`;
}

/** Requested rate as configured: an integer stays an integer (200), 'max' stays 'max'. */
function requestedQps(q: unknown): string {
  return typeof q === 'number' && Number.isInteger(q) ? int(q) : qps(q);
}

function resourcesSection(ctx: Ctx, charts: Map<string, RenderedChart>): string {
  const withRes = ctx.cases.filter((v) => isResult(v) && v.c.resources && Object.keys(v.c.resources.byRole ?? {}).length > 0);
  const head = [
    ...caseHead(ctx),
    th('window s', true),
    th('role'),
    th('processes', true),
    th('RSS MiB', true),
    th('PSS MiB', true),
    th('RSS MiB per process', true, 'RSS ÷ processes: for per-pod proxies (role proxy) this is the memory per pod, for node proxies per node'),
    th('PSS MiB per process', true),
    th('peak RSS MiB', true),
    th('CPU s', true),
    th('CPU % of window', true, 'CPU seconds ÷ window × 100: 100 % is one CPU busy for the whole window'),
  ];
  const rows: string[] = [];
  for (const v of withRes) {
    const r = v.c.resources!;
    const roles = Object.keys(r.byRole).sort(byString);
    const span = roles.length + 1;
    const caseCellsSpan = caseCells(ctx, v).map((c) => c.replace(/^<td/, `<td rowspan="${span}"`));
    const cpuPct = (s: number) => pct(cpuPercent(s, r.windowS));
    const total = { processes: 0, rssBytes: 0, pssBytes: 0, rssPeakBytes: 0, cpuSeconds: 0 };
    roles.forEach((role, i) => {
      const rr = r.byRole[role]!;
      total.processes += rr.processes ?? 0;
      total.rssBytes += rr.rssBytes ?? 0;
      total.pssBytes += rr.pssBytes ?? 0;
      total.rssPeakBytes += rr.rssPeakBytes ?? 0;
      total.cpuSeconds += rr.cpuSeconds ?? 0;
      const lead = i === 0 ? [...caseCellsSpan, td(secs(r.windowS), true).replace(/^<td/, `<td rowspan="${span}"`)] : [];
      rows.push(
        `<tr>${[
          ...lead,
          td(esc(role)),
          td(int(rr.processes), true),
          td(mibOf(rr.rssBytes), true),
          td(mibOf(rr.pssBytes), true),
          td(rr.processes ? mibOf(rr.rssBytes / rr.processes) : DASH, true),
          td(rr.processes ? mibOf(rr.pssBytes / rr.processes) : DASH, true),
          td(mibOf(rr.rssPeakBytes), true),
          td(secs(rr.cpuSeconds), true),
          td(cpuPct(rr.cpuSeconds), true),
        ].join('')}</tr>`,
      );
    });
    rows.push(
      `<tr class="total">${[
        td('all roles'),
        td(int(total.processes), true),
        td(mibOf(total.rssBytes), true),
        td(mibOf(total.pssBytes), true),
        td(DASH, true),
        td(DASH, true),
        td(DASH, true),
        td(secs(total.cpuSeconds), true),
        td(cpuPct(total.cpuSeconds), true),
      ].join('')}</tr>`,
    );
  }
  // Proxies per pod and per node side by side: a sidecar's cost is per pod, a node proxy's per node.
  const proxyRoles = ['proxy', 'node-proxy', 'waypoint', 'agent'];
  const normRows = withRes.flatMap((v) => {
    const n = v.c.resources!.normalized;
    if (!n) return [];
    return Object.keys(n.perPod)
      .filter((role) => proxyRoles.includes(role))
      .sort(byString)
      .map(
        (role) =>
          `<tr>${[...caseCells(ctx, v), td(esc(role)), td(int(n.pods), true), td(int(n.nodes), true), td(mibOf(n.perPod[role].rssBytes), true), td(mibOf(n.perNode[role].rssBytes), true), td(mibOf(n.perPod[role].pssBytes), true), td(mibOf(n.perNode[role].pssBytes), true)].join('')}</tr>`,
      );
  });
  const normTable = normRows.length
    ? `<h3>Mesh proxies per pod and per node</h3>\n${table([...caseHead(ctx), th('role'), th('pods', true), th('nodes', true), th('RSS MiB per pod', true), th('RSS MiB per node', true), th('PSS MiB per pod', true), th('PSS MiB per node', true)], normRows)}\n<p class="note">Each role's total divided by the meshed pods and by the nodes of the case's cluster.</p>`
    : '';
  return `<section id="resources">
<h2>Resources by role</h2>
${normTable}
${withRes.length ? table(head, rows, 'resources') : '<p class="note">No case recorded resource figures.</p>'}
<p class="note">Memory in MiB (1 MiB = 1,048,576 bytes), 1 decimal: RSS and PSS from the last sample in the window, peak RSS the highest per-role sum seen while sampling (so peaks of different roles need not add up, and no total is given). PSS splits shared pages among the processes that map them; RSS counts them in each. CPU is user + system time of the role's processes over the window; kernel time no process owns is under “Kernel”.</p>
${figure(charts.get('memory-pss-by-role'), 'No memory chart: no case recorded memory by role.')}
${figure(charts.get('cpu-by-role'), 'No CPU chart: no case recorded CPU by role.')}
${['memory-pss-per-pod', 'cpu-per-pod', 'memory-pss-per-node', 'cpu-per-node']
  .map((n) => charts.get(n))
  .filter((ch): ch is RenderedChart => !!ch)
  .map((ch) => figure(ch, ''))
  .join('\n')}
</section>`;
}

function kernelSection(ctx: Ctx): string {
  const withK = ctx.cases.filter((v) => isResult(v) && v.c.resources?.kernel);
  const head = [
    ...caseHead(ctx),
    th('window s', true),
    th('softirq s (system-wide)', true),
    th('BPF map KiB', true),
    th('BPF run time µs', true),
    th('WireGuard MiB sent', true),
  ];
  const rows = withK.map((v) => {
    const k = v.c.resources!.kernel;
    return `<tr>${[
      ...caseCells(ctx, v),
      td(secs(v.c.resources!.windowS), true),
      td(secs(k.softirqSeconds), true),
      td(kibOf(k.bpfMapBytes), true),
      td(Number.isFinite(k.bpfRunTimeNs) ? us(k.bpfRunTimeNs / 1000) : DASH, true),
      td(k.wireguardTxBytes !== undefined ? (k.wireguardTxBytes / 1048576).toFixed(2) : DASH, true),
    ].join('')}</tr>`;
  });
  return `<section id="kernel">
<h2>Kernel</h2>
<p class="callout">Softirq time is system-wide: it is counted over all CPUs of the host for the case's window and includes every packet the host handled in that time, not only the lab's. No process owns it, so it is not in any role's CPU above, and it cannot be split by dataplane component.</p>
${withK.length ? table(head, rows, 'kernel') : '<p class="note">No case recorded kernel figures.</p>'}
<p class="note">BPF map memory is kernel memory held by the lab's eBPF maps (in no process's RSS or PSS), in KiB with 1 decimal. BPF run time is the time the kernel reports spent in the lab's eBPF programs, in µs; it is spent inside softirq or inside the calling process's system time, so it overlaps those figures and must not be added to them. Both are 0 when the lab loaded no eBPF program. WireGuard MiB sent is what the run's WireGuard devices encrypted over the window, all nodes: its CPU is the <code>wireguard</code> role's when it is wireguard-go (user space), and softirq/kworker time, owned by no process, when it is the kernel module.</p>
</section>`;
}

function startupSection(ctx: Ctx, charts: Map<string, RenderedChart>): string {
  const withS = ctx.cases.filter((v) => isResult(v) && v.c.startup);
  const head = [
    ...caseHead(ctx),
    th('topology up ms', true),
    th('dataplane deploy ms', true),
    th('pods', true),
    th('pod ready median ms', true),
    th('pod ready max ms', true),
    th('slowest pod'),
    th('first request ms', true),
  ];
  const rows = withS.map((v) => {
    const s = v.c.startup!;
    const pods = Object.entries(s.podReadyMs ?? {})
      .filter(([, t]) => Number.isFinite(t))
      .sort((a, b) => b[1] - a[1] || byString(a[0], b[0]));
    return `<tr>${[
      ...caseCells(ctx, v),
      td(ms(s.topologyUpMs), true),
      td(ms(s.dataplaneDeployMs), true),
      td(int(pods.length), true),
      td(ms(metricOf(v.c, 'startup:podReadyMedianMs')), true),
      td(ms(metricOf(v.c, 'startup:podReadyMs')), true),
      td(pods[0] ? `<code>${esc(pods[0][0])}</code>` : DASH),
      td(ms(s.firstRequestMs), true),
    ].join('')}</tr>`;
  });
  return `<section id="startup">
<h2>Start-up</h2>
${withS.length ? table(head, rows, 'startup') : '<p class="note">No case recorded start-up times.</p>'}
<p class="note">Milliseconds, 1 decimal, as recorded by the run: topology up (namespaces, links, addresses), dataplane deploy, the time each pod took to become ready (median and slowest shown), and the first successful request after deploy.</p>
${figure(charts.get('startup-timeline'), 'No start-up timeline: no case recorded per-pod start-up phases.')}
</section>`;
}

function pathSection(ctx: Ctx): string {
  const seen = new Map<string, { dataplane: string; path?: DataplanePath; cases: string[] }>();
  for (const v of ctx.cases) {
    if (!v.c.path) continue;
    const key = JSON.stringify([v.c.dataplane, v.c.path]);
    const e = seen.get(key) ?? { dataplane: v.c.dataplane, path: v.c.path, cases: [] };
    e.cases.push(v.label);
    seen.set(key, e);
  }
  // Dataplanes none of whose cases recorded a path (typically: every case failed early).
  for (const v of ctx.cases) {
    if ([...seen.values()].some((e) => e.dataplane === v.c.dataplane)) continue;
    seen.set(JSON.stringify([v.c.dataplane, null]), { dataplane: v.c.dataplane, cases: [] });
  }
  const entries = [...seen.values()].sort((a, b) => byString(a.dataplane, b.dataplane));
  const multiPerDp = new Set(entries.map((e) => e.dataplane)).size !== entries.length;
  const head = [th('dataplane'), th('user-space hops per request', true), th('loopback legs', true), th('redirect'), th('encryption'), th('service routing')];
  if (multiPerDp) head.push(th('cases'));
  const rows = entries.map((e) => {
    const p = e.path;
    const cells = p
      ? [
          td(esc(e.dataplane)),
          td(int(p.userSpaceHops), true),
          td(int(p.loopbackLegs), true),
          td(esc(p.redirect)),
          td(esc(p.encryption)),
          td(esc(p.serviceRouting)),
        ]
      : [td(esc(e.dataplane)), `<td colspan="5" class="note">not recorded</td>`];
    if (multiPerDp) cells.push(td(e.cases.length ? e.cases.map(esc).join('<br>') : DASH));
    return `<tr>${cells.join('')}</tr>`;
  });
  return `<section id="path">
<h2>Path of a request</h2>
${table(head, rows, 'path')}
<p class="note">How each dataplane, as built by the lab, moves one request from the client to the server: user-space proxy traversals, extra loopback legs, how traffic is redirected, how it is encrypted and where the Service is resolved to an endpoint. As recorded in the run by the dataplane model.</p>
</section>`;
}

/** Service dependency map per case with a flow summary (eBPF dataplanes); nothing when no case has one. */
function flowsSection(ctx: Ctx): string {
  const withFlows = ctx.cases.map((v, i) => ({ v, i })).filter(({ v }) => v.c.flows && Array.isArray(v.c.flows.edges));
  if (withFlows.length === 0) return '';
  const cnt = (r: Record<string, number> | undefined) =>
    Object.entries(r ?? {})
      .sort((a, b) => byString(a[0], b[0]))
      .map(([reason, n]) => `${esc(reason)} ${int(n)}`)
      .join('<br>') || DASH;
  const head = [
    th('from'),
    th('to'),
    th('port', true),
    th('connections', true),
    th('forwarded', true),
    th('via L7 proxy', true),
    th('dropped'),
    th('dropped, then forwarded'),
    th('L7 forwarded', true),
    th('L7 denied', true),
  ];
  const parts = withFlows.map(({ v, i }) => {
    const f = v.c.flows!;
    const rows = f.edges.map((e) => {
      const st = edgeState(e);
      return `<tr class="edge-${st}">${[
        td(`<code>${esc(e.from)}</code>`),
        td(`<code>${esc(e.to)}</code>`),
        td(`${esc(e.port)}/${esc(e.protocol)}`, true),
        td(int(e.connections), true),
        td(int(e.forwarded), true),
        td(int(e.redirected), true),
        td(cnt(e.dropped), false, Object.keys(e.dropped ?? {}).length ? 'bad' : ''),
        td(cnt(e.droppedThenForwarded)),
        td(e.l7 ? int(e.l7.forwarded) : DASH, true),
        td(
          e.l7 ? int(e.l7.denied) + (Object.keys(e.l7.dropped ?? {}).length ? ` (other drops: ${cnt(e.l7.dropped)})` : '') : DASH,
          true,
          e.l7?.denied ? 'bad' : '',
        ),
      ].join('')}</tr>`;
    });
    const rec = f.records ?? { l3: 0, l7: 0, unreadable: 0 };
    const caption = `${int(f.workloads?.length ?? 0)} workloads, ${int(f.edges.length)} edges, from ${int(rec.l3)} datapath and ${int(rec.l7)} L7 flow records${f.nodes?.length ? ` of ${f.nodes.map(esc).join(', ')}` : ''}${rec.unreadable ? `; ${int(rec.unreadable)} unreadable lines left out` : ''}${rec.l7Dropped ? `; ${int(rec.l7Dropped)} L7 records the proxy counted but could not write (HAProxy DroppedLogs), so the L7 request counts are short by that many` : ''}.`;
    return `<figure class="chart flowmap" id="flowmap-${i}">
<figcaption><strong>${esc(v.label)}.</strong> ${caption}${v.c.status !== 'ok' ? ` ${badge(v.c.status)}` : ''}</figcaption>
${renderFlowMap(f, `mb-flowmap-${i}`, `service dependency map of ${v.label}`)}
</figure>
${f.edges.length ? table(head, rows, 'flows') : '<p class="note">No flows recorded.</p>'}`;
  });
  const methods = [...new Set(withFlows.map(({ v }) => v.c.flows!.method).filter(Boolean))];
  return `<section id="flows">
<h2>Service dependency map</h2>
<p class="note">From the flow log the eBPF dataplanes write per case (mb-flowd per node, and the node L7 proxy's request records where there is one), like Hubble UI's map: each box a workload (a Service's pods, grouped by namespace and name without the replica index; a reserved identity such as <code>world</code>; or a bare address), each arrow the traffic from one to another on one destination port. <span class="flow-ok">Green</span>: every connection forwarded. <span class="flow-bad">Red</span>: connections that ended dropped, or requests the L7 proxy refused, with the reason. <span class="flow-warn">Amber</span>: connections dropped first (AUTH_REQUIRED until the nodes' handshake completes) and forwarded on a retransmit. Dashed, with an “L7” mark: through the node's L7 proxy. Counts are connections (distinct 5-tuples) and L7 requests over the whole case, set-up and warm-up included.</p>
${parts.join('\n')}
${methods.length ? `<p class="note">${methods.map(esc).join('<br>')}</p>` : ''}
</section>`;
}

function provenanceSection(ctx: Ctx): string {
  const head = [th('role'), th('engine'), th('version'), th('config bytes', true), th('mechanism')];
  const rows: string[] = [];
  for (const v of ctx.cases) {
    const roles = Object.keys(v.c.provenance ?? {}).sort(byString);
    rows.push(`<tr class="group"><th colspan="5">${esc(v.label)} ${v.c.status !== 'ok' ? badge(v.c.status) : ''}</th></tr>`);
    if (roles.length === 0) rows.push(`<tr><td colspan="5" class="note">no provenance recorded</td></tr>`);
    for (const role of roles) {
      const p = v.c.provenance[role]!;
      const standIn = p.standInFor ? `<p class="standin-sentence"><strong>${standInSentence(p)}.</strong></p>` : '';
      rows.push(
        `<tr${p.standInFor ? ' class="standin"' : ''}>${[
          td(esc(role)),
          td(esc(p.engine ?? DASH)),
          td(esc(p.version ?? DASH)),
          td(p.configBytes !== undefined ? int(p.configBytes) : DASH, true),
          td(`${standIn}${esc(p.mechanism ?? DASH)}`),
        ].join('')}</tr>`,
      );
    }
  }
  return `<section id="provenance">
<h2>Provenance</h2>
<p class="note">Which program played each role in each case. Where an engine stands in for another component (for example HAProxy in an Envoy role), the figures on this page are the stand-in's own; they say nothing about the component it stands in for.</p>
${table(head, rows, 'provenance')}
</section>`;
}

function envRows(e: Environment | undefined): string {
  if (!e) return '<p class="note">No environment recorded.</p>';
  const pin = e.pinning;
  const facts: [string, string][] = [
    ['kernel', esc(e.kernel ?? DASH)],
    ['CPU', esc(e.cpuModel ?? DASH)],
    ['cores', int(e.cores)],
    ['memory', `${gibOf(e.memoryBytes)} GiB`],
    ['host', esc(e.hostname ?? DASH)],
    ['node', esc(e.node ?? DASH)],
    ['commit', `<code>${esc(e.commit ?? DASH)}</code>`],
    [
      'pinning',
      pin
        ? `${esc(pin.note ?? DASH)}${pin.load !== undefined ? ` (load CPUs <code>${esc(pin.load)}</code>` : ''}${pin.apps !== undefined ? `${pin.load !== undefined ? ', ' : ' ('}app CPUs <code>${esc(pin.apps)}</code>` : ''}${pin.load !== undefined || pin.apps !== undefined ? ')' : ''}`
        : 'not recorded',
    ],
  ];
  // run --target kubernetes: the figures are the cluster's; the fields above describe where meshbench ran.
  const k = e.kubernetes;
  if (k)
    facts.unshift(
      [
        'cluster',
        `Kubernetes <code>${esc(k.server)}</code>${k.context ? ` (context <code>${esc(k.context)}</code>)` : ''}; the rows below describe the machine meshbench ran on`,
      ],
      [
        'cluster nodes',
        k.nodes
          .map(
            (n) => `<code>${esc(n.name)}</code>${n.labNode ? ` = ${esc(n.labNode)}` : ''} (kubelet ${esc(n.kubelet ?? DASH)}, kernel ${esc(n.kernel ?? DASH)})`,
          )
          .join(', '),
      ],
      [
        'meshes',
        Object.entries(k.meshes)
          .map(([role, p]) => `${esc(role)}: ${esc(p.engine)} ${esc(p.version ?? '')}`)
          .join(', ') || 'none (baseline only)',
      ],
    );
  const tools = Object.keys(e.tools ?? {}).sort(byString);
  return `<div class="env">
<table class="facts"><tbody>
${facts.map(([k, val]) => `<tr><th>${k}</th><td>${val}</td></tr>`).join('\n')}
</tbody></table>
${
  tools.length
    ? `<table class="tools"><thead><tr><th>tool</th><th>version</th></tr></thead><tbody>
${tools.map((t) => `<tr><td><code>${esc(t)}</code></td><td>${esc(e.tools[t])}</td></tr>`).join('\n')}
</tbody></table>`
    : '<p class="note">No tool versions recorded.</p>'
}
</div>`;
}

function environmentSection(ctx: Ctx): string {
  const envs = new Map<string, { e: Environment | undefined; runs: string[] }>();
  for (const r of ctx.runs) {
    const key = JSON.stringify(r.environment ?? null);
    const g = envs.get(key) ?? { e: r.environment, runs: [] };
    g.runs.push(r.runId);
    envs.set(key, g);
  }
  const parts = [...envs.values()].map((g) =>
    envs.size > 1 || ctx.multiRun
      ? `<h3>${g.runs.length === ctx.runs.length ? 'All runs' : `Run${g.runs.length > 1 ? 's' : ''} ${g.runs.map((id) => `<code>${esc(id)}</code>`).join(', ')}`}</h3>\n${envRows(g.e)}`
      : envRows(g.e),
  );
  return `<section id="environment">
<h2>Environment</h2>
${parts.join('\n')}
</section>`;
}

function methodSection(ctx: Ctx): string {
  const collect = (get: (v: CaseView) => string | undefined) => {
    const m = new Map<string, string[]>();
    for (const v of ctx.cases) {
      const t = get(v);
      if (!t) continue;
      m.set(t, [...(m.get(t) ?? []), v.label]);
    }
    return [...m.entries()];
  };
  const list = (entries: [string, string[]][], none: string) =>
    entries.length === 0
      ? `<p class="note">${none}</p>`
      : `<ul>\n${entries
          .map(
            ([t, labels]) =>
              `<li>${esc(t)}${entries.length > 1 || ctx.cases.length > labels.length ? ` <span class="meta">(${labels.map(esc).join('; ')})</span>` : ''}</li>`,
          )
          .join('\n')}\n</ul>`;
  const latency = collect((v) => v.c.latencyUs?.source);
  const resources = collect((v) => v.c.resources?.method);
  const models = collect((v) => v.c.load?.model);
  const fortio = ctx.cases.filter((v) => v.c.latencyUs?.fortio);
  const fortioTable = fortio.length
    ? `<p>fortio's own percentiles from its bucketed histogram, for cross-checking the figures above (µs):</p>
${table(
  [...caseHead(ctx), th('p50', true), th('p90', true), th('p99', true), th('p99.9', true), th('max', true)],
  fortio.map((v) => {
    const f = v.c.latencyUs!.fortio!;
    return `<tr>${[...caseCells(ctx, v), td(us(f.p50), true), td(us(f.p90), true), td(us(f.p99), true), td(us(f.p999), true), td(us(f.max), true)].join('')}</tr>`;
  }),
  'fortio',
)}`
    : '';
  return `<section id="method">
<h2>How the figures were taken</h2>
<h3>Latency</h3>
${list(latency, 'No latency source recorded.')}
${fortioTable}
<h3>Resources</h3>
${list(resources, 'No resource method recorded.')}
<h3>Load</h3>
${list(models, 'No load model recorded.')}
</section>`;
}

// ---------------------------------------------------------------------------------------------

const CSS = `
${BASE_CSS}.kicker{margin:0;color:var(--muted);text-transform:uppercase;letter-spacing:.06em;font-size:.8rem}
.description{font-size:1.05rem;margin:.2rem 0 .6rem}
.meta{color:var(--muted);font-size:.88rem}
.note{color:var(--muted);font-size:.88rem;max-width:70em}
.label{color:var(--muted)}
.run{border:1px solid var(--line);border-radius:8px;padding:.5rem .8rem;margin:.5rem 0;background:#fff}
.run p{margin:.2rem 0}
.run-error,.error-text{color:var(--bad)}
.badge{display:inline-block;padding:.05em .55em;border-radius:999px;font-size:.8rem;font-weight:600;border:1px solid currentColor;vertical-align:baseline}
.status-complete,.status-ok{color:var(--ok);background:#dafbe1}
.status-incomplete,.status-interrupted,.status-degraded{color:var(--warn);background:#fff8c5}
.status-failed{color:var(--bad);background:#ffebe9}
.standins{border:2px solid var(--warn);background:#fff8c5;border-radius:8px;padding:.4rem 1rem;margin:1rem 0}
.standins h2{border:0;margin:.4rem 0;font-size:1.1rem}
.standins ul{margin:.3rem 0 .4rem;padding-left:1.2rem}
.standins details{margin:0 0 .4rem;font-size:.88rem}
.standins summary{cursor:pointer;color:var(--muted)}
.callout{border-left:4px solid var(--accent);background:var(--soft);padding:.5rem .8rem;max-width:70em}
.scroll{overflow-x:auto;margin:.4rem 0}
table{border-collapse:collapse;font-size:.88rem}
th,td{border-bottom:1px solid var(--line);padding:.3rem .55rem;text-align:left;vertical-align:top}
thead th{background:var(--soft);font-weight:600;border-bottom:2px solid var(--line)}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td.model{min-width:18em;max-width:30em;color:var(--muted);font-size:.82rem}
td.added{font-weight:600}
td.bad{color:var(--bad);font-weight:600}
tr.total td{font-weight:600;background:#fbfcfd}
tr.group th{background:var(--soft);text-align:left}
tr.standin td{background:#fff8c5}
.standin-sentence{margin:0 0 .2rem;color:#7d4e00}
ul.failed li{margin:.2rem 0}
figure.chart{margin:1.2rem 0;padding:.6rem;border:1px solid var(--line);border-radius:8px;overflow-x:auto}
figure.chart figcaption{font-size:.88rem;color:var(--muted);margin-bottom:.4rem;max-width:70em}
figure.chart svg{display:block;max-width:none;height:auto}
table.flows td{white-space:nowrap}
table.flows tr.edge-bad td:first-child{border-left:3px solid var(--bad)}
table.flows tr.edge-warn td:first-child{border-left:3px solid var(--warn)}
table.flows tr.edge-ok td:first-child{border-left:3px solid var(--ok)}
.flow-ok{color:var(--ok);font-weight:600}.flow-bad{color:var(--bad);font-weight:600}.flow-warn{color:var(--warn);font-weight:600}
.env{display:flex;flex-wrap:wrap;gap:1.5rem;align-items:flex-start}
table.facts th{color:var(--muted);font-weight:500;white-space:nowrap}
footer{margin-top:3rem;padding-top:.8rem;border-top:1px solid var(--line);color:var(--muted);font-size:.85rem}
`.trim();
