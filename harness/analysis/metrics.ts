// Named figures of a case, shared by `compare`, overhead and the claim verdicts: one place says
// what `p99` or `cpuPerPod:proxy` means, in which unit, and which direction is better. `metricOf`
// gives undefined when the case does not carry the figure; an unknown name is E_INPUT listing the
// valid ones. The names: docs/results.md (Comparing runs).
import { median } from 'simple-statistics';
import { inputError } from '../errors.js';
import { byString } from '../util/order.js';
import type { CaseResult, Histogram, Normalized, RoleResources } from '../results/types.js';

export type MetricUnit = 'us' | 'ms' | 's' | 'ns' | 'bytes' | 'qps' | 'count';

export interface MetricInfo {
  name: string;
  unit: MetricUnit;
  /** Which direction is an improvement. */
  better: 'lower' | 'higher';
  description: string;
  /** For per-role metrics. */
  role?: string;
}

type Getter = (c: CaseResult) => number | undefined;

interface Fixed {
  unit: MetricUnit;
  better: 'lower' | 'higher';
  description: string;
  get: Getter;
}

const lat = (k: 'p50' | 'p90' | 'p95' | 'p99' | 'p999' | 'max' | 'min' | 'mean', what: string): Fixed => ({
  unit: 'us',
  better: 'lower',
  description: `${what} latency of successful requests`,
  get: (c) => c.latencyUs?.[k],
});

/**
 * Nearest-rank percentile from a latency histogram: the middle of the bucket holding the rank
 * (so within half a bucket of the exact figure). For records that lack a percentile.
 */
export function histogramPercentile(h: Histogram | undefined, p: number): number | undefined {
  if (!h || !Array.isArray(h.buckets) || !(h.resolutionUs > 0)) return undefined;
  const total = h.buckets.reduce((s, b) => s + b[1], 0);
  if (total <= 0) return undefined;
  const rank = Math.min(total, Math.max(1, Math.ceil((p / 100) * total)));
  let seen = 0;
  for (const [start, count] of [...h.buckets].sort((a, b) => a[0] - b[0])) {
    seen += count;
    if (seen >= rank) return start + h.resolutionUs / 2;
  }
  return undefined;
}

const podReady = (c: CaseResult) =>
  Object.values(c.startup?.podReadyMs ?? {})
    .filter((v) => Number.isFinite(v))
    .sort((a, b) => a - b);

const FIXED: Record<string, Fixed> = {
  p50: lat('p50', 'median'),
  p90: lat('p90', '90th percentile'),
  p95: { ...lat('p95', '95th percentile'), get: (c) => c.latencyUs?.p95 ?? histogramPercentile(c.latencyUs?.histogram, 95) },
  p99: lat('p99', '99th percentile'),
  p999: lat('p999', '99.9th percentile'),
  max: lat('max', 'maximum'),
  min: lat('min', 'minimum'),
  mean: lat('mean', 'mean'),
  qps: { unit: 'qps', better: 'higher', description: 'achieved requests per second', get: (c) => c.load?.actual?.qps },
  errors: { unit: 'count', better: 'lower', description: 'failed requests', get: (c) => c.load?.actual?.errors },
  'startup:firstRequestMs': {
    unit: 'ms',
    better: 'lower',
    description: 'time to the first successful request after deploy',
    get: (c) => c.startup?.firstRequestMs,
  },
  'startup:dataplaneDeployMs': { unit: 'ms', better: 'lower', description: 'time to deploy the dataplane', get: (c) => c.startup?.dataplaneDeployMs },
  'startup:topologyUpMs': { unit: 'ms', better: 'lower', description: 'time to build the topology', get: (c) => c.startup?.topologyUpMs },
  'startup:podReadyMs': {
    unit: 'ms',
    better: 'lower',
    description: "the slowest pod's ready time",
    get: (c) => podReady(c).at(-1),
  },
  'startup:podReadyMedianMs': {
    unit: 'ms',
    better: 'lower',
    description: "the median pod's ready time",
    get: (c) => {
      const v = podReady(c);
      return v.length ? median(v) : undefined;
    },
  },
  'kernel:softirqSeconds': {
    unit: 's',
    better: 'lower',
    description: 'system-wide softirq time over the window',
    get: (c) => c.resources?.kernel?.softirqSeconds,
  },
  'kernel:bpfRunTimeNs': {
    unit: 'ns',
    better: 'lower',
    description: "run time of the run's BPF programs over the window",
    get: (c) => c.resources?.kernel?.bpfRunTimeNs,
  },
  'kernel:bpfMapBytes': { unit: 'bytes', better: 'lower', description: 'memory of BPF maps', get: (c) => c.resources?.kernel?.bpfMapBytes },
};

interface Family {
  unit: MetricUnit;
  description: string;
  get: (c: CaseResult, role: string) => number | undefined;
}

const byRole = (k: keyof Omit<RoleResources, 'processes'>) => (c: CaseResult, role: string) => c.resources?.byRole?.[role]?.[k];
const norm = (scope: 'perPod' | 'perNode', k: keyof Normalized) => (c: CaseResult, role: string) => c.resources?.normalized?.[scope]?.[role]?.[k];

const FAMILIES: Record<string, Family> = {
  cpu: { unit: 's', description: 'CPU seconds of the role over the window', get: byRole('cpuSeconds') },
  rss: { unit: 'bytes', description: 'RSS of the role', get: byRole('rssBytes') },
  pss: { unit: 'bytes', description: 'PSS of the role', get: byRole('pssBytes') },
  rssPeak: { unit: 'bytes', description: 'peak RSS of the role during the window', get: byRole('rssPeakBytes') },
  cpuPerPod: { unit: 's', description: 'CPU seconds of the role per meshed pod', get: norm('perPod', 'cpuSeconds') },
  rssPerPod: { unit: 'bytes', description: 'RSS of the role per meshed pod', get: norm('perPod', 'rssBytes') },
  pssPerPod: { unit: 'bytes', description: 'PSS of the role per meshed pod', get: norm('perPod', 'pssBytes') },
  cpuPerNode: { unit: 's', description: 'CPU seconds of the role per node', get: norm('perNode', 'cpuSeconds') },
  rssPerNode: { unit: 'bytes', description: 'RSS of the role per node', get: norm('perNode', 'rssBytes') },
  pssPerNode: { unit: 'bytes', description: 'PSS of the role per node', get: norm('perNode', 'pssBytes') },
};

/** Every valid metric name; per-role families written as `family:<role>`. */
export function metricNames(): string[] {
  return [...Object.keys(FIXED), ...Object.keys(FAMILIES).map((f) => `${f}:<role>`)];
}

/** The latency percentiles, in the order tables show them. */
export const LATENCY_METRICS = ['p50', 'p90', 'p95', 'p99', 'p999', 'max', 'min', 'mean'] as const;

function unknown(name: string): never {
  throw inputError(
    `unknown metric ${JSON.stringify(name)} (valid: ${metricNames().join(', ')})`,
    [],
    'per-role metrics take the role as the record names it, e.g. cpu:proxy or pssPerPod:node-proxy',
  );
}

function resolve(name: string): { info: MetricInfo; get: Getter } {
  const f = Object.hasOwn(FIXED, name) ? FIXED[name] : undefined;
  if (f) return { info: { name, unit: f.unit, better: f.better, description: f.description }, get: f.get };
  const i = name.indexOf(':');
  if (i > 0) {
    const fam = name.slice(0, i);
    const role = name.slice(i + 1);
    const family = Object.hasOwn(FAMILIES, fam) ? FAMILIES[fam] : undefined;
    if (family && role !== '' && !/\s/.test(role)) {
      return {
        info: { name, unit: family.unit, better: 'lower', description: family.description.replace('the role', `role "${role}"`), role },
        get: (c) => family.get(c, role),
      };
    }
  }
  return unknown(name);
}

/** What a metric name means: unit, better direction, role. Throws E_INPUT for unknown names. */
export function metricInfo(name: string): MetricInfo {
  return resolve(name).info;
}

/**
 * The figure `name` of one case, in the metric's unit, or undefined when the case does not
 * carry it (no latency for a failed case, no such role, no normalized figures in older records).
 * Throws E_INPUT for unknown names.
 */
export function metricOf(c: CaseResult, name: string): number | undefined {
  const v = resolve(name).get(c);
  return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
}

/** The roles named in the cases' resources, in plain string order. */
export function rolesOf(cases: readonly CaseResult[]): string[] {
  const roles = new Set<string>();
  for (const c of cases) for (const r of Object.keys(c.resources?.byRole ?? {})) roles.add(r);
  return [...roles].sort(byString);
}

/**
 * Every concrete metric name at least one of the cases carries: the fixed names in table order,
 * then each family for each role.
 */
export function metricsPresent(cases: readonly CaseResult[]): string[] {
  const names = [...Object.keys(FIXED), ...Object.keys(FAMILIES).flatMap((f) => rolesOf(cases).map((r) => `${f}:${r}`))];
  return names.filter((n) => cases.some((c) => metricOf(c, n) !== undefined));
}
