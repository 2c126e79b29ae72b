// The load generator: fortio's client, run inside the client pod's namespace.
// Latency figures come from fortio's per-request access log (1 µs resolution), not from its
// bucketed histogram, whose buckets are 50–100 µs wide between 200 µs and 1 ms even at -r 1e-5;
// fortio's own percentiles are kept beside them as a cross-check.
import { join } from 'node:path';
import { durationSeconds } from '../scenario/schema.js';
import { runError } from '../errors.js';
import type { ResolvedWorkload } from '../scenario/expand.js';
import type { LatencyUs } from '../results/types.js';
import type { ProcessGroup, LabProcess } from '../util/procs.js';

export const HISTOGRAM_RESOLUTION_US = 10;

export interface LoadTarget {
  host: string; // VIP
  port: number;
}

export function targetUrl(w: ResolvedWorkload, t: LoadTarget): string {
  if (w.protocol === 'grpc') return `${t.host}:${t.port}`;
  const q = [
    ...(w.responseBytes > 0 ? [`size=${w.responseBytes}`] : []),
    // fortio's echo handler sleeps `delay` before answering.
    ...(w.serverDelay !== undefined ? [`delay=${Math.round(durationSeconds(w.serverDelay) * 1e6)}us`] : []),
  ];
  return `http://${t.host}:${t.port}/echo${q.length ? `?${q.join('&')}` : ''}`;
}

/** Arguments for one fortio load run of `durationS` seconds. */
export function loadArgs(w: ResolvedWorkload, t: LoadTarget, durationS: number, out?: { json: string; accessLog: string }): string[] {
  const a = ['load', '-qps', w.qps === 'max' ? '0' : String(w.qps), '-c', String(w.connections), '-t', `${durationS}s`];
  // 10 µs histogram resolution; percentiles asked for are the ones the record carries.
  a.push('-r', '0.00001', '-p', '50,90,99,99.9', '-loglevel', 'warning', '-allow-initial-errors');
  if (w.protocol === 'grpc') a.push('-grpc', '-ping');
  if (w.protocol === 'http2') a.push('-h2');
  if (w.payloadBytes > 0) a.push('-payload-size', String(w.payloadBytes));
  if (out) a.push('-json', out.json, '-access-log-file', out.accessLog, '-access-log-format', 'json');
  a.push(targetUrl(w, t));
  return a;
}

export function loadModel(w: ResolvedWorkload): string {
  return w.qps === 'max'
    ? `closed loop: ${w.connections} connections, each sends its next request when the last one returns (fortio -qps 0)`
    : `constant rate: ${w.qps} qps over ${w.connections} connections, paced per connection, catching up after slow requests (fortio -qps ${w.qps})`;
}

export interface FortioSummary {
  version: string;
  actualQps: number;
  actualDurationS: number;
  count: number;
  retCodes: Record<string, number>;
  errors: number;
  percentilesUs: { p50: number; p90: number; p99: number; p999: number; max: number };
}

/** Read the fields the record needs out of fortio's -json output. */
export function parseFortioJson(text: string): FortioSummary {
  const j = JSON.parse(text);
  const h = j.DurationHistogram;
  if (!h || typeof h.Count !== 'number') throw runError('fortio JSON has no DurationHistogram');
  const pct = (p: number) => 1e6 * (h.Percentiles?.find((x: { Percentile: number }) => x.Percentile === p)?.Value ?? NaN);
  const retCodes: Record<string, number> = j.RetCodes ?? {};
  const okKey = j.RunType?.startsWith('GRPC') ? 'SERVING' : '200';
  const ok = retCodes[okKey] ?? 0;
  return {
    version: j.Version,
    actualQps: j.ActualQPS,
    actualDurationS: j.ActualDuration / 1e9,
    count: h.Count,
    retCodes,
    errors: h.Count - ok,
    percentilesUs: { p50: pct(50), p90: pct(90), p99: pct(99), p999: pct(99.9), max: 1e6 * h.Max },
  };
}

/** Nearest-rank percentile of an ascending array. */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1];
}

/** Per-request latencies (µs) of successful requests from fortio's JSON access log, plus the error count. */
export function parseAccessLog(text: string): { latenciesUs: Float64Array; errors: number } {
  const lines = text.split('\n');
  const vals = new Float64Array(lines.length);
  let n = 0;
  let errors = 0;
  for (const line of lines) {
    if (!line) continue;
    const j = JSON.parse(line) as { latency: number; ok: boolean };
    if (!j.ok) {
      errors++;
      continue;
    }
    vals[n++] = j.latency * 1e6;
  }
  return { latenciesUs: vals.slice(0, n).sort(), errors };
}

export function latencySummary(sortedUs: Float64Array, fortio?: FortioSummary): LatencyUs {
  const res = HISTOGRAM_RESOLUTION_US;
  const buckets: [number, number][] = [];
  let sum = 0;
  for (const v of sortedUs) {
    sum += v;
    const b = Math.floor(v / res) * res;
    const last = buckets[buckets.length - 1];
    if (last && last[0] === b) last[1]++;
    else buckets.push([b, 1]);
  }
  const r1 = (x: number) => Math.round(x * 10) / 10;
  return {
    p50: r1(percentile(sortedUs, 50)),
    p90: r1(percentile(sortedUs, 90)),
    p95: r1(percentile(sortedUs, 95)),
    p99: r1(percentile(sortedUs, 99)),
    p999: r1(percentile(sortedUs, 99.9)),
    max: r1(sortedUs[sortedUs.length - 1] ?? NaN),
    min: r1(sortedUs[0] ?? NaN),
    mean: r1(sum / Math.max(1, sortedUs.length)),
    count: sortedUs.length,
    histogram: { resolutionUs: res, buckets, count: sortedUs.length },
    source: 'fortio client access log, one latency per successful request (1 µs resolution); nearest-rank percentiles',
    fortio: fortio
      ? {
          p50: r1(fortio.percentilesUs.p50),
          p90: r1(fortio.percentilesUs.p90),
          p99: r1(fortio.percentilesUs.p99),
          p999: r1(fortio.percentilesUs.p999),
          max: r1(fortio.percentilesUs.max),
        }
      : undefined,
  };
}

export interface FortioRunSpec {
  procs: ProcessGroup;
  fortio: string;
  netns: string;
  name: string;
  workload: ResolvedWorkload;
  target: LoadTarget;
  durationS: number;
  dir: string;
  cpus?: string;
  /** Keep the JSON and access log (the measured run); warm-up runs keep neither. */
  record: boolean;
  signal?: AbortSignal;
}

export interface FortioRun {
  proc: LabProcess;
  done: Promise<{ summary?: FortioSummary; latency?: LatencyUs; accessErrors: number }>;
}

/**
 * Start one fortio load (on the machine of the client's namespace); `done` resolves once it has
 * exited and its output, read there, is parsed.
 */
export async function startFortio(s: FortioRunSpec): Promise<FortioRun> {
  const out = s.record ? { json: join(s.dir, `${s.name}.json`), accessLog: join(s.dir, `${s.name}.access.jsonl`) } : undefined;
  const proc = await s.procs.startAsync({
    name: s.name,
    role: 'load',
    cmd: s.fortio,
    args: loadArgs(s.workload, s.target, s.durationS, out),
    netns: s.netns,
    cpus: s.cpus,
    logFile: join(s.dir, `${s.name}.log`),
    cwd: s.dir,
  });
  const onAbort = () => void s.procs.stop(proc, 500);
  s.signal?.addEventListener('abort', onAbort, { once: true });
  const done = proc.exited.then(async (code) => {
    s.signal?.removeEventListener('abort', onAbort);
    if (s.signal?.aborted) throw runError('load interrupted');
    if (code !== 0)
      throw runError(`fortio load exited with code ${code}; see ${join(s.dir, `${s.name}.log`)}${proc.place.name === 'local' ? '' : ` on ${proc.place.name}`}`);
    if (!out) return { accessErrors: 0 };
    const [json, accessLog] = await proc.place.readFiles([out.json, out.accessLog]);
    if (json === undefined) throw runError(`fortio wrote no JSON to ${out.json}${proc.place.name === 'local' ? '' : ` on ${proc.place.name}`}`);
    const summary = parseFortioJson(json);
    const { latenciesUs, errors } = parseAccessLog(accessLog ?? '');
    return { summary, latency: latencySummary(latenciesUs, summary), accessErrors: errors };
  });
  return { proc, done };
}
