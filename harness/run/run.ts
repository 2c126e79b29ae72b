// `meshbench run`: scenario → cases → for each case build, deploy, start, measure, tear down.
// The record is written before the first case (status incomplete), after every case, and at the
// end; teardown of a case always runs, on success, error or signal. A signal stops the current
// case, tears it down and leaves the record marked incomplete.
// Over 500 lines by choice: a case's whole life (build, measure, judge, tear down) reads in one place.
import { mkdirSync, rmdirSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { MeshbenchError, envError, runError } from '../errors.js';
import { CLAIMS_FILE, loadScenario, readClaimsTables } from '../scenario/load.js';
import { readCiliumPolicies } from '../dataplanes/mesh/policy/cnp.js';
import { checkScenarioPolicies, planDataplanes } from './checks.js';
import { applyOverrides, expandCases, type Case, type RunOverrides } from '../scenario/expand.js';
import type { Scenario } from '../scenario/schema.js';
import { buildCluster, type Cluster } from '../topology/graph.js';
import { clusterUp } from '../topology/netns.js';
import { sweep, sweepPlace } from '../topology/cleanup.js';
import { dataplaneChecks, getDataplane } from '../dataplanes/registry.js';
import type { Deployed } from '../dataplanes/types.js';
import { missingNeeds } from '../dataplanes/needs.js';
import { startApps } from '../workloads/fortio-server.js';
import * as mbgrpc from '../workloads/mb-grpc-server.js';
import { startFortio, targetUrl } from '../load/fortio.js';
import * as openloop from '../load/openloop.js';
import { ResourceProbe } from '../probes/resources.js';
import { collectEnvironment } from '../results/environment.js';
import { summarizeCaseFlows } from '../probes/flows.js';
import { RUN_SCHEMA, type CaseResult, type Environment, type KernelResources, type RunRecord, type RunReference, type ClaimsTable } from '../results/types.js';
import { ensureWritableDir, runDir, runFile, writeJsonAtomic } from '../results/write.js';
import { fortioGeneratorCpu, judgeCase, notOkSummary, processesDown, validityLimits, type GeneratorCpuInput, type ValidityLimits } from './validity.js';
import { exec } from '../util/exec.js';
import { cgroup2Root, isRoot } from '../util/host.js';
import { ProcessGroup } from '../util/procs.js';
import { acquireRunLock, type RunLock } from '../util/lock.js';
import { Progress } from '../util/progress.js';
import { PROJECT_ROOT, requireTool } from '../util/tools.js';
import { makeDir, placeOf, placeOfNode, pullDir, type Place } from '../place/index.js';
import { checkHostsDataplanes, connectHosts, fortioOnHosts, makeRunDirOn, removeRunDirOn, type Hosts } from './hosts.js';
import { normalize, podStartup, requestedLoad } from './case-figures.js';
import { capacityProblems, capacityScenario, findCapacity, type CapacityOptions } from './capacity.js';

export interface RunOptions extends RunOverrides {
  resultsRoot?: string;
  progress?: Progress;
  /** Stop the run from outside (tests); SIGINT/SIGTERM do the same. */
  signal?: AbortSignal;
  /** Called after a case's measured window, while its topology still stands (bench scripts). */
  beforeTeardown?: (cluster: Cluster, result: CaseResult) => Promise<void>;
  /** Each node on a machine of this inventory file (or `vagrant`), over SSH (run/hosts.ts). */
  hosts?: string;
  /** Instead of the cases: a capacity search per dataplane × workload (run/capacity.ts). */
  findCapacity?: CapacityOptions;
}

export interface RunOutcome {
  record: RunRecord;
  file: string;
  dir: string;
}

/** What every run needs whatever its dataplanes; each dataplane declares its own needs. */
const TOOLS = ['ip', 'iptables-restore', 'ss', 'taskset', 'fortio'];

/** Everything a run needs, checked before anything is built: every dataplane's configs render (bad input, exit 2), then the host (exit 3). */
export async function preflight(s: Scenario, o: { hosts?: boolean } = {}): Promise<void> {
  planDataplanes(s);
  if (o.hosts) return checkHostsDataplanes(s); // each machine is checked when it is reached (run/hosts.ts)
  if (!isRoot())
    throw envError('meshbench run needs root: it creates network namespaces, veth links and iptables rules', 'run it as root (sudo -E meshbench run …)');
  const missing: string[] = [];
  for (const t of TOOLS) await requireTool(t).catch((e: MeshbenchError) => missing.push(`${e.message}: ${e.hint}`));
  if (s.workloads.some(openloop.isOpenLoop) && !openloop.findMbLoad()) missing.push(`mb-load not found (engine openloop needs it): ${openloop.MB_LOAD_HINT}`);
  if (mbgrpc.usesMbGrpc(s) && !mbgrpc.findMbGrpc()) missing.push(`mb-grpc not found (services with app mb-grpc need it): ${mbgrpc.MB_GRPC_HINT}`);
  for (const d of s.dataplanes) missing.push(...(await missingNeeds(getDataplane(d).needs, PROJECT_ROOT)).map((m) => `${d}: ${m}`));
  if (!cgroup2Root()) missing.push('cgroup v2 is not mounted: mount -t cgroup2 none /sys/fs/cgroup/unified (meshbench doctor tells more)');
  if (missing.length) throw envError(`the host lacks what this run needs:\n  - ${missing.join('\n  - ')}`, 'run `meshbench doctor` for the full picture');
}

function pinning(s: Scenario, cores: number): Environment['pinning'] {
  if (s.pinning === 'none') return { note: 'not pinned (scenario pinning: none)' };
  if (typeof s.pinning === 'object') return { load: s.pinning.load, apps: s.pinning.apps, note: 'pinned as the scenario asks (taskset)' };
  if (cores < 2) return { note: `not pinned: ${cores} CPU` };
  const apps = cores === 2 ? '1' : `1-${cores - 1}`;
  return { load: '0', apps, note: `load generator on CPU 0, app servers on CPU ${apps} (taskset); proxies and kernel work unpinned` };
}

export function newRunId(): { runId: string; prefix: string } {
  const rand = BigInt('0x' + randomBytes(4).toString('hex'))
    .toString(36)
    .padStart(4, '0')
    .slice(-4);
  const ts = new Date()
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z');
  return { runId: `${ts}-${rand}`, prefix: `mb${rand}` };
}

/** Kernel figures of the measured window: counters (program run time and runs, WireGuard bytes) as differences, map memory as found at the end. */
function windowed(before: Partial<KernelResources>, after: Partial<KernelResources>): Partial<KernelResources> {
  const out = { ...after };
  for (const k of ['bpfRunTimeNs', 'bpfRunCount', 'wireguardTxBytes'] as const) if (after[k] !== undefined) out[k] = after[k]! - (before[k] ?? 0);
  return out;
}

/** The scenario's reference with the tables it names copied from the claims file (checked when the scenario loaded). */
function runReference(s: Scenario): RunReference | undefined {
  if (!s.reference) return undefined;
  const all = readClaimsTables(CLAIMS_FILE);
  const ids = [s.reference.table, ...(s.reference.also ?? [])];
  const tables = Array.isArray(all) ? ids.map((id) => all.find((t) => t.id === id)).filter((t): t is ClaimsTable => !!t) : [];
  return { ...s.reference, claimsFile: relative(PROJECT_ROOT, CLAIMS_FILE), tables };
}

/** A run's record as written before its first case (status incomplete), wherever the run goes (this host, VMs, --hosts, a cluster). */
export function newRecord(
  s: Scenario,
  file: string,
  ids: { runId: string; prefix: string },
  opts: Pick<RunOptions, 'quick' | 'durationS'>,
  environment: Environment,
): RunRecord {
  return {
    schema: RUN_SCHEMA,
    ...ids,
    scenario: s.name,
    scenarioFile: resolve(file),
    description: s.description,
    status: 'incomplete',
    startedAt: new Date().toISOString(),
    options: { dataplanes: s.dataplanes, repeats: s.repeats, quick: !!opts.quick, durationS: opts.durationS },
    environment,
    reference: runReference(s),
    cases: [],
  };
}

export async function runScenario(file: string, opts: RunOptions = {}): Promise<RunOutcome> {
  // The host's run lock (one run at a time: CPUs, results, `down`), taken by runLocked once the
  // input is known good, released however the run ends (a killed process releases it too).
  const lock: { held?: RunLock; hosts?: Hosts } = {};
  try {
    return await runLocked(file, opts, lock);
  } finally {
    await lock.hosts?.close();
    await lock.held?.release();
  }
}

async function runLocked(file: string, opts: RunOptions, lock: { held?: RunLock; hosts?: Hosts }): Promise<RunOutcome> {
  const progress = opts.progress ?? new Progress();
  const loaded = loadScenario(file, { dataplanes: dataplaneChecks, readPolicyFile: readCiliumPolicies });
  checkScenarioPolicies(loaded, (m) => progress.warn(m));
  const s = capacityScenario(applyOverrides(loaded, opts, dataplaneChecks), opts.findCapacity, (m) => progress.warn(m));
  await preflight(s, { hosts: opts.hosts !== undefined });
  const cases = expandCases(s);
  // Bad inventories (exit 2), unreachable or unready machines (exit 3), before anything is built.
  const hosts = opts.hosts !== undefined ? (lock.hosts = await connectHosts(opts.hosts, s, (m) => progress.log(m))) : undefined;
  const fortio = hosts ? await fortioOnHosts(hosts) : await requireTool('fortio');
  // The open-loop engine's binary, only when a workload asks for it (a fortio run's record is as before).
  const mbLoad = s.workloads.some(openloop.isOpenLoop) ? (hosts ? await openloop.mbLoadOnPlaces(hosts.places) : openloop.requireMbLoad()) : undefined;
  const mbGrpc = mbgrpc.usesMbGrpc(s) ? (hosts ? await mbgrpc.mbGrpcOnPlaces(hosts.places) : mbgrpc.requireMbGrpc()) : undefined;

  const { runId, prefix } = newRunId();
  lock.held = await acquireRunLock({ command: 'run', scenario: s.name, prefix });
  const dir = runDir(opts.resultsRoot ?? join(PROJECT_ROOT, 'results'), s.name, runId);
  const out = runFile(dir);
  // Before anything is built: a results directory that cannot take the record stops the run here.
  ensureWritableDir(dir, 'run records', 'choose a writable directory with --results <dir>, or make this one writable (and not full)');
  // With --hosts the tools are those of the client's machine, pinning fits the smallest machine.
  const cores = hosts ? Math.min(...hosts.records.map((h) => h.cpus)) : (await import('node:os')).cpus().length;
  const env = await collectEnvironment(pinning(s, cores), ['fortio', 'ip', 'iptables', 'haproxy', 'clang', 'bpftool'], hosts ? placeOfNode(1) : undefined);
  if (hosts) env.hosts = hosts.records;
  if (mbLoad) env.tools['mb-load'] = (await openloop.mbLoadVersion(mbLoad, hosts ? placeOfNode(1) : undefined)) ?? 'unknown';
  if (mbGrpc) env.tools['mb-grpc'] = (await mbgrpc.mbGrpcVersion(mbGrpc, hosts ? placeOfNode(1) : undefined)) ?? 'unknown';
  const record = newRecord(s, file, { runId, prefix }, opts, env);
  try {
    writeJsonAtomic(out, record);
  } catch (err) {
    try {
      rmdirSync(dir);
    } catch {
      /* not empty or already gone */
    }
    throw err;
  }
  progress.log(`run ${runId}: ${cases.length} case(s) of ${s.name} (${s.dataplanes.join(', ')}), prefix ${prefix}, record ${out}`);

  // Signals: stop the current case, tear down, keep the record (incomplete).
  const abort = new AbortController();
  const onSignal = (sig: NodeJS.Signals) => {
    if (abort.signal.aborted) return;
    progress.log(`${sig} received: stopping the current case and tearing down`);
    abort.abort(sig);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  opts.signal?.addEventListener('abort', () => onSignal('SIGTERM'), { once: true });

  // Every machine of the run: this host, and with --hosts each node's (swept after every case).
  const sweepAll = async () => {
    await sweep(prefix);
    for (const p of hosts?.places ?? []) await sweepPlace(prefix, p);
  };
  // A stale object of a crashed earlier run with the same prefix is astronomically unlikely;
  // sweeping our own prefix first still costs nothing.
  await sweepAll();
  // The run's directory on each machine (case files its processes read and write); removed at the end.
  const remoteDirs = new Map<Place, string | undefined>();
  for (const p of hosts?.places ?? []) remoteDirs.set(p, await makeRunDirOn(p, dir));
  const perCaseS = (c: Case) => c.workload.durationS + c.workload.warmupS + 3;
  const limits = validityLimits(s);
  // A record write that fails stops the run (nothing more could be recorded); the file on disk
  // stays the last one written whole.
  let writeFailure: MeshbenchError | undefined;
  let lastGood = 'before the first case, with no case in it';
  const save = (when: string): boolean => {
    try {
      writeJsonAtomic(out, record);
      lastGood = when;
      return true;
    } catch (err) {
      writeFailure ??= err instanceof MeshbenchError ? err : runError(String(err));
      return false;
    }
  };
  try {
    if (opts.findCapacity)
      await findCapacity(s, opts.findCapacity, record, { prefix, dir, fortio, mbLoad, mbGrpc, progress, env, abort, limits, sweepAll, save, firstRequest });
    for (const c of opts.findCapacity ? [] : cases) {
      if (abort.signal.aborted) break;
      const left = cases.slice(c.index).reduce((a, x) => a + perCaseS(x), 0);
      const result = await runCase(c, cases.length, s, {
        prefix,
        dir,
        fortio,
        mbLoad,
        mbGrpc,
        cores,
        progress,
        env,
        signal: abort.signal,
        secondsLeft: left,
        beforeTeardown: opts.beforeTeardown,
        limits,
        hosts,
        sweepAll,
      });
      record.cases.push(result);
      if (!save(`after case ${c.index}, with ${record.cases.length} case(s)`)) {
        progress.warn(`${writeFailure!.message}: stopping the run, no further case could be recorded`);
        break;
      }
    }
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await sweepAll().catch(() => undefined);
    for (const [p, made] of remoteDirs) await removeRunDirOn(p, made);
    progress.done();
  }
  record.finishedAt = new Date().toISOString();
  // complete only when every case is a result (ok); a degraded or failed case fails the run.
  const notOk = [...notOkSummary(record.cases.filter((c) => c.status !== 'interrupted')), ...capacityProblems(record)];
  record.status = abort.signal.aborted ? 'incomplete' : writeFailure || notOk.length ? 'failed' : 'complete';
  if (abort.signal.aborted) record.error = `interrupted by ${String(abort.signal.reason)}`;
  else if (writeFailure)
    record.error = `the run record could not be written (${writeFailure.message}); the run stopped after ${record.cases.length} of ${cases.length} case(s)`;
  else if (notOk.length) record.error = notOk.join(' · ');
  const failure = writeFailure;
  save('at the end of the run');
  if (failure || writeFailure) {
    const w = (failure ?? writeFailure)!;
    throw new MeshbenchError('E_ENV', `${w.message}. The run was torn down; ${out} holds the last record written whole (${lastGood})`, {
      hint: w.hint,
      cause: w,
    });
  }
  return { record, file: out, dir };
}

interface CaseEnv {
  prefix: string;
  dir: string;
  fortio: string;
  /** mb-load, when a workload uses engine openloop. */
  mbLoad?: string;
  /** mb-grpc, when a service runs it (app: mb-grpc). */
  mbGrpc?: string;
  /** CPUs the load generator may use when it is not pinned. */
  cores: number;
  progress: Progress;
  env: Environment;
  signal: AbortSignal;
  secondsLeft: number;
  beforeTeardown?: RunOptions['beforeTeardown'];
  limits: ValidityLimits;
  hosts?: Hosts;
  sweepAll: () => Promise<void>;
}

async function runCase(c: Case, total: number, s: Scenario, e: CaseEnv): Promise<CaseResult> {
  const w = c.workload;
  const dp = getDataplane(c.dataplane);
  const caseDir = join(e.dir, 'cases', `${String(c.index).padStart(3, '0')}-${c.dataplane}-${w.name}-r${c.repeat}`);
  const cluster = buildCluster(s, e.prefix, { labInterfaces: e.hosts?.labInterfaces });
  const entry = cluster.services.find((x) => x.name === w.chain[0])!;
  const target = { host: entry.vip, port: entry.port };
  const openLoop = openloop.isOpenLoop(w);
  const result: CaseResult = {
    index: c.index,
    dataplane: c.dataplane,
    workload: w.name,
    repeat: c.repeat,
    status: 'ok',
    load: {
      ...requestedLoad(w),
      target: targetUrl(w, target),
      pinnedCpus: e.env.pinning.load,
    },
    provenance: {},
    topology: { nodes: cluster.nodes.length, pods: cluster.pods.length, services: cluster.services.length },
    startedAt: new Date().toISOString(),
  };
  const procs = new ProcessGroup(e.prefix, e.dir);
  const ctx = { cluster, scenario: s, procs, caseDir, chain: w.chain, log: (m: string) => e.progress.log(m) };
  const caseStart = performance.now();
  const phase = (p: string) =>
    e.progress.phase(c.index + 1, total, `${c.dataplane} ${w.name} r${c.repeat}: ${p}`, Math.max(0, e.secondsLeft - (performance.now() - caseStart) / 1000));
  const check = () => {
    if (e.signal.aborted) throw new MeshbenchError('E_INTERRUPTED', 'interrupted');
  };
  let deployed: Deployed | undefined;
  let probe: ResourceProbe | undefined;
  let windowStart: number | undefined;
  let measuredLoad = false;
  try {
    mkdirSync(caseDir, { recursive: true });
    for (const p of e.hosts?.places ?? []) await makeDir(p, caseDir);
    phase('building topology');
    const up = await clusterUp(cluster);
    check();
    phase('deploying dataplane');
    const t0 = performance.now();
    deployed = await dp.deploy(ctx);
    const deployMs = performance.now() - t0;
    result.provenance = {
      ...deployed.provenance,
      load: openLoop
        ? { engine: 'mb-load', version: e.env.tools['mb-load'], mechanism: 'mb-load open-loop generator in the client pod namespace' }
        : { engine: 'fortio', version: e.env.tools.fortio, mechanism: 'fortio load in the client pod namespace' },
      app: w.chain.some((n) => cluster.services.find((x) => x.name === n)?.app === 'mb-grpc')
        ? {
            engine: 'mb-grpc',
            version: e.env.tools['mb-grpc'],
            mechanism: 'mb-grpc gRPC chain services (frontend → order → inventory), each hop calling the next Service',
          }
        : { engine: 'fortio', version: e.env.tools.fortio, mechanism: 'fortio server (echo) or -M multi-target proxy for chain links' },
    };
    result.path = deployed.path;
    check();
    phase('starting workloads');
    const apps = await startApps({ cluster, workload: w, procs, fortio: e.fortio, mbGrpc: e.mbGrpc, logDir: caseDir, cpus: e.env.pinning.apps });
    check();
    const probeCgroup = await procs.cgroupForOn(placeOf(cluster.client.netns), 'probe');
    const firstMs =
      openLoop && w.protocol === 'grpc'
        ? await openloop.firstGrpcRequest({ bin: e.mbLoad!, netns: cluster.client.netns, cgroup: probeCgroup, workload: w, target, signal: e.signal })
        : await firstRequest(e.fortio, cluster.client.netns, probeCgroup, w, targetUrl(w, target), e.signal);
    result.startup = podStartup(cluster, up.totalMs, deployed, apps.readyMs, deployMs, firstMs);
    if (e.hosts) result.startup.clock = "this controller's clock: every phase includes the SSH round trips of its commands";

    // One load run of either engine, with the same place, namespace, cgroup role and pinning.
    const startLoad = (name: string, durationS: number, record: boolean) => {
      const [netns, cpus, signal] = [cluster.client.netns, e.env.pinning.load, e.signal];
      const common = { procs, netns, name, workload: w, target, durationS, dir: caseDir, cpus, record, signal };
      return openLoop
        ? openloop.startOpenLoop({ ...common, bin: e.mbLoad! }).then((r) => ({ ...r, engine: 'openloop' as const }))
        : startFortio({ ...common, fortio: e.fortio }).then((r) => ({ ...r, engine: 'fortio' as const }));
    };
    phase(`warm-up ${w.warmupS}s`);
    const warm = await startLoad('load-warmup', w.warmupS, false);
    await warm.done;
    check();

    phase(`measuring ${w.durationS}s`);
    // Kernel counters are cumulative: read them at both ends of the window.
    const kernelBefore = deployed.kernelResources ? await deployed.kernelResources() : {};
    probe = new ResourceProbe();
    await probe.begin(procs.procs.filter((p) => p.role !== 'load'));
    windowStart = performance.now();
    const run = await startLoad('load', w.durationS, true);
    probe.watch(run.proc);
    const measured = run.engine === 'openloop' ? { engine: run.engine, ...(await run.done) } : { engine: run.engine, ...(await run.done) };
    const kernel = deployed.kernelResources ? windowed(kernelBefore, await deployed.kernelResources()) : {};
    result.resources = await probe.end(kernel);
    result.resources.normalized = normalize(result.resources, cluster.pods.filter((p) => p.role !== 'idle').length, cluster.nodes.length);
    let generator: GeneratorCpuInput | undefined;
    if (measured.engine === 'openloop') generator = openloop.recordOpenLoop(result, measured.figures!);
    else {
      const sum = measured.summary!;
      result.load.actual = {
        qps: Math.round(sum.actualQps * 100) / 100,
        requests: sum.count,
        errors: sum.errors,
        durationS: Math.round(sum.actualDurationS * 1000) / 1000,
        retCodes: sum.retCodes,
      };
      result.latencyUs = measured.latency;
      generator = fortioGeneratorCpu(result.resources, e.env.pinning.load, e.cores);
    }
    measuredLoad = true;
    // Judged before anything else can stop a process: what is down now went down in the case.
    const down = processesDown(procs.procs, windowStart);
    const poissonWindowS = openLoop && w.arrival === 'poisson' ? w.durationS : undefined;
    const v = judgeCase(
      { requestedQps: w.qps, actual: result.load.actual, latencyCount: result.latencyUs?.count, processesDown: down, generator, poissonWindowS },
      e.limits,
    );
    result.status = v.status;
    result.validity = v.validity;
    const a = result.load.actual;
    if (a.errors > 0) e.progress.warn(`case ${c.index + 1}: ${a.errors} of ${a.requests} requests failed (${JSON.stringify(a.retCodes)})`);
    if (e.beforeTeardown) await e.beforeTeardown(cluster, result);
    if (result.status === 'ok')
      e.progress.log(
        `case ${c.index + 1}/${total} ${c.dataplane} ${w.name} r${c.repeat}: p50 ${result.latencyUs?.p50} µs, p99 ${result.latencyUs?.p99} µs, ${result.load.actual.qps} qps, ${result.load.actual.errors} errors`,
      );
    else e.progress.warn(`case ${c.index + 1}/${total} ${c.dataplane} ${w.name} r${c.repeat} ${result.status}, not a result: ${v.validity.reasons.join('; ')}`);
  } catch (err) {
    const interrupted = e.signal.aborted;
    result.error = interrupted ? 'interrupted' : err instanceof Error ? err.message : String(err);
    if (interrupted) result.status = 'interrupted';
    else {
      // A dead proxy often shows first as the load failing: record which processes were down.
      const v = judgeCase(
        {
          requestedQps: w.qps,
          actual: measuredLoad ? result.load.actual : undefined,
          latencyCount: result.latencyUs?.count,
          error: result.error,
          processesDown: processesDown(procs.procs, windowStart),
        },
        e.limits,
      );
      result.status = 'failed';
      result.validity = v.validity;
      e.progress.log(`case ${c.index + 1} failed: ${v.validity.reasons.join('; ')}`);
    }
  } finally {
    probe?.stop();
    phase('tearing down');
    await deployed?.beforeStop?.().catch((err) => e.progress.warn(`${c.dataplane}: before stopping: ${err instanceof Error ? err.message : String(err)}`));
    await procs.stopAll();
    await dp.teardown(ctx).catch((err) => e.progress.warn(`${c.dataplane} teardown: ${err.message}`));
    // Before the sweep removes the state directories: the logs and flow records the machines wrote.
    for (const p of e.hosts?.places ?? [])
      await pullDir(p, caseDir).catch((err) =>
        e.progress.warn(`case ${c.index + 1}: files of ${p.name} not fetched: ${err instanceof Error ? err.message : String(err)}`),
      );
    await e.sweepAll();
    await procs.close();
    // After teardown, so mb-flowd and the L7 proxies have written their last records; failed
    // cases too, where drops may say why. Only the summary goes into run.json, never the flows.
    try {
      const flows = summarizeCaseFlows(caseDir);
      if (flows) result.flows = flows;
    } catch (err) {
      e.progress.warn(`case ${c.index + 1}: flow log not summarized: ${err instanceof Error ? err.message : String(err)}`);
    }
    result.finishedAt = new Date().toISOString();
  }
  return result;
}

/**
 * Time until one request through the Service succeeds, from the client pod. The request is the
 * workload's own (a POST with its body when it has one), so an L7 rule that lets the load through
 * lets this through too.
 */
async function firstRequest(fortio: string, netns: string, cgroup: string | undefined, w: Case['workload'], url: string, signal: AbortSignal): Promise<number> {
  const t0 = performance.now();
  const args =
    w.protocol === 'grpc'
      ? ['grpcping', '-loglevel', 'error', '-n', '1', url]
      : [
          'curl',
          '-loglevel',
          'error',
          ...(w.protocol === 'http2' ? ['-h2'] : []),
          ...(w.payloadBytes > 0 ? ['-payload-size', String(w.payloadBytes)] : []),
          url,
        ];
  let last = '';
  while (performance.now() - t0 < 15000 && !signal.aborted) {
    const r = await exec(fortio, args, { netns, cgroup, allowFail: true, timeoutMs: 5000 });
    if (r.code === 0) return performance.now() - t0;
    // fortio's first line announces the log level; the reason is on a later one.
    const lines = `${r.stderr}\n${r.stdout}`.split('\n').filter((l) => l.trim() && !l.includes('Log level is now'));
    last = lines.at(-1)?.trim() ?? `exit code ${r.code}`;
    await sleep(20);
  }
  if (signal.aborted) throw new MeshbenchError('E_INTERRUPTED', 'interrupted');
  throw runError(`no request through the Service succeeded within 15 s (${url}): ${last}`);
}
