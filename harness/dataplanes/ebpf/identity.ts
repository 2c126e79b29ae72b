// Security identities and per-endpoint policy entries for the eBPF dataplane (Cilium's model):
// an identity is a number for a set of security-relevant labels, shared by every pod with the
// same set; policy entries are keyed by (endpoint, peer identity, direction, protocol, port).
import type { Cluster, PodSpec } from '../../topology/graph.js';
import type { Policy } from '../../scenario/policy-schema.js';
import { compileEgress, compileIngress, type IngressPort, type EgressPort, type PeerSet } from '../mesh/policy/model.js';

/** Reserved identities (Cilium pkg/identity/numericidentity.go). */
export const RESERVED = { host: 1, world: 2, unmanaged: 3, health: 4, init: 5, remoteNode: 6 } as const;
/** Cluster-local identities start here (Cilium: MinimalAllocationIdentity 256). */
export const FIRST_IDENTITY = 256;

/** The labels Cilium treats as security-relevant for a pod: its labels, namespace and service account. */
export function securityLabels(p: PodSpec): string[] {
  return [
    ...Object.entries(p.labels).map(([k, v]) => `k8s:${k}=${v}`),
    `k8s:io.kubernetes.pod.namespace=${p.namespace}`,
    `k8s:io.cilium.k8s.policy.serviceaccount=${p.serviceAccount}`,
  ].sort();
}

export interface Identities {
  byPod: Map<string, number>;
  /** identity → its labels, for flow logs and reports. */
  labels: Map<number, string[]>;
}

/**
 * The identity key of a pod: JSON of its sorted [key, value] pairs, so two different label sets
 * never share a key whatever characters they hold (joining "k=v" strings with "," let
 * {a: "x,k8s:b=y"} and {a: x, b: y} collide).
 */
export function identityKey(p: PodSpec): string {
  const pairs: [string, string][] = [
    ...Object.entries(p.labels).map(([k, v]): [string, string] => [`k8s:${k}`, v]),
    ['k8s:io.kubernetes.pod.namespace', p.namespace],
    ['k8s:io.cilium.k8s.policy.serviceaccount', p.serviceAccount],
  ];
  return JSON.stringify(pairs.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/** One number per distinct label set, in sorted label-set order (deterministic for a scenario). */
export function allocateIdentities(c: Cluster): Identities {
  const sets = new Map<string, string[]>();
  for (const p of c.pods) sets.set(identityKey(p), securityLabels(p));
  // Numbered in the order of the printed label sets (as before), the key breaking ties.
  const order = (k: string) => sets.get(k)!.join(',');
  const keys = [...sets.keys()].sort((a, b) => (order(a) < order(b) ? -1 : order(a) > order(b) ? 1 : a < b ? -1 : a > b ? 1 : 0));
  const idOf = new Map(keys.map((k, i) => [k, FIRST_IDENTITY + i]));
  return {
    byPod: new Map(c.pods.map((p) => [p.name, idOf.get(identityKey(p))!])),
    labels: new Map(keys.map((k) => [idOf.get(k)!, sets.get(k)!])),
  };
}

export interface PolicyEntry {
  peer: number; // 0 = any
  port: number; // 0 = any
  proto: number; // 0 = any, 6 = TCP
  egress: boolean;
  deny?: boolean;
  authRequired?: boolean;
  /** The port has L7 rules (the ebpf-l7 dataplane sends it to the node proxy). */
  l7?: boolean;
}

const TCP = 6;

/**
 * One endpoint's entries for one direction, read the way the plan is meant (policy/model.ts): a
 * port with entries of its own decides alone, so such a port without an any-peer entry gets a
 * deny entry for any peer, which stops the lookup from falling through to the any-port entries.
 */
function entries(
  ports: (IngressPort | EgressPort)[],
  peersOf: (p: IngressPort | EgressPort) => PeerSet[] | 'any',
  egress: boolean,
  ids: Identities,
): PolicyEntry[] {
  const out: PolicyEntry[] = [];
  const byPort = new Map<number | 'any', (IngressPort | EgressPort)[]>();
  for (const p of ports) byPort.set(p.port, [...(byPort.get(p.port) ?? []), p]);
  for (const [port, list] of byPort) {
    const base = { port: port === 'any' ? 0 : port, proto: port === 'any' ? 0 : TCP, egress };
    let anyPeer = false;
    for (const p of list) {
      const eff = { authRequired: p.authRequired || undefined, l7: p.l7 ? true : undefined };
      const peers = peersOf(p);
      if (peers === 'any') {
        anyPeer = true;
        out.push({ ...base, peer: 0, ...eff });
        continue;
      }
      const identities = new Set(peers.flatMap((s) => s.pods.map((name) => ids.byPod.get(name)!)));
      for (const peer of identities) out.push({ ...base, peer, ...eff });
    }
    if (!anyPeer && port !== 'any') out.push({ ...base, peer: 0, deny: true });
  }
  return out;
}

export interface EndpointPolicy {
  ingressEnforced: boolean;
  egressEnforced: boolean;
  entries: PolicyEntry[];
}

export function endpointPolicy(policies: Policy[], pod: PodSpec, c: Cluster, ids: Identities): EndpointPolicy {
  const ing = compileIngress(policies, pod, c);
  const eg = compileEgress(policies, pod, c);
  return {
    ingressEnforced: ing.enforced,
    egressEnforced: eg.enforced,
    entries: [...entries(ing.ports, (p) => (p as IngressPort).sources, false, ids), ...entries(eg.ports, (p) => (p as EgressPort).destinations, true, ids)],
  };
}
