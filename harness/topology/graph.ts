// The cluster as plain data: nodes, pods, services and their addresses. Built from a scenario
// without touching the host (Mininet's Topo.build() records, Mininet.buildFromTopo() makes), so
// it can be printed and unit-tested rootless. The netns backend makes it real.
//
// Naming (P = the run prefix, "mb" + 4 base36 characters, e.g. mbk3f9):
//   netns   P-fab          underlay fabric: one bridge joining every node
//           P-n<i>         node i (1-based)
//           P-n<i>p<j>     pod j on node i (0-based)
//           P-n<i>w<k>     infrastructure pod k on node i (a dataplane's own, e.g. a waypoint)
//   links   P-br           bridge in P-fab
//           P-u<i>         P-fab side of node i's underlay veth
//           P-ul           node side of the underlay veth (in P-n<i>)
//           P-p<j>         node side of pod j's veth (in P-n<i>)
//           P-w<k>         node side of infrastructure pod k's veth (in P-n<i>)
//           P-eth0         pod side of the pod veth (in P-n<i>p<j>)
//   cgroups <cgroup2>/P/<process name>; state file /run/meshbench/P.json
// Every name starts with "P-", at most 15 characters for links; `meshbench down` removes all
// objects matching ^mb[0-9a-z]{4}-.
//
// Addresses (all inside 198.18.0.0/15, the benchmarking range):
//   198.18.0.<i>/24         node i on the underlay (i ≤ 250)
//   198.18.64.0/18          Service VIPs, one per service in declaration order
//   198.19.0.0/16           pods: one block per node, /24 unless a node holds more than 250 pods
//                           (then the smallest block that fits, the same size on every node).
//                           With /24: node i's pod CIDR is 198.19.<i>.0/24, 198.19.<i>.1 is the node
//                           side of every pod veth (a /32 on each, Calico-style), pod j is
//                           198.19.<i>.<j+2>/32, infrastructure pod k is 198.19.<i>.<254-k>/32 (k < 2).
//                           Larger blocks keep the same offsets: block i, gateway +1, pod j +j+2,
//                           infrastructure pod k at the block's end − 2 − k.
// Pods reach other nodes' pods through their node: pod → node (default route) → underlay →
// peer node (route to the peer's pod CIDR via 198.18.0.<k>) → pod veth.
import type { Scenario, Service } from '../scenario/schema.js';
import { nodeNames } from '../scenario/load.js';

export const LAB_RANGE = '198.18.0.0/15';
/** Pods per node in a /24 block: all but the network, gateway, two infrastructure pods and broadcast (and one spare). */
const podsPerBlock = (bits: number) => 2 ** (32 - bits) - 6;

export type PodRole = 'client' | 'app' | 'idle';

export interface NodeSpec {
  name: string;
  index: number; // 1-based
  netns: string;
  underlayIp: string;
  podCidr: string;
  gatewayIp: string;
  pods: PodSpec[];
}

export interface PodSpec {
  /** Kubernetes-style name: <service>-<replica>, client, idle-<n>. */
  name: string;
  namespace: string;
  node: string;
  nodeIndex: number;
  slot: number; // j on its node
  netns: string;
  ip: string;
  hostIf: string; // node side of the veth
  podIf: string; // pod side
  role: PodRole;
  labels: Record<string, string>;
  /** The service this pod backs, if any. */
  service?: string;
  /** Service account for identities (later issues); defaults to the service name. */
  serviceAccount: string;
}

export interface ServiceSpec extends Service {
  vip: string;
  selector: Record<string, string>;
  backends: PodSpec[];
}

export interface Cluster {
  prefix: string;
  fabricNetns: string;
  bridge: string;
  mtu: number;
  nodes: NodeSpec[];
  pods: PodSpec[];
  services: ServiceSpec[];
  client: PodSpec;
  /** Prefix length of every node's pod CIDR (24 unless a node holds more than 250 pods). */
  podBlockBits: number;
  /**
   * Backend hosts (`run --hosts`): node name → its machine's lab interface (inventory
   * labInterface), moved into the node namespace and renamed P-ul for the run; no fabric
   * namespace or bridge then: the real network between the machines is the underlay.
   */
  labInterfaces?: Record<string, string>;
}

export const names = {
  fabric: (p: string) => `${p}-fab`,
  bridge: (p: string) => `${p}-br`,
  node: (p: string, i: number) => `${p}-n${i}`,
  pod: (p: string, i: number, j: number) => `${p}-n${i}p${j}`,
  fabricPort: (p: string, i: number) => `${p}-u${i}`,
  nodeUplink: (p: string) => `${p}-ul`,
  podHostIf: (p: string, j: number) => `${p}-p${j}`,
  podIf: (p: string) => `${p}-eth0`,
};

const POD_RANGE = (198 << 24) | (19 << 16);
const ipv4 = (n: number) => [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
const block = (bits: number, i: number) => POD_RANGE + i * 2 ** (32 - bits);

export const addr = {
  node: (i: number) => `198.18.0.${i}`,
  vip: (k: number) => `198.18.${64 + (k >> 8)}.${k & 255}`,
  podCidr: (bits: number, i: number) => `${ipv4(block(bits, i))}/${bits}`,
  gateway: (bits: number, i: number) => ipv4(block(bits, i) + 1),
  pod: (bits: number, i: number, j: number) => ipv4(block(bits, i) + j + 2),
  infraPod: (bits: number, i: number, k: number) => ipv4(block(bits, i + 1) - 2 - k),
};

/**
 * The pod block every node gets: /24 when each node's pods fit in one (the common case, and the
 * addresses a reader expects), else the smallest block that fits, as long as the cluster's
 * nodes still fit 198.19.0.0/16 (block 0 is unused: node indices start at 1).
 */
export function podBlockBits(maxPodsPerNode: number, nodes: number): number {
  let bits = 24;
  while (bits > 16 && podsPerBlock(bits) < maxPodsPerNode) bits--;
  if (podsPerBlock(bits) < maxPodsPerNode || 2 ** (bits - 16) - 1 < nodes)
    throw new Error(
      `${nodes} node(s) with up to ${maxPodsPerNode} pods each do not fit the pod range 198.19.0.0/16 (a /${bits} per node leaves room for ${2 ** (bits - 16) - 1} nodes)`,
    );
  return bits;
}

/** A pod a dataplane adds for itself (a waypoint): declared like any pod, outside the scenario's. */
export function infraPod(c: Cluster, node: NodeSpec, k: number, name: string, namespace: string, serviceAccount: string): PodSpec {
  if (k < 0 || k > 1) throw new Error('at most two infrastructure pods per node');
  return {
    name,
    namespace,
    node: node.name,
    nodeIndex: node.index,
    slot: -1 - k,
    netns: `${c.prefix}-n${node.index}w${k}`,
    ip: addr.infraPod(c.podBlockBits, node.index, k),
    hostIf: `${c.prefix}-w${k}`,
    podIf: names.podIf(c.prefix),
    role: 'app',
    labels: { 'gateway.istio.io/managed': 'meshbench', app: name },
    serviceAccount,
  };
}

function matches(labels: Record<string, string>, selector: Record<string, string>): boolean {
  return Object.entries(selector).every(([k, v]) => labels[k] === v);
}

/** Declare the cluster for one case. Throws on impossible sizes (schema limits make that rare). */
export function buildCluster(s: Scenario, prefix: string, opts: { labInterfaces?: Record<string, string> } = {}): Cluster {
  const mtu = s.topology.underlay.mtu;
  const nodes: NodeSpec[] = nodeNames(s.topology).map((name, k) => {
    const index = k + 1;
    return {
      name,
      index,
      netns: names.node(prefix, index),
      underlayIp: addr.node(index),
      podCidr: '', // set once every pod is placed: the block size depends on the busiest node
      gatewayIp: '',
      pods: [],
    };
  });
  const byName = new Map(nodes.map((n) => [n.name, n]));

  const addPod = (node: NodeSpec, p: Omit<PodSpec, 'node' | 'nodeIndex' | 'slot' | 'netns' | 'ip' | 'hostIf' | 'podIf'>) => {
    const slot = node.pods.length;
    const pod: PodSpec = {
      ...p,
      node: node.name,
      nodeIndex: node.index,
      slot,
      netns: names.pod(prefix, node.index, slot),
      ip: '', // set with the node's block
      hostIf: names.podHostIf(prefix, slot),
      podIf: names.podIf(prefix),
    };
    node.pods.push(pod);
    return pod;
  };

  const client = addPod(byName.get(s.client.node)!, {
    name: s.client.name,
    namespace: s.client.namespace,
    role: 'client',
    labels: { app: s.client.name, ...(s.client.labels ?? {}) },
    serviceAccount: s.client.name,
  });

  const services: ServiceSpec[] = s.services.map((svc, k) => {
    const selector = svc.selector ?? { app: svc.name };
    const placement = (svc.nodes ?? nodes.map((n) => n.name)).map((n) => byName.get(n)!);
    const backends: PodSpec[] = [];
    // Without explicit nodes, services start their round-robin one node further each, so many
    // one-replica services spread over the cluster instead of piling onto the first node.
    const offset = svc.nodes ? 0 : k;
    for (let r = 0; r < svc.replicas; r++) {
      const node = placement[(r + offset) % placement.length];
      backends.push(
        addPod(node, {
          name: `${svc.name}-${r}`,
          namespace: svc.namespace,
          role: 'app',
          labels: { ...selector, ...(svc.labels ?? {}) },
          service: svc.name,
          serviceAccount: svc.name,
        }),
      );
    }
    return { ...svc, vip: addr.vip(k + 1), selector, backends };
  });

  for (const node of nodes)
    for (let n = 0; n < s.topology.podsPerNode; n++)
      addPod(node, { name: `idle-${node.index}-${n}`, namespace: 'idle', role: 'idle', labels: { app: 'idle' }, serviceAccount: 'idle' });

  const bits = podBlockBits(Math.max(...nodes.map((n) => n.pods.length)), nodes.length);
  for (const n of nodes) {
    n.podCidr = addr.podCidr(bits, n.index);
    n.gatewayIp = addr.gateway(bits, n.index);
    for (const p of n.pods) p.ip = addr.pod(bits, n.index, p.slot);
  }
  const pods = nodes.flatMap((n) => n.pods);
  // A selector may also match pods declared for another service (canary v1/v2 under one Service).
  for (const svc of services) {
    const extra = pods.filter((p) => p.role === 'app' && p.namespace === svc.namespace && !svc.backends.includes(p) && matches(p.labels, svc.selector));
    svc.backends.push(...extra);
  }
  const cluster: Cluster = { prefix, fabricNetns: names.fabric(prefix), bridge: names.bridge(prefix), mtu, nodes, pods, services, client, podBlockBits: bits };
  if (opts.labInterfaces) cluster.labInterfaces = opts.labInterfaces;
  return cluster;
}

/** A one-screen summary for `validate` and logs. */
export function describeCluster(c: Cluster): string {
  const lines = [`${c.nodes.length} node(s), ${c.pods.length} pod(s), ${c.services.length} service(s)`];
  for (const n of c.nodes) {
    const shown = n.pods.filter((p) => p.role !== 'idle');
    const idle = n.pods.length - shown.length;
    lines.push(`  ${n.name} ${n.underlayIp} pods ${n.podCidr}: ${shown.map((p) => `${p.name}=${p.ip}`).join(' ')}${idle ? ` +${idle} idle` : ''}`);
  }
  for (const s of c.services)
    lines.push(`  svc ${s.namespace}/${s.name} ${s.vip}:${s.port} → ${s.backends.map((b) => `${b.ip}:${s.targetPort}`).join(' ')} (${s.protocol})`);
  return lines.join('\n');
}
