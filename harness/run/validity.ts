// Case validity: whether a measured case is a result. Figures over the survivors of a broken
// measurement (a dead sidecar, most requests failing, half the requested rate) are not a result,
// so such a case is degraded or failed with its reasons, and only ok cases reach verdicts,
// compare and the report's figures. The rules are in docs/case-status.md.
import type { CaseResult, CaseStatus, CaseValidity, GeneratorCpu, ProcessDown, Resources } from '../results/types.js';
import type { LabProcess } from '../util/procs.js';
import { MAX_GENERATOR_CPU_DEFAULT, VALIDITY_DEFAULTS } from '../scenario/schema.js';

export interface ValidityLimits {
  /** Most errors ÷ requests a result may have. */
  maxErrorRate: number;
  /** Least achieved ÷ requested qps a fixed-rate result may have. */
  minRateRatio: number;
  /** Most CPU the load generator may use over the window, as a fraction of the CPUs it may run on. */
  maxGeneratorCpu: number;
}

/** The scenario schema's defaults (0.1 % errors, 95 % of the requested rate, generator busy < 90 %). */
export const DEFAULT_VALIDITY: ValidityLimits = { ...VALIDITY_DEFAULTS, maxGeneratorCpu: MAX_GENERATOR_CPU_DEFAULT };

/** The scenario's `validity` bounds, each falling back to its default. */
export function validityLimits(s: { validity?: Partial<ValidityLimits> } | undefined): ValidityLimits {
  const v = s?.validity ?? {};
  const num = (x: unknown, d: number) => (typeof x === 'number' && Number.isFinite(x) ? x : d);
  return {
    maxErrorRate: num(v.maxErrorRate, DEFAULT_VALIDITY.maxErrorRate),
    minRateRatio: num(v.minRateRatio, DEFAULT_VALIDITY.minRateRatio),
    maxGeneratorCpu: num(v.maxGeneratorCpu, DEFAULT_VALIDITY.maxGeneratorCpu),
  };
}

/** CPUs in a taskset list ("0", "1-3", "0,2-3"), or undefined when it is not one. */
export function cpuCount(list: string | undefined): number | undefined {
  if (!list || !/^\d+(-\d+)?(,\d+(-\d+)?)*$/.test(list)) return undefined;
  const cpus = new Set<number>();
  for (const r of list.split(',')) {
    const [a, b = a] = r.split('-').map(Number);
    for (let c = a; c <= b && cpus.size < 4096; c++) cpus.add(c);
  }
  return cpus.size;
}

/** The load generator's CPU as validity judges it: seconds over a window, on this many CPUs. */
export interface GeneratorCpuInput {
  cpuSeconds: number;
  windowS: number;
  cpus: number;
  source: string;
}

/**
 * fortio's CPU from the `load` role's cgroup (the measured run's whole life) over the probe window,
 * on its pinned CPUs or else every core; undefined when the probes did not record it.
 */
export function fortioGeneratorCpu(r: Resources | undefined, pinnedCpus: string | undefined, hostCores: number): GeneratorCpuInput | undefined {
  const load = r?.byRole?.load;
  const cpus = cpuCount(pinnedCpus) ?? hostCores;
  if (!load || !Number.isFinite(load.cpuSeconds) || !(r!.windowS > 0) || !(cpus > 0)) return undefined;
  return {
    cpuSeconds: load.cpuSeconds,
    windowS: r!.windowS,
    cpus,
    source: `fortio: the load role's cgroup CPU time over the measured window, on ${pinnedCpus ? `its pinned CPUs (${pinnedCpus})` : 'every core (not pinned)'}`,
  };
}

/**
 * Lab processes that had ended by now, except the load generator (role `load`), whose own end
 * is normal. `windowStart` (performance.now()) tells before-window from during-window ends.
 */
export function processesDown(procs: readonly LabProcess[], windowStart?: number): ProcessDown[] {
  return procs
    .filter((p) => p.role !== 'load' && p.exitCode !== undefined)
    .map((p) => ({
      name: p.name,
      role: p.role,
      pid: p.pid,
      exitCode: p.exitCode,
      ...(p.exitSignal ? { signal: p.exitSignal } : {}),
      when: windowStart !== undefined && p.exitedAt !== undefined && p.exitedAt >= windowStart ? ('during-window' as const) : ('before-window' as const),
    }));
}

export interface ValidityInput {
  requestedQps: number | 'max';
  /** Undefined when nothing was measured. */
  actual?: { qps: number; requests: number; errors: number };
  /** Successful requests with a latency (latencyUs.count). */
  latencyCount?: number;
  /** The case's error, when it threw. */
  error?: string;
  processesDown: ProcessDown[];
  /** The load generator's CPU over the window, where it was measured. */
  generator?: GeneratorCpuInput;
  /** Open-loop Poisson arrivals: the window (s), since the schedule's request count in it is itself random. */
  poissonWindowS?: number;
}

const pct = (x: number) => `${(Math.round(x * 1e4) / 100).toString()} %`;

export function describeDown(p: ProcessDown): string {
  const how = p.signal ? `killed by ${p.signal}` : `exited with code ${p.exitCode}`;
  return `process ${p.name} (role ${p.role}, pid ${p.pid}) ${how} ${p.when === 'during-window' ? 'during the measured window' : 'before the measured window'}`;
}

/**
 * The case's status and validity. failed: an error, no measurement or no successful request, or
 * a lab process down. degraded: measured with every process up, but errors above maxErrorRate,
 * (fixed rate only) achieved rate below minRateRatio of the requested or the load generator
 * saturated (its CPU at or above maxGeneratorCpu of the CPUs it may use: its own queueing would
 * be measured as the dataplane's latency). ok otherwise.
 */
export function judgeCase(i: ValidityInput, limits: ValidityLimits = DEFAULT_VALIDITY): { status: Exclude<CaseStatus, 'interrupted'>; validity: CaseValidity } {
  const reasons: string[] = [];
  let failed = false;
  if (i.error !== undefined) {
    failed = true;
    reasons.push(`error: ${i.error}`);
  }
  for (const p of i.processesDown) {
    failed = true;
    reasons.push(describeDown(p));
  }
  let errorRate: number | undefined;
  let rateRatio: number | undefined;
  const a = i.actual;
  if (!a || !(a.requests > 0)) {
    if (i.error === undefined) reasons.push('no request was measured');
    failed = true;
  } else {
    errorRate = a.errors / a.requests;
    if (errorRate > limits.maxErrorRate)
      reasons.push(`${a.errors} of ${a.requests} requests failed (${pct(errorRate)}, more than the ${pct(limits.maxErrorRate)} allowed)`);
    if (typeof i.requestedQps === 'number' && i.requestedQps > 0) {
      const ratio = a.qps / i.requestedQps;
      rateRatio = Math.round(ratio * 1e4) / 1e4;
      // A Poisson count over N expected requests has a standard deviation of √N: allow three below the bound.
      const slack = i.poissonWindowS! > 0 ? 3 / Math.sqrt(i.requestedQps * i.poissonWindowS!) : 0;
      if (ratio < limits.minRateRatio - slack)
        reasons.push(
          `achieved ${a.qps} qps of ${i.requestedQps} requested (${pct(ratio)}, less than the ${pct(limits.minRateRatio)} required${slack ? ` less 3 standard deviations of a Poisson count, ${pct(limits.minRateRatio - slack)}` : ''})`,
        );
    }
    if (!(i.latencyCount! > 0)) {
      failed = true;
      reasons.push('no request succeeded, so there is no latency');
    }
  }
  // Fixed-rate loads only: a closed loop (qps max) runs the generator as fast as it goes by design.
  // Recorded only when it trips, so a record of an unsaturated case reads as before the rule.
  let generatorCpu: GeneratorCpu | undefined;
  const g = i.generator;
  if (g && typeof i.requestedQps === 'number' && g.windowS > 0 && g.cpus > 0 && Number.isFinite(g.cpuSeconds)) {
    const utilisation = g.cpuSeconds / g.windowS / g.cpus;
    if (utilisation >= limits.maxGeneratorCpu) {
      generatorCpu = { ...g, utilisation: Math.round(utilisation * 1e4) / 1e4, maxGeneratorCpu: limits.maxGeneratorCpu };
      reasons.push(
        `load generator saturated: ${Math.round(g.cpuSeconds * 1000) / 1000} CPU-seconds in ${Math.round(g.windowS * 1000) / 1000} s on ${g.cpus} CPU${g.cpus === 1 ? '' : 's'} (${pct(utilisation)}, at or above the ${pct(limits.maxGeneratorCpu)} allowed)`,
      );
    }
  }
  const status = failed ? 'failed' : reasons.length ? 'degraded' : 'ok';
  return {
    status,
    validity: {
      ok: status === 'ok',
      reasons,
      ...(errorRate !== undefined ? { errorRate: Math.round(errorRate * 1e6) / 1e6 } : {}),
      ...(rateRatio !== undefined ? { rateRatio } : {}),
      processesDown: i.processesDown,
      limits: { maxErrorRate: limits.maxErrorRate, minRateRatio: limits.minRateRatio },
      ...(generatorCpu ? { generatorCpu } : {}),
    },
  };
}

/** One line per case that is not a result: "case 2 (istio-sidecar http1 r0) degraded: reason; reason". */
export function notOkSummary(cases: readonly CaseResult[]): string[] {
  return cases
    .filter((c) => c.status !== 'ok')
    .map(
      (c) =>
        `case ${c.index} (${c.dataplane} ${c.workload} r${c.repeat}) ${c.status}: ${(c.validity?.reasons.length ? c.validity.reasons : [c.error ?? 'no reason recorded']).join('; ')}`,
    );
}
