// Did anything change between two runs? Cases are matched by (dataplane, workload); the repeats
// of a key are the samples. Per key and metric: A's median over its repeats, B's, the change
// B − A (absolute and relative to A), a percentile-bootstrap interval of the change (each run
// resampled on its own: two runs are independent), and a two-sided permutation test of the
// difference of medians (or Mann–Whitney U by permutation of ranks; stats.ts). The verdict is
// `better` or `worse` when p < alpha, in the metric's direction (metrics.ts), and `no significant
// change` otherwise. A --fail-on metric that is worse with p < alpha and beyond its threshold is
// a regression (exit 1). Bad input is E_INPUT. Seeded: the same two files give the same result.
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { inputError } from '../errors.js';
import { readRun } from '../results/write.js';
import type { CaseResult, RunRecord } from '../results/types.js';
import { DEFAULT_SEED, diffCI, mannWhitneyU, median, permutationTest } from './stats.js';
import { metricInfo, metricOf, metricsPresent, rolesOf, type MetricInfo, type MetricUnit } from './metrics.js';

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
  if (!existsSync(file))
    throw inputError(`${file}:1: file not found`, [], 'give the run.json a run wrote (results/<scenario>/<run-id>/run.json) or its directory');
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
  µs: { dim: 'time', factor: 1e-6 },
  μs: { dim: 'time', factor: 1e-6 },
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
  if (!m)
    throw inputError(
      `--threshold: cannot read ${JSON.stringify(text)}${where}`,
      [],
      "write a percentage (10%), a time (200us, 0.5ms), a size (2MiB), a bare number in the metric's unit, or per metric: p99=200us,qps=5%",
    );
  const value = Number(m[1]);
  const suffix = m[2]!;
  if (suffix === '%') return { text: text.trim(), kind: 'relative', value };
  if (suffix === '') return { text: text.trim(), kind: 'own', value };
  const u = Object.hasOwn(SUFFIX, suffix) ? SUFFIX[suffix] : undefined;
  if (!u) {
    throw inputError(
      `--threshold: unknown unit ${JSON.stringify(suffix)} in ${JSON.stringify(text)}${where} (valid: %, ns, us, µs, ms, s, B, KB, MB, GB, KiB, MiB, GiB, qps, or none for the metric's own unit)`,
    );
  }
  return { text: text.trim(), kind: 'absolute', value: value * u.factor, dim: u.dim };
}

/** Parse `--threshold`: one default and/or `metric=value` items, comma-separated. */
export function parseThreshold(spec: string): ThresholdSpec {
  let def: Threshold | undefined;
  const perMetric = new Map<string, Threshold>();
  for (const item of spec
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)) {
    const eq = item.indexOf('=');
    if (eq >= 0) {
      const name = item.slice(0, eq).trim();
      metricInfo(name);
      perMetric.set(name, parseOne(item.slice(eq + 1), ` for ${name}`));
    } else {
      if (def)
        throw inputError(
          `--threshold: more than one default threshold in ${JSON.stringify(spec)}`,
          [],
          'give one default and metric=value items for the others',
        );
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
      throw inputError(
        `metric ${info.name}: role ${JSON.stringify(info.role)} is in neither run (roles: ${roles.join(', ') || 'none'})`,
        [],
        `files: ${a.file}, ${b.file}`,
      );
    }
  }
  for (const m of failOn) {
    const info = infos.get(m)!;
    if (thresholdFor(thresholds, info) === null) {
      const t = thresholds.perMetric.get(m) ?? thresholds.default;
      throw inputError(
        `--threshold ${t.text} does not fit --fail-on metric ${m} (measured in ${info.unit})`,
        [],
        `give it its own: --threshold ${m}=5% (or a value in ${info.unit})`,
      );
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
  if (env(a.record) !== env(b.record))
    warnings.push(`the runs come from different hosts or kernels (A: ${env(a.record)}; B: ${env(b.record)}): changes mix host and code`);
  for (const [name, r] of [
    ['A', a],
    ['B', b],
  ] as const) {
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

/** A p-value as tables show it: 3 decimals, or <0.001. */
export function fmtP(p: number): string {
  if (!Number.isFinite(p)) return '—';
  return p < 0.001 ? '<0.001' : p.toFixed(3);
}
