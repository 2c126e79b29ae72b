// `run --target kubernetes`: the scenario's cases on a real cluster, with the meshes the cluster
// runs (checked before anything is applied, and named with their versions in provenance). Per
// case, interleaved as on the lab: apply the case's objects (server-side apply) → wait until the
// Deployments are available → the client Job → scrape every node's resource metrics at the start
// and end of its measured run → read its log → delete the run's namespaces. A failed, refused or
// interrupted case still leaves a record and nothing on the cluster. docs/kubernetes.md.
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { envError, inputError, MeshbenchError, runError } from '../errors.js';
import { expandCases, type Case, type RunOverrides } from '../scenario/expand.js';
import type { Scenario } from '../scenario/schema.js';
import * as openloop from '../load/openloop.js';
import { collectEnvironment } from '../results/environment.js';
import type { CaseResult, Environment, Provenance } from '../results/types.js';
import { ensureWritableDir, runDir, runFile, writeJsonAtomic } from '../results/write.js';
import { judgeCase, notOkSummary, validityLimits } from '../run/validity.js';
import { requestedLoad } from '../run/case-figures.js';
import type { RunOutcome } from '../run/run.js';
import { PROJECT_ROOT } from '../util/host.js';
import { Progress } from '../util/progress.js';
import { loadForKubernetes, resolveWorkload } from './check.js';
import { applyObjects, deleteRun, kubectl, requireKube, type Kube } from './kubectl.js';
import { fortioLatency, parseResourceMetrics, podReadyMs, windowResources, type ContainerSample } from './measure.js';
import { runSelector } from './objects.js';
import { NODE_LABEL, renderCase, renderLoadJob, type MeshNeeds, type RenderOptions } from './render.js';

export interface ClusterRunOptions extends RunOverrides {
  kubeconfig?: string;
  context?: string;
  nodeMap?: Record<string, string>;
  image?: RenderOptions['images'];
  resultsRoot?: string;
  progress?: Progress;
  /** Stop the run from outside (tests); SIGINT/SIGTERM do the same. */
  signal?: AbortSignal;
  /** Longest wait for a case's Deployments to be available (default 300 s). */
  readyTimeoutS?: number;
}

/** What the record says about the cluster. */
type ClusterFacts = NonNullable<Environment['kubernetes']>;

async function getJson(k: Kube, args: string[], what: string): Promise<any> {
  const r = await kubectl(k, [...args, '-o', 'json']);
  if (r.code !== 0) throw runError(`${what}: ${r.stderr.trim().slice(0, 400)}`);
  return JSON.parse(r.stdout);
}

/** The server's version and nodes; E_ENV when the cluster cannot be reached. */
async function clusterFacts(k: Kube): Promise<ClusterFacts> {
  const v = await kubectl(k, ['version', '-o', 'json'], { timeoutMs: 30_000 });
  const server = v.code === 0 ? JSON.parse(v.stdout).serverVersion?.gitVersion : undefined;
  if (!server)
    throw envError(
      `cannot reach the cluster${k.context ? ` (context ${k.context})` : ''}: ${v.stderr.trim().split('\n').at(-1)?.slice(0, 300)}`,
      'check --kubeconfig/--context, and that `kubectl get nodes` works',
    );
  const nodes = (await getJson(k, ['get', 'nodes'], 'kubectl get nodes')).items.map((n: any) => ({
    name: n.metadata.name,
    labNode: n.metadata.labels?.[NODE_LABEL],
    kernel: n.status?.nodeInfo?.kernelVersion,
    osImage: n.status?.nodeInfo?.osImage,
    kubelet: n.status?.nodeInfo?.kubeletVersion,
    runtime: n.status?.nodeInfo?.containerRuntimeVersion,
    cpu: n.status?.capacity?.cpu,
    memory: n.status?.capacity?.memory,
  }));
  return { server, context: k.context, nodes, meshes: {} };
}

/** Lab node → cluster node: --node-map, else nodes labelled meshbench.dev/node=<lab node>. */
function placementOf(s: Scenario, facts: ClusterFacts, nodeMap?: Record<string, string>): Record<string, string> {
  const labNodes = Array.isArray(s.topology.nodes) ? s.topology.nodes : Array.from({ length: s.topology.nodes }, (_, i) => `node${i + 1}`);
  const names = new Set(facts.nodes.map((n) => n.name));
  const out: Record<string, string> = {};
  const missing: string[] = [];
  for (const lab of labNodes) {
    const node = nodeMap?.[lab] ?? facts.nodes.find((n) => n.labNode === lab)?.name;
    if (node && names.has(node)) out[lab] = node;
    else if (nodeMap?.[lab]) throw inputError(`--node-map ${lab}=${nodeMap[lab]}: the cluster has no node ${nodeMap[lab]} (it has ${[...names].join(', ')})`);
    else missing.push(lab);
  }
  if (missing.length)
    throw envError(
      `no cluster node plays ${missing.join(', ')} of the scenario's topology`,
      `label one node per topology node (kubectl label node <node> ${NODE_LABEL}=${missing[0]}) or pass --node-map ${missing[0]}=<node>,…`,
    );
  return out;
}

const imageTag = (image: string | undefined) => image?.split('@')[0]?.split(':').at(-1);

/** Is the mesh a case needs installed (as the scenario asks)? Provenance of what was found; E_ENV otherwise. */
async function meshInstalled(k: Kube, needs: MeshNeeds, dataplane: string): Promise<Record<string, Provenance>> {
  const found = async (kind: string, ns: string, name: string) => {
    const r = await kubectl(k, ['get', kind, name, '-n', ns, '-o', 'jsonpath={.spec.template.spec.containers[0].image}']);
    return r.code === 0 ? r.stdout.trim() : undefined;
  };
  const need = async (role: string, engine: string, kind: string, ns: string, name: string, hint: string): Promise<[string, Provenance]> => {
    const image = await found(kind, ns, name);
    if (!image) throw envError(`${dataplane} needs ${engine}, but the cluster has no ${kind} ${ns}/${name}`, hint);
    return [role, { engine, version: imageTag(image), image, mechanism: `${kind} ${ns}/${name}` }];
  };
  const out: [string, Provenance][] = [];
  if (needs.mesh === 'istio') {
    const istio = 'install Istio (istioctl install, or its Helm charts; docs/kubernetes.md)';
    out.push(await need('control-plane', 'istiod', 'deployment', 'istio-system', 'istiod', istio));
    if (needs.ambient) out.push(await need('node-proxy', 'ztunnel', 'daemonset', 'istio-system', 'ztunnel', 'install Istio with the ambient profile'));
    if (needs.waypoint && (await kubectl(k, ['get', 'crd', 'gateways.gateway.networking.k8s.io'])).code !== 0)
      throw envError(`${dataplane} needs the Gateway API CRDs for its waypoint`, 'kubectl apply the Gateway API standard CRDs (docs/kubernetes.md)');
  }
  if (needs.mesh === 'linkerd')
    out.push(
      await need(
        'control-plane',
        'linkerd-destination',
        'deployment',
        'linkerd',
        'linkerd-destination',
        'install Linkerd (linkerd install, or its Helm charts)',
      ),
    );
  if (needs.mesh === 'cilium') {
    out.push(
      await need('agent', 'cilium-agent', 'daemonset', 'kube-system', 'cilium', "install Cilium as the cluster's CNI (cilium install, or its Helm chart)"),
    );
    const cfg = (await getJson(k, ['get', 'configmap', 'cilium-config', '-n', 'kube-system'], "Cilium's configuration")).data ?? {};
    const wg = cfg['enable-wireguard'] === 'true';
    if (wg !== !!needs.wireguard)
      throw envError(
        `${dataplane} runs ${needs.wireguard ? 'with' : 'without'} WireGuard between nodes, and this cluster's Cilium runs ${wg ? 'with' : 'without'} it (cilium-config enable-wireguard)`,
        `run ${needs.wireguard ? 'ebpf[encryption=none]' : 'ebpf[encryption=wireguard]'}, or reconfigure Cilium (encryption.enabled, encryption.type=wireguard)`,
      );
    out[0]![1].kubeProxyReplacement = cfg['kube-proxy-replacement'];
    out[0]![1].encryption = wg ? 'wireguard' : 'none';
  }
  return Object.fromEntries(out);
}

/** Every node's resource metrics, through the API server. */
async function scrape(k: Kube, nodes: string[]): Promise<ContainerSample[]> {
  const all = await Promise.all(nodes.map((n) => kubectl(k, ['get', '--raw', `/api/v1/nodes/${n}/proxy/metrics/resource`])));
  return all.flatMap((r, i) => {
    if (r.code !== 0) throw runError(`resource metrics of node ${nodes[i]}: ${r.stderr.trim().slice(0, 300)}`);
    return parseResourceMetrics(r.stdout);
  });
}

/** Wait (polling) until `done` returns a value; E_RUN naming `what` after `timeoutS`. */
async function until<T>(what: string, timeoutS: number, signal: AbortSignal, done: () => Promise<T | undefined>): Promise<T> {
  const t0 = performance.now();
  for (;;) {
    if (signal.aborted) throw new MeshbenchError('E_INTERRUPTED', 'interrupted');
    const v = await done();
    if (v !== undefined) return v;
    if (performance.now() - t0 > timeoutS * 1000) throw runError(`${what}: not done after ${timeoutS} s`);
    await sleep(500);
  }
}

interface CaseEnv {
  s: Scenario;
  k: Kube;
  prefix: string;
  render: RenderOptions;
  nodes: string[];
  signal: AbortSignal;
  progress: Progress;
  readyTimeoutS: number;
  meshes: Record<string, Record<string, Provenance>>;
}

async function runCase(c: Case, e: CaseEnv, result: CaseResult): Promise<void> {
  const { s, k, prefix } = e;
  const label = `case ${c.index + 1} ${c.dataplane} ${c.workload.name} r${c.repeat}`;
  const t0 = performance.now();
  const { objects } = renderCase(s, c.workload, { ...e.render, dataplane: c.dataplane });
  const job = renderLoadJob(s, c.workload, { ...e.render, dataplane: c.dataplane, name: `load-${c.index + 1}` });
  e.progress.log(`${label}: applying ${objects.length} objects`);
  await applyObjects(k, objects);
  const namespaces = [...new Set(objects.filter((r) => r.object.kind === 'Namespace').map((r) => r.object.metadata.name))];
  const appNs = [...new Set(objects.filter((r) => r.object.kind === 'Deployment').map((r) => r.object.metadata.namespace!))];
  for (const ns of appNs) {
    const w = await kubectl(k, ['wait', '--for=condition=Available', 'deployment', '--all', '-n', ns, `--timeout=${e.readyTimeoutS}s`], {
      timeoutMs: (e.readyTimeoutS + 30) * 1000,
    });
    if (w.code !== 0) throw runError(`${label}: the Deployments of ${ns} did not become available in ${e.readyTimeoutS} s: ${w.stderr.trim().slice(0, 300)}`);
  }
  const deployedMs = performance.now() - t0;
  const pods = (await Promise.all(appNs.map((ns) => getJson(k, ['get', 'pods', '-n', ns, '-l', runSelector(prefix)], "the case's pods")))).flatMap(
    (x) => x.items,
  );
  result.startup = {
    podReadyMs: podReadyMs(pods),
    topologyUpMs: 0,
    dataplaneDeployMs: Math.round(deployedMs),
    firstRequestMs: 0,
    clock:
      "pod conditions (PodScheduled → Ready), whole seconds as the API server stores them; dataplaneDeployMs: apply until every Deployment is available, this controller's clock",
  };
  const placed = pods.map((p: any) => `${p.metadata.name}@${p.spec?.nodeName}`);
  result.provenance = {
    ...result.provenance,
    ...e.meshes[c.dataplane],
    apps: { engine: 'kubernetes', mechanism: `Deployments in ${appNs.join(', ')}`, pods: placed },
  };

  // The client: apply its Job, scrape when its measured container starts and when it ends.
  const jobNs = job.object.metadata.namespace!;
  await applyObjects(k, [job]);
  const jobTimeoutS = Math.ceil(c.workload.warmupS + c.workload.durationS) + 300;
  const podOf = async () => (await getJson(k, ['get', 'pods', '-n', jobNs, '-l', `job-name=${job.object.metadata.name}`], "the load Job's pod")).items[0];
  const state = (p: any) => p?.status?.containerStatuses?.find((x: any) => x.name === 'load')?.state;
  await until(`${label}: the load container to start`, jobTimeoutS, e.signal, async () => {
    const p = await podOf();
    if (p?.status?.phase === 'Failed') throw runError(`${label}: the load Job's pod failed before its measured run`);
    return state(p)?.running || state(p)?.terminated ? true : undefined;
  });
  const before = await scrape(k, e.nodes);
  const w0 = performance.now();
  const done = await until(`${label}: the load Job`, jobTimeoutS, e.signal, async () => {
    const p = await podOf();
    return p?.status?.phase === 'Succeeded' || p?.status?.phase === 'Failed' ? p : undefined;
  });
  const after = await scrape(k, e.nodes);
  const windowS = (performance.now() - w0) / 1000;
  result.resources = windowResources(before, after, namespaces, Math.round(windowS * 1000) / 1000);
  const logs = await kubectl(k, ['logs', '-n', jobNs, done.metadata.name, '-c', 'load']);
  if (logs.code !== 0) throw runError(`${label}: the load container's log: ${logs.stderr.trim().slice(0, 300)}`);
  if (done.status.phase !== 'Succeeded')
    throw runError(`${label}: the load container failed: ${logs.stdout.trim().split('\n').slice(-3).join(' ').slice(0, 300)}`);
  result.provenance.load = {
    engine: c.workload.engine === 'openloop' ? 'mb-load' : 'fortio',
    mechanism: `Job ${jobNs}/${job.object.metadata.name} on ${done.spec?.nodeName}`,
  };
  if (c.workload.engine === 'openloop') {
    const gen = openloop.recordOpenLoop(result, openloop.openLoopFigures(openloop.parseMbLoadJson(logs.stdout)));
    judge(result, s, c, gen);
  } else {
    const f = fortioLatency(logs.stdout);
    result.provenance.load.version = f.summary.version;
    result.latencyUs = f.latency;
    result.load.actual = {
      qps: Math.round(f.summary.actualQps * 100) / 100,
      requests: f.summary.count,
      errors: f.summary.errors,
      durationS: f.summary.actualDurationS,
      retCodes: f.summary.retCodes,
    };
    judge(result, s, c);
  }
}

function judge(result: CaseResult, s: Scenario, c: Case, generator?: { cpuSeconds: number; windowS: number; cpus: number; source: string }, error?: string) {
  const { status, validity } = judgeCase(
    {
      requestedQps: c.workload.qps,
      actual: result.latencyUs || result.load.actual.requests ? result.load.actual : undefined,
      latencyCount: result.latencyUs?.count,
      error,
      processesDown: [],
      generator,
    },
    validityLimits(s),
  );
  result.status = status;
  result.validity = validity;
}

function newCase(c: Case): CaseResult {
  const w = c.workload;
  return {
    index: c.index,
    dataplane: c.dataplane,
    workload: w.name,
    repeat: c.repeat,
    status: 'failed',
    load: {
      ...requestedLoad(w),
      target: `${w.chain[0]} (Service, cluster DNS)`,
    },
    provenance: {},
    startedAt: new Date().toISOString(),
  };
}

/** Run the scenario on the cluster. Bad input exits 2 and a missing mesh or unreachable cluster 3, before anything is applied. */
export async function runOnCluster(file: string, o: ClusterRunOptions): Promise<RunOutcome> {
  const progress = o.progress ?? new Progress();
  const s = loadForKubernetes(file, o, (m) => progress.warn(m));
  const { newRecord, newRunId } = await import('../run/run.js');
  const { runId, prefix } = newRunId();
  const k = requireKube(o);
  const facts = await clusterFacts(k);
  const placement = placementOf(s, facts, o.nodeMap);
  const render: RenderOptions = { prefix, dataplane: '', placement, images: o.image };
  // Every case renders (refusals are bad input) and every mesh is there, before anything is applied.
  const cases = expandCases(s);
  const meshes: Record<string, Record<string, Provenance>> = {};
  for (const dp of s.dataplanes) {
    // Rendering every workload also refuses what the mesh cannot express, before anything is applied.
    const needs = s.workloads.map((_, i) => renderCase(s, resolveWorkload(s, i), { ...render, dataplane: dp }).needs);
    meshes[dp] = await meshInstalled(k, needs[0]!, dp);
    Object.assign(facts.meshes, meshes[dp]);
  }
  const dir = runDir(o.resultsRoot ?? join(PROJECT_ROOT, 'results'), s.name, runId);
  const out = runFile(dir);
  ensureWritableDir(dir, 'run records', 'choose a writable directory with --results <dir>');
  const env = await collectEnvironment({ note: 'not pinned: pods are placed on cluster nodes (environment.kubernetes)' }, ['kubectl']);
  const record = newRecord(s, file, { runId, prefix }, o, { ...env, kubernetes: facts });
  const save = () => writeJsonAtomic(out, record);
  save();
  const abort = new AbortController();
  const onSignal = (sig: NodeJS.Signals) => {
    if (!abort.signal.aborted) {
      progress.warn(`${sig}: stopping after tearing down what this run applied`);
      abort.abort(sig);
    }
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  o.signal?.addEventListener('abort', () => onSignal('SIGTERM'), { once: true });
  const e: CaseEnv = {
    s,
    k,
    prefix,
    render,
    nodes: facts.nodes.map((n) => n.name),
    signal: abort.signal,
    progress,
    readyTimeoutS: o.readyTimeoutS ?? 300,
    meshes,
  };
  try {
    for (const c of cases) {
      if (abort.signal.aborted) break;
      const result = newCase(c);
      record.cases.push(result);
      try {
        await runCase(c, e, result);
      } catch (err) {
        result.error = (err as Error).message;
        if (err instanceof MeshbenchError && err.code === 'E_INTERRUPTED') result.status = 'interrupted';
        else judge(result, s, c, undefined, result.error);
        progress.warn(`case ${c.index + 1} ${c.dataplane}: ${result.error}`);
      } finally {
        result.finishedAt = new Date().toISOString();
        // A fresh cluster state per case, as on the lab: the run's namespaces go, and everything in them.
        await deleteRun(k, prefix, 300).catch((err) => progress.warn(`teardown of case ${c.index + 1}: ${(err as Error).message}`));
        save();
      }
      progress.log(`case ${c.index + 1}/${cases.length} ${c.dataplane} ${c.workload.name} r${c.repeat}: ${result.status}`);
    }
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await deleteRun(k, prefix, 300).catch(() => undefined);
  }
  const notOk = notOkSummary(record.cases);
  record.status = abort.signal.aborted ? 'incomplete' : notOk.length ? 'failed' : 'complete';
  if (abort.signal.aborted) record.error = `interrupted by ${String(abort.signal.reason)}`;
  else if (notOk.length) record.error = notOk.join('; ');
  record.finishedAt = new Date().toISOString();
  save();
  return { record, file: out, dir };
}
