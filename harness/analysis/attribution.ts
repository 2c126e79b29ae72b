// Where a dataplane's cost goes: its added latency (and memory) over the baseline split into
// components, from ablation variants measured in the same run (docs/attribution.md). A ladder
// adds one thing per rung (baseline → capture-only → mTLS off → the full sidecar); each step is
// the paired difference between neighbouring rungs the run has, so a component is *inferred* from
// two measured cases, never measured on its own. Rungs the run lacks merge their components into
// the next step ("capture + proxy"). The components' medians must add up to the measured total
// within its interval, or the waterfall says they do not. Pure and deterministic (seeded).
import type { CaseResult } from '../results/types.js';
import { dataplaneKey, variantOf } from '../dataplanes/registry.js';
import { BASELINE, dataplaneSplit } from './figures.js';
import { metricOf } from './metrics.js';
import { bootstrapCI, median, overhead, type Interval } from './stats.js';

export type ComponentKind = 'capture' | 'proxy' | 'tcp-proxy' | 'http' | 'tls' | 'bpf' | 'tunnel' | 'l7-proxy' | 'node-proxy' | 'waypoint';

export const COMPONENT_LABEL: Readonly<Record<ComponentKind, string>> = {
  capture: 'capture (redirect rules + TCP pass-through)',
  proxy: 'proxy in user space (HTTP, routing, authz)',
  'tcp-proxy': 'proxy in user space, TCP only (relay, L4 routing and authz)',
  http: 'HTTP in the proxies (parsing, L7 rules, HTTP routing, pooled upstream connections)',
  tls: 'mTLS between proxies',
  bpf: 'BPF datapath (socket LB, tc policy, maps, flow agent)',
  tunnel: 'encryption tunnel (WireGuard)',
  'l7-proxy': 'node L7 proxy',
  'node-proxy': 'node proxies',
  waypoint: 'waypoint',
};

interface Rung {
  component: ComponentKind;
  /** The rung's dataplane, as registry key (dataplaneKey). */
  dataplane: string;
}

const sidecar = (k: string): Rung[][] => [
  [
    { component: 'capture', dataplane: `${k}[mode=capture-only]` },
    { component: 'proxy', dataplane: `${k}[mtls=off]` },
    { component: 'tls', dataplane: k },
  ],
  // With the proxies' L7 switched off too, the proxy splits into its TCP relay and HTTP.
  [
    { component: 'capture', dataplane: `${k}[mode=capture-only]` },
    { component: 'tcp-proxy', dataplane: `${k}[mtls=off,l7=off]` },
    { component: 'http', dataplane: `${k}[mtls=off]` },
    { component: 'tls', dataplane: k },
  ],
  [
    { component: 'capture', dataplane: `${k}[mode=capture-only]` },
    { component: 'tcp-proxy', dataplane: `${k}[mtls=off,l7=off]` },
    { component: 'tls', dataplane: `${k}[l7=off]` },
    { component: 'http', dataplane: k },
  ],
];

/**
 * Each rung adds one component to the one before; a dataplane may sit on several ladders (the
 * one with most rungs in the run is used). Keys are the registry's canonical variant strings.
 */
const LADDERS: readonly Rung[][] = [
  ...sidecar('istio-sidecar'),
  ...sidecar('linkerd-sidecar'),
  [
    { component: 'bpf', dataplane: 'ebpf[encryption=none]' },
    { component: 'tunnel', dataplane: 'ebpf' },
    { component: 'l7-proxy', dataplane: 'ebpf-l7' },
  ],
  [
    { component: 'bpf', dataplane: 'ebpf[encryption=none]' },
    { component: 'l7-proxy', dataplane: 'ebpf-l7[encryption=none]' },
    { component: 'tunnel', dataplane: 'ebpf-l7' },
  ],
  [
    { component: 'node-proxy', dataplane: 'ambient[mtls=off]' },
    { component: 'tls', dataplane: 'ambient' },
    { component: 'waypoint', dataplane: 'ambient-waypoint' },
  ],
];

export type AttributionMetric = 'p50' | 'p99' | 'memory' | 'cpu';

export interface AttributionStep {
  /** What this step adds: one component, or several when the run lacks the rungs between. */
  components: ComponentKind[];
  label: string;
  /** The two dataplanes compared (as the run names them). */
  from: string;
  to: string;
  /** `to` minus `from`, paired by repeat: median and bootstrap interval (ms, or MiB for memory). */
  added: Interval;
  /** Every step is inferred from two measured cases; no component is measured on its own. */
  basis: 'inferred from paired ablation cases';
  /** A stand-in or a limit of this host that this component's figure carries. */
  caveat?: { kind: 'stand-in' | 'host limitation'; text: string };
}

/**
 * A part of the dataplane measured on its own in the dataplane's cases (median over repeats):
 * beside a latency waterfall its CPU time per request (µs: work done for the request, not
 * latency), beside a memory waterfall its memory (MiB: a role's PSS, or the BPF maps).
 */
export interface MeasuredPart {
  /** The role (proxy, wireguard, l7-proxy, agent …) or `bpf` (programs' run time, or maps). */
  part: string;
  value: Interval;
  unit: 'µs per request' | 'MiB';
  source: string;
}

export interface Waterfall {
  dataplane: string;
  workload: string;
  metric: AttributionMetric;
  unit: 'ms' | 'MiB' | 'cores';
  /** The dataplane minus baseline, paired by repeat. */
  total: Interval;
  steps: AttributionStep[];
  /** Sum of the steps' medians. */
  sum: number;
  /** The sum lies within the total's interval. */
  agrees: boolean;
  note: string;
  /**
   * Measured, not inferred. Latency: each dataplane role's CPU time per request and the BPF
   * programs' run time per request (bpf_stats); latency adds waiting (wake-ups, queues) on top, so
   * a step larger than its part's CPU is mostly waiting. Memory: each role's PSS and the BPF maps.
   */
  measured: MeasuredPart[];
}

const ms = (c: CaseResult, p: 'p50' | 'p99') => {
  const v = metricOf(c, p);
  return v === undefined ? undefined : v / 1000;
};
const mib = (c: CaseResult) => {
  const s = dataplaneSplit(c);
  return s && s.totalBytes / 2 ** 20;
};
const cores = (c: CaseResult) => dataplaneSplit(c)?.cpuCores;
const selector = (m: AttributionMetric) => (c: CaseResult) => (m === 'memory' ? mib(c) : m === 'cpu' ? cores(c) : ms(c, m));
/** Digits a figure of this unit is shown with. */
const digits = (unit: string) => (unit === 'ms' || unit === 'cores' ? 3 : 1);

/** A stand-in or host limit behind a component, read from the `to` case's provenance. */
function caveatOf(components: ComponentKind[], c: CaseResult | undefined): AttributionStep['caveat'] {
  const p = c?.provenance ?? {};
  if (components.includes('tunnel') && p.wireguard?.engine === 'wireguard-go')
    return { kind: 'host limitation', text: 'wireguard-go (user space) instead of kernel WireGuard: this kernel has no WireGuard module' };
  const roles = {
    proxy: 'proxy',
    'tcp-proxy': 'proxy',
    http: 'proxy',
    'l7-proxy': 'l7-proxy',
    'node-proxy': 'node-proxy',
    waypoint: 'waypoint',
    tls: undefined,
  } as const;
  for (const k of components) {
    const role = k === 'tls' ? Object.keys(p).find((r) => p[r]?.standInFor && r !== 'capture') : roles[k as keyof typeof roles];
    const pr = role ? p[role] : undefined;
    if (pr?.standInFor)
      return { kind: 'stand-in', text: `${pr.engine} standing in for ${pr.standInFor}${k === 'tls' ? ' (its TLS library, not the real proxy’s)' : ''}` };
  }
  return undefined;
}

/** Roles of the workload, not of the dataplane. */
const NOT_DATAPLANE = new Set(['app', 'load']);

/** Each dataplane role and the BPF programs (or maps), measured over the dataplane's ok cases of a workload. */
function measuredParts(cases: readonly CaseResult[], dp: string, workload: string, memory: boolean): MeasuredPart[] {
  const mine = cases.filter((c) => c.dataplane === dp && c.workload === workload && c.status === 'ok');
  const parts = new Map<string, number[]>();
  const add = (part: string, v: number) => parts.set(part, [...(parts.get(part) ?? []), v]);
  for (const c of mine) {
    const n = (c.load?.actual?.qps ?? 0) * (c.resources?.windowS ?? 0);
    if (!memory && !(n > 0)) continue;
    for (const [role, r] of Object.entries(c.resources?.byRole ?? {}))
      if (!NOT_DATAPLANE.has(role)) add(role, memory ? r.pssBytes / 2 ** 20 : (r.cpuSeconds / n) * 1e6);
    const k = c.resources?.kernel;
    const bpf = memory ? (k?.bpfMapBytes ?? 0) / 2 ** 20 : (k?.bpfRunTimeNs ?? 0) / 1e3 / n;
    if (bpf) add('bpf', bpf);
  }
  return [...parts.entries()].map(([part, xs]) => ({
    part,
    value: bootstrapCI(xs, median, { seed: `attribution:${memory ? 'mem' : 'cpu'}:${dp}:${workload}:${part}` }),
    unit: memory ? 'MiB' : 'µs per request',
    source: memory
      ? part === 'bpf'
        ? 'memory of the BPF maps (bpftool)'
        : `PSS of role ${part}, all its processes`
      : part === 'bpf'
        ? 'run time of the BPF programs (kernel bpf_stats) ÷ requests in the window'
        : `CPU time (user + system) of role ${part} ÷ requests in the window`,
  }));
}

/** The rungs of the best ladder below and including `dp` that this run has (by registry key). */
function rungsFor(dp: string, present: Map<string, string>): { rungs: Rung[]; names: string[] } | undefined {
  const key = dataplaneKey(dp);
  let best: { rungs: Rung[]; names: string[] } | undefined;
  for (const ladder of LADDERS) {
    const at = ladder.findIndex((r) => r.dataplane === key);
    if (at < 0) continue;
    const upTo = ladder.slice(0, at + 1);
    const rungs: Rung[] = [];
    const names: string[] = [];
    let skipped: ComponentKind[] = [];
    for (const r of upTo) {
      const name = r.dataplane === key ? dp : present.get(r.dataplane);
      if (!name) {
        skipped.push(r.component);
        continue;
      }
      rungs.push({ component: r.component, dataplane: [...skipped, r.component].join('+') });
      names.push(name);
      skipped = [];
    }
    if (!best || names.length > best.names.length) best = { rungs, names };
  }
  return best;
}

/**
 * The waterfall of every dataplane of the run that sits on a ladder, per workload: baseline →
 * each rung the run has → the dataplane. Dataplanes with no ok case, or no baseline partner, get none.
 */
export function attribution(cases: readonly CaseResult[], metric: AttributionMetric = 'p50'): Waterfall[] {
  const okNames = [...new Set(cases.filter((c) => c.status === 'ok').map((c) => c.dataplane))];
  const present = new Map(okNames.filter((d) => variantOf(d)).map((d) => [dataplaneKey(d), d]));
  const get = selector(metric);
  const unit = metric === 'memory' ? 'MiB' : metric === 'cpu' ? 'cores' : 'ms';
  const out: Waterfall[] = [];
  for (const dp of okNames) {
    if (dp === BASELINE) continue;
    const ladder = rungsFor(dp, present);
    if (!ladder) continue;
    const seed = (a: string, b: string, w: string) => `attribution:${metric}:${a}:${b}:${w}`;
    for (const total of overhead(cases, dp, BASELINE, get, { seed: seed(dp, BASELINE, '') })) {
      const steps: AttributionStep[] = [];
      let from = BASELINE;
      ladder.names.forEach((to, i) => {
        const components = ladder.rungs[i]!.dataplane.split('+') as ComponentKind[];
        const d = overhead(cases, to, from, get, { seed: seed(to, from, total.workload) }).find((o) => o.workload === total.workload);
        if (d)
          steps.push({
            components,
            label: components.map((k) => COMPONENT_LABEL[k]).join(' + '),
            from,
            to,
            added: { estimate: d.estimate, low: d.low, high: d.high, n: d.n, level: d.level, resamples: d.resamples },
            basis: 'inferred from paired ablation cases',
            caveat: caveatOf(
              components,
              cases.find((c) => c.dataplane === to && c.status === 'ok'),
            ),
          });
        from = to;
      });
      if (!steps.length) continue;
      const sum = steps.reduce((s, x) => s + x.added.estimate, 0);
      const agrees = sum >= total.low - 1e-9 && sum <= total.high + 1e-9;
      const one = total.n <= 1;
      out.push({
        dataplane: dp,
        workload: total.workload,
        metric,
        unit,
        total: { estimate: total.estimate, low: total.low, high: total.high, n: total.n, level: total.level, resamples: total.resamples },
        steps,
        sum,
        agrees,
        measured: measuredParts(cases, dp, total.workload, metric === 'memory'),
        note: one
          ? 'One repeat: each step is a single difference, so the steps add up to the total by construction; repeats give intervals and make the check real.'
          : agrees
            ? `The components add up to ${sum.toFixed(digits(unit))} ${unit}, within the total's interval.`
            : `The components add up to ${sum.toFixed(digits(unit))} ${unit}, outside the total's interval [${total.low.toFixed(digits(unit))}, ${total.high.toFixed(digits(unit))}]: the steps do not explain the total (interaction between components, or noise).`,
      });
    }
  }
  return out;
}

/** The step that adds the most, with its share of the total. */
export function largestStep(w: Waterfall): AttributionStep | undefined {
  return [...w.steps].sort((a, b) => b.added.estimate - a.added.estimate)[0];
}

const fmt = (x: number, unit: string) => `${x >= 0 ? '+' : ''}${x.toFixed(unit === 'MiB' ? 1 : unit === 'cores' ? 3 : 2)} ${unit}`;

/**
 * One line naming the largest component behind a dataplane's figure, for a verdict that is not
 * "reproduced": e.g. "largest component: encryption tunnel (WireGuard), +0.70 ms of the +1.40 ms
 * (host limitation: wireguard-go …)". Undefined when the run has no waterfall for it.
 */
export function explainLine(waterfalls: readonly Waterfall[], dataplane: string): string | undefined {
  const w = waterfalls.find((x) => x.dataplane === dataplane);
  if (!w) return undefined;
  const top = largestStep(w);
  if (!top) return undefined;
  const only = w.steps.length === 1;
  return `${dataplane}: ${only ? 'no ablation rung in this run splits it; all of it is' : 'largest component'} ${top.label}, ${fmt(top.added.estimate, w.unit)} of the ${fmt(w.total.estimate, w.unit)} (${w.metric === 'memory' ? "the whole lab's dataplane memory" : w.metric === 'cpu' ? "the whole lab's dataplane CPU" : w.metric}, inferred from ${top.to} − ${top.from}${top.added.estimate > w.total.estimate && !only ? `; the other steps add ${fmt(w.sum - top.added.estimate, w.unit)}` : ''})${top.caveat ? `; ${top.caveat.kind}: ${top.caveat.text}` : ''}`;
}
