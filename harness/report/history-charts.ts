// The trend chart of the history report (history.ts): one figure per scenario × workload × metric ×
// testbed × kernel, one panel per dataplane stacked vertically, all panels on the same x (the
// group's runs, oldest first, labelled with commit and date) and each with its own y (dataplanes
// differ by orders of magnitude). Per panel: the repeats' spread as a band (min–max of `values`),
// the median as a line broken at gaps, the level of each segment between change points, change
// points as vertical rules with their size, and runs whose case was not ok as dashed rules.
// Rendered to static SVG by charts.ts's renderChart (no script in the page).
import type { SeriesCheck } from '../history/check.js';

export interface TrendRun {
  runId: string;
  commit: string;
  at: string;
}

/** How a unit is shown: axis title, factor from the stored unit, and decimals. */
export interface UnitView {
  title: string;
  factor: number;
  decimals: number;
}

export function unitView(unit: string): UnitView {
  switch (unit) {
    case 'us':
      return { title: 'µs', factor: 1, decimals: 1 };
    case 'ms':
      return { title: 'ms', factor: 1, decimals: 1 };
    case 's':
      return { title: 'CPU s', factor: 1, decimals: 3 };
    case 'bytes':
      return { title: 'MiB', factor: 1 / 1048576, decimals: 1 };
    case 'qps':
      return { title: 'qps', factor: 1, decimals: 2 };
    default:
      return { title: unit, factor: 1, decimals: 3 };
  }
}

const PANEL_WIDTH = 820;
const PANEL_HEIGHT = 120;
const MAX_TICKS = 12;
const COLORS = { line: '#0969da', level: '#8250df', gap: '#9a6700', bad: '#cf222e', good: '#1a7f37' };

/** `abc1234 11-22`: the label of a run on the x axis (commit, then month-day of its start). */
export function runLabel(r: TrendRun): string {
  const sha = r.commit === 'unknown' ? 'no-commit' : r.commit.slice(0, 7);
  return `${sha} ${r.at.slice(5, 10)}`.replace(/[^A-Za-z0-9 .:-]/g, '');
}

const round = (n: number, d: number) => {
  const f = 10 ** d;
  return Math.round(n * f) / f;
};

/** Axis ticks: at most MAX_TICKS runs, evenly spaced, always the last. */
function ticks(n: number): number[] {
  const step = Math.max(1, Math.ceil(n / MAX_TICKS));
  const out: number[] = [];
  for (let i = 0; i < n; i += step) out.push(i);
  if (out.at(-1) !== n - 1) {
    if (out.length > 1 && n - 1 - out.at(-1)! < step / 2) out.pop();
    out.push(n - 1);
  }
  return out;
}

const pctText = (x: number) => `${x >= 0 ? '+' : '−'}${Math.abs(x * 100).toFixed(1)} %`;

/** One dataplane's panel: layers over the group's x (run order). */
function panel(sc: SeriesCheck, runs: TrendRun[], unit: UnitView, last: boolean): Record<string, unknown> {
  const s = sc.series;
  const xOf = new Map(runs.map((r, i) => [r.runId, i]));
  const v = (n: number) => round(n * unit.factor, 6);
  // A line segment ends at every gap: `seg` counts the gaps passed so far.
  const gapX = new Set(s.gaps.map((g) => xOf.get(g.runId)!));
  let seg = 0;
  let prev = -1;
  const points = s.points.map((p) => {
    const x = xOf.get(p.runId)!;
    for (let i = prev + 1; i < x; i++) if (gapX.has(i)) seg++;
    prev = x;
    const vals = p.values ?? [p.value];
    return { x, v: v(p.value), lo: v(Math.min(...vals)), hi: v(Math.max(...vals)), seg };
  });
  // Segment levels between change points, on the x of the series' own points.
  const cps = sc.changePoints;
  const bounds = [0, ...cps.map((c) => c.index), s.points.length];
  const levels = cps.length
    ? bounds.slice(0, -1).map((start, i) => ({
        x0: xOf.get(s.points[start]!.runId)! - 0.3,
        x1: xOf.get(s.points[bounds[i + 1]! - 1]!.runId)! + 0.3,
        mean: v(i === 0 ? cps[0]!.before.mean : cps[i - 1]!.after.mean),
      }))
    : [];
  const marks = cps.map((c) => ({
    x: (xOf.get(s.points[c.index - 1]!.runId)! + xOf.get(s.points[c.index]!.runId)!) / 2,
    text: `${pctText(c.relChange)}${c === sc.open ? (sc.isNew ? ' new regression' : ' open regression') : c.regression ? ' regression' : ''}`,
    kind: c.regression ? 'bad' : 'good',
  }));
  const gaps = s.gaps.map((g) => ({ x: xOf.get(g.runId)!, text: [...new Set(g.statuses)].join('/') }));
  const n = runs.length;
  const labels = runs.map(runLabel);
  const x = {
    field: 'x',
    type: 'quantitative',
    scale: { domain: [-0.5, n - 0.5], nice: false, zero: false },
    axis: {
      values: ticks(n),
      labelExpr: `${JSON.stringify(labels)}[datum.value] || ''`,
      labels: last,
      labelAngle: -35,
      labelAlign: 'right',
      title: last ? 'run (commit, date), oldest first' : null,
      grid: true,
    },
  };
  const layers: Record<string, unknown>[] = [
    {
      data: { values: points },
      mark: { type: 'area', opacity: 0.22, color: COLORS.line },
      encoding: { x, y: { field: 'lo', type: 'quantitative' }, y2: { field: 'hi' }, detail: { field: 'seg', type: 'nominal' } },
    },
    // The same spread per run as a rule: a band between runs is invisible around a lone run.
    {
      data: { values: points.filter((p) => p.hi > p.lo) },
      mark: { type: 'rule', color: COLORS.line, opacity: 0.45, strokeWidth: 1.5 },
      encoding: { x, y: { field: 'lo', type: 'quantitative' }, y2: { field: 'hi' } },
    },
    {
      data: { values: points },
      mark: { type: 'line', color: COLORS.line, strokeWidth: 1.5, point: { filled: true, size: n > 120 ? 8 : 22, color: COLORS.line } },
      encoding: {
        x,
        y: { field: 'v', type: 'quantitative', title: unit.title, scale: { zero: false }, axis: { tickCount: 4 } },
        detail: { field: 'seg', type: 'nominal' },
      },
    },
  ];
  if (levels.length)
    layers.push({
      data: { values: levels },
      mark: { type: 'rule', color: COLORS.level, strokeWidth: 2, opacity: 0.8 },
      encoding: { x: { field: 'x0', type: 'quantitative' }, x2: { field: 'x1' }, y: { field: 'mean', type: 'quantitative' } },
    });
  if (gaps.length)
    layers.push(
      {
        data: { values: gaps },
        mark: { type: 'rule', color: COLORS.gap, strokeDash: [3, 3], strokeWidth: 1.5 },
        encoding: { x: { field: 'x', type: 'quantitative' } },
      },
      {
        data: { values: gaps },
        mark: { type: 'text', color: COLORS.gap, fontSize: 10, align: 'center', baseline: 'bottom', dy: -2 },
        encoding: { x: { field: 'x', type: 'quantitative' }, y: { value: PANEL_HEIGHT }, text: { field: 'text' } },
      },
    );
  if (marks.length) {
    const color = { field: 'kind', type: 'nominal', scale: { domain: ['bad', 'good'], range: [COLORS.bad, COLORS.good] }, legend: null };
    layers.push(
      { data: { values: marks }, mark: { type: 'rule', strokeWidth: 2 }, encoding: { x: { field: 'x', type: 'quantitative' }, color } },
      {
        data: { values: marks },
        mark: { type: 'text', fontSize: 11, fontWeight: 'bold', align: 'left', baseline: 'top', dx: 4, dy: 2 },
        encoding: { x: { field: 'x', type: 'quantitative' }, y: { value: 0 }, text: { field: 'text' }, color },
      },
    );
  }
  return {
    title: { text: s.dataplane, anchor: 'start', fontSize: 12, fontWeight: 'bold', offset: 4 },
    width: PANEL_WIDTH,
    height: PANEL_HEIGHT,
    layer: layers,
  };
}

/**
 * The Vega-Lite spec of one figure: `members` are the group's series (one per dataplane, in
 * panel order), `runs` the union of their runs in time order.
 */
export function trendSpec(members: SeriesCheck[], runs: TrendRun[], unit: UnitView): Record<string, unknown> {
  return {
    vconcat: members.map((m, i) => panel(m, runs, unit, i === members.length - 1)),
    spacing: 14,
  };
}
