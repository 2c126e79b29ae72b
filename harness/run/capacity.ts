// `meshbench run --find-capacity 'p99<=5ms'`: per dataplane × workload, the highest offered rate
// whose open-loop response time meets the objective with errors bounded. The lab (topology,
// dataplane, apps) is built once per search and every step runs on it: a short fixed-rate warm-up
// then a short measured window, judged like a case (a step whose generator saturated or whose
// rate fell short is not a measurement of the dataplane, so it counts as missing). The rate grows
// ×2 from the workload's qps until a step misses (or halves until one meets), then bisects.
// Only the open-loop engine: a closed or catching-up generator hides the queueing that marks
// saturation, so the search forces it whatever the workload says, and the record says so.
import { mkdirSync, readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { join } from 'node:path';
import { MeshbenchError, inputError } from '../errors.js';
import type { Scenario } from '../scenario/schema.js';
import type { ResolvedWorkload } from '../scenario/expand.js';
import { buildCluster } from '../topology/graph.js';
import { clusterUp } from '../topology/netns.js';
import { getDataplane } from '../dataplanes/registry.js';
import type { Deployed } from '../dataplanes/types.js';
import { startApps } from '../workloads/fortio-server.js';
import * as openloop from '../load/openloop.js';
import { targetUrl } from '../load/fortio.js';
import type { CapacitySearch, CapacityStep, Environment, RunRecord } from '../results/types.js';
import { describeDown, judgeCase, processesDown, type ValidityLimits } from './validity.js';
import { ProcessGroup } from '../util/procs.js';
import type { Progress } from '../util/progress.js';
import { placeOf } from '../place/index.js';
import { boundText, type CapacityOptions } from './capacity-options.js';

export { parseObjective, type CapacityOptions } from './capacity-options.js';

/** Where a search starts when the workload has no fixed rate (qps: max). */
const START_RPS_FOR_MAX = 1000;

const ENGINE_NOTE =
  'the search drives every step with the open-loop engine (mb-load: fixed-rate schedule, latency from the intended send time) whatever the workload’s engine, so saturation shows as queueing';

/**
 * The scenario as the search runs it: every workload on engine openloop. gRPC workloads need a
 * method for the open-loop engine (`method:`); fortio-style ones (grpcping) are left out, said
 * through `warn`.
 */
export function capacityScenario(s: Scenario, o: CapacityOptions | undefined, warn: (m: string) => void): Scenario {
  if (!o) return s;
  const noMethod = s.workloads.filter((w) => w.protocol === 'grpc' && !w.method);
  if (noMethod.length)
    warn(
      `--find-capacity: gRPC workload(s) ${noMethod.map((w) => w.name).join(', ')} left out: the open-loop engine calls a named method (workload method: /pkg.Service/Method)`,
    );
  const workloads = s.workloads
    .filter((w) => !noMethod.includes(w))
    .map((w) => ({ ...w, engine: 'openloop' as const, qps: typeof w.qps === 'number' ? w.qps : START_RPS_FOR_MAX }));
  if (!workloads.length)
    throw inputError('--find-capacity: the scenario has no workload the search can drive', [], 'http1, http2, or gRPC with a method (/pkg.Service/Method)');
  // No cases, so no figures for the claims tables: the record names none.
  return { ...s, workloads, reference: undefined };
}

// ---------------------------------------------------------------------------------------------
// The search itself, on any measure (unit tests give it a synthetic latency-vs-rate function)

export interface SearchLimits {
  startRps: number;
  maxRps: number;
  minRps: number;
  maxSteps: number;
  tolerance: number;
}

export interface SearchResult {
  foundRps: number | null;
  outcome: 'found' | 'none';
  capped: boolean;
  why: string;
  steps: number;
}

const pctText = (x: number) => `${Math.round(x * 1000) / 10} %`;

/**
 * Grow ×2 from startRps while steps meet (up to maxRps), or halve while they miss (down to
 * minRps), then bisect between the highest rate that met and the lowest that missed until they
 * are within `tolerance` of the lower; maxSteps bounds the measures. Rates are whole rps.
 */
export async function searchCapacity(measure: (rps: number) => Promise<boolean>, l: SearchLimits): Promise<SearchResult> {
  let steps = 0;
  const step = (r: number) => {
    steps++;
    return measure(r);
  };
  const spent = () => steps >= l.maxSteps;
  let lo: number | undefined;
  let hi: number | undefined;
  let r = Math.round(Math.min(Math.max(l.startRps, l.minRps), l.maxRps));
  if (await step(r)) {
    lo = r;
    while (hi === undefined) {
      if (lo >= l.maxRps)
        return {
          foundRps: lo,
          outcome: 'found',
          capped: true,
          steps,
          why: `meets the objective at the search's cap (${l.maxRps} rps): the capacity is at least this`,
        };
      if (spent())
        return {
          foundRps: lo,
          outcome: 'found',
          capped: true,
          steps,
          why: `the step budget (${l.maxSteps}) ran out while the rate still met the objective: at least this`,
        };
      r = Math.min(lo * 2, l.maxRps);
      if (await step(r)) lo = r;
      else hi = r;
    }
  } else {
    hi = r;
    while (lo === undefined) {
      if (hi <= l.minRps || spent())
        return {
          foundRps: null,
          outcome: 'none',
          capped: false,
          steps,
          why: `no rate meets the objective, even the lowest tried (${hi} rps)${hi > l.minRps ? ` (step budget of ${l.maxSteps} spent)` : ''}`,
        };
      r = Math.max(Math.floor(hi / 2), l.minRps);
      if (await step(r)) lo = r;
      else hi = r;
    }
  }
  while (hi - lo > l.tolerance * lo) {
    const mid = Math.round((lo + hi) / 2);
    if (mid <= lo || mid >= hi) break;
    if (spent())
      return {
        foundRps: lo,
        outcome: 'found',
        capped: false,
        steps,
        why: `meets the objective at ${lo} rps, misses it at ${hi} rps (${pctText((hi - lo) / lo)} apart: the step budget of ${l.maxSteps} ran out before ${pctText(l.tolerance)})`,
      };
    if (await step(mid)) lo = mid;
    else hi = mid;
  }
  return {
    foundRps: lo,
    outcome: 'found',
    capped: false,
    steps,
    why: `meets the objective at ${lo} rps, misses it at ${hi} rps (within ${pctText(l.tolerance)})`,
  };
}

/**
 * A rate meets when any of 1 + `retries` attempts meets: the host's other work only ever adds
 * latency or generator CPU, so one disturbed window must not decide a rate (a meet is kept).
 */
export function withRetries(attempt: (rps: number, n: number) => Promise<boolean>, retries: number): (rps: number) => Promise<boolean> {
  return async (rps) => {
    for (let n = 1; n <= 1 + retries; n++) if (await attempt(rps, n)) return true;
    return false;
  };
}

// ---------------------------------------------------------------------------------------------
// Judging one step

export interface StepFigures {
  offeredRps: number;
  figures: openloop.OpenLoopFigures;
}

/** A measured step's record: invalid when the measurement is not the dataplane's, else meets or misses the objective. */
export function judgeStep(f: StepFigures, o: CapacityOptions, limits: ValidityLimits, poissonWindowS?: number): CapacityStep {
  const { actual, latencyUs: L, generator: g } = f.figures;
  // The objective's own error bound judges errors; validity judges the rest (rate, generator, latency).
  const v = judgeCase(
    {
      requestedQps: f.offeredRps,
      actual,
      latencyCount: L?.count,
      processesDown: [],
      generator: g.cpus ? { cpuSeconds: g.cpuSeconds, windowS: g.wallSeconds, cpus: g.cpus, source: g.source } : undefined,
      poissonWindowS,
    },
    { ...limits, maxErrorRate: Number.POSITIVE_INFINITY, maxGeneratorCpu: Math.min(limits.maxGeneratorCpu, o.maxGeneratorCpu) },
  );
  const metricUs = L?.[o.objective.metric];
  const errorRate = actual.requests > 0 ? actual.errors / actual.requests : undefined;
  const misses: string[] = [];
  if (errorRate !== undefined && errorRate > o.objective.maxErrorRate)
    misses.push(`${actual.errors} of ${actual.requests} requests failed (${pctText(errorRate)}, above ${pctText(o.objective.maxErrorRate)})`);
  if (metricUs !== undefined && !(metricUs <= o.objective.maxUs))
    misses.push(`${o.objective.metric} ${boundText(Math.round(metricUs))} above ${boundText(o.objective.maxUs)}`);
  const status = !v.validity.ok ? 'invalid' : misses.length ? 'misses' : 'meets';
  return {
    offeredRps: f.offeredRps,
    achievedRps: actual.qps,
    requests: actual.requests,
    errors: actual.errors,
    ...(errorRate !== undefined ? { errorRate: Math.round(errorRate * 1e6) / 1e6 } : {}),
    ...(L ? { p50Us: L.p50, p99Us: L.p99, maxUs: L.max, metricUs } : {}),
    ...(f.figures.serviceTimeUs ? { serviceP99Us: f.figures.serviceTimeUs.p99 } : {}),
    generatorCpu: g.cpuUtilisation,
    status,
    reasons: [...v.validity.reasons, ...misses],
  };
}

// ---------------------------------------------------------------------------------------------
// Running the searches on real labs

export interface CapacityEnv {
  prefix: string;
  dir: string;
  fortio: string;
  /** Always set: capacityScenario puts every workload on engine openloop. */
  mbLoad: string | undefined;
  /** Set when a Service runs mb-grpc. */
  mbGrpc?: string;
  progress: Progress;
  env: Environment;
  abort: AbortController;
  limits: ValidityLimits;
  sweepAll: () => Promise<void>;
  /** Writes the record; false when it could not (the run stops). */
  save: (when: string) => boolean;
  /** run.ts's wait for the first request through the Service (kept there, passed in: no import cycle). */
  firstRequest: (fortio: string, netns: string, cgroup: string | undefined, w: ResolvedWorkload, url: string, signal: AbortSignal) => Promise<number>;
}

/** One search per dataplane × workload, each on its own lab, into record.capacity (saved after every step). */
export async function findCapacity(s: Scenario, o: CapacityOptions, record: RunRecord, e: CapacityEnv): Promise<void> {
  record.capacity = [];
  for (const raw of s.workloads)
    for (const dataplane of s.dataplanes) {
      if (e.abort.signal.aborted) return;
      const w: ResolvedWorkload = { ...raw, durationS: o.stepDurationS, warmupS: o.stepWarmupS };
      const search: CapacitySearch = {
        dataplane,
        workload: w.name,
        objective: o.objective,
        foundRps: null,
        outcome: 'interrupted',
        why: 'not finished',
        steps: [],
        stepDurationS: o.stepDurationS,
        stepWarmupS: o.stepWarmupS,
        engine: 'openloop',
        engineNote: ENGINE_NOTE,
        arrival: openloop.arrivalOf(w),
        connections: w.connections,
        limits: {
          startRps: Number(w.qps),
          maxRps: o.maxRps,
          minRps: o.minRps,
          maxSteps: o.maxSteps,
          tolerance: o.tolerance,
          maxGeneratorCpu: o.maxGeneratorCpu,
          retriesOnMiss: o.retriesOnMiss,
        },
        startedAt: new Date().toISOString(),
      };
      record.capacity.push(search);
      await searchOn(s, w, search, o, e, record.capacity.length);
      search.finishedAt = new Date().toISOString();
      e.progress.log(
        `capacity ${dataplane} ${w.name}: ${search.foundRps ?? 'no rate'}${search.foundRps !== null ? ' rps' : ''} (${search.outcome}, ${search.steps.length} steps): ${search.why}`,
      );
      if (!e.save(`after the capacity search ${dataplane} ${w.name}`)) return;
    }
}

async function searchOn(s: Scenario, w: ResolvedWorkload, search: CapacitySearch, o: CapacityOptions, e: CapacityEnv, no: number): Promise<void> {
  const dp = getDataplane(search.dataplane);
  const caseDir = join(e.dir, 'capacity', `${String(no).padStart(3, '0')}-${search.dataplane}-${w.name}`);
  const cluster = buildCluster(s, e.prefix);
  const entry = cluster.services.find((x) => x.name === w.chain[0])!;
  const target = { host: entry.vip, port: entry.port };
  const procs = new ProcessGroup(e.prefix, e.dir);
  const ctx = { cluster, scenario: s, procs, caseDir, chain: w.chain, log: (m: string) => e.progress.log(m) };
  const label = `${search.dataplane} ${w.name}`;
  const check = () => {
    if (e.abort.signal.aborted) throw new MeshbenchError('E_INTERRUPTED', 'interrupted');
  };
  let deployed: Deployed | undefined;
  let stepNo = 0;
  const poisson = openloop.arrivalOf(w) === 'poisson' ? o.stepDurationS : undefined;
  // After a step that did not meet (an overload), the lab drains before the next: the proxies'
  // and apps' backlog would otherwise be measured as the next rate's latency. Up to 5 s, until the
  // CPUs are as idle as before the search.
  let overloaded = false;
  const settle = async () => {
    const target = Math.min(QUIET_HOST_IDLE, (search.hostIdleBefore ?? 1) - 0.05);
    for (let i = 0; i < 10; i++) if (((await hostIdle(500)) ?? 1) >= target) return;
  };
  // One step: a warm-up run and a measured run of mb-load at `rps`, judged; a lab process down ends the search.
  const attempt = async (rps: number, n: number): Promise<boolean> => {
    check();
    if (overloaded) await settle();
    stepNo++;
    const at = { ...w, qps: rps };
    const common = { procs, bin: e.mbLoad!, netns: cluster.client.netns, workload: at, target, dir: caseDir, cpus: e.env.pinning.load, signal: e.abort.signal };
    e.progress.log(`capacity ${label}: step ${stepNo}, ${rps} rps`);
    await (await openloop.startOpenLoop({ ...common, name: `step${stepNo}-warmup`, durationS: o.stepWarmupS, record: false })).done;
    check();
    const windowStart = performance.now();
    const run = await openloop.startOpenLoop({ ...common, name: `step${stepNo}`, durationS: o.stepDurationS, record: true });
    const { figures } = await run.done;
    const down = processesDown(procs.procs, windowStart);
    const step = judgeStep({ offeredRps: rps, figures: figures! }, o, e.limits, poisson);
    if (n > 1) step.attempt = n;
    if (down.length) {
      step.status = 'invalid';
      step.reasons.push(...down.map(describeDown));
    }
    search.steps.push(step);
    e.progress.log(
      `capacity ${label}: ${rps} rps → ${step.status}${step.p99Us !== undefined ? ` (p50 ${step.p50Us} µs, p99 ${step.p99Us} µs)` : ''}${step.reasons.length ? `: ${step.reasons.join('; ')}` : ''}`,
    );
    e.save(`after capacity step ${stepNo} of ${label}`);
    if (down.length) throw new MeshbenchError('E_RUN', `a lab process went down at ${rps} rps: ${down.map(describeDown).join('; ')}`);
    overloaded = step.status !== 'meets';
    return !overloaded;
  };
  const measure = withRetries(attempt, o.retriesOnMiss);
  try {
    mkdirSync(caseDir, { recursive: true });
    search.hostIdleBefore = await hostIdle();
    if (search.hostIdleBefore !== undefined && search.hostIdleBefore < QUIET_HOST_IDLE)
      e.progress.warn(
        `capacity ${label}: the host was only ${Math.round(search.hostIdleBefore * 100)} % idle before the search: other work shares the CPUs and lowers what it finds`,
      );
    e.progress.log(`capacity ${label}: building the lab (${o.objective.text}, steps of ${o.stepWarmupS} s + ${o.stepDurationS} s)`);
    await clusterUp(cluster);
    check();
    deployed = await dp.deploy(ctx);
    check();
    await startApps({ cluster, workload: w, procs, fortio: e.fortio, mbGrpc: e.mbGrpc, logDir: caseDir, cpus: e.env.pinning.apps });
    check();
    const probeCgroup = await procs.cgroupForOn(placeOf(cluster.client.netns), 'probe');
    if (w.protocol === 'grpc')
      await openloop.firstGrpcRequest({ bin: e.mbLoad!, netns: cluster.client.netns, cgroup: probeCgroup, workload: w, target, signal: e.abort.signal });
    else await e.firstRequest(e.fortio, cluster.client.netns, probeCgroup, w, targetUrl(w, target), e.abort.signal);
    const r = await searchCapacity(measure, search.limits);
    Object.assign(search, { foundRps: r.foundRps, outcome: r.outcome, why: r.why }, r.capped ? { capped: true } : {});
    const lowerBound = lowerBoundOf(search);
    if (lowerBound) Object.assign(search, { lowerBound, why: `${search.why}; ${lowerBound}` });
  } catch (err) {
    const interrupted = e.abort.signal.aborted;
    search.outcome = interrupted ? 'interrupted' : 'failed';
    search.foundRps = null;
    search.error = interrupted ? 'interrupted' : err instanceof Error ? err.message : String(err);
    search.why = `the search did not finish: ${search.error}`;
  } finally {
    await deployed?.beforeStop?.().catch((err) => e.progress.warn(`${search.dataplane}: before stopping: ${err instanceof Error ? err.message : String(err)}`));
    await procs.stopAll();
    await dp.teardown(ctx).catch((err) => e.progress.warn(`${search.dataplane} teardown: ${err.message}`));
    await e.sweepAll();
    await procs.close();
  }
}

/**
 * Why the rate found may be below the dataplane's capacity: the nearest step above it was invalid
 * because the load generator saturated, so the dataplane was never seen to miss the objective
 * there. Undefined otherwise.
 */
export function lowerBoundOf(c: Pick<CapacitySearch, 'foundRps' | 'steps'>): string | undefined {
  if (c.foundRps === null) return undefined;
  const above = c.steps.filter((s) => s.offeredRps > c.foundRps!).sort((a, b) => a.offeredRps - b.offeredRps)[0];
  // A rate that fell short is the dataplane not keeping up (an open loop sends everything in the end): that is a miss.
  const generator = above?.status === 'invalid' ? above.reasons.find((r) => r.startsWith('load generator saturated')) : undefined;
  if (!generator) return undefined;
  return `the step above (${above!.offeredRps} rps) was invalid (${generator}): the lab's load generator, not the dataplane, set this limit, so the dataplane's capacity is at least this`;
}

/** Busy and total jiffies of all CPUs from /proc/stat's first line (idle and iowait count as idle). */
export function cpuJiffies(stat: string): { busy: number; total: number } | undefined {
  const f = /^cpu\s+(.*)$/m.exec(stat)?.[1]?.trim().split(/\s+/).map(Number);
  if (!f || f.length < 5 || f.some((x) => !Number.isFinite(x))) return undefined;
  const total = f.slice(0, 8).reduce((a, b) => a + b, 0);
  return { busy: total - f[3]! - f[4]!, total };
}

/** The host's idle share over `ms` before a lab is built: other work on the host skews a search, so the record keeps it. */
async function hostIdle(ms = 1000): Promise<number | undefined> {
  try {
    const a = cpuJiffies(readFileSync('/proc/stat', 'utf8'));
    await sleep(ms);
    const b = cpuJiffies(readFileSync('/proc/stat', 'utf8'));
    if (!a || !b || !(b.total > a.total)) return undefined;
    return Math.round((1 - (b.busy - a.busy) / (b.total - a.total)) * 1000) / 1000;
  } catch {
    return undefined;
  }
}

/** Below this idle share before a search, the record and the log warn that other work shared the CPUs. */
export const QUIET_HOST_IDLE = 0.8;

/** Searches that did not end (failed or interrupted): each fails the run, as a case that is not ok does. */
export function capacityProblems(r: RunRecord): string[] {
  return (r.capacity ?? [])
    .filter((c) => c.outcome === 'failed' || c.outcome === 'interrupted')
    .map((c) => `capacity search ${c.dataplane} ${c.workload} ${c.outcome}: ${c.error ?? c.why}`);
}
