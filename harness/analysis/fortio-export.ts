// A run's cases as fortio result JSON (the shape `fortio load -json` writes), so fortio's own UI
// (`fortio report -data-dir <dir>`) can draw and overlay them; `meshbench compare --export-fortio`.
import { join } from 'node:path';
import { makeDir, writeFileAtomic } from '../results/write.js';
import type { CaseResult, RunRecord } from '../results/types.js';

// ---------------------------------------------------------------------------------------------
// fortio export

/** fortio's histogram JSON (fortio.org/fortio/stats HistogramData), times in seconds. */
export interface FortioHistogram {
  Count: number;
  Min: number;
  Max: number;
  Sum: number;
  Avg: number;
  StdDev: number;
  Data: { Start: number; End: number; Percent: number; Count: number }[] | null;
  Percentiles?: { Percentile: number; Value: number }[];
}

/** The file name of a case's export: `<runId>-<index, 3 digits>-<dataplane>-<workload>-r<repeat>.json`. */
export function fortioFileName(run: RunRecord, c: CaseResult): string {
  const safe = (s: string) => String(s).replace(/[^A-Za-z0-9._-]/g, '_');
  return `${safe(run.runId)}-${String(c.index).padStart(3, '0')}-${safe(c.dataplane)}-${safe(c.workload)}-r${c.repeat}.json`;
}

/**
 * One case as a fortio result, the shape `fortio load -json` writes (see
 * test/fixtures/fortio-http1.json), built from the record:
 * - DurationHistogram: the record's sparse histogram (buckets of resolutionUs µs) as fortio's
 *   Data, times in seconds, first Start clamped to Min and last End to Max as fortio does, Percent
 *   cumulative; Count, Min, Max, Avg (and Sum = Avg · Count) are the record's; Percentiles are the
 *   record's exact nearest-rank p50/p90/p99/p99.9; StdDev is computed from bucket midpoints (the
 *   record keeps no per-request values), so it is exact only to the bucket width.
 * - It holds successful requests only (the record has no latencies of failed ones); failures are
 *   in RetCodes and in ErrorsDurationHistogram.Count, without data.
 * - A `Meshbench` object says where it came from; fortio ignores fields it does not know.
 * Undefined for a case without latency figures.
 */
export function fortioResult(run: RunRecord, c: CaseResult): Record<string, unknown> | undefined {
  const l = c.latencyUs;
  const h = l?.histogram;
  if (!l || !h || !Array.isArray(h.buckets) || h.buckets.length === 0) return undefined;
  const res = h.resolutionUs;
  const count = h.buckets.reduce((s, [, n]) => s + n, 0);
  const minUs = Math.min(l.min, h.buckets[0]![0] + res);
  const maxUs = Math.max(l.max, h.buckets[h.buckets.length - 1]![0]);
  let cum = 0;
  let sq = 0;
  const data = h.buckets.map(([startUs, n]) => {
    cum += n;
    const s = Math.max(startUs, minUs);
    const e = Math.max(s, Math.min(startUs + res, maxUs));
    sq += n * ((s + e) / 2 - l.mean) ** 2;
    return { Start: s / 1e6, End: e / 1e6, Percent: (100 * cum) / count, Count: n };
  });
  const pcts: [number, number][] = [
    [50, l.p50],
    [90, l.p90],
    [99, l.p99],
    [99.9, l.p999],
  ];
  const req = c.load.requested;
  const grpc = req.protocol === 'grpc';
  const id = fortioFileName(run, c).replace(/\.json$/, '');
  return {
    RunType: grpc ? 'GRPC Ping' : 'HTTP',
    // fortio's UI counts errors as DurationHistogram.Count − RetCodes[200], which is 0 here: say so in the title.
    Labels: `${c.dataplane} ${c.workload} r${c.repeat} ${run.runId}${c.load.actual.errors ? ` (${c.load.actual.errors} failed requests, not in the histogram)` : ''} , ${run.environment?.hostname ?? 'meshbench'}`,
    StartTime: c.startedAt,
    RequestedQPS: req.qps === 'max' ? 'max' : String(req.qps),
    RequestedDuration: `${req.durationS}s`,
    ActualQPS: c.load.actual.qps,
    ActualDuration: Math.round(c.load.actual.durationS * 1e9),
    NumThreads: req.connections,
    Version: run.environment?.tools?.fortio ?? c.provenance?.load?.version ?? '',
    DurationHistogram: {
      Count: count,
      Min: minUs / 1e6,
      Max: maxUs / 1e6,
      Sum: (l.mean * count) / 1e6,
      Avg: l.mean / 1e6,
      StdDev: Math.sqrt(sq / count) / 1e6,
      Data: data,
      Percentiles: pcts.filter(([, v]) => Number.isFinite(v)).map(([p, v]) => ({ Percentile: p, Value: v / 1e6 })),
    } satisfies FortioHistogram,
    ErrorsDurationHistogram: { Count: c.load.actual.errors, Min: 0, Max: 0, Sum: 0, Avg: 0, StdDev: 0, Data: null } satisfies FortioHistogram,
    Exactly: 0,
    Jitter: false,
    Uniform: false,
    NoCatchUp: false,
    RunID: 0,
    ID: id,
    RetCodes: c.load.actual.retCodes ?? {},
    ...(grpc ? { Destination: c.load.target } : { URL: c.load.target }),
    Resolution: res / 1e6,
    Meshbench: {
      runId: run.runId,
      scenario: run.scenario,
      caseIndex: c.index,
      dataplane: c.dataplane,
      workload: c.workload,
      repeat: c.repeat,
      status: c.status,
      model: c.load.model,
      latencySource: l.source,
      note: "exported by meshbench compare: DurationHistogram holds successful requests only, at the record's bucket resolution; Percentiles are the record's exact figures; StdDev is from bucket midpoints",
    },
  };
}

/** Write every case of the run that has latency figures as fortio JSON into `dir`; returns the files. */
export function exportFortio(run: RunRecord, dir: string): string[] {
  makeDir(dir);
  const files: string[] = [];
  for (const c of run.cases) {
    const j = fortioResult(run, c);
    if (!j) continue;
    const f = join(dir, fortioFileName(run, c));
    writeFileAtomic(f, JSON.stringify(j, null, 2) + '\n', 'the fortio export');
    files.push(f);
  }
  return files;
}
