// `meshbench history check`: change points in every series of the history (changepoints.ts),
// each tied to its commit range, and the verdict nightly CI acts on. A regression is *open* when
// it is the series' last change point (nothing after it brought the figure back), and *new* when
// it is open and starts within the last `recent` runs of its series: only new regressions fail
// the check, so an old, known step does not fail every later night once it is older than that.
// Series of TCG-emulated kernels (functional only) and series too short to hold two segments are
// skipped, and said so; a short series keeps its points (`short`) so the trend page still draws it.
import { attribute, defaults, detectChangePoints, type AttributedChangePoint } from './changepoints.js';
import { series as seriesOf, type HistoryRow, type Series } from './store.js';

export interface CheckOptions {
  significance?: number;
  permutations?: number;
  minSegment?: number;
  /** Smallest relative change reported (default 0.05). */
  minEffect?: number;
  /** A regression starting within this many of the latest runs of its series is new (default 10). */
  recent?: number;
  /** Only these metrics (default every metric). */
  metrics?: string[];
  /** Also series of TCG-emulated kernels. */
  includeFunctionalOnly?: boolean;
}

export interface SeriesCheck {
  key: string;
  series: Series;
  changePoints: AttributedChangePoint[];
  /** The last change point when it is a regression. */
  open?: AttributedChangePoint;
  /** `open`, when it starts within the last `recent` runs. */
  isNew: boolean;
  /** Too short to check: drawn on the trend page only. */
  unchecked?: boolean;
}

export interface HistoryCheck {
  series: SeriesCheck[];
  skipped: { key: string; reason: string }[];
  /** The skipped series that were only too short: drawn on the trend page, never checked. */
  short: { key: string; series: Series }[];
  options: Required<Omit<CheckOptions, 'metrics' | 'includeFunctionalOnly'>>;
}

export const DEFAULT_RECENT = 10;

export function checkHistory(rows: readonly HistoryRow[], opts: CheckOptions = {}): HistoryCheck {
  const o = {
    significance: opts.significance ?? defaults.significance,
    permutations: opts.permutations ?? defaults.permutations,
    minSegment: opts.minSegment ?? defaults.minSegment,
    minEffect: opts.minEffect ?? defaults.minEffect,
    recent: opts.recent ?? DEFAULT_RECENT,
  };
  const out: HistoryCheck = { series: [], skipped: [], short: [], options: o };
  for (const [key, s] of seriesOf(rows)) {
    if (opts.metrics && !opts.metrics.includes(s.metric)) continue;
    if (s.functionalOnly && !opts.includeFunctionalOnly) {
      out.skipped.push({ key, reason: 'TCG-emulated kernel: functional only' });
      continue;
    }
    if (s.points.length < 2 * o.minSegment) {
      out.skipped.push({ key, reason: `${s.points.length} run(s): fewer than two segments of ${o.minSegment}` });
      out.short.push({ key, series: s });
      continue;
    }
    const values = s.points.map((p) => p.value);
    const cps = attribute(detectChangePoints(values, { ...o, direction: s.direction }), s.points);
    const last = cps.at(-1);
    const open = last?.regression ? last : undefined;
    out.series.push({ key, series: s, changePoints: cps, open, isNew: !!open && open.index >= s.points.length - o.recent });
  }
  return out;
}

export const newRegressions = (c: HistoryCheck): SeriesCheck[] => c.series.filter((s) => s.isNew);

/** What `history check --json` prints: the series with change points (without their points), and the verdict. */
export function checkJson(c: HistoryCheck) {
  return {
    options: c.options,
    skipped: c.skipped,
    series: c.series
      .filter((s) => s.changePoints.length)
      .map(({ key, series: x, changePoints, open, isNew }) => {
        const { points: _p, gaps: _g, ...about } = x;
        return { key, ...about, runs: x.points.length, changePoints, openRegression: open, isNew };
      }),
    newRegressions: newRegressions(c).map((s) => s.key),
  };
}

const pct = (x: number) => `${x >= 0 ? '+' : ''}${(x * 100).toFixed(1)} %`;
const short = (c: string) => c.slice(0, 12);

/** One line per change point found (regressions first), then the verdict. */
export function formatCheck(c: HistoryCheck): string {
  const lines: string[] = [];
  const withCps = c.series.filter((s) => s.changePoints.length);
  const order = (s: SeriesCheck) => (s.isNew ? 0 : s.open ? 1 : 2);
  for (const s of [...withCps].sort((a, b) => order(a) - order(b))) {
    const x = s.series;
    for (const cp of s.changePoints) {
      const tag = cp === s.open ? (s.isNew ? 'NEW REGRESSION' : 'open regression') : cp.regression ? 'regression (later changed)' : 'improvement';
      lines.push(
        `${tag}: ${x.scenario} ${x.dataplane} ${x.workload} ${x.metric} on ${x.testbed} (${x.kernel}): ${pct(cp.relChange)} [${pct(cp.interval[0])}, ${pct(cp.interval[1])}] ` +
          `${cp.before.mean.toPrecision(4)} → ${cp.after.mean.toPrecision(4)} ${x.unit}, p ${cp.pValue.toFixed(3)}, between ${short(cp.range.from.commit)}..${short(cp.range.to.commit)} (run ${x.points[cp.index].runId})`,
      );
    }
  }
  const n = newRegressions(c).length;
  lines.push(
    `${c.series.length} series checked, ${c.skipped.length} skipped; ${withCps.reduce((a, s) => a + s.changePoints.length, 0)} change point(s); ` +
      (n ? `${n} new regression(s) beyond ${pct(c.options.minEffect).slice(1)} in the last ${c.options.recent} runs` : 'no new regression'),
  );
  return lines.join('\n');
}
