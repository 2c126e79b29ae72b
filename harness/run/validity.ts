// Case validity: whether a measured case is a result. Figures over the survivors of a broken
// measurement (a dead sidecar, most requests failing, half the requested rate) are not a result,
// so such a case is degraded or failed with its reasons, and only ok cases reach verdicts,
// compare and the report's figures. The rules are in docs/case-status.md.
import type { CaseResult, CaseStatus, CaseValidity, ProcessDown } from '../results/types.js';
import type { LabProcess } from '../util/procs.js';
import { VALIDITY_DEFAULTS } from '../scenario/schema.js';

export interface ValidityLimits {
  /** Most errors ÷ requests a result may have. */
  maxErrorRate: number;
  /** Least achieved ÷ requested qps a fixed-rate result may have. */
  minRateRatio: number;
}

/** The scenario schema's defaults (0.1 % errors, 95 % of the requested rate). */
export const DEFAULT_VALIDITY: ValidityLimits = { ...VALIDITY_DEFAULTS };

/** The scenario's `validity` bounds, each falling back to its default. */
export function validityLimits(s: { validity?: Partial<ValidityLimits> } | undefined): ValidityLimits {
  const v = s?.validity ?? {};
  const num = (x: unknown, d: number) => (typeof x === 'number' && Number.isFinite(x) ? x : d);
  return { maxErrorRate: num(v.maxErrorRate, DEFAULT_VALIDITY.maxErrorRate), minRateRatio: num(v.minRateRatio, DEFAULT_VALIDITY.minRateRatio) };
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
}

const pct = (x: number) => `${(Math.round(x * 1e4) / 100).toString()} %`;

export function describeDown(p: ProcessDown): string {
  const how = p.signal ? `killed by ${p.signal}` : `exited with code ${p.exitCode}`;
  return `process ${p.name} (role ${p.role}, pid ${p.pid}) ${how} ${p.when === 'during-window' ? 'during the measured window' : 'before the measured window'}`;
}

/**
 * The case's status and validity. failed: an error, no measurement or no successful request, or
 * a lab process down. degraded: measured with every process up, but errors above maxErrorRate or
 * (fixed rate only) achieved rate below minRateRatio of the requested. ok otherwise.
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
      if (ratio < limits.minRateRatio)
        reasons.push(`achieved ${a.qps} qps of ${i.requestedQps} requested (${pct(ratio)}, less than the ${pct(limits.minRateRatio)} required)`);
    }
    if (!(i.latencyCount! > 0)) {
      failed = true;
      reasons.push('no request succeeded, so there is no latency');
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
      limits,
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
