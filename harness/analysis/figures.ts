// The figures of a run that the report's tables and charts, the claims and `compare` share, each
// defined once here: a dataplane's cost over the baseline (per case and over repeats), its
// memory and CPU split per meshed pod and per node, CPU as a share of the window, and the
// one-glance comparison the report opens with. Only `ok` cases are results (docs/case-status.md).
// Pure and deterministic: the intervals are seeded (stats.ts).
import type { CaseResult, RunRecord } from '../results/types.js';
import { byString } from '../util/order.js';
import { metricOf } from './metrics.js';
import { bootstrapCI, median, overhead, type Interval, type OverheadResult } from './stats.js';

export const BASELINE = 'baseline';

const isOk = (c: CaseResult) => c.status === 'ok';

// ---------------------------------------------------------------------------------------------
// Over the baseline

/**
 * The dataplane's overhead over the baseline in one run, per workload (stats.overhead: paired by
 * repeat, median of the differences, seeded bootstrap interval). The claims, the report's
 * comparison and its per-case "added over baseline" columns all read this.
 */
export function addedOverBaseline(cases: readonly CaseResult[], dataplane: string, metric: string): OverheadResult[] {
  return dataplane === BASELINE ? [] : overhead(cases, dataplane, BASELINE, metric);
}

/**
 * What one case adds over the baseline case of the same workload and repeat in its run (one pair
 * of `addedOverBaseline`); undefined when the case is the baseline, not ok, or has no partner.
 */
export function caseAddedOverBaseline(runCases: readonly CaseResult[], c: CaseResult, metric: string): number | undefined {
  if (!isOk(c) || c.dataplane === BASELINE) return undefined;
  const o = addedOverBaseline(runCases, c.dataplane, metric).find((r) => r.workload === c.workload);
  return o?.pairs.find((p) => p.repeat === c.repeat)?.diff;
}

// ---------------------------------------------------------------------------------------------
// Dataplane memory and CPU, per meshed pod and per node

/** Roles that are the workload or its load, not the dataplane. */
const NOT_DATAPLANE = new Set(['app', 'load']);
/** Roles with one process per pod (sidecars); every other dataplane role runs per node. */
const PER_POD_ROLES = new Set(['proxy']);

export interface Split {
  pods: number;
  nodes: number;
  /** PSS of the per-pod roles ÷ meshed pods. */
  perPodBytes: number;
  /** PSS of the per-node roles plus BPF map memory ÷ nodes. */
  perNodeBytes: number;
  totalBytes: number;
  /** CPU of every dataplane process plus BPF run time, in cores (CPU seconds ÷ window). */
  cpuCores: number;
  /** CPU of the per-pod roles ÷ meshed pods, in cores. */
  perPodCpuCores: number;
  /** CPU of the per-node roles plus BPF run time ÷ nodes, in cores. */
  perNodeCpuCores: number;
}

/**
 * The case's dataplane memory and CPU split per pod and per node; undefined without resources or
 * when the case is not ok. Dataplane = every role but the app and the load generator; BPF maps and
 * program run time count per node. Softirq time is owned by no process and left out.
 */
export function dataplaneSplit(c: CaseResult): Split | undefined {
  const r = c.resources;
  const pods = r?.normalized?.pods ?? c.topology?.pods;
  const nodes = r?.normalized?.nodes ?? c.topology?.nodes;
  if (!r || !isOk(c) || !pods || !nodes || !(r.windowS > 0)) return undefined;
  let podBytes = 0;
  let nodeBytes = r.kernel?.bpfMapBytes ?? 0;
  let podCpuS = 0;
  let nodeCpuS = (r.kernel?.bpfRunTimeNs ?? 0) / 1e9;
  for (const [role, rr] of Object.entries(r.byRole ?? {})) {
    if (NOT_DATAPLANE.has(role)) continue;
    if (PER_POD_ROLES.has(role)) {
      podBytes += rr.pssBytes;
      podCpuS += rr.cpuSeconds;
    } else {
      nodeBytes += rr.pssBytes;
      nodeCpuS += rr.cpuSeconds;
    }
  }
  return {
    pods,
    nodes,
    perPodBytes: podBytes / pods,
    perNodeBytes: nodeBytes / nodes,
    totalBytes: podBytes + nodeBytes,
    cpuCores: (podCpuS + nodeCpuS) / r.windowS,
    perPodCpuCores: podCpuS / r.windowS / pods,
    perNodeCpuCores: nodeCpuS / r.windowS / nodes,
  };
}

/** CPU seconds over a window as a percentage of one CPU; undefined without a window. */
export function cpuPercent(cpuSeconds: number | undefined, windowS: number | undefined): number | undefined {
  return cpuSeconds !== undefined && Number.isFinite(cpuSeconds) && windowS !== undefined && windowS > 0 ? (cpuSeconds / windowS) * 100 : undefined;
}

/** A per-case figure over the dataplane's ok cases: median with a seeded bootstrap interval (repeats are the sample). */
export function overRepeats(cases: readonly CaseResult[], dataplane: string, get: (c: CaseResult) => number | undefined, seed: string): Interval | undefined {
  const xs = cases
    .filter((c) => c.dataplane === dataplane && isOk(c))
    .map(get)
    .filter((v): v is number => v !== undefined && Number.isFinite(v));
  return xs.length ? bootstrapCI(xs, median, { seed }) : undefined;
}

// ---------------------------------------------------------------------------------------------
// The one-glance comparison

export interface StandIn {
  role: string;
  engine: string;
  standInFor: string;
}

export interface OverviewRow {
  dataplane: string;
  workload: string;
  /** Ok cases of this dataplane and workload (the sample). */
  okCases: number;
  /** Median over ok repeats of the case's own p50 / p99 (µs). */
  p50?: Interval;
  p99?: Interval;
  /** Over the baseline (µs); undefined for the baseline itself or without a baseline partner. */
  addedP50?: OverheadResult;
  addedP99?: OverheadResult;
  memPerPodBytes?: Interval;
  memPerNodeBytes?: Interval;
  cpuPerPodCores?: Interval;
  cpuPerNodeCores?: Interval;
  standIns: StandIn[];
}

export interface Overview {
  runId: string;
  rows: OverviewRow[];
  /** Cases that are not results, named apart with why. */
  notOk: { dataplane: string; workload: string; repeat: number; status: string; reason: string }[];
}

/** Why a case is not a result: its validity reasons, else its error. */
export function notOkReason(c: CaseResult): string {
  const r = c.validity?.reasons ?? [];
  return r.length ? r.join('; ') : (c.error ?? 'no error recorded');
}

/**
 * Per dataplane and workload of one run, in the order of the run's cases (baseline first when it
 * ran): latency, what it adds over the baseline, dataplane memory and CPU per meshed pod and per
 * node, and the stand-ins playing its roles. Dataplanes with no ok case get a row with no figures.
 */
export function overview(run: RunRecord): Overview {
  const ordered = run.cases
    .map((c, i) => ({ c, i }))
    .sort((a, b) => (a.c.index ?? a.i) - (b.c.index ?? b.i) || a.i - b.i)
    .map((x) => x.c);
  const keys: [string, string][] = [];
  for (const c of ordered) if (!keys.some(([d, w]) => d === c.dataplane && w === c.workload)) keys.push([c.dataplane, c.workload]);
  keys.sort((a, b) => Number(b[0] === BASELINE) - Number(a[0] === BASELINE));
  const rows = keys.map(([dataplane, workload]): OverviewRow => {
    const cases = ordered.filter((c) => c.workload === workload);
    const mine = cases.filter((c) => c.dataplane === dataplane);
    const seed = (what: string) => `overview:${dataplane}:${workload}:${what}`;
    const split = (g: (s: Split) => number) => (c: CaseResult) => {
      const s = dataplaneSplit(c);
      return s && g(s);
    };
    const standIns = new Map<string, StandIn>();
    for (const c of mine) {
      for (const role of Object.keys(c.provenance ?? {}).sort(byString)) {
        const p = c.provenance[role]!;
        if (p?.standInFor) standIns.set(`${role}\0${p.engine}\0${p.standInFor}`, { role, engine: p.engine, standInFor: p.standInFor });
      }
    }
    return {
      dataplane,
      workload,
      okCases: mine.filter(isOk).length,
      p50: overRepeats(cases, dataplane, (c) => metricOf(c, 'p50'), seed('p50')),
      p99: overRepeats(cases, dataplane, (c) => metricOf(c, 'p99'), seed('p99')),
      addedP50: addedOverBaseline(cases, dataplane, 'p50')[0],
      addedP99: addedOverBaseline(cases, dataplane, 'p99')[0],
      memPerPodBytes: overRepeats(
        cases,
        dataplane,
        split((s) => s.perPodBytes),
        seed('memPerPod'),
      ),
      memPerNodeBytes: overRepeats(
        cases,
        dataplane,
        split((s) => s.perNodeBytes),
        seed('memPerNode'),
      ),
      cpuPerPodCores: overRepeats(
        cases,
        dataplane,
        split((s) => s.perPodCpuCores),
        seed('cpuPerPod'),
      ),
      cpuPerNodeCores: overRepeats(
        cases,
        dataplane,
        split((s) => s.perNodeCpuCores),
        seed('cpuPerNode'),
      ),
      standIns: [...standIns.values()],
    };
  });
  const notOk = ordered
    .filter((c) => !isOk(c))
    .map((c) => ({ dataplane: c.dataplane, workload: c.workload, repeat: c.repeat, status: c.status, reason: notOkReason(c) }));
  return { runId: run.runId, rows, notOk };
}
