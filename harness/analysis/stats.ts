// Statistics for repeats: medians, percentile-bootstrap confidence intervals, a permutation test,
// and a dataplane's overhead over the baseline measured in the same run.
//
// Pure: no I/O, no clock, no Math.random. Every random choice comes from a seeded generator
// (mulberry32, seeded from a string hash), so the same input and seed give the same figures on
// every machine and every run — a report rendered twice is byte-identical.
//
// The unit of a sample here is one *repeat* (one case's figure, e.g. its p99), not one request:
// requests within a window are correlated and the spread between repeats (placement, caches,
// neighbours) is what decides whether a difference is real. With few repeats the tests are weak
// by construction — see `PermutationResult.minP`.
import * as ss from 'simple-statistics';
import type { CaseResult } from '../results/types.js';
import { metricOf } from './metrics.js';

// ---------------------------------------------------------------------------------------------
// Seeded random numbers

export type Seed = string | number;

/** A seeded uniform generator. */
export interface Rng {
  /** Uniform in [0, 1), 32 bits of resolution. */
  next(): number;
  /** Uniform integer in [0, n): floor(next() · n); the bias for n ≪ 2^32 is negligible. */
  int(n: number): number;
}

/**
 * 32-bit seed from a string: FNV-1a over the UTF-16 code units, then murmur3's fmix32 finalizer
 * so seeds that differ in one character give unrelated streams. Numbers are hashed as their
 * decimal string, so `hashSeed(7) === hashSeed('7')`.
 */
export function hashSeed(seed: Seed): number {
  const s = String(seed);
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** mulberry32 (Tommy Ettinger): a 32-bit state generator, period 2^32, good enough for resampling. */
export function rng(seed: Seed): Rng {
  let a = hashSeed(seed);
  const next = () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return { next, int: (n: number) => Math.floor(next() * n) };
}

/** The seed used when the caller gives none. */
export const DEFAULT_SEED = 'meshbench';

// ---------------------------------------------------------------------------------------------
// Descriptive statistics

// The basic statistics are simple-statistics' (quantiles are its type 7, linear interpolation);
// these wrappers only give NaN for an empty sample instead of throwing, and a 0–100 scale.

/**
 * The median: the middle value of the sorted sample, or the mean of the two middle values when
 * n is even. NaN for an empty sample. Equals `percentile(xs, 50)`.
 */
export function median(xs: ArrayLike<number>): number {
  return xs.length === 0 ? NaN : ss.median(Array.from(xs));
}

/** Arithmetic mean; NaN for an empty sample. */
export function mean(xs: ArrayLike<number>): number {
  return xs.length === 0 ? NaN : ss.mean(Array.from(xs));
}

/** Population standard deviation; NaN for an empty sample. */
export function standardDeviation(xs: ArrayLike<number>): number {
  return xs.length === 0 ? NaN : ss.standardDeviation(Array.from(xs));
}

/**
 * The p-th percentile (0 ≤ p ≤ 100) by linear interpolation between order statistics
 * (Hyndman & Fan type 7, the default of R's quantile() and numpy's percentile()): with the sample
 * sorted ascending as x[0..n−1], h = (n − 1)·p/100 and the result is
 * x[⌊h⌋] + (h − ⌊h⌋)·(x[⌊h⌋+1] − x[⌊h⌋]). So p = 0 is the minimum, p = 100 the maximum and p = 50
 * the median. NaN for an empty sample; RangeError for p outside [0, 100].
 *
 * (Latency percentiles of a window are computed elsewhere, by nearest rank over requests —
 * harness/load/fortio.ts; this one is for small samples such as repeats and bootstrap replicates.)
 */
export function percentile(xs: ArrayLike<number>, p: number): number {
  if (!(p >= 0 && p <= 100)) throw new RangeError(`percentile: p must be within [0, 100], got ${p}`);
  if (xs.length === 0) return NaN;
  return ss.quantile(Array.from(xs), p / 100);
}

// ---------------------------------------------------------------------------------------------
// Bootstrap confidence intervals

export type Statistic = (xs: number[]) => number;

export interface BootstrapOptions {
  /** Seed of the resampling stream; default DEFAULT_SEED. */
  seed?: Seed;
  /** Bootstrap resamples; default 2000. */
  resamples?: number;
  /** Coverage of the interval, in (0, 1); default 0.95. */
  level?: number;
}

export interface Interval {
  /** The statistic on the sample as given (not a bootstrap average). */
  estimate: number;
  /** Lower and upper bound of the percentile-bootstrap interval. */
  low: number;
  high: number;
  /** Sample size (for a difference of two groups: nA + nB; for pairs: the number of pairs). */
  n: number;
  level: number;
  resamples: number;
}

const DEFAULT_RESAMPLES = 2000;
const DEFAULT_LEVEL = 0.95;

function bootOpts(o: BootstrapOptions): { seed: Seed; resamples: number; level: number } {
  const resamples = o.resamples ?? DEFAULT_RESAMPLES;
  const level = o.level ?? DEFAULT_LEVEL;
  if (!Number.isInteger(resamples) || resamples < 1) throw new RangeError(`resamples must be a whole number ≥ 1, got ${resamples}`);
  if (!(level > 0 && level < 1)) throw new RangeError(`level must be within (0, 1), got ${level}`);
  return { seed: o.seed ?? DEFAULT_SEED, resamples, level };
}

/** Fill `out` with a resample of `xs` drawn with replacement. */
function resampleInto(xs: ArrayLike<number>, out: number[], r: Rng): number[] {
  for (let i = 0; i < out.length; i++) out[i] = xs[r.int(xs.length)]!;
  return out;
}

/** The interval's bounds: the (1−level)/2 and (1+level)/2 percentiles (type 7) of the replicates. */
function bounds(replicates: number[], level: number): { low: number; high: number } {
  const s = replicates.sort((a, b) => a - b);
  return { low: ss.quantileSorted(s, (1 - level) / 2), high: ss.quantileSorted(s, (1 + level) / 2) };
}

/**
 * Percentile bootstrap (Efron): draw `resamples` samples of size n with replacement from `xs`,
 * compute `stat` on each, and take the (1−level)/2 and (1+level)/2 percentiles (type 7) of those
 * replicates as the interval. `estimate` is `stat(xs)`. For n = 1 the interval is the single value;
 * for n = 0 every figure is NaN. The default statistic is the median. For the median (and the mean)
 * the interval always contains the estimate.
 */
export function bootstrapCI(xs: ArrayLike<number>, stat: Statistic = median, opts: BootstrapOptions = {}): Interval {
  const { seed, resamples, level } = bootOpts(opts);
  const n = xs.length;
  const estimate = n ? stat(Array.from(xs)) : NaN;
  if (n === 0) return { estimate, low: NaN, high: NaN, n, level, resamples };
  const r = rng(seed);
  const buf = new Array<number>(n);
  const reps = new Array<number>(resamples);
  for (let i = 0; i < resamples; i++) reps[i] = stat(resampleInto(xs, buf, r));
  return { estimate, ...bounds(reps, level), n, level, resamples };
}

export interface DiffInterval extends Interval {
  nA: number;
  nB: number;
}

/**
 * The difference stat(b) − stat(a) (default: difference of medians, b − a) with a percentile
 * bootstrap interval: each replicate resamples `a` (size nA) and `b` (size nB) independently with
 * replacement, from one seeded stream (a's draws, then b's), and takes stat(b*) − stat(a*). For
 * two independent groups (two runs). NaN figures when either group is empty.
 */
export function diffCI(a: ArrayLike<number>, b: ArrayLike<number>, opts: BootstrapOptions & { stat?: Statistic } = {}): DiffInterval {
  const { seed, resamples, level } = bootOpts(opts);
  const stat = opts.stat ?? median;
  const nA = a.length;
  const nB = b.length;
  const base = { n: nA + nB, nA, nB, level, resamples };
  if (nA === 0 || nB === 0) return { estimate: NaN, low: NaN, high: NaN, ...base };
  const estimate = stat(Array.from(b)) - stat(Array.from(a));
  const r = rng(seed);
  const bufA = new Array<number>(nA);
  const bufB = new Array<number>(nB);
  const reps = new Array<number>(resamples);
  for (let i = 0; i < resamples; i++) {
    const sa = stat(resampleInto(a, bufA, r));
    reps[i] = stat(resampleInto(b, bufB, r)) - sa;
  }
  return { estimate, ...bounds(reps, level), ...base };
}

/** One pair of a paired comparison: the same repeat measured under A and under B. */
export type Pair = readonly [a: number, b: number] | { a: number; b: number };

/**
 * Paired difference: d_i = b_i − a_i for each pair, then `bootstrapCI(d, median)`: the estimate
 * is the median of the per-pair differences (which, unlike the difference of medians, keeps what
 * the pairs share — the repeat's host state — out of the spread). Resamples pairs, so n is the
 * number of pairs. For interleaved repeats of one run (dataplane and baseline in repeat r).
 */
export function pairedDiffCI(pairs: readonly Pair[], opts: BootstrapOptions = {}): Interval {
  const d = pairs.map((p) => (Array.isArray(p) ? p[1] - p[0] : (p as { a: number; b: number }).b - (p as { a: number; b: number }).a));
  return bootstrapCI(d, median, opts);
}

// ---------------------------------------------------------------------------------------------
// Significance

export interface PermutationOptions {
  seed?: Seed;
  /**
   * Random relabellings for the Monte Carlo test; default 5000. When the number of distinct
   * splits C(nA+nB, nA) is at most this, every split is enumerated instead (exact test).
   */
  permutations?: number;
  /** Statistic whose difference is tested; default median. */
  stat?: Statistic;
}

export interface PermutationResult {
  /** Two-sided p-value. */
  p: number;
  /** Observed stat(b) − stat(a). */
  statistic: number;
  method: 'exact' | 'monte-carlo' | 'none';
  /** Splits evaluated (all of them when exact). */
  permutations: number;
  /**
   * The smallest p this test can give for these group sizes: its p for two completely separated
   * samples (every b above every a, values 1…nA+nB); 1/(1 + permutations) for the Monte Carlo test.
   * When minP ≥ alpha no change can be called significant, however large.
   */
  minP: number;
}

/** Binomial coefficient C(n, k) as a float (exact below 2^53). */
export function choose(n: number, k: number): number {
  if (k < 0 || k > n) return 0;
  k = Math.min(k, n - k);
  let c = 1;
  for (let i = 1; i <= k; i++) c = (c * (n - k + i)) / i;
  return Math.round(c);
}

/**
 * Two-sided permutation test of "stat(a) = stat(b)" (default stat: median). Under the null
 * hypothesis the labels are exchangeable, so the observed T = stat(b) − stat(a) is compared with T
 * over relabellings of the pooled sample into groups of the same sizes:
 * - exact, when C(nA+nB, nA) ≤ permutations: every split is enumerated and
 *   p = #{splits with |T*| ≥ |T|} / C(nA+nB, nA) (the observed split is one of them, so p > 0);
 * - otherwise Monte Carlo: `permutations` random splits (seeded partial Fisher–Yates shuffles) and
 *   p = (1 + #{|T*| ≥ |T|}) / (1 + permutations) (Phipson & Smyth: never 0, never anti-conservative).
 * "≥" allows a relative tolerance of 1e-9 of the sample's scale, so ties in floating point count
 * as ties. p = 1 with method "none" when either group is empty.
 *
 * The median is robust but coarse: many splits share the observed medians, so small samples cannot
 * give small p. Completely separated samples give p = 0.2 for 3 vs 3 repeats, 0.057 for 4 vs 4,
 * 0.048 for 5 vs 5, 0.013 for 6 vs 6 (see `minP`); the rank test (`mannWhitneyU`) reaches 0.029 with
 * 4 vs 4 and 0.008 with 5 vs 5.
 */
export function permutationTest(a: ArrayLike<number>, b: ArrayLike<number>, opts: PermutationOptions = {}): PermutationResult {
  const stat = opts.stat ?? median;
  const permutations = opts.permutations ?? 5000;
  if (!Number.isInteger(permutations) || permutations < 1) throw new RangeError(`permutations must be a whole number ≥ 1, got ${permutations}`);
  const nA = a.length;
  const nB = b.length;
  if (nA === 0 || nB === 0) return { p: 1, statistic: NaN, method: 'none', permutations: 0, minP: 1 };
  const r = permute(Array.from(a), Array.from(b), stat, permutations, opts.seed ?? DEFAULT_SEED);
  const minP =
    r.method === 'exact'
      ? permute(
          Array.from({ length: nA }, (_, i) => i + 1),
          Array.from({ length: nB }, (_, i) => nA + i + 1),
          stat,
          permutations,
          DEFAULT_SEED,
        ).p
      : 1 / (1 + permutations);
  return { ...r, minP };
}

function permute(a: number[], b: number[], stat: Statistic, permutations: number, seed: Seed): Omit<PermutationResult, 'minP'> {
  const nA = a.length;
  const nB = b.length;
  const pooled = [...a, ...b];
  const N = pooled.length;
  const observed = stat(b) - stat(a);
  const scale = pooled.reduce((m, x) => Math.max(m, Math.abs(x)), 0);
  const cut = Math.abs(observed) - 1e-9 * Math.max(scale, Number.MIN_VALUE);
  const ga = new Array<number>(nA);
  const gb = new Array<number>(nB);

  if (choose(N, nA) <= permutations) {
    // Enumerate the index sets of group A in lexicographic order.
    const idx = Array.from({ length: nA }, (_, i) => i);
    const inA = new Uint8Array(N);
    let hits = 0;
    let count = 0;
    for (;;) {
      inA.fill(0);
      for (let i = 0; i < nA; i++) {
        inA[idx[i]!] = 1;
        ga[i] = pooled[idx[i]!]!;
      }
      let j = 0;
      for (let i = 0; i < N; i++) if (!inA[i]) gb[j++] = pooled[i]!;
      if (Math.abs(stat(gb) - stat(ga)) >= cut) hits++;
      count++;
      let k = nA - 1;
      while (k >= 0 && idx[k] === N - nA + k) k--;
      if (k < 0) break;
      idx[k]!++;
      for (let i = k + 1; i < nA; i++) idx[i] = idx[i - 1]! + 1;
    }
    return { p: hits / count, statistic: observed, method: 'exact', permutations: count };
  }

  const r = rng(seed);
  const work = pooled.slice();
  let hits = 0;
  for (let t = 0; t < permutations; t++) {
    // Partial Fisher–Yates: the first nA positions become a uniform random subset.
    for (let i = 0; i < nA; i++) {
      const j = i + r.int(N - i);
      const x = work[i]!;
      work[i] = work[j]!;
      work[j] = x;
    }
    for (let i = 0; i < nA; i++) ga[i] = work[i]!;
    for (let i = nA; i < N; i++) gb[i - nA] = work[i]!;
    if (Math.abs(stat(gb) - stat(ga)) >= cut) hits++;
  }
  return { p: (1 + hits) / (1 + permutations), statistic: observed, method: 'monte-carlo', permutations };
}

/**
 * Mid-ranks (1-based) of the pooled sample a ++ b: tied values share the mean of their ranks.
 * Returns the ranks of a and of b.
 */
export function midRanks(a: ArrayLike<number>, b: ArrayLike<number>): { a: number[]; b: number[] } {
  const pooled = [...Array.from(a), ...Array.from(b)];
  const order = pooled.map((v, i) => ({ v, i })).sort((x, y) => x.v - y.v || x.i - y.i);
  const ranks = new Array<number>(pooled.length);
  for (let i = 0; i < order.length; ) {
    let j = i;
    while (j + 1 < order.length && order[j + 1]!.v === order[i]!.v) j++;
    const r = (i + j) / 2 + 1;
    for (let k = i; k <= j; k++) ranks[order[k]!.i] = r;
    i = j + 1;
  }
  return { a: ranks.slice(0, a.length), b: ranks.slice(a.length) };
}

export interface RankTestResult extends PermutationResult {
  /** Mann–Whitney U of b: #{(a_i, b_j): b_j > a_i} + ½·#{ties}. nA·nB/2 when nothing changed. */
  u: number;
}

/**
 * Mann–Whitney U (Wilcoxon rank-sum) test, two-sided, by permutation of the mid-ranks: the
 * statistic is mean rank(b) − mean rank(a), a monotone function of U, so
 * |T*| ≥ |T| ⇔ |U* − nA·nB/2| ≥ |U − nA·nB/2|. Exact enumeration or Monte Carlo exactly as
 * `permutationTest` (no normal approximation; ties handled by mid-ranks). `statistic` is the
 * mean-rank difference; `u` is U of b.
 */
export function mannWhitneyU(a: ArrayLike<number>, b: ArrayLike<number>, opts: Omit<PermutationOptions, 'stat'> = {}): RankTestResult {
  const r = midRanks(a, b);
  const res = permutationTest(r.a, r.b, { ...opts, stat: mean });
  const nB = b.length;
  const u = r.b.reduce((s, x) => s + x, 0) - (nB * (nB + 1)) / 2;
  return { ...res, u: a.length && nB ? u : NaN };
}

// ---------------------------------------------------------------------------------------------
// Overhead over the baseline

export type MetricSelector = string | ((c: CaseResult) => number | undefined);

export interface OverheadPair {
  repeat: number;
  baseline: number;
  dataplane: number;
  /** dataplane − baseline. */
  diff: number;
}

export interface OverheadResult extends Interval {
  workload: string;
  dataplane: string;
  baseline: string;
  metric: string;
  /** True when the estimate is the median of per-repeat differences; false: difference of medians. */
  paired: boolean;
  /** Medians of the metric over the repeats used, for scale. */
  baselineMedian: number;
  dataplaneMedian: number;
  /** The pairs used (empty when unpaired). */
  pairs: OverheadPair[];
}

/**
 * A dataplane's overhead over the baseline, per workload, from the cases of ONE run (the design
 * interleaves repeats outer, dataplanes inner, so repeat r of both ran back to back on the same
 * host state). Only cases with status "ok" and a finite value of the metric count.
 *
 * For each workload where both dataplanes have values:
 * - paired, when at least one repeat number has exactly one case of each: the pairs' differences
 *   dataplane − baseline summarised by `pairedDiffCI` (median of differences, bootstrap interval);
 *   repeats where only one side has a value are left out;
 * - otherwise unpaired: `diffCI(baseline values, dataplane values)` (difference of medians).
 * Workloads appear in the order of their first case. The default seed is derived from
 * dataplane, baseline, workload and metric, so each result is reproducible on its own.
 */
export function overhead(
  cases: readonly CaseResult[],
  dataplane: string,
  baseline: string,
  metric: MetricSelector,
  opts: BootstrapOptions = {},
): OverheadResult[] {
  const value = typeof metric === 'string' ? (c: CaseResult) => metricOf(c, metric) : metric;
  const metricName = typeof metric === 'string' ? metric : metric.name || 'custom';
  const usable = (c: CaseResult, dp: string) => c.dataplane === dp && c.status === 'ok';
  const workloads = [...new Set(cases.filter((c) => c.dataplane === dataplane || c.dataplane === baseline).map((c) => c.workload))];
  const out: OverheadResult[] = [];
  for (const workload of workloads) {
    const side = (dp: string) => {
      const byRepeat = new Map<number, number[]>();
      for (const c of cases) {
        if (c.workload !== workload || !usable(c, dp)) continue;
        const v = value(c);
        if (v === undefined || !Number.isFinite(v)) continue;
        const list = byRepeat.get(c.repeat) ?? [];
        list.push(v);
        byRepeat.set(c.repeat, list);
      }
      return byRepeat;
    };
    const base = side(baseline);
    const dp = side(dataplane);
    const baseAll = [...base.values()].flat();
    const dpAll = [...dp.values()].flat();
    if (!baseAll.length || !dpAll.length) continue;
    const seed = opts.seed ?? `overhead:${dataplane}:${baseline}:${workload}:${metricName}`;
    const pairs: OverheadPair[] = [];
    for (const [repeat, bv] of [...base.entries()].sort((x, y) => x[0] - y[0])) {
      const dv = dp.get(repeat);
      if (bv.length === 1 && dv?.length === 1) pairs.push({ repeat, baseline: bv[0]!, dataplane: dv[0]!, diff: dv[0]! - bv[0]! });
    }
    const paired = pairs.length > 0;
    const ci = paired
      ? pairedDiffCI(
          pairs.map((p) => [p.baseline, p.dataplane] as const),
          { ...opts, seed },
        )
      : diffCI(baseAll, dpAll, { ...opts, seed });
    out.push({
      estimate: ci.estimate,
      low: ci.low,
      high: ci.high,
      n: ci.n,
      level: ci.level,
      resamples: ci.resamples,
      workload,
      dataplane,
      baseline,
      metric: metricName,
      paired,
      baselineMedian: median(paired ? pairs.map((p) => p.baseline) : baseAll),
      dataplaneMedian: median(paired ? pairs.map((p) => p.dataplane) : dpAll),
      pairs,
    });
  }
  return out;
}
