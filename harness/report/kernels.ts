// Kernels side by side (`run --kernels`): the same scenario's runs on different kernels, one
// column group per kernel, from analysis/figures.ts `overview()` of each run. Also the label of a
// run (its id and kernel) and the warning that TCG figures are functional only.
import { overview } from '../analysis/figures.js';
import type { Interval } from '../analysis/stats.js';
import type { RunRecord } from '../results/types.js';
import { DASH, esc, fixed, signedUs, us } from './format.js';

/** How a run's kernel ran: "debian-6.1 · TCG (emulated)" / "KVM" / "" on bare metal (or unknown). */
export function kernelWhere(run: RunRecord): string {
  const f = run.environment?.kernelFacts;
  if (!f) return '';
  const virt = f.virtualisation === 'tcg' ? 'TCG (emulated)' : f.virtualisation === 'kvm' ? 'KVM' : f.virtualisation === 'vm' ? 'a VM' : '';
  return [f.package?.name ? `${f.package.name} ${f.package.version ?? ''}`.trim() : '', virt].filter(Boolean).join(' · ');
}

/** `Run <id> · kernel <release> (…)`, the heading of one run's block where a page shows several. */
export function runHead(run: RunRecord): string {
  const where = kernelWhere(run);
  return `<h3 class="run-head">Run <code>${esc(run.runId)}</code> · kernel <code>${esc(run.environment?.kernel ?? DASH)}</code>${where ? ` <span class="meta">${esc(where)}</span>` : ''}</h3>`;
}

/** The banner for runs whose kernel was emulated (TCG): their timings say what works, not what it costs. */
export function functionalOnlyNote(runs: RunRecord[]): string {
  const tcg = runs.filter((r) => r.environment?.kernelFacts?.functionalOnly || r.environment?.hosts?.some((h) => h.functionalOnly));
  if (!tcg.length) return '';
  return `<p class="run-error"><strong>Functional only:</strong> ${tcg.length === runs.length ? 'every run on this page' : `run${tcg.length > 1 ? 's' : ''} ${tcg.map((r) => `<code>${esc(r.runId)}</code>`).join(', ')}`} ran in a VM under TCG${tcg.some((r) => r.environment?.hosts?.length) ? ' (with --hosts: some or all of its machines)' : ''} (CPU emulation, no KVM): its latency, CPU and memory figures show what works on that kernel, not what it costs; compare them with nothing measured outside it.</p>`;
}

const est = (i: Interval | undefined, show: (x: number) => string) => (i && Number.isFinite(i.estimate) ? show(i.estimate) : DASH);
const mib = (x: number) => fixed(x / 1048576, 1);

/** The section, or '' unless the runs differ in kernel. */
export function kernelsSection(runs: RunRecord[]): string {
  const withCases = runs.filter((r) => r.cases.length > 0);
  const kernels = new Set(withCases.map((r) => r.environment?.kernel));
  if (withCases.length < 2 || kernels.size < 2) return '';
  const views = withCases.map((run) => ({ run, o: overview(run) }));
  const workloads = [...new Set(views.flatMap((v) => v.o.rows.map((r) => r.workload)))];
  const tables = workloads.map((w) => {
    const dataplanes = [...new Set(views.flatMap((v) => v.o.rows.filter((r) => r.workload === w).map((r) => r.dataplane)))];
    const head1 = views
      .map(
        ({ run }) =>
          `<th colspan="4" class="group">kernel <code>${esc(run.environment?.kernel ?? DASH)}</code>${kernelWhere(run) ? `<br><span class="meta">${esc(kernelWhere(run))}</span>` : ''}</th>`,
      )
      .join('');
    const head2 = views
      .map(() => '<th class="num">added p50 µs</th><th class="num">p50 µs</th><th class="num">p99 µs</th><th class="num">memory per node MiB</th>')
      .join('');
    const body = dataplanes.map((d) => {
      const cells = views.map(({ o }) => {
        const r = o.rows.find((x) => x.workload === w && x.dataplane === d);
        if (!r || r.okCases === 0) return '<td colspan="4" class="note">no ok case</td>';
        const added = d === 'baseline' ? '<span class="meta">reference</span>' : est(r.addedP50, signedUs);
        return `<td class="num">${added}</td><td class="num">${est(r.p50, us)}</td><td class="num">${est(r.p99, us)}</td><td class="num">${est(r.memPerNodeBytes, mib)}</td>`;
      });
      return `<tr><th scope="row"><code>${esc(d)}</code></th>${cells.join('')}</tr>`;
    });
    return `${workloads.length > 1 ? `<h3>Workload <code>${esc(w)}</code></h3>` : ''}<div class="scroll"><table class="overview kernels">
<thead><tr><th rowspan="2">dataplane</th>${head1}</tr><tr>${head2}</tr></thead>
<tbody>
${body.join('\n')}
</tbody>
</table></div>`;
  });
  const wg = views
    .map(({ run }) => {
      const engines = [
        ...new Set(run.cases.map((c) => (c.provenance as Record<string, { engine?: string }> | undefined)?.wireguard?.engine).filter((e): e is string => !!e)),
      ];
      return engines.length ? `<code>${esc(run.environment?.kernel ?? DASH)}</code>: ${esc(engines.join(', '))}` : '';
    })
    .filter(Boolean);
  return `<section id="kernels">
<h2>Kernels side by side</h2>
${tables.join('\n')}
${wg.length ? `<p class="note">WireGuard between nodes ran as: ${wg.join('; ')} (the kernel module where the kernel has it, else wireguard-go in user space).</p>` : ''}
<p class="note">The same scenario once per kernel, each in its own VM (or on the host); ok cases only, medians over repeats. <strong>Added p50</strong> is over that kernel's own baseline. Each run's full figures, claims and cases follow below under its run id.</p>
</section>`;
}
