// A case's figures worked out from what was measured (pure): resources per pod and per node, and
// each pod's start-up phases; and the load it asked for, as every run (lab or cluster) records it.
import type { Deployed } from '../dataplanes/types.js';
import { loadModel } from '../load/fortio.js';
import * as openloop from '../load/openloop.js';
import type { CaseResult, Resources } from '../results/types.js';
import type { ResolvedWorkload } from '../scenario/expand.js';
import { durationSeconds } from '../scenario/schema.js';
import type { Cluster } from '../topology/graph.js';

/** A case's requested load and load model, before anything was measured. */
export function requestedLoad(w: ResolvedWorkload): Pick<CaseResult['load'], 'requested' | 'actual' | 'model'> {
  const openLoop = openloop.isOpenLoop(w);
  return {
    requested: {
      qps: w.qps,
      connections: w.connections,
      durationS: w.durationS,
      warmupS: w.warmupS,
      payloadBytes: w.payloadBytes,
      responseBytes: w.responseBytes,
      ...(w.serverDelay !== undefined ? { serverDelayS: durationSeconds(w.serverDelay) } : {}),
      protocol: w.protocol,
      chain: w.chain,
      ...(openLoop ? { engine: 'openloop' as const, arrival: openloop.arrivalOf(w) } : {}),
    },
    actual: { qps: 0, requests: 0, errors: 0, durationS: 0, retCodes: {} },
    model: openLoop ? openloop.openLoopModel(w) : loadModel(w),
  };
}

const r1 = (x: number) => Math.round(x * 10) / 10;

/** Per pod and per node, so a per-pod sidecar and a per-node proxy compare on the same scale. */
export function normalize(r: Resources, pods: number, nodes: number): NonNullable<Resources['normalized']> {
  const per = (n: number) =>
    Object.fromEntries(
      Object.entries(r.byRole).map(([role, x]) => [
        role,
        { rssBytes: Math.round(x.rssBytes / n), pssBytes: Math.round(x.pssBytes / n), cpuSeconds: Math.round((x.cpuSeconds / n) * 1e6) / 1e6 },
      ]),
    );
  return { pods, nodes, perPod: per(pods), perNode: per(nodes) };
}

/**
 * Per pod, the phases it goes through in order — namespace (the bulk topology build), what the
 * dataplane adds (certificate, capture rules, proxy start), then the app until it listens — each
 * measured; podReadyMs is their sum, the pod's sequential start-up path as Kubernetes would run it.
 */
export function podStartup(
  c: Cluster,
  upMs: number,
  d: Deployed,
  appMs: Record<string, number>,
  deployMs: number,
  firstMs: number,
): NonNullable<CaseResult['startup']> {
  const phases: Record<string, Record<string, number>> = {};
  const podReadyMs: Record<string, number> = {};
  for (const pod of c.pods.filter((p) => p.role !== 'idle')) {
    const ph: Record<string, number> = { namespaceMs: upMs };
    for (const [k, v] of Object.entries(d.startup?.[pod.name] ?? {})) if (typeof v === 'number') ph[k] = v;
    if (appMs[pod.name] !== undefined) ph.appMs = appMs[pod.name];
    phases[pod.name] = Object.fromEntries(Object.entries(ph).map(([k, v]) => [k, r1(v)]));
    podReadyMs[pod.name] = r1(Object.values(ph).reduce((a, b) => a + b, 0));
  }
  return { podReadyMs, phases, topologyUpMs: r1(upMs), dataplaneDeployMs: r1(deployMs), firstRequestMs: r1(firstMs) };
}
