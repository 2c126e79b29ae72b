// Charts for the report: Vega-Lite specs built from the run records, compiled with vega-lite and
// rendered to static SVG with vega at build time (no browser, no network, no JavaScript in the
// page). Output is made deterministic: text widths are always estimated from a fixed table (never
// measured with a canvas package that may or may not be installed), labels are never truncated
// (vega-scenegraph sizes truncated labels inconsistently with a custom width), and the ids vega numbers from a
// process-wide counter (clip paths, gradients) are renamed per chart in order of appearance,
// which also keeps ids unique when several charts are inlined in one page.
import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';
import { defangUrls } from './format.js';

export interface ChartSeries {
  /** Unique, human-readable case label (legend entry). */
  label: string;
}

export interface PercentileRow {
  case: string;
  percentile: string;
  us: number;
}

export interface CdfRow {
  case: string;
  us: number;
  fraction: number;
}

export interface RoleRow {
  case: string;
  role: string;
  value: number;
}

export interface RenderedChart {
  /** File stem: `<name>.svg` beside index.html. */
  name: string;
  title: string;
  caption: string;
  /** The compiled Vega spec (data inline), as embedded in the page. */
  spec: unknown;
  svg: string;
}

export const PERCENTILES: [key: 'p50' | 'p90' | 'p99' | 'p999', label: string][] = [
  ['p50', 'p50'],
  ['p90', 'p90'],
  ['p99', 'p99'],
  ['p999', 'p99.9'],
];

const CONFIG = {
  font: 'sans-serif',
  background: 'white',
  padding: 8,
  view: { stroke: '#d0d7de' },
  axis: { labelLimit: 0, labelFontSize: 11, titleFontSize: 12, titleFontWeight: 'normal', gridColor: '#eaeef2', domainColor: '#8c959f', tickColor: '#8c959f' },
  legend: { labelFontSize: 11, titleFontSize: 12, labelLimit: 0, orient: 'bottom', direction: 'vertical', columns: 1 },
  line: { strokeWidth: 2 },
} as const;

const scheme = (n: number) => (n <= 10 ? 'tableau10' : 'tableau20');

// Advance widths of Arial/Helvetica, in 1/1000 em, for printable ASCII (32…126). Used to estimate
// text widths the same way on every host (vega's own estimate, 0.8 em per character, makes charts
// far wider than their text; measuring needs the optional `canvas` package and the host's fonts).
const ASCII_WIDTHS = [
  278, 278, 355, 556, 556, 889, 667, 191, 333, 333, 389, 584, 278, 333, 278, 278, 556, 556, 556, 556, 556, 556, 556, 556, 556, 556, 278, 278, 584, 584, 584,
  556, 1015, 667, 667, 722, 722, 667, 611, 778, 722, 278, 500, 667, 556, 833, 722, 778, 667, 778, 722, 667, 611, 722, 667, 944, 667, 667, 611, 278, 278, 278,
  469, 556, 333, 556, 556, 500, 556, 556, 278, 556, 556, 222, 222, 500, 222, 833, 556, 556, 556, 556, 333, 500, 278, 556, 500, 722, 500, 500, 500, 334, 260,
  334, 584,
];
const OTHER_WIDTHS: Record<string, number> = { '·': 278, '…': 1000, µ: 556, '—': 1000, '–': 556, '×': 584, '÷': 584 };
/** Generic sans-serif fonts (DejaVu Sans, Liberation Sans) run a little wider than Arial: leave room. */
const SAFETY = 1.1;

/** Estimated width in px of text in a sans-serif font; deterministic on every host. */
export function estimateTextWidth(text: string, fontSize: number, bold = false): number {
  let units = 0;
  for (const ch of text) {
    const code = ch.codePointAt(0)!;
    units += code >= 32 && code <= 126 ? ASCII_WIDTHS[code - 32]! : (OTHER_WIDTHS[ch] ?? 600);
  }
  return Math.ceil((units / 1000) * fontSize * SAFETY * (bold ? 1.08 : 1));
}

interface TextItem {
  fontSize?: number;
  fontWeight?: string | number;
}

let metricsFixed = false;
function useOwnTextMetrics(): void {
  if (metricsFixed) return;
  const tm = (vega as unknown as { textMetrics?: { width: (item: TextItem, text: unknown) => number } }).textMetrics;
  if (tm) {
    tm.width = (item, text) => {
      const size = item.fontSize != null ? +item.fontSize || 0 : 11;
      const w = item.fontWeight;
      const bold = w === 'bold' || w === 'bolder' || (typeof w === 'number' && w >= 600) || (typeof w === 'string' && +w >= 600);
      return estimateTextWidth(text == null ? '' : String(text).trim(), size, bold);
    };
  }
  metricsFixed = true;
}

/** Rename every id (and its url(#…)/href="#…" references) to `<prefix>-<n>` in order of first appearance. */
export function normalizeSvgIds(svg: string, prefix: string): string {
  const ids = new Map<string, string>();
  const idFor = (old: string) => {
    let v = ids.get(old);
    if (v === undefined) {
      v = `${prefix}-${ids.size + 1}`;
      ids.set(old, v);
    }
    return v;
  };
  return svg.replace(/\bid="([^"]+)"|url\(#([^)]+)\)|href="#([^"]+)"/g, (_m, a?: string, b?: string, c?: string) =>
    a !== undefined ? `id="${idFor(a)}"` : b !== undefined ? `url(#${idFor(b)})` : `href="#${idFor(c!)}"`,
  );
}

/** Compile a Vega-Lite spec and render it to SVG. */
export async function renderChart(name: string, title: string, caption: string, vl: Record<string, unknown>): Promise<RenderedChart> {
  useOwnTextMetrics();
  const compiled = compile(vl as unknown as TopLevelSpec, { config: CONFIG as never }).spec as Record<string, unknown>;
  delete compiled.$schema; // a URL; the page must hold none
  const view = new vega.View(vega.parse(compiled as vega.Spec), { renderer: 'none' });
  let svg: string;
  try {
    svg = await view.toSVG();
  } finally {
    view.finalize();
  }
  svg = defangUrls(normalizeSvgIds(svg, `mb-${name}`));
  return { name, title, caption, spec: compiled, svg };
}

const colorEnc = (labels: string[], title: string) => ({
  field: 'case',
  type: 'nominal',
  title,
  scale: { domain: labels, scheme: scheme(labels.length) },
});

/** Percentiles as ordered categories on x, latency on y, one line per case. */
export function percentileSpec(rows: PercentileRow[], labels: string[]): Record<string, unknown> {
  return {
    width: 560,
    height: 300,
    data: { values: rows },
    mark: { type: 'line', point: { filled: true, size: 45 } },
    encoding: {
      x: { field: 'percentile', type: 'ordinal', sort: PERCENTILES.map((p) => p[1]), title: 'percentile', axis: { labelAngle: 0 } },
      y: { field: 'us', type: 'quantitative', title: 'latency (µs)', scale: { zero: true } },
      color: colorEnc(labels, 'case'),
    },
  };
}

/** Cumulative distribution from the histograms, log latency axis. */
export function cdfSpec(rows: CdfRow[], labels: string[]): Record<string, unknown> {
  return {
    width: 560,
    height: 300,
    data: { values: rows },
    mark: { type: 'line', interpolate: 'linear' },
    encoding: {
      x: { field: 'us', type: 'quantitative', title: 'latency (µs, log scale)', scale: { type: 'log' } },
      y: { field: 'fraction', type: 'quantitative', title: 'fraction of requests at or below', scale: { domain: [0, 1] }, axis: { format: '.0%' } },
      color: colorEnc(labels, 'case'),
    },
  };
}

/** Horizontal stacked bars: one bar per case, one segment per role. */
export function stackedRoleSpec(rows: RoleRow[], labels: string[], roles: string[], axisTitle: string, legendTitle = 'role'): Record<string, unknown> {
  return {
    width: 520,
    height: { step: 26 },
    data: { values: rows.map((r) => ({ ...r, roleOrder: roles.indexOf(r.role) })) },
    mark: { type: 'bar' },
    encoding: {
      y: { field: 'case', type: 'nominal', sort: labels, title: null },
      x: { field: 'value', type: 'quantitative', stack: 'zero', title: axisTitle },
      color: { field: 'role', type: 'nominal', title: legendTitle, scale: { domain: roles, scheme: scheme(roles.length) } },
      order: { field: 'roleOrder', type: 'quantitative' },
    },
  };
}
