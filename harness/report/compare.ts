// `meshbench compare` as text: an aligned table of the comparison analysis/compare.ts computed,
// and a closing verdict line.
import { EXIT_REGRESSION, fmtP, type Comparison } from '../analysis/compare.js';
import type { MetricUnit } from '../analysis/metrics.js';
import { fixed } from './format.js';

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

function table(head: string[], rows: string[][]): string[] {
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(w[i]!)))
      .join('  ')
      .trimEnd();
  return [line(head), line(w.map((n) => '-'.repeat(n))), ...rows.map(line)];
}

/** The comparison as an aligned text table with a header and a closing verdict line. */
export function formatComparison(c: Comparison): string {
  const out: string[] = [];
  for (const [name, s] of [
    ['A', c.a],
    ['B', c.b],
  ] as const) {
    out.push(`${name}  ${s.runId}  scenario ${s.scenario}  ${s.okCases} ok case(s)  ${s.file}`);
  }
  const testText = c.options.test === 'rank' ? 'Mann–Whitney U (permutation of ranks)' : 'permutation test of the difference of medians';
  out.push(
    `Medians over repeats; change = B − A with its ${Math.round(c.options.level * 100)}% bootstrap interval; p from a two-sided ${testText}; significant when p < ${c.options.alpha}.`,
  );
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
  out.push(
    ...table(
      ['dataplane', 'workload', 'metric', 'n A/B', 'A median', 'B median', 'change', `${Math.round(c.options.level * 100)}% CI of change`, 'p', 'verdict'],
      rows,
    ),
  );
  if (noted) {
    const sizes = [...new Set(c.rows.filter((r) => r.note).map((r) => `${r.a.n} vs ${r.b.n} (min p ${fmtP(r.test.minP)})`))].join(', ');
    out.push(
      '',
      `* too few repeats for p < ${c.options.alpha}: ${sizes}. Run more repeats${c.options.test === 'rank' ? '' : ' (or use --test rank, which needs fewer)'}.`,
    );
  }
  out.push('');
  if (c.options.failOn.length === 0) out.push('No --fail-on metrics: exit status 0 whatever changed.');
  else if (c.regressions.length === 0)
    out.push(`No regression: no --fail-on metric (${c.options.failOn.join(', ')}) is significantly worse beyond its threshold.`);
  else {
    out.push(`${c.regressions.length} regression(s) in --fail-on metrics (exit ${EXIT_REGRESSION}):`);
    for (const r of c.regressions)
      out.push(
        `  ${r.dataplane} ${r.workload} ${r.metric}: ${fmtValue(r.a.median, r.unit)} → ${fmtValue(r.b.median, r.unit)} (${fmtValue(r.change, r.unit, true)}${r.changePct !== null ? `, ${pctText(r.changePct)}` : ''}), p ${fmtP(r.p)}, threshold ${r.threshold}`,
      );
  }
  return out.join('\n');
}
