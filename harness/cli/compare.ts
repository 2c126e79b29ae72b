// `meshbench compare <a/run.json> <b/run.json>`: did anything change between two runs?
//
// Cases are matched by (dataplane, workload); the repeats of a key are the samples. Per key and
// metric: A's median over its repeats, B's, the change B − A (absolute and relative to A), a
// percentile-bootstrap interval of the change (each run resampled on its own: two runs are
// independent), and a two-sided permutation test of the difference of medians (or, with
// `--test rank`, Mann–Whitney U by permutation of ranks; harness/analysis/stats.ts). The verdict is `better` or `worse` when p < alpha, in the
// metric's direction (lower is better for latency, CPU, memory, errors and start-up; higher for
// qps), and `no significant change` otherwise.
//
// The CI hook: with `--fail-on p99,…` the command exits 1 when one of those metrics is worse with
// p < alpha AND its change (the point estimate) is beyond `--threshold`. Bad input (missing or
// unreadable file, no common case, unknown metric, a threshold that does not fit a metric) is
// E_INPUT, exit 2. Everything is seeded: the same two files give the same output.
//
// `--export-fortio <dir>` writes each case of both runs as a fortio result JSON, so fortio's own
// UI (`fortio report -data-dir <dir>`) can draw and overlay them.
import { existsSync, mkdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { inputError } from '../errors.js';
import { readRun } from '../results/write.js';
import type { CaseResult, RunRecord } from '../results/types.js';
import { DEFAULT_SEED, diffCI, mannWhitneyU, median, permutationTest } from '../analysis/stats.js';
import { metricInfo, metricOf, metricsPresent, rolesOf, type MetricInfo, type MetricUnit } from '../analysis/metrics.js';
import { fixed } from '../report/format.js';

export const COMPARE_SCHEMA = 'meshbench/compare/v1';
export const DEFAULT_COMPARE_METRICS = ['p50', 'p90', 'p99', 'qps', 'errors'];
export const DEFAULT_THRESHOLD = '5%';
/** Exit status when a --fail-on metric regressed (0 otherwise; bad input is 2). */
export const EXIT_REGRESSION = 1;

export interface RunInput {
  file: string;
  record: RunRecord;
}

export interface CompareOptions {
  /** Metric names, or ["all"] for every metric either run carries; default DEFAULT_COMPARE_METRICS. */
  metrics?: string[];
  /** Metrics whose significant regression beyond the threshold makes the exit status 1. */
  failOn?: string[];
  /** `10%`, `200us`, `0.5ms`, `2MiB`, a bare number (the metric's own unit), or per metric `p99=200us,qps=5%` (default DEFAULT_THRESHOLD). */
  threshold?: string;
  /** Significance level of the permutation test; default 0.05. */
  alpha?: number;
  /** Interval coverage; default 0.95. */
  level?: number;
  seed?: string;
  resamples?: number;
  permutations?: number;
  /**
   * Significance test: `median` (default), a permutation test of the difference of medians; or
   * `rank`, Mann–Whitney U by permutation of ranks (more power with few repeats).
   */
  test?: CompareTest;
}

export type CompareTest = 'median' | 'rank';
export const COMPARE_TESTS: readonly CompareTest[] = ['median', 'rank'];

export type Verdict = 'better' | 'worse' | 'no significant change';

export interface SideFigures {
  /** Repeats with a value. */
  n: number;
  median: number;
  /** The values, in repeat order. */
  values: number[];
  repeats: number[];
}

export interface CompareRow {
  dataplane: string;
  workload: string;
  metric: string;
  unit: MetricUnit;
  better: 'lower' | 'higher';
  a: SideFigures;
  b: SideFigures;
  /** median(B) − median(A), in the metric's unit. */
  change: number;
  /** change / |median(A)| × 100; null when median(A) is 0. */
  changePct: number | null;
  ci: { low: number; high: number; level: number; resamples: number };
  ciPct: { low: number; high: number } | null;
  /** Two-sided p-value of the chosen test (default: permutation test of the difference of medians). */
  p: number;
  test: { name: CompareTest; method: string; permutations: number; minP: number };
  significant: boolean;
  verdict: Verdict;
  /** The threshold that applies to this metric, as written; null when it does not fit the metric's unit. */
  threshold: string | null;
  /** Worse than the threshold (point estimate); null when no threshold applies. */
  beyondThreshold: boolean | null;
  failOn: boolean;
  /** failOn and worse and significant and beyond the threshold. */
  regression: boolean;
  /** Set when p < alpha is out of reach with these repeat counts. */
  note?: string;
}

export interface RunSummary {
  file: string;
  runId: string;
  scenario: string;
  status: string;
  startedAt: string;
  cases: number;
  okCases: number;
}

export interface Comparison {
  schema: typeof COMPARE_SCHEMA;
  a: RunSummary;
  b: RunSummary;
  options: {
    metrics: string[];
    failOn: string[];
    threshold: string;
    alpha: number;
    level: number;
    resamples: number;
    permutations: number;
    seed: string;
    test: CompareTest;
    method: string;
  };
  /** Keys `dataplane/workload` only one run has (not compared). */
  onlyInA: string[];
  onlyInB: string[];
  rows: CompareRow[];
  regressions: CompareRow[];
  warnings: string[];
  exitCode: number;
}

// ---------------------------------------------------------------------------------------------
// Input

/** Read a run record for comparison; a run directory holding run.json is accepted too. */
export function loadRunForCompare(path: string): RunInput {
  let file = path;
  if (existsSync(path) && statSync(path).isDirectory()) file = join(path, 'run.json');
  if (!existsSync(file)) throw inputError(`${file}:1: file not found`, [], 'give the run.json a run wrote (results/<scenario>/<run-id>/run.json) or its directory');
  const record = readRun(file);
  if (!Array.isArray(record.cases)) throw inputError(`${file}:1: run record has no cases array`);
  if (typeof record.runId !== 'string' || record.runId === '') throw inputError(`${file}:1: run record has no runId`);
  return { file, record };
}

// ---------------------------------------------------------------------------------------------
// Thresholds

type Dim = 'time' | 'bytes' | 'count' | 'qps';

const UNIT_DIM: Record<MetricUnit, { dim: Dim; factor: number }> = {
  us: { dim: 'time', factor: 1e-6 },
  ms: { dim: 'time', factor: 1e-3 },
  s: { dim: 'time', factor: 1 },
  ns: { dim: 'time', factor: 1e-9 },
  bytes: { dim: 'bytes', factor: 1 },
  qps: { dim: 'qps', factor: 1 },
  count: { dim: 'count', factor: 1 },
};

const SUFFIX: Record<string, { dim: Dim; factor: number }> = {
  ns: { dim: 'time', factor: 1e-9 },
  us: { dim: 'time', factor: 1e-6 },
  'µs': { dim: 'time', factor: 1e-6 },
  'μs': { dim: 'time', factor: 1e-6 },
  ms: { dim: 'time', factor: 1e-3 },
  s: { dim: 'time', factor: 1 },
  B: { dim: 'bytes', factor: 1 },
  kB: { dim: 'bytes', factor: 1e3 },
  KB: { dim: 'bytes', factor: 1e3 },
  MB: { dim: 'bytes', factor: 1e6 },
  GB: { dim: 'bytes', factor: 1e9 },
  KiB: { dim: 'bytes', factor: 1024 },
  MiB: { dim: 'bytes', factor: 1024 ** 2 },
  GiB: { dim: 'bytes', factor: 1024 ** 3 },
  qps: { dim: 'qps', factor: 1 },
};

interface Threshold {
  text: string;
  /** relative: percent of A's median; absolute: in `dim` base units (s, bytes, qps, count); own: in the metric's unit. */
  kind: 'relative' | 'absolute' | 'own';
  value: number;
  dim?: Dim;
}

export interface ThresholdSpec {
  default: Threshold;
  perMetric: Map<string, Threshold>;
}

function parseOne(text: string, where: string): Threshold {
  const m = text.trim().match(/^(\d+(?:\.\d+)?|\.\d+)\s*([A-Za-zµμ%]*)$/);
  if (!m) throw inputError(`--threshold: cannot read ${JSON.stringify(text)}${where}`, [], 'write a percentage (10%), a time (200us, 0.5ms), a size (2MiB), a bare number in the metric\'s unit, or per metric: p99=200us,qps=5%');
  const value = Number(m[1]);
  const suffix = m[2]!;
  if (suffix === '%') return { text: text.trim(), kind: 'relative', value };
  if (suffix === '') return { text: text.trim(), kind: 'own', value };
  const u = Object.hasOwn(SUFFIX, suffix) ? SUFFIX[suffix] : undefined;
  if (!u) {
    throw inputError(`--threshold: unknown unit ${JSON.stringify(suffix)} in ${JSON.stringify(text)}${where} (valid: %, ns, us, µs, ms, s, B, KB, MB, GB, KiB, MiB, GiB, qps, or none for the metric's own unit)`);
  }
  return { text: text.trim(), kind: 'absolute', value: value * u.factor, dim: u.dim };
}

/** Parse `--threshold`: one default and/or `metric=value` items, comma-separated. */
export function parseThreshold(spec: string): ThresholdSpec {
  let def: Threshold | undefined;
  const perMetric = new Map<string, Threshold>();
  for (const item of spec.split(',').map((s) => s.trim()).filter(Boolean)) {
    const eq = item.indexOf('=');
    if (eq >= 0) {
      const name = item.slice(0, eq).trim();
      metricInfo(name);
      perMetric.set(name, parseOne(item.slice(eq + 1), ` for ${name}`));
    } else {
      if (def) throw inputError(`--threshold: more than one default threshold in ${JSON.stringify(spec)}`, [], 'give one default and metric=value items for the others');
      def = parseOne(item, '');
    }
  }
  return { default: def ?? parseOne(DEFAULT_THRESHOLD, ''), perMetric };
}

/** The threshold in the metric's own unit (absolute) or as a percentage; null when its unit does not fit. */
function thresholdFor(spec: ThresholdSpec, info: MetricInfo): Threshold | null {
  const t = spec.perMetric.get(info.name) ?? spec.default;
  if (t.kind !== 'absolute') return t;
  const u = UNIT_DIM[info.unit];
  if (u.dim !== t.dim) return null;
  return { ...t, kind: 'own', value: t.value / u.factor };
}

/** How much worse B is than A in the metric's direction (positive: worse). */
const worseBy = (info: { better: 'lower' | 'higher' }, change: number) => (info.better === 'lower' ? change : -change);

function beyond(t: Threshold, info: MetricInfo, medianA: number, change: number): boolean {
  const w = worseBy(info, change);
  if (t.kind === 'relative') return medianA === 0 ? w > 0 : (100 * w) / Math.abs(medianA) > t.value;
  return w > t.value;
}

// ---------------------------------------------------------------------------------------------
// Comparison

const keyOf = (c: { dataplane: string; workload: string }) => `${c.dataplane}/${c.workload}`;

function summary(r: RunInput): RunSummary {
  return {
    file: r.file,
    runId: r.record.runId,
    scenario: r.record.scenario,
    status: r.record.status,
    startedAt: r.record.startedAt,
    cases: r.record.cases.length,
    okCases: r.record.cases.filter((c) => c.status === 'ok').length,
  };
}

/** Cases with status ok, grouped by key, keys in case-index order. */
function groups(r: RunRecord): Map<string, CaseResult[]> {
  const ordered = r.cases.map((c, i) => ({ c, i })).sort((x, y) => (x.c.index ?? x.i) - (y.c.index ?? y.i) || x.i - y.i);
  const m = new Map<string, CaseResult[]>();
  for (const { c } of ordered) {
    if (c.status !== 'ok') continue;
    const list = m.get(keyOf(c)) ?? [];
    list.push(c);
    m.set(keyOf(c), list);
  }
  return m;
}

function side(cases: CaseResult[], metric: string): SideFigures {
  const got = cases
    .map((c) => ({ repeat: c.repeat, v: metricOf(c, metric) }))
    .filter((x): x is { repeat: number; v: number } => x.v !== undefined)
    .sort((x, y) => x.repeat - y.repeat);
  const values = got.map((x) => x.v);
  return { n: values.length, median: median(values), values, repeats: got.map((x) => x.repeat) };
}

/** Compare two runs already read (no I/O; deterministic for a seed). Throws E_INPUT for bad input. */
export function compareRuns(a: RunInput, b: RunInput, opts: CompareOptions = {}): Comparison {
  const alpha = opts.alpha ?? 0.05;
  const level = opts.level ?? 0.95;
  const resamples = opts.resamples ?? 2000;
  const permutations = opts.permutations ?? 5000;
  const seed = opts.seed ?? DEFAULT_SEED;
  const testName = opts.test ?? 'median';
  if (!COMPARE_TESTS.includes(testName)) throw inputError(`unknown test ${JSON.stringify(testName)} (valid: ${COMPARE_TESTS.join(', ')})`);
  if (!(alpha > 0 && alpha < 1)) throw inputError(`--alpha must be within (0, 1), got ${alpha}`);
  const thresholdText = opts.threshold ?? DEFAULT_THRESHOLD;
  const thresholds = parseThreshold(thresholdText);

  const ga = groups(a.record);
  const gb = groups(b.record);
  const common = [...ga.keys()].filter((k) => gb.has(k));
  const onlyInA = [...ga.keys()].filter((k) => !gb.has(k));
  const onlyInB = [...gb.keys()].filter((k) => !ga.has(k));
  if (common.length === 0) {
    const list = (g: Map<string, CaseResult[]>) => (g.size ? [...g.keys()].join(', ') : 'no successful case');
    throw inputError(
      `no common cases between ${a.file} and ${b.file}: cases are matched by dataplane/workload among those with status ok`,
      [`${a.file}: ${list(ga)}`, `${b.file}: ${list(gb)}`],
      'compare two runs of the same scenario (or scenarios sharing dataplane and workload names)',
    );
  }

  const allOk = [...ga.values(), ...gb.values()].flat();
  const requested = opts.metrics?.length ? opts.metrics : DEFAULT_COMPARE_METRICS;
  const failOn = opts.failOn ?? [];
  let metrics = requested.includes('all') ? [...requested.filter((m) => m !== 'all'), ...metricsPresent(allOk)] : [...requested];
  for (const m of failOn) if (!metrics.includes(m)) metrics.push(m);
  metrics = [...new Set(metrics)];
  const infos = new Map(metrics.map((m) => [m, metricInfo(m)] as const));
  const roles = rolesOf(allOk);
  for (const info of infos.values()) {
    if (info.role !== undefined && !roles.includes(info.role)) {
      throw inputError(`metric ${info.name}: role ${JSON.stringify(info.role)} is in neither run (roles: ${roles.join(', ') || 'none'})`, [], `files: ${a.file}, ${b.file}`);
    }
  }
  for (const m of failOn) {
    const info = infos.get(m)!;
    if (thresholdFor(thresholds, info) === null) {
      const t = thresholds.perMetric.get(m) ?? thresholds.default;
      throw inputError(`--threshold ${t.text} does not fit --fail-on metric ${m} (measured in ${info.unit})`, [], `give it its own: --threshold ${m}=5% (or a value in ${info.unit})`);
    }
  }

  const warnings: string[] = [];
  const rows: CompareRow[] = [];
  const failSet = new Set(failOn);
  const missing: string[] = [];
  for (const key of common) {
    const ca = ga.get(key)!;
    const cb = gb.get(key)!;
    for (const metric of metrics) {
      const info = infos.get(metric)!;
      const sa = side(ca, metric);
      const sb = side(cb, metric);
      if (sa.n === 0 && sb.n === 0) continue;
      if (sa.n === 0 || sb.n === 0) {
        missing.push(`${key} ${metric}: only ${sa.n ? 'A' : 'B'} has it`);
        continue;
      }
      const tag = `${key}:${metric}`;
      const ci = diffCI(sa.values, sb.values, { seed: `${seed}:ci:${tag}`, resamples, level });
      const testOpts = { seed: `${seed}:perm:${tag}`, permutations };
      const test = testName === 'rank' ? mannWhitneyU(sa.values, sb.values, testOpts) : permutationTest(sa.values, sb.values, testOpts);
      const change = ci.estimate;
      const rel = (x: number) => (100 * x) / Math.abs(sa.median);
      const significant = test.p < alpha;
      const w = worseBy(info, change);
      const verdict: Verdict = significant && w > 0 ? 'worse' : significant && w < 0 ? 'better' : 'no significant change';
      const t = thresholdFor(thresholds, info);
      const beyondThreshold = t ? beyond(t, info, sa.median, change) : null;
      const isFailOn = failSet.has(metric);
      const row: CompareRow = {
        dataplane: ca[0]!.dataplane,
        workload: ca[0]!.workload,
        metric,
        unit: info.unit,
        better: info.better,
        a: sa,
        b: sb,
        change,
        changePct: sa.median !== 0 ? rel(change) : null,
        ci: { low: ci.low, high: ci.high, level, resamples },
        ciPct: sa.median !== 0 ? { low: rel(ci.low), high: rel(ci.high) } : null,
        p: test.p,
        test: { name: testName, method: test.method, permutations: test.permutations, minP: test.minP },
        significant,
        verdict,
        threshold: t ? t.text : null,
        beyondThreshold,
        failOn: isFailOn,
        regression: isFailOn && verdict === 'worse' && beyondThreshold === true,
      };
      if (test.minP >= alpha) row.note = `${sa.n} vs ${sb.n} repeats: the smallest attainable p is ${fmtP(test.minP)}, so no change can reach p < ${alpha}`;
      rows.push(row);
    }
  }

  if (a.record.scenario !== b.record.scenario) warnings.push(`the runs are of different scenarios: ${a.record.scenario} (A) and ${b.record.scenario} (B)`);
  const env = (r: RunRecord) => `${r.environment?.kernel ?? '?'} · ${r.environment?.cpuModel ?? '?'} · ${r.environment?.cores ?? '?'} cores`;
  if (env(a.record) !== env(b.record)) warnings.push(`the runs come from different hosts or kernels (A: ${env(a.record)}; B: ${env(b.record)}): changes mix host and code`);
  for (const [name, r] of [['A', a], ['B', b]] as const) {
    // Only ok cases are results (docs/case-status.md): degraded and failed ones are left out, with why.
    const bad = r.record.cases.filter((c) => c.status !== 'ok');
    if (bad.length)
      warnings.push(
        `${name} (${r.file}): ${bad.length} case(s) not ok, left out: ${bad.map((c) => `${c.dataplane} ${c.workload} r${c.repeat} ${c.status}${c.validity?.reasons.length ? ` (${c.validity.reasons.join('; ')})` : c.error ? ` (${c.error})` : ''}`).join(', ')}`,
      );
    if (r.record.status !== 'complete') warnings.push(`${name} (${r.file}): run status is ${r.record.status}`);
  }
  if (onlyInA.length) warnings.push(`only in A, not compared: ${onlyInA.join(', ')}`);
  if (onlyInB.length) warnings.push(`only in B, not compared: ${onlyInB.join(', ')}`);
  for (const m of missing) warnings.push(`not compared: ${m}`);
  for (const m of metrics) if (!rows.some((r) => r.metric === m)) warnings.push(`metric ${m}: no common case carries it in both runs`);
  const weak = rows.filter((r) => r.failOn && r.note);
  if (weak.length) {
    const sizes = [...new Set(weak.map((r) => `${r.a.n} vs ${r.b.n}`))].join(', ');
    warnings.push(
      `--fail-on cannot trigger for ${weak.length} row(s): with ${sizes} repeats no change reaches p < ${alpha}; run more repeats (smallest p for the median test: 5 vs 5 0.048, 6 vs 6 0.013; with --test rank: 4 vs 4 0.029, 5 vs 5 0.008)`,
    );
  }

  const regressions = rows.filter((r) => r.regression);
  return {
    schema: COMPARE_SCHEMA,
    a: summary(a),
    b: summary(b),
    options: {
      metrics,
      failOn,
      threshold: thresholdText,
      alpha,
      level,
      resamples,
      permutations,
      seed,
      test: testName,
      method: `per dataplane/workload: medians over repeats; change = median(B) − median(A) with a ${Math.round(level * 100)}% percentile-bootstrap interval (${resamples} resamples, each run resampled on its own); p = ${testName === 'rank' ? 'two-sided Mann–Whitney U by permutation of mid-ranks' : 'two-sided permutation test of the difference of medians'} (exact when the splits number ≤ ${permutations}, else ${permutations} random splits); significant when p < ${alpha}`,
    },
    onlyInA,
    onlyInB,
    rows,
    regressions,
    warnings,
    exitCode: regressions.length ? EXIT_REGRESSION : 0,
  };
}

// ---------------------------------------------------------------------------------------------
// Text output

const finite = (x: number) => Number.isFinite(x);

/** A value with its unit: µs and ms with 1 decimal, s with 3, bytes as MiB with 2, qps with 2. */
export function fmtValue(v: number, unit: MetricUnit, signed = false): string {
  if (!finite(v)) return '—';
  const sign = signed && v > 0 ? '+' : '';
  switch (unit) {
    case 'us':
      return `${sign}${fixed(v, 1)} µs`;
    case 'ms':
      return `${sign}${fixed(v, 1)} ms`;
    case 's':
      return `${sign}${fixed(v, 3)} s`;
    case 'ns':
      return `${sign}${fixed(v, 0)} ns`;
    case 'bytes':
      return `${sign}${fixed(v / 1048576, 2)} MiB`;
    case 'qps':
      return `${sign}${fixed(v, 2)} qps`;
    case 'count':
      return `${sign}${fixed(v, Number.isInteger(v) ? 0 : 1)}`;
  }
}

const num = (v: number, unit: MetricUnit, signed = false) => fmtValue(v, unit, signed).replace(/ (µs|ms|s|ns|MiB|qps)$/, '');
const unitLabel = (unit: MetricUnit) => ({ us: 'µs', ms: 'ms', s: 's', ns: 'ns', bytes: 'MiB', qps: 'qps', count: '' })[unit];
const pctText = (x: number | null) => (x === null || !finite(x) ? '' : `${x > 0 ? '+' : ''}${fixed(x, 1)}%`);

export function fmtP(p: number): string {
  if (!finite(p)) return '—';
  return p < 0.001 ? '<0.001' : p.toFixed(3);
}

function table(head: string[], rows: string[][]): string[] {
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(w[i]!))).join('  ').trimEnd();
  return [line(head), line(w.map((n) => '-'.repeat(n))), ...rows.map(line)];
}

/** The comparison as an aligned text table with a header and a closing verdict line. */
export function formatComparison(c: Comparison): string {
  const out: string[] = [];
  for (const [name, s] of [['A', c.a], ['B', c.b]] as const) {
    out.push(`${name}  ${s.runId}  scenario ${s.scenario}  ${s.okCases} ok case(s)  ${s.file}`);
  }
  const testText = c.options.test === 'rank' ? 'Mann–Whitney U (permutation of ranks)' : 'permutation test of the difference of medians';
  out.push(`Medians over repeats; change = B − A with its ${Math.round(c.options.level * 100)}% bootstrap interval; p from a two-sided ${testText}; significant when p < ${c.options.alpha}.`);
  out.push('');
  let noted = false;
  const rows = c.rows.map((r) => {
    const u = unitLabel(r.unit);
    const ci = finite(r.ci.low) ? `[${num(r.ci.low, r.unit, true)}, ${num(r.ci.high, r.unit, true)}]${u ? ' ' + u : ''}` : '—';
    const change = `${fmtValue(r.change, r.unit, true)}${r.changePct !== null ? ` (${pctText(r.changePct)})` : ''}`;
    let verdict: string = r.verdict;
    if (r.note) {
      verdict += '*';
      noted = true;
    }
    if (r.regression) verdict += `  REGRESSION (beyond ${r.threshold})`;
    return [r.dataplane, r.workload, r.metric, `${r.a.n}/${r.b.n}`, fmtValue(r.a.median, r.unit), fmtValue(r.b.median, r.unit), change, ci, fmtP(r.p), verdict];
  });
  out.push(...table(['dataplane', 'workload', 'metric', 'n A/B', 'A median', 'B median', 'change', `${Math.round(c.options.level * 100)}% CI of change`, 'p', 'verdict'], rows));
  if (noted) {
    const sizes = [...new Set(c.rows.filter((r) => r.note).map((r) => `${r.a.n} vs ${r.b.n} (min p ${fmtP(r.test.minP)})`))].join(', ');
    out.push('', `* too few repeats for p < ${c.options.alpha}: ${sizes}. Run more repeats${c.options.test === 'rank' ? '' : ' (or use --test rank, which needs fewer)'}.`);
  }
  out.push('');
  if (c.options.failOn.length === 0) out.push('No --fail-on metrics: exit status 0 whatever changed.');
  else if (c.regressions.length === 0) out.push(`No regression: no --fail-on metric (${c.options.failOn.join(', ')}) is significantly worse beyond its threshold.`);
  else {
    out.push(`${c.regressions.length} regression(s) in --fail-on metrics (exit ${EXIT_REGRESSION}):`);
    for (const r of c.regressions) out.push(`  ${r.dataplane} ${r.workload} ${r.metric}: ${fmtValue(r.a.median, r.unit)} → ${fmtValue(r.b.median, r.unit)} (${fmtValue(r.change, r.unit, true)}${r.changePct !== null ? `, ${pctText(r.changePct)}` : ''}), p ${fmtP(r.p)}, threshold ${r.threshold}`);
  }
  return out.join('\n');
}

// ---------------------------------------------------------------------------------------------
// fortio export

/** fortio's histogram JSON (fortio.org/fortio/stats HistogramData), times in seconds. */
export interface FortioHistogram {
  Count: number;
  Min: number;
  Max: number;
  Sum: number;
  Avg: number;
  StdDev: number;
  Data: { Start: number; End: number; Percent: number; Count: number }[] | null;
  Percentiles?: { Percentile: number; Value: number }[];
}

/** The file name of a case's export: `<runId>-<index, 3 digits>-<dataplane>-<workload>-r<repeat>.json`. */
export function fortioFileName(run: RunRecord, c: CaseResult): string {
  const safe = (s: string) => String(s).replace(/[^A-Za-z0-9._-]/g, '_');
  return `${safe(run.runId)}-${String(c.index).padStart(3, '0')}-${safe(c.dataplane)}-${safe(c.workload)}-r${c.repeat}.json`;
}

/**
 * One case as a fortio result, the shape `fortio load -json` writes (see
 * test/fixtures/fortio-http1.json), built from the record:
 * - DurationHistogram: the record's sparse histogram (buckets of resolutionUs µs) as fortio's
 *   Data, times in seconds, first Start clamped to Min and last End to Max as fortio does, Percent
 *   cumulative; Count, Min, Max, Avg (and Sum = Avg · Count) are the record's; Percentiles are the
 *   record's exact nearest-rank p50/p90/p99/p99.9; StdDev is computed from bucket midpoints (the
 *   record keeps no per-request values), so it is exact only to the bucket width.
 * - It holds successful requests only (the record has no latencies of failed ones); failures are
 *   in RetCodes and in ErrorsDurationHistogram.Count, without data.
 * - A `Meshbench` object says where it came from; fortio ignores fields it does not know.
 * Undefined for a case without latency figures.
 */
export function fortioResult(run: RunRecord, c: CaseResult): Record<string, unknown> | undefined {
  const l = c.latencyUs;
  const h = l?.histogram;
  if (!l || !h || !Array.isArray(h.buckets) || h.buckets.length === 0) return undefined;
  const res = h.resolutionUs;
  const count = h.buckets.reduce((s, [, n]) => s + n, 0);
  const minUs = Math.min(l.min, h.buckets[0]![0] + res);
  const maxUs = Math.max(l.max, h.buckets[h.buckets.length - 1]![0]);
  let cum = 0;
  let sq = 0;
  const data = h.buckets.map(([startUs, n]) => {
    cum += n;
    const s = Math.max(startUs, minUs);
    const e = Math.max(s, Math.min(startUs + res, maxUs));
    sq += n * ((s + e) / 2 - l.mean) ** 2;
    return { Start: s / 1e6, End: e / 1e6, Percent: (100 * cum) / count, Count: n };
  });
  const pcts: [number, number][] = [
    [50, l.p50],
    [90, l.p90],
    [99, l.p99],
    [99.9, l.p999],
  ];
  const req = c.load.requested;
  const grpc = req.protocol === 'grpc';
  const id = fortioFileName(run, c).replace(/\.json$/, '');
  return {
    RunType: grpc ? 'GRPC Ping' : 'HTTP',
    // fortio's UI counts errors as DurationHistogram.Count − RetCodes[200], which is 0 here: say so in the title.
    Labels: `${c.dataplane} ${c.workload} r${c.repeat} ${run.runId}${c.load.actual.errors ? ` (${c.load.actual.errors} failed requests, not in the histogram)` : ''} , ${run.environment?.hostname ?? 'meshbench'}`,
    StartTime: c.startedAt,
    RequestedQPS: req.qps === 'max' ? 'max' : String(req.qps),
    RequestedDuration: `${req.durationS}s`,
    ActualQPS: c.load.actual.qps,
    ActualDuration: Math.round(c.load.actual.durationS * 1e9),
    NumThreads: req.connections,
    Version: run.environment?.tools?.fortio ?? c.provenance?.load?.version ?? '',
    DurationHistogram: {
      Count: count,
      Min: minUs / 1e6,
      Max: maxUs / 1e6,
      Sum: (l.mean * count) / 1e6,
      Avg: l.mean / 1e6,
      StdDev: Math.sqrt(sq / count) / 1e6,
      Data: data,
      Percentiles: pcts.filter(([, v]) => Number.isFinite(v)).map(([p, v]) => ({ Percentile: p, Value: v / 1e6 })),
    } satisfies FortioHistogram,
    ErrorsDurationHistogram: { Count: c.load.actual.errors, Min: 0, Max: 0, Sum: 0, Avg: 0, StdDev: 0, Data: null } satisfies FortioHistogram,
    Exactly: 0,
    Jitter: false,
    Uniform: false,
    NoCatchUp: false,
    RunID: 0,
    ID: id,
    RetCodes: c.load.actual.retCodes ?? {},
    ...(grpc ? { Destination: c.load.target } : { URL: c.load.target }),
    Resolution: res / 1e6,
    Meshbench: {
      runId: run.runId,
      scenario: run.scenario,
      caseIndex: c.index,
      dataplane: c.dataplane,
      workload: c.workload,
      repeat: c.repeat,
      status: c.status,
      model: c.load.model,
      latencySource: l.source,
      note: 'exported by meshbench compare: DurationHistogram holds successful requests only, at the record\'s bucket resolution; Percentiles are the record\'s exact figures; StdDev is from bucket midpoints',
    },
  };
}

/** Write every case of the run that has latency figures as fortio JSON into `dir`; returns the files. */
export function exportFortio(run: RunRecord, dir: string): string[] {
  mkdirSync(dir, { recursive: true });
  const files: string[] = [];
  for (const c of run.cases) {
    const j = fortioResult(run, c);
    if (!j) continue;
    const f = join(dir, fortioFileName(run, c));
    writeFileSync(f, JSON.stringify(j, null, 2) + '\n');
    files.push(f);
  }
  return files;
}

// ---------------------------------------------------------------------------------------------
// The command

export interface CompareCommandOptions extends CompareOptions {
  json?: boolean;
  exportFortio?: string;
}

/** Read, compare, export; returns what to print and the exit status. */
export function runCompare(fileA: string, fileB: string, o: CompareCommandOptions): { stdout: string; stderr: string; exitCode: number; comparison: Comparison } {
  const a = loadRunForCompare(fileA);
  const b = loadRunForCompare(fileB);
  const c = compareRuns(a, b, o);
  let exported: string[] | undefined;
  if (o.exportFortio) exported = [...exportFortio(a.record, o.exportFortio), ...exportFortio(b.record, o.exportFortio)];
  const stderr = c.warnings.map((w) => `meshbench: warning: ${w}\n`).join('');
  let stdout: string;
  if (o.json) stdout = JSON.stringify(exported ? { ...c, exported } : c, null, 2) + '\n';
  else {
    stdout = formatComparison(c) + '\n';
    if (exported) stdout += `fortio JSON: ${exported.length} file(s) in ${o.exportFortio} (view with: fortio report -data-dir ${o.exportFortio})\n`;
  }
  return { stdout, stderr, exitCode: c.exitCode, comparison: c };
}
