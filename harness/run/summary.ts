// What `meshbench run` prints of a run (and `--json` gives): status, claims' verdict counts, each
// case, with latency only for ok cases (a case that is not ok is no result: the record keeps it).
import type { RunOutcome } from './run.js';
import { capacitySummary } from './capacity-options.js';

export const fmt = (x: number | undefined) => (x === undefined ? '-' : String(x));

/** What `run` prints of one run: status, the claims' verdict counts, each case (latency only for ok cases). */
export async function runSummary(res: RunOutcome) {
  const { claimVerdicts, verdictCounts } = await import('../analysis/claims.js');
  const claims = res.record.reference ? verdictCounts(claimVerdicts(res.record)).filter(([, n]) => n > 0) : [];
  return {
    runId: res.record.runId,
    status: res.record.status,
    kernel: res.record.environment.kernel,
    runJson: res.file,
    ...capacitySummary(res.record),
    claims: res.record.reference ? Object.fromEntries(claims) : undefined,
    claimsLine: claims.length
      ? `claims of ${res.record.reference!.tables.map((t) => t.id).join(', ')}: ${claims.map(([w, n]) => `${n} ${w}`).join(', ')} (see the report)`
      : undefined,
    // Latency of a case that is not ok is no result: only the record keeps it, for diagnosis.
    cases: res.record.cases.map(
      (
        c,
      ): {
        dataplane: string;
        workload: string;
        repeat: number;
        status: string;
        p50Us?: number;
        p99Us?: number;
        reasons?: string[];
        qps: number;
        errors: number;
      } => ({
        dataplane: c.dataplane,
        workload: c.workload,
        repeat: c.repeat,
        status: c.status,
        ...(c.status === 'ok' ? { p50Us: c.latencyUs?.p50, p99Us: c.latencyUs?.p99 } : { reasons: c.validity?.reasons ?? (c.error ? [c.error] : []) }),
        qps: c.load.actual.qps,
        errors: c.load.actual.errors,
      }),
    ),
  };
}
