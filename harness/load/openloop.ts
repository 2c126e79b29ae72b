// The open-loop load engine: mb-load (apps/cmd/mb-load; contract and figures in docs/load.md),
// run like fortio's client inside the client pod's namespace, in the `load` role's cgroup.
// Requests go out on a schedule fixed in advance (uniform or Poisson) whatever the responses, and
// each latency is timed from the request's intended send time, so a stall in the dataplane shows
// as the queue it causes instead of hiding behind the sends it delayed (coordinated omission).
// Its figures are mapped into the record's shapes (LatencyUs, load.actual) so that everything
// after the load stage reads an open-loop case like a fortio one.
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { MeshbenchError, runError } from '../errors.js';
import type { ResolvedWorkload } from '../scenario/expand.js';
import type { CaseResult, Histogram, LatencyUs } from '../results/types.js';
import type { Place } from '../place/index.js';
import { exec } from '../util/exec.js';
import {
  buildHint,
  findProjectBinary,
  type Lookup,
  type ProjectBinary,
  projectBinaryOnPlaces,
  projectBinaryVersion,
  requireProjectBinary,
} from '../util/project-bins.js';
import type { LabProcess } from '../util/procs.js';
import { type FortioRunSpec, HISTOGRAM_RESOLUTION_US, type LoadTarget, targetUrl } from './fortio.js';

export const MB_LOAD = 'mb-load';
export const MB_LOAD_SCHEMA = 'meshbench/mb-load/v1';
export const MB_LOAD_HINT = buildHint(MB_LOAD);

export type Arrival = 'uniform' | 'poisson';

/** True for a workload the open-loop engine drives. */
export const isOpenLoop = (w: { engine?: string }): boolean => w.engine === 'openloop';
export const arrivalOf = (w: { arrival?: Arrival }): Arrival => w.arrival ?? 'uniform';

/** mb-load's -protocol for a workload protocol. */
export function openLoopProtocol(p: ResolvedWorkload['protocol']): 'http1' | 'h2c' | 'grpc' {
  return p === 'http2' ? 'h2c' : p;
}

/** gRPC's method and request metadata as mb-load flags (the scenario checked both; gRPC needs a method). */
function grpcArgs(w: ResolvedWorkload): string[] {
  if (w.protocol !== 'grpc') return [];
  if (!w.method) throw runError(`workload ${w.name}: engine openloop over grpc needs a method (/package.Service/Method)`);
  return ['-method', w.method, ...Object.entries(w.metadata ?? {}).flatMap(([k, v]) => ['-header', `${k}:${v}`])];
}

/** Go duration for `s` seconds (mb-load takes 1.5s, 250ms …). */
const goDuration = (s: number) => `${Math.round(s * 1e6) / 1e6}s`;

/** mb-load's arguments for one run of `durationS` seconds (the warm-up is a run of its own, as with fortio). */
export function openLoopArgs(w: ResolvedWorkload, t: LoadTarget, durationS: number, jsonFile: string): string[] {
  if (typeof w.qps !== 'number' || !(w.qps > 0)) throw runError(`workload ${w.name}: engine openloop needs a fixed rate (qps > 0)`);
  return [
    '-target',
    targetUrl(w, t),
    '-protocol',
    openLoopProtocol(w.protocol),
    ...grpcArgs(w),
    '-rate',
    String(w.qps),
    '-duration',
    goDuration(durationS),
    '-warmup',
    '0s',
    '-connections',
    String(w.connections),
    '-arrival',
    arrivalOf(w),
    '-payload',
    String(w.payloadBytes),
    '-json',
    jsonFile,
    '-quiet',
  ];
}

/** The record's load model (CaseResult.load.model); it starts with "open-loop". */
export function openLoopModel(w: ResolvedWorkload): string {
  const call =
    w.protocol === 'grpc' && w.method ? ` calling ${w.method}${Object.keys(w.metadata ?? {}).length ? ` with ${JSON.stringify(w.metadata)}` : ''}` : '';
  return `open-loop: ${w.qps} qps${call}, ${arrivalOf(w)} arrivals over ${w.connections} connections, sent on schedule whatever the responses; latency timed from each request's intended send time (mb-load, no coordinated omission)`;
}

// ---------------------------------------------------------------------------------------------
// The result JSON (schema meshbench/mb-load/v1)

interface MbTimes {
  count: number;
  min?: number | null;
  mean?: number | null;
  p50?: number | null;
  p90?: number | null;
  p99?: number | null;
  p999?: number | null;
  max?: number | null;
  histogram?: { leUs: number; count: number }[] | null;
}

export interface MbLoadResult {
  schema: string;
  engine: string;
  version: string;
  loadModel: string;
  arrival: Arrival;
  protocol: string;
  target: string;
  requested: { qps: number; durationS: number; warmupS: number; connections: number; streams: number; payloadBytes: number; timeoutS: number };
  actual: { qps: number; requests: number; ok: number; errors: number; codes: Record<string, number>; windowS: number; sentS?: number };
  responseTimeUs: MbTimes;
  serviceTimeUs: MbTimes;
  sendLagUs?: { p50?: number | null; p99?: number | null; max?: number | null };
  generator: { cpuSeconds: number; wallSeconds: number; cpuUtilisation: number; gomaxprocs: number };
  interrupted: boolean;
}

/** Parse and check mb-load's JSON; a file that does not follow the contract is a run error. */
export function parseMbLoadJson(text: string): MbLoadResult {
  let j: MbLoadResult;
  try {
    j = JSON.parse(text);
  } catch (e) {
    throw runError(`mb-load JSON does not parse: ${(e as Error).message}`);
  }
  if (j?.schema !== MB_LOAD_SCHEMA) throw runError(`mb-load JSON has schema ${JSON.stringify(j?.schema)}, expected ${MB_LOAD_SCHEMA}`);
  const num = (x: unknown) => typeof x === 'number' && Number.isFinite(x);
  const missing = [
    ['actual.requests', j.actual?.requests],
    ['actual.errors', j.actual?.errors],
    ['actual.qps', j.actual?.qps],
    ['actual.windowS', j.actual?.windowS],
    ['responseTimeUs.count', j.responseTimeUs?.count],
    ['serviceTimeUs.count', j.serviceTimeUs?.count],
    ['generator.cpuSeconds', j.generator?.cpuSeconds],
    ['generator.wallSeconds', j.generator?.wallSeconds],
  ].filter(([, v]) => !num(v));
  if (missing.length) throw runError(`mb-load JSON lacks ${missing.map(([k]) => k).join(', ')}`);
  return j;
}

const r1 = (x: number) => Math.round(x * 10) / 10;

/** mb-load's HDR buckets (count per bucket, ascending upper bound) as the record's fixed-width histogram, each count at its bucket's upper bound. */
export function toHistogram(h: readonly { leUs: number; count: number }[] | null | undefined, res = HISTOGRAM_RESOLUTION_US): Histogram {
  const buckets: [number, number][] = [];
  let count = 0;
  for (const b of [...(h ?? [])].sort((x, y) => x.leUs - y.leUs)) {
    if (!(b.count > 0)) continue;
    count += b.count;
    const start = Math.floor(b.leUs / res) * res;
    const last = buckets[buckets.length - 1];
    if (last && last[0] === start) last[1] += b.count;
    else buckets.push([start, b.count]);
  }
  return { resolutionUs: res, buckets, count };
}

const HDR_NOTE = `HDR histogram (1 µs at the bottom, 3 significant digits), successful requests only; the record's ${HISTOGRAM_RESOLUTION_US} µs histogram takes each HDR bucket at its upper bound`;
export const RESPONSE_TIME_SOURCE = `mb-load response time: completion − intended send time (open loop, coordinated-omission free); ${HDR_NOTE}`;
export const SERVICE_TIME_SOURCE = `mb-load service time: completion − actual send time (what fortio measures); ${HDR_NOTE}`;

/** One of mb-load's time summaries in the record's LatencyUs shape; undefined when no request succeeded. */
export function toLatencyUs(t: MbTimes, source: string): LatencyUs | undefined {
  if (!(t.count > 0)) return undefined;
  const v = (x: number | null | undefined) => (typeof x === 'number' ? r1(x) : Number.NaN);
  return {
    p50: v(t.p50),
    p90: v(t.p90),
    p99: v(t.p99),
    p999: v(t.p999),
    max: v(t.max),
    min: v(t.min),
    mean: v(t.mean),
    count: t.count,
    histogram: toHistogram(t.histogram),
    source,
  };
}

/** What the record takes from one measured mb-load run. */
export interface OpenLoopFigures {
  version: string;
  actual: CaseResult['load']['actual'];
  latencyUs?: LatencyUs;
  serviceTimeUs?: LatencyUs;
  sendLagUs?: { p50: number; p99: number; max: number };
  generator: NonNullable<CaseResult['load']['generator']>;
  interrupted: boolean;
}

export function openLoopFigures(j: MbLoadResult): OpenLoopFigures {
  const g = j.generator;
  const lag = j.sendLagUs;
  return {
    version: j.version,
    actual: {
      qps: Math.round(j.actual.qps * 100) / 100,
      requests: j.actual.requests,
      errors: j.actual.errors,
      // The window, or longer when the sends ran on past it (a target that could not keep up).
      durationS: Math.round(Math.max(j.actual.windowS, j.actual.sentS ?? 0) * 1000) / 1000,
      retCodes: j.actual.codes ?? {},
    },
    latencyUs: toLatencyUs(j.responseTimeUs, RESPONSE_TIME_SOURCE),
    serviceTimeUs: toLatencyUs(j.serviceTimeUs, SERVICE_TIME_SOURCE),
    ...(lag && typeof lag.max === 'number' ? { sendLagUs: { p50: r1(lag.p50 ?? Number.NaN), p99: r1(lag.p99 ?? Number.NaN), max: r1(lag.max) } } : {}),
    generator: {
      engine: MB_LOAD,
      cpuSeconds: Math.round(g.cpuSeconds * 1e4) / 1e4,
      wallSeconds: Math.round(g.wallSeconds * 1e4) / 1e4,
      cpuUtilisation: Math.round((g.cpuUtilisation ?? g.cpuSeconds / g.wallSeconds) * 1e4) / 1e4,
      ...(g.gomaxprocs > 0 ? { cpus: g.gomaxprocs } : {}),
      source: 'mb-load: its own CPU time (user+system) over its wall time; cpus = GOMAXPROCS, the CPUs it may use',
    },
    interrupted: !!j.interrupted,
  };
}

/**
 * Put a measured run's figures into the case record: the response time (from the intended send)
 * is the case's latency, the service time goes beside it. Returns the generator's CPU for
 * validity's saturation rule (undefined when mb-load did not say how many CPUs it may use).
 */
export function recordOpenLoop(result: CaseResult, f: OpenLoopFigures): { cpuSeconds: number; windowS: number; cpus: number; source: string } | undefined {
  result.load.actual = f.actual;
  result.load.generator = f.generator;
  if (f.sendLagUs) result.load.sendLagUs = f.sendLagUs;
  result.latencyUs = f.latencyUs;
  if (f.serviceTimeUs) result.serviceTimeUs = f.serviceTimeUs;
  if (result.provenance.load && f.version) result.provenance.load.version = f.version;
  const g = f.generator;
  return g.cpus ? { cpuSeconds: g.cpuSeconds, windowS: g.wallSeconds, cpus: g.cpus, source: g.source } : undefined;
}

// ---------------------------------------------------------------------------------------------
// Finding the binary (util/project-bins.ts: the checkout's .tools/bin first, then PATH)

const BIN: ProjectBinary = { name: MB_LOAD, why: 'engine openloop needs it' };
export const findMbLoad = (o: Lookup = {}): string | undefined => findProjectBinary(MB_LOAD, o);
export const requireMbLoad = (o: Lookup = {}): string => requireProjectBinary(BIN, o);
/** mb-load on every machine of a --hosts run, at one path (it runs on the client's). */
export const mbLoadOnPlaces = (places: readonly Place[]): Promise<string> => projectBinaryOnPlaces(BIN, places);
export const mbLoadVersion = (bin: string, place?: Place): Promise<string | undefined> => projectBinaryVersion(MB_LOAD, bin, place);

// ---------------------------------------------------------------------------------------------
// Running it

/** As fortio's run (same place, cgroup role, pinning), with mb-load's binary; `record`: read the JSON (a warm-up's is left unread). */
export interface OpenLoopRunSpec extends Omit<FortioRunSpec, 'fortio'> {
  bin: string;
}

export interface OpenLoopRun {
  proc: LabProcess;
  done: Promise<{ figures?: OpenLoopFigures }>;
}

/** Start one mb-load run in the client's namespace; `done` resolves once it exited and its JSON, read on its machine, is mapped. */
export async function startOpenLoop(s: OpenLoopRunSpec): Promise<OpenLoopRun> {
  const json = join(s.dir, `${s.name}.json`);
  const log = join(s.dir, `${s.name}.log`);
  const proc = await s.procs.startAsync({
    name: s.name,
    role: 'load',
    cmd: s.bin,
    args: openLoopArgs(s.workload, s.target, s.durationS, json),
    netns: s.netns,
    cpus: s.cpus,
    logFile: log,
    cwd: s.dir,
  });
  const where = proc.place.name === 'local' ? '' : ` on ${proc.place.name}`;
  const onAbort = () => void s.procs.stop(proc, 500);
  s.signal?.addEventListener('abort', onAbort, { once: true });
  const done = proc.exited.then(async (code) => {
    s.signal?.removeEventListener('abort', onAbort);
    if (s.signal?.aborted) throw runError('load interrupted');
    if (code !== 0) throw runError(`mb-load exited with code ${code}; see ${log}${where}`);
    if (!s.record) return {};
    const [text] = await proc.place.readFiles([json]);
    if (text === undefined) throw runError(`mb-load wrote no JSON to ${json}${where}`);
    return { figures: openLoopFigures(parseMbLoadJson(text)) };
  });
  return { proc, done };
}

/**
 * Time until one gRPC call of the workload's method through the Service succeeds, from the client
 * pod (fortio's grpcping calls fortio's own Ping service, which the project's gRPC apps do not
 * serve). The call carries no metadata: it asks whether the chain answers, not whether the
 * workload's own calls are allowed (a Reserve the mesh denies is what such a case measures).
 */
export async function firstGrpcRequest(o: {
  bin: string;
  netns: string;
  cgroup?: string;
  workload: ResolvedWorkload;
  target: LoadTarget;
  signal: AbortSignal;
}): Promise<number> {
  const t0 = performance.now();
  const args = ['-target', `${o.target.host}:${o.target.port}`, '-protocol', 'grpc', ...grpcArgs({ ...o.workload, metadata: undefined })];
  args.push('-rate', '1', '-duration', '1ms', '-warmup', '0s', '-connections', '1', '-timeout', '2s', '-payload', String(o.workload.payloadBytes), '-quiet');
  let last = '';
  while (performance.now() - t0 < 15000 && !o.signal.aborted) {
    const r = await exec(o.bin, args, { netns: o.netns, cgroup: o.cgroup, allowFail: true, timeoutMs: 5000 });
    if (r.code === 0) {
      try {
        const codes = parseMbLoadJson(r.stdout).actual.codes ?? {};
        if ((codes.OK ?? 0) > 0) return performance.now() - t0;
        last = JSON.stringify(codes);
      } catch (e) {
        last = (e as Error).message;
      }
    } else last = r.stderr.trim().split('\n').at(-1) ?? `exit code ${r.code}`;
    await sleep(20);
  }
  if (o.signal.aborted) throw new MeshbenchError('E_INTERRUPTED', 'interrupted');
  throw runError(`no gRPC call of ${o.workload.method} through the Service succeeded within 15 s (${o.target.host}:${o.target.port}): ${last}`);
}
