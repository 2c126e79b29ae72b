// The history in other tools' formats (docs/history.md#exporting): Bencher Metric Format (bmf) and
// github-action-benchmark's custom JSON (gab). Both take one data point per commit, so the
// metric rows are grouped by commit × testbed × kernel; each group is one document. In a group,
// a benchmark is scenario/dataplane/workload and its value the median of the ok repeats (of
// every run of the group), with the repeats' min and max as the bounds.
import { join } from 'node:path';
import { inputError } from '../errors.js';
import { writeFileAtomic } from '../results/write.js';
import { byString } from '../util/order.js';
import type { HistoryRow, MetricRow, Virtualisation } from './store.js';

export type ExportFormat = 'bmf' | 'gab';
export const EXPORT_FORMATS: readonly ExportFormat[] = ['bmf', 'gab'];

/** Bencher Metric Format: benchmark name → measure → metric. */
export type BmfDocument = Record<string, Record<string, { value: number; lower_value?: number; upper_value?: number }>>;

/** One entry of github-action-benchmark's customSmallerIsBetter / customBiggerIsBetter file. */
export interface GabEntry {
  name: string;
  unit: string;
  value: number;
  range?: string;
  extra?: string;
}

export interface ExportGroup {
  commit: string;
  dirty: boolean;
  /** The earliest run of the group. */
  at: string;
  testbed: string;
  kernel: string;
  virtualisation: Virtualisation;
  /** A name to give Bencher as `--testbed` (testbed and kernel, ≤ 64 characters). */
  bencherTestbed: string;
  runIds: string[];
}

export interface BmfExport extends ExportGroup {
  format: 'bmf';
  document: BmfDocument;
}

/** The action's `tool` is per file: lower-is-better metrics go to one, higher-is-better to the other. */
export interface GabExport extends ExportGroup {
  format: 'gab';
  customSmallerIsBetter: GabEntry[];
  customBiggerIsBetter: GabEntry[];
}

export interface ExportOptions {
  /** Only the newest group of each testbed × kernel (what a nightly job uploads). */
  latest?: boolean;
  /** Only this commit (a prefix of it). */
  commit?: string;
  /** Rows of TCG kernels (functional only) are left out unless this is set. */
  includeFunctionalOnly?: boolean;
}

const median = (v: number[]) => {
  const s = [...v].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const round = (v: number) => Number(v.toPrecision(12));

interface Group extends ExportGroup {
  figures: Map<string, { row: MetricRow; values: number[] }>;
}

function groups(rows: readonly HistoryRow[], opts: ExportOptions): Group[] {
  const by = new Map<string, Group>();
  for (const r of rows) {
    if (r.kind !== 'metric') continue;
    if (r.functionalOnly && !opts.includeFunctionalOnly) continue;
    if (opts.commit && !r.commit.startsWith(opts.commit)) continue;
    // A run without a commit is its own data point: nothing says two such runs measured the same code.
    const gk = [r.commit, r.dirty, r.testbed, r.kernel, r.virtualisation, r.commit === 'unknown' ? r.runId : ''].join('|');
    let g = by.get(gk);
    if (!g) {
      const tb = `${r.testbed}_${r.kernel}${r.virtualisation === 'none' ? '' : `_${r.virtualisation}`}`;
      g = {
        commit: r.commit,
        dirty: r.dirty,
        at: r.at,
        testbed: r.testbed,
        kernel: r.kernel,
        virtualisation: r.virtualisation,
        bencherTestbed: tb.replace(/[^A-Za-z0-9._-]+/g, '-').slice(0, 64),
        runIds: [],
        figures: new Map(),
      };
      by.set(gk, g);
    }
    if (r.at < g.at) g.at = r.at;
    if (!g.runIds.includes(r.runId)) g.runIds.push(r.runId);
    const fk = `${r.scenario}/${r.dataplane}/${r.workload}\n${r.metric}`;
    const f = g.figures.get(fk) ?? { row: r, values: [] };
    f.values.push(r.value);
    g.figures.set(fk, f);
  }
  let list = [...by.values()].sort((a, b) => byString(a.at, b.at) || byString(a.testbed, b.testbed) || byString(a.kernel, b.kernel));
  if (opts.latest) {
    const newest = new Map<string, Group>();
    for (const g of list) newest.set(`${g.testbed}|${g.kernel}|${g.virtualisation}`, g);
    list = list.filter((g) => newest.get(`${g.testbed}|${g.kernel}|${g.virtualisation}`) === g);
  }
  for (const g of list) g.runIds.sort(byString);
  return list;
}

const header = ({ figures: _f, ...g }: Group): ExportGroup => g;

function bmf(g: Group): BmfExport {
  const document: BmfDocument = {};
  for (const [k, { row, values }] of [...g.figures].sort((a, b) => byString(a[0], b[0]))) {
    const bench = k.slice(0, k.indexOf('\n'));
    const measure = `${row.metric} (${row.unit})`;
    const m: BmfDocument[string][string] = { value: round(median(values)) };
    if (values.length > 1) {
      m.lower_value = Math.min(...values);
      m.upper_value = Math.max(...values);
    }
    (document[bench] ??= {})[measure] = m;
  }
  return { ...header(g), format: 'bmf', document };
}

function gab(g: Group): GabExport {
  const smaller: GabEntry[] = [];
  const bigger: GabEntry[] = [];
  for (const [k, { row, values }] of [...g.figures].sort((a, b) => byString(a[0], b[0]))) {
    const e: GabEntry = { name: `${k.slice(0, k.indexOf('\n'))} ${row.metric}`, unit: row.unit, value: round(median(values)) };
    const lo = Math.min(...values);
    const hi = Math.max(...values);
    if (values.length > 1) e.range = `± ${round((hi - lo) / 2)}`;
    e.extra = `${values.length} repeat${values.length > 1 ? 's' : ''}${values.length > 1 ? ` (${lo}–${hi})` : ''}; testbed ${g.testbed}; kernel ${g.kernel}`;
    (row.direction === 'lower-is-better' ? smaller : bigger).push(e);
  }
  return { ...header(g), format: 'gab', customSmallerIsBetter: smaller, customBiggerIsBetter: bigger };
}

/** The metric rows as one document per commit × testbed × kernel, oldest first. Case and run rows carry no figures and are not exported. */
export function exportHistory(rows: readonly HistoryRow[], format: 'bmf', opts?: ExportOptions): BmfExport[];
export function exportHistory(rows: readonly HistoryRow[], format: 'gab', opts?: ExportOptions): GabExport[];
export function exportHistory(rows: readonly HistoryRow[], format: ExportFormat, opts?: ExportOptions): (BmfExport | GabExport)[];
export function exportHistory(rows: readonly HistoryRow[], format: ExportFormat, opts: ExportOptions = {}): (BmfExport | GabExport)[] {
  if (!EXPORT_FORMATS.includes(format)) throw inputError(`unknown export format ${JSON.stringify(format)} (valid: ${EXPORT_FORMATS.join(', ')})`);
  const make: (g: Group) => BmfExport | GabExport = format === 'bmf' ? bmf : gab;
  return groups(rows, opts).map(make);
}

/** The files of an export, relative names → JSON text: `<date>_<commit12>_<bencherTestbed>.json` (gab: `-smaller` and `-bigger`, empty ones left out). */
export function exportFiles(exports: readonly (BmfExport | GabExport)[]): { name: string; text: string }[] {
  const json = (v: unknown) => JSON.stringify(v, null, 2) + '\n';
  return exports.flatMap((e) => {
    const stem = `${e.at.slice(0, 10)}_${e.commit.slice(0, 12)}${e.dirty ? '-dirty' : ''}_${e.bencherTestbed}`;
    if (e.format === 'bmf') return [{ name: `${stem}.json`, text: json(e.document) }];
    return [
      ...(e.customSmallerIsBetter.length ? [{ name: `${stem}-smaller.json`, text: json(e.customSmallerIsBetter) }] : []),
      ...(e.customBiggerIsBetter.length ? [{ name: `${stem}-bigger.json`, text: json(e.customBiggerIsBetter) }] : []),
    ];
  });
}

/** Write an export's files into outDir (each whole; E_ENV when they cannot be written); their paths. */
export function writeExport(outDir: string, exports: readonly (BmfExport | GabExport)[]): string[] {
  return exportFiles(exports).map(({ name, text }) => {
    const file = join(outDir, name);
    writeFileAtomic(file, text, 'the history export');
    return file;
  });
}
