// The report's opening section: every dataplane of the run side by side — latency added over the
// baseline, dataplane memory and CPU per meshed pod and per node, the stand-ins playing its roles.
// Lays out analysis/figures.ts `overview()`; computes nothing. It comes before the claims: the
// claims judge documents with these same figures, so the reader sees the figures first.
import { overview, type OverviewRow } from '../analysis/figures.js';
import type { Interval } from '../analysis/stats.js';
import type { RunRecord } from '../results/types.js';
import { runHead } from './kernels.js';
import { DASH, esc, fixed, signedUs, us } from './format.js';

const MIB = 1048576;

/** "+336.0 [+320.1, +350.2]": the interval only when there were two repeats or more to draw it from. */
function withInterval(i: Interval | undefined, show: (x: number) => string): string {
  if (!i || !Number.isFinite(i.estimate)) return DASH;
  const v = show(i.estimate);
  return i.n >= 2 && Number.isFinite(i.low) ? `${v} <span class="ci">[${show(i.low)}, ${show(i.high)}]</span>` : v;
}

const mib = (x: number) => fixed(x / MIB, 1);
const cpu = (cores: number) => fixed(cores * 100, 2);
const num = (html: string, cls = '') => `<td class="num${cls ? ` ${cls}` : ''}">${html}</td>`;

function rowHtml(r: OverviewRow, baseline: boolean): string {
  const name = `<th scope="row"><code>${esc(r.dataplane)}</code>${r.okCases > 1 ? ` <span class="meta">${r.okCases} repeats</span>` : ''}</th>`;
  const standIns = r.standIns.length
    ? r.standIns
        .map((s) => `<span class="standin-sentence">${esc(s.engine)} standing in for ${esc(s.standInFor)}</span> <span class="meta">(${esc(s.role)})</span>`)
        .join('<br>')
    : baseline
      ? '<span class="meta">no dataplane</span>'
      : '<span class="meta">none: the lab’s own components</span>';
  if (r.okCases === 0) return `<tr class="not-ok">${name}<td colspan="9" class="note">no ok case — see below</td></tr>`;
  const added = (o: Interval | undefined) => (baseline ? '<span class="meta">reference</span>' : withInterval(o, signedUs));
  return `<tr${baseline ? ' class="baseline"' : ''}>${[
    name,
    num(added(r.addedP50), 'added'),
    num(added(r.addedP99), 'added'),
    num(withInterval(r.p50, us)),
    num(withInterval(r.p99, us)),
    num(withInterval(r.memPerPodBytes, mib)),
    num(withInterval(r.memPerNodeBytes, mib)),
    num(withInterval(r.cpuPerPodCores, cpu)),
    num(withInterval(r.cpuPerNodeCores, cpu)),
    `<td class="standins-cell">${standIns}</td>`,
  ].join('')}</tr>`;
}

function runBlock(run: RunRecord, multi: boolean): string {
  const o = overview(run);
  const workloads = [...new Set(o.rows.map((r) => r.workload))];
  const tables = workloads.map((w) => {
    const rows = o.rows.filter((r) => r.workload === w);
    return `${workloads.length > 1 ? `<h3>Workload <code>${esc(w)}</code></h3>` : ''}<div class="scroll"><table class="overview">
<thead><tr><th rowspan="2">dataplane</th><th colspan="2" class="group">added over baseline µs</th><th colspan="2" class="group">latency µs</th><th colspan="2" class="group">memory (PSS) MiB</th><th colspan="2" class="group">CPU % of one CPU</th><th rowspan="2">stand-ins</th></tr>
<tr><th class="num">p50</th><th class="num">p99</th><th class="num">p50</th><th class="num">p99</th><th class="num">per meshed pod</th><th class="num">per node</th><th class="num">per meshed pod</th><th class="num">per node</th></tr></thead>
<tbody>
${rows.map((r) => rowHtml(r, r.dataplane === 'baseline')).join('\n')}
</tbody>
</table></div>`;
  });
  const notOk = o.notOk.length
    ? `<p class="note">Not results, left out of every figure above (<a href="#not-results">details</a>): ${o.notOk
        .map(
          (c) =>
            `<strong>${esc(c.dataplane)} · ${esc(c.workload)} · r${esc(c.repeat)}</strong> <span class="badge status-${esc(c.status.replace(/[^a-z-]/gi, ''))}">${esc(c.status)}</span> ${esc(c.reason)}`,
        )
        .join('; ')}.</p>`
    : '';
  return `${multi ? runHead(run) : ''}
${tables.join('\n')}
${notOk}`;
}

/** The section, or '' when no run has a case. */
export function overviewSection(runs: RunRecord[]): string {
  const withCases = runs.filter((r) => r.cases.length > 0);
  if (!withCases.length) return '';
  return `<section id="comparison">
<h2>Dataplanes side by side</h2>
${withCases.map((r) => runBlock(r, withCases.length > 1)).join('\n')}
<p class="note">Ok cases only. <strong>Added over baseline</strong>: the dataplane's latency minus the <code>baseline</code> case's of the same workload and repeat in the same run, median over repeats; in brackets its 95 % bootstrap interval where there are two repeats or more. <strong>Memory and CPU</strong> are the dataplane's own processes (not the app, not the load generator), median over repeats: per meshed pod those there is one of per pod (sidecars); per node the others (node proxies, waypoints, agents, WireGuard) plus eBPF map memory and program run time. CPU is user + system time over the measured window. A stand-in's figures are its own, not the component's it stands in for.</p>
</section>`;
}

export const OVERVIEW_CSS = `
table.overview th[scope=row]{white-space:nowrap;font-weight:600}
table.overview thead th.group{text-align:center;border-bottom:1px solid var(--line)}
table.overview td.num,table.overview th.num{padding-left:.7rem}
table.overview td.standins-cell{font-size:.82rem;min-width:14em}
table.overview tr.baseline td,table.overview tr.baseline th{background:var(--soft)}
table.overview .ci{color:var(--muted);font-weight:400;font-size:.8rem;white-space:nowrap}
table.overview td.added{font-weight:600}
`.trim();
