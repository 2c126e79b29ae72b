// The network-namespace backend: makes a Cluster real on this host and removes it again.
// Creation is bulk: one `ip -batch` for all namespaces, one for all veth pairs (created straight
// into their namespaces, never in the root one), then one `ip -n <ns> -batch` per namespace for
// addresses and routes. Nothing here touches the root namespace's links, routes or sysctls.
import { readdirSync, readlinkSync, statSync } from 'node:fs';
import { exec, ipBatch } from '../util/exec.js';
import { LAB_OBJECT_RE } from '../util/host.js';
import { names, type Cluster, type PodSpec } from './graph.js';

const SHELLS = 4;

export interface UpTimings {
  namespacesMs: number;
  linksMs: number;
  configMs: number;
  totalMs: number;
}

export async function clusterUp(c: Cluster): Promise<UpTimings> {
  const t0 = performance.now();
  const p = c.prefix;
  const allNs = [c.fabricNetns, ...c.nodes.map((n) => n.netns), ...c.pods.map((x) => x.netns)];
  await ipBatch(allNs.map((ns) => `netns add ${ns}`));
  const t1 = performance.now();

  const links: string[] = [];
  for (const n of c.nodes) {
    links.push(
      `link add ${names.fabricPort(p, n.index)} netns ${c.fabricNetns} mtu ${c.mtu} type veth peer name ${names.nodeUplink(p)} netns ${n.netns} mtu ${c.mtu}`,
    );
    for (const pod of n.pods) links.push(`link add ${pod.hostIf} netns ${n.netns} type veth peer name ${pod.podIf} netns ${pod.netns}`);
  }
  await ipBatch(links);
  const t2 = performance.now();

  type Job = { ns: string; lines: string[]; sysctl?: string[] };
  const jobs: Job[] = [];
  jobs.push({
    ns: c.fabricNetns,
    lines: [
      'link set lo up',
      `link add ${c.bridge} type bridge`,
      `link set ${c.bridge} up`,
      ...c.nodes.flatMap((n) => [`link set ${names.fabricPort(p, n.index)} master ${c.bridge}`, `link set ${names.fabricPort(p, n.index)} up`]),
    ],
  });
  for (const n of c.nodes) {
    const lines = ['link set lo up', `addr add ${n.underlayIp}/24 dev ${names.nodeUplink(p)}`, `link set ${names.nodeUplink(p)} up`];
    for (const pod of n.pods)
      lines.push(`addr add ${n.gatewayIp}/32 dev ${pod.hostIf}`, `link set ${pod.hostIf} up`, `route add ${pod.ip}/32 dev ${pod.hostIf} scope link`);
    for (const peer of c.nodes) if (peer !== n) lines.push(`route add ${peer.podCidr} via ${peer.underlayIp} dev ${names.nodeUplink(p)}`);
    jobs.push({ ns: n.netns, lines, sysctl: ['net.ipv4.ip_forward=1'] });
    for (const pod of n.pods)
      jobs.push({
        ns: pod.netns,
        lines: [
          'link set lo up',
          `addr add ${pod.ip}/32 dev ${pod.podIf}`,
          `link set ${pod.podIf} up`,
          // Only the lab range is routed out of a pod: anything else fails at once, inside the pod.
          `route add 198.18.0.0/15 via ${n.gatewayIp} dev ${pod.podIf} onlink`,
        ],
      });
  }
  // One `ip -batch` per namespace, written as a few shell scripts run side by side (forking ~1000
  // processes from a small shell beats forking them from Node). nsenter --net only joins the
  // network namespace; `ip -n` and `ip netns exec` also unshare the mount namespace, copying a
  // mount table that holds one bind mount per lab namespace, which made creation quadratic.
  const scripts: string[][] = Array.from({ length: Math.min(SHELLS, jobs.length) }, () => ['set -e']);
  jobs.forEach((j, i) => {
    const sh = scripts[i % scripts.length];
    const enter = `nsenter --net=/run/netns/${j.ns}`;
    sh.push(`${enter} ip -batch - <<'EOF' || { echo "meshbench: configuring ${j.ns} failed" >&2; exit 1; }`, ...j.lines, 'EOF');
    if (j.sysctl) sh.push(`${enter} sysctl -q -w ${j.sysctl.join(' ')}`);
  });
  await Promise.all(scripts.map((sh) => exec('sh', ['-s'], { input: sh.join('\n') + '\n' })));
  const t3 = performance.now();
  return { namespacesMs: t1 - t0, linksMs: t2 - t1, configMs: t3 - t2, totalMs: t3 - t0 };
}

/** Add one pod to a running cluster (same wiring as clusterUp's pods): namespace, veth, address, routes. */
export async function podUp(c: Cluster, pod: PodSpec): Promise<void> {
  const node = c.nodes.find((n) => n.name === pod.node)!;
  await ipBatch([`netns add ${pod.netns}`, `link add ${pod.hostIf} netns ${node.netns} type veth peer name ${pod.podIf} netns ${pod.netns}`]);
  await exec('ip', ['-n', node.netns, '-batch', '-'], {
    input:
      [`addr add ${node.gatewayIp}/32 dev ${pod.hostIf}`, `link set ${pod.hostIf} up`, `route add ${pod.ip}/32 dev ${pod.hostIf} scope link`].join('\n') + '\n',
  });
  await exec('ip', ['-n', pod.netns, '-batch', '-'], {
    input:
      [
        'link set lo up',
        `addr add ${pod.ip}/32 dev ${pod.podIf}`,
        `link set ${pod.podIf} up`,
        `route add 198.18.0.0/15 via ${node.gatewayIp} dev ${pod.podIf} onlink`,
      ].join('\n') + '\n',
  });
}

/** Names of network namespaces on the host matching `re`. */
export async function listNetns(re: RegExp): Promise<string[]> {
  const r = await exec('ip', ['netns', 'list'], { allowFail: true });
  return r.stdout
    .split('\n')
    .map((l) => l.split(' ')[0])
    .filter((n) => n && re.test(n));
}

/**
 * Pids of processes living in any of the named namespaces: what `ip netns pids` answers for one
 * namespace, for all of them in one pass over /proc (one process per namespace is slow at 1000).
 */
export function netnsPids(namespaces: string[]): number[] {
  const inodes = new Set<number>();
  for (const ns of namespaces) {
    try {
      inodes.add(statSync(`/run/netns/${ns}`).ino);
    } catch {
      /* already gone */
    }
  }
  if (!inodes.size) return [];
  const pids: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const m = readlinkSync(`/proc/${d}/ns/net`).match(/^net:\[(\d+)\]$/);
      if (m && inodes.has(Number(m[1]))) pids.push(Number(d));
    } catch {
      /* exited, or a kernel thread */
    }
  }
  return pids;
}

/**
 * Delete namespaces in bulk; veths inside them go with them. Missing ones are not an error.
 * Only lab namespaces (the prefix mark): a name without it is a bug upstream, never deleted.
 */
export async function deleteNetns(list: string[]): Promise<void> {
  const foreign = list.filter((ns) => !LAB_OBJECT_RE.test(ns));
  if (foreign.length) throw new Error(`refusing to delete network namespaces without the lab prefix: ${foreign.join(', ')}`);
  await ipBatch(
    list.map((ns) => `netns del ${ns}`),
    { force: true },
  );
}
