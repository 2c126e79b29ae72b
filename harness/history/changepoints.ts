// Change points in one metric's history: E-divisive means (Matteson & James, "A nonparametric
// approach for multiple change point analysis of multivariate data", JASA 2014), the method of
// MongoDB's signal-processing work (Daly et al., "The use of change point detection to identify
// software performance regressions in a continuous integration system", ICPE 2020) and of
// Hunter / Apache Otava. Pure: no I/O, no clock, no Math.random; same input and seed → same output.
//
// Method
// - Energy statistic, alpha = 1: splitting a segment into A (a points) and B (b points),
//   Q = ab/(a+b) · (2/(ab)·Σ|A−B| − Σ|A−A'|/C(a,2) − Σ|B−B'|/C(b,2)); kappa = the segment's end, as
//   in MongoDB's and Otava's code. Fenwick trees over value ranks keep the sums: all splits of an
//   m-point segment cost O(m log m), not O(m²).
// - Recursive bisection: the split with the largest Q over all current segments is the candidate;
//   it is accepted if a permutation test (values shuffled within each segment, statistic = the
//   largest Q over all segments, p = (1 + #{perm ≥ observed}) / (permutations + 1)) gives
//   p ≤ significance; the first rejected candidate stops the search.
// - Exact early stop (Besag & Clifford's sequential Monte-Carlo p-value): permutations stop as
//   soon as the exceedances already make p > significance. The accept/reject decision is the
//   same as running them all; only rejections get cheaper (accepted points run all of them).
// - Location: the argmax of Q is refined to the centre of the 5-run window (±LOCATION_WINDOW)
//   holding the most posterior mass of a single mean shift in the parent segment (Gaussian noise,
//   flat priors on the means, Jeffreys on sigma), within ±minSegment of the argmax. At a 2-sigma
//   step this puts ~95 % of estimates within ±2 runs; the argmax of Q alone ~91 %, least
//   squares ~92 %.
// - Drift is not a step: y = a + b·t + Σ c_k·[t ≥ split_k] is fitted by least squares over the
//   whole series, every accepted split at once; split k is reported only if its level shift net
//   of the common linear trend, |c_k|, is ≥ minEffect of the mean before it. A series with a
//   single split gets the benefit of the doubt: it is kept if |c| + one standard error reaches
//   minEffect (the trend and the step indicator are collinear, so at 60 points c's spread alone
//   would drop ~4 % of real 10 % steps). A slow drift passes the permutation test (its halves
//   differ) and E-divisive cuts it into a staircase of splits whose trend-net shifts are ~0.
//   Measured on seeded series (CV 5 %, 1000 trials; test/unit/changepoints.test.ts): a 10 % step
//   after 30 of 60 points found ±2 in 957 (960 without this check: the location estimate's own
//   limit), a 10 % drift over 240 points left alone in 960; a 10 % drift over 60 points is only
//   ~2 sigma from a 10 % step and is left alone in only 43 of 100.
// - Reported points: index = first point of the new segment; before/after = the adjacent
//   segments between accepted splits; relChange = (after − before)/|before| (= after/before − 1
//   for positive figures); points with |relChange| < minEffect are dropped. Its interval is
//   t-based: delta method for the ratio of two means, Welch–Satterthwaite degrees of freedom, 95 %.
// - regression: worse in the metric's direction (latency, cost: lower is better), |relChange| ≥ minEffect.
//
// Options and defaults: significance 0.01, permutations 199, minSegment 5 (≥ 2), seed 1,
// minEffect 0.05, direction 'lower-is-better'. Invalid options or non-finite values throw
// RangeError (callers validating files map that to their own error).

import { tCritical, trendNetShifts } from './stats.js';

export type Direction = 'lower-is-better' | 'higher-is-better';

export interface ChangePointOptions {
  /** Largest permutation p-value that accepts a split (default 0.01). */
  significance?: number;
  /** Permutations per candidate (default 199). */
  permutations?: number;
  /** Fewest points a segment may have (default 5, at least 2). */
  minSegment?: number;
  /** Seed of the permutation generator (default 1). */
  seed?: number;
  /** Smallest |relChange| reported (default 0.05). */
  minEffect?: number;
  /** Default 'lower-is-better' (latency, cost). */
  direction?: Direction;
}

export interface SegmentSummary {
  mean: number;
  n: number;
}

export interface ChangePoint {
  /** Index of the first point of the new segment. */
  index: number;
  /** Permutation p-value of the split. */
  pValue: number;
  before: SegmentSummary;
  after: SegmentSummary;
  /** after.mean / before.mean − 1 (relative to |before.mean|). */
  relChange: number;
  /** 95 % t-based interval of relChange (delta method, Welch–Satterthwaite df). */
  interval: [number, number];
  /** Worse in the metric's direction and |relChange| ≥ minEffect. */
  regression: boolean;
}

export interface SeriesPoint {
  commit: string;
  at: string;
}

export interface AttributedChangePoint extends ChangePoint {
  /** The change is in git's `from..to`: the last run before the new segment and its first run. */
  range: { from: SeriesPoint; to: SeriesPoint };
}

export const defaults = {
  significance: 0.01,
  permutations: 199,
  minSegment: 5,
  seed: 1,
  minEffect: 0.05,
  direction: 'lower-is-better' as Direction,
};

type Resolved = typeof defaults;

function resolve(opts: ChangePointOptions): Resolved {
  const o = { ...defaults, ...Object.fromEntries(Object.entries(opts).filter(([, v]) => v !== undefined)) } as Resolved;
  if (!(o.significance > 0 && o.significance < 1)) throw new RangeError(`significance must be in (0, 1), got ${o.significance}`);
  if (!Number.isInteger(o.permutations) || o.permutations < 1) throw new RangeError(`permutations must be a positive integer, got ${o.permutations}`);
  if (!Number.isInteger(o.minSegment) || o.minSegment < 2) throw new RangeError(`minSegment must be an integer ≥ 2, got ${o.minSegment}`);
  if (!Number.isFinite(o.seed)) throw new RangeError(`seed must be a finite number, got ${o.seed}`);
  if (!(o.minEffect >= 0)) throw new RangeError(`minEffect must be ≥ 0, got ${o.minEffect}`);
  if (o.direction !== 'lower-is-better' && o.direction !== 'higher-is-better')
    throw new RangeError(`direction must be lower-is-better or higher-is-better, got ${o.direction}`);
  return o;
}

/** mulberry32: small, fast, seeded; enough for shuffles. */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// Energy statistic

/** Scratch buffers shared by every scan of one series. */
type Workspace = { cnt: Int32Array; sum: Float64Array; left: Float64Array; right: Float64Array };
const workspace = (n: number): Workspace => ({
  cnt: new Int32Array(n + 1),
  sum: new Float64Array(n + 1),
  left: new Float64Array(n + 1),
  right: new Float64Array(n + 1),
});

/**
 * Within-sums of |xi − xj| of every prefix (ws.left[k]: points 0..k−1) or suffix (ws.right[k]:
 * points k..m−1) of a segment whose k-th point has rank rank[off + k] and value sorted[off + rank].
 */
function withinSums(sorted: Float64Array, rank: Int32Array, off: number, m: number, ws: Workspace, fromLeft: boolean): void {
  const { cnt, sum } = ws;
  const out = fromLeft ? ws.left : ws.right;
  cnt.fill(0, 0, m + 1);
  sum.fill(0, 0, m + 1);
  let total = 0;
  let acc = 0;
  out[fromLeft ? 0 : m] = 0;
  for (let step = 0; step < m; step++) {
    const k = fromLeft ? step : m - 1 - step;
    const r = rank[off + k];
    const x = sorted[off + r];
    let cl = 0;
    let sl = 0;
    for (let i = r; i > 0; i -= i & -i) {
      cl += cnt[i];
      sl += sum[i];
    }
    acc += x * cl - sl + (total - sl) - x * (step - cl);
    for (let i = r + 1; i <= m; i += i & -i) {
      cnt[i]++;
      sum[i] += x;
    }
    total += x;
    out[fromLeft ? k + 1 : k] = acc;
  }
}

/** Q of splitting before local index tau (a = tau points left, b = m − tau right). */
function qAt(ws: Workspace, m: number, tau: number): number {
  const a = tau;
  const b = m - tau;
  const wl = ws.left[tau];
  const wr = ws.right[tau];
  const cross = ws.left[m] - wl - wr;
  return ((a * b) / (a + b)) * ((2 * cross) / (a * b) - (2 * wl) / (a * (a - 1)) - (2 * wr) / (b * (b - 1)));
}

/** Best split of one segment: largest Q over tau in [minSegment, m − minSegment]. */
function bestSplit(sorted: Float64Array, rank: Int32Array, off: number, m: number, minSegment: number, ws: Workspace): { q: number; tau: number } {
  withinSums(sorted, rank, off, m, ws, true);
  withinSums(sorted, rank, off, m, ws, false);
  let q = Number.NEGATIVE_INFINITY;
  let tau = -1;
  for (let t = minSegment; t <= m - minSegment; t++) {
    const v = qAt(ws, m, t);
    if (v > q) {
      q = v;
      tau = t;
    }
  }
  return { q, tau };
}

/** Local ranks of values[s..e): sorted[s + r] is the r-th smallest, rank[s + k] the rank of point k. */
function rankSegment(values: Float64Array, s: number, e: number, sorted: Float64Array, rank: Int32Array): void {
  const idx = Array.from({ length: e - s }, (_, k) => k);
  idx.sort((i, j) => values[s + i] - values[s + j] || i - j);
  for (let r = 0; r < idx.length; r++) {
    sorted[s + r] = values[s + idx[r]];
    rank[s + idx[r]] = r;
  }
}

/** Q for every split of a whole series (index tau = first point right of the split); for tests. */
export function energyStatistic(values: readonly number[]): Float64Array {
  const n = values.length;
  const x = Float64Array.from(values);
  const sorted = new Float64Array(n);
  const rank = new Int32Array(n);
  rankSegment(x, 0, n, sorted, rank);
  const ws = workspace(n);
  withinSums(sorted, rank, 0, n, ws, true);
  withinSums(sorted, rank, 0, n, ws, false);
  const q = new Float64Array(n + 1).fill(Number.NaN);
  for (let t = 2; t <= n - 2; t++) q[t] = qAt(ws, n, t);
  return q;
}

// Location

/** Half-width of the window whose posterior mass the location maximises (±2 runs). */
export const LOCATION_WINDOW = 2;

/**
 * Refines the split tau0 of values[s..e): posterior of a single mean shift at tau (Gaussian noise,
 * flat priors on both means, Jeffreys prior on sigma: p(tau) ∝ (ab/m)^-1/2 · RSS(tau)^-(m-2)/2),
 * and the centre of the (2·LOCATION_WINDOW + 1)-run window with the most mass, within
 * tau0 ± minSegment; of equal windows (a short segment: each may hold all the mass) the likelier
 * centre. Returns a local index in [minSegment, m − minSegment].
 */
export function refineLocation(values: ArrayLike<number>, s: number, e: number, tau0: number, minSegment: number): number {
  const m = e - s;
  let mu = 0;
  for (let i = s; i < e; i++) mu += values[i];
  mu /= m;
  const pre = new Float64Array(m + 1);
  const pre2 = new Float64Array(m + 1);
  for (let k = 0; k < m; k++) {
    const v = values[s + k] - mu;
    pre[k + 1] = pre[k] + v;
    pre2[k + 1] = pre2[k] + v * v;
  }
  const lp = new Float64Array(m + 1).fill(Number.NEGATIVE_INFINITY);
  let top = Number.NEGATIVE_INFINITY;
  for (let t = minSegment; t <= m - minSegment; t++) {
    const a = pre[t];
    const b = pre[m] - a;
    const rss = Math.max(pre2[m] - (a * a) / t - (b * b) / (m - t), Number.MIN_VALUE);
    lp[t] = -0.5 * Math.log((t * (m - t)) / m) - ((m - 2) / 2) * Math.log(rss);
    if (lp[t] > top) top = lp[t];
  }
  let best = tau0;
  let bestMass = -1;
  for (let c = Math.max(minSegment, tau0 - minSegment); c <= Math.min(m - minSegment, tau0 + minSegment); c++) {
    let mass = 0;
    for (let t = c - LOCATION_WINDOW; t <= c + LOCATION_WINDOW; t++) if (t >= minSegment && t <= m - minSegment) mass += Math.exp(lp[t] - top);
    if (mass > bestMass * (1 + 1e-9) || (mass >= bestMass * (1 - 1e-9) && lp[c] > lp[best])) {
      bestMass = mass;
      best = c;
    }
  }
  return best;
}

// Detection

interface Segment {
  s: number;
  e: number;
  best: { q: number; tau: number } | null;
}

/** An accepted split before it is classified and filtered. */
export interface Split {
  index: number;
  pValue: number;
  /** The segment it split, [start, end). */
  parent: [number, number];
}

/** Every split the permutation test accepts, sorted by index (diagnostics and tests). */
export function splits(values: readonly number[], opts: ChangePointOptions = {}): Split[] {
  return findSplits(Float64Array.from(values), resolve(opts));
}

function findSplits(x: Float64Array, o: Resolved): Split[] {
  const n = x.length;
  const rand = mulberry32(o.seed);
  const ws = workspace(n);
  const sorted = new Float64Array(n);
  const rank = new Int32Array(n);
  const permRank = new Int32Array(n);
  // p ≤ significance ⟺ exceedances ≤ maxExceed.
  const maxExceed = Math.floor(o.significance * (o.permutations + 1) + 1e-9) - 1;
  if (maxExceed < 0) return [];

  const makeSegment = (s: number, e: number): Segment => {
    rankSegment(x, s, e, sorted, rank);
    const m = e - s;
    return { s, e, best: m >= 2 * o.minSegment ? bestSplit(sorted, rank, s, m, o.minSegment, ws) : null };
  };
  const segments = [makeSegment(0, n)];
  const splits: Split[] = [];

  for (;;) {
    let cand: Segment | undefined;
    for (const seg of segments) if (seg.best && (!cand || seg.best.q > cand.best!.q)) cand = seg;
    if (!cand?.best) break;
    const observed = cand.best.q;
    const live = segments.filter((seg) => seg.best);
    for (const seg of live) permRank.set(rank.subarray(seg.s, seg.e), seg.s);
    let exceed = 0;
    for (let r = 0; r < o.permutations && exceed <= maxExceed; r++) {
      let top = Number.NEGATIVE_INFINITY;
      for (const seg of live) {
        // Fisher–Yates in place: any arrangement shuffled again is uniformly random.
        for (let i = seg.e - 1; i > seg.s; i--) {
          const j = seg.s + Math.floor(rand() * (i - seg.s + 1));
          const t = permRank[i];
          permRank[i] = permRank[j];
          permRank[j] = t;
        }
        const q = bestSplit(sorted, permRank, seg.s, seg.e - seg.s, o.minSegment, ws).q;
        if (q > top) top = q;
      }
      if (top >= observed) exceed++;
    }
    if (exceed > maxExceed) break;
    const index = cand.s + refineLocation(x, cand.s, cand.e, cand.best.tau, o.minSegment);
    splits.push({ index, pValue: (1 + exceed) / (o.permutations + 1), parent: [cand.s, cand.e] });
    segments.splice(segments.indexOf(cand), 1, makeSegment(cand.s, index), makeSegment(index, cand.e));
  }
  return splits.sort((a, b) => a.index - b.index);
}

function summary(x: Float64Array, s: number, e: number): { mean: number; variance: number; n: number } {
  const n = e - s;
  let mean = 0;
  for (let i = s; i < e; i++) mean += x[i];
  mean /= n;
  let ss = 0;
  for (let i = s; i < e; i++) ss += (x[i] - mean) ** 2;
  return { mean, variance: n > 1 ? ss / (n - 1) : 0, n };
}

/** relChange and its 95 % interval: delta method on (A − B)/|B|, Welch–Satterthwaite df. */
function relativeChange(b: ReturnType<typeof summary>, a: ReturnType<typeof summary>): { rel: number; interval: [number, number] } {
  const B = b.mean;
  const A = a.mean;
  if (B === 0) {
    const rel = A === 0 ? 0 : A > 0 ? Number.POSITIVE_INFINITY : Number.NEGATIVE_INFINITY;
    return { rel, interval: [rel, rel] };
  }
  const rel = (A - B) / Math.abs(B);
  const wa = a.variance / a.n / (B * B);
  const wb = (A * A * b.variance) / b.n / (B * B * B * B);
  const v = wa + wb;
  if (v === 0) return { rel, interval: [rel, rel] };
  const df = (v * v) / ((a.n > 1 ? (wa * wa) / (a.n - 1) : 0) + (b.n > 1 ? (wb * wb) / (b.n - 1) : 0));
  const half = tCritical(0.05, Math.max(1, df)) * Math.sqrt(v);
  return { rel, interval: [rel - half, rel + half] };
}

/** Change points of one series (oldest value first), sorted by index. */
export function detectChangePoints(values: readonly number[], opts: ChangePointOptions = {}): ChangePoint[] {
  const o = resolve(opts);
  values.forEach((v, i) => {
    if (typeof v !== 'number' || !Number.isFinite(v)) throw new RangeError(`value ${i} is not a finite number: ${v}`);
  });
  const x = Float64Array.from(values);
  const splits = findSplits(x, o);
  const net = trendNetShifts(
    x,
    splits.map((sp) => sp.index),
  );
  const out: ChangePoint[] = [];
  splits.forEach((sp, k) => {
    const prev = k > 0 ? splits[k - 1].index : 0;
    const next = k + 1 < splits.length ? splits[k + 1].index : x.length;
    const before = summary(x, prev, sp.index);
    const after = summary(x, sp.index, next);
    const { rel, interval } = relativeChange(before, after);
    if (!(Math.abs(rel) >= o.minEffect)) return;
    // A drift's halves differ, but net of the trend its level shift is small: not a step.
    const floor = o.minEffect * Math.abs(before.mean);
    const { shift, se } = net[k];
    const step = Math.abs(shift) >= floor || (splits.length === 1 && Math.abs(shift) + se >= floor) || Number.isNaN(shift);
    if (!step) return;
    const worse = o.direction === 'lower-is-better' ? rel > 0 : rel < 0;
    out.push({
      index: sp.index,
      pValue: sp.pValue,
      before: { mean: before.mean, n: before.n },
      after: { mean: after.mean, n: after.n },
      relChange: rel,
      interval,
      regression: worse,
    });
  });
  return out;
}

/** Ties each change point to its commit range; series[i] is the run of values[i]. */
export function attribute(points: readonly ChangePoint[], series: readonly SeriesPoint[]): AttributedChangePoint[] {
  return points.map((p) => {
    if (!(p.index >= 1 && p.index < series.length)) throw new RangeError(`change point ${p.index} is outside a series of ${series.length} runs`);
    const { commit: fc, at: fa } = series[p.index - 1];
    const { commit: tc, at: ta } = series[p.index];
    return { ...p, range: { from: { commit: fc, at: fa }, to: { commit: tc, at: ta } } };
  });
}
