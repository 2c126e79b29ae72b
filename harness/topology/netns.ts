// The network-namespace backend: makes a Cluster real on this host and removes it again.
// Creation is bulk: one `ip -batch` for all namespaces, one for all veth pairs (created straight
// into their namespaces, never in the root one), then one `ip -n <ns> -batch` per namespace for
// addresses and routes. Nothing here touches the root namespace's links, routes or sysctls.
import { exec, ipBatch } from '../util/exec.js';
import { pMap } from '../util/pmap.js';
import { names, type Cluster } from './graph.js';

const PARALLEL = 8;

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
    links.push(`link add ${names.fabricPort(p, n.index)} netns ${c.fabricNetns} mtu ${c.mtu} type veth peer name ${names.nodeUplink(p)} netns ${n.netns} mtu ${c.mtu}`);
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
    for (const pod of n.pods) lines.push(`addr add ${n.gatewayIp}/32 dev ${pod.hostIf}`, `link set ${pod.hostIf} up`, `route add ${pod.ip}/32 dev ${pod.hostIf} scope link`);
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
  await pMap(jobs, PARALLEL, async (j) => {
    await exec('ip', ['-n', j.ns, '-batch', '-'], { input: j.lines.join('\n') + '\n' });
    if (j.sysctl) await exec('sysctl', ['-q', '-w', ...j.sysctl], { netns: j.ns });
  });
  const t3 = performance.now();
  return { namespacesMs: t1 - t0, linksMs: t2 - t1, configMs: t3 - t2, totalMs: t3 - t0 };
}

/** Names of network namespaces on the host matching `re`. */
export async function listNetns(re: RegExp): Promise<string[]> {
  const r = await exec('ip', ['netns', 'list'], { allowFail: true });
  return r.stdout
    .split('\n')
    .map((l) => l.split(' ')[0])
    .filter((n) => n && re.test(n));
}

/** Pids of processes living in a namespace (`ip netns pids`). */
export async function netnsPids(ns: string): Promise<number[]> {
  const r = await exec('ip', ['netns', 'pids', ns], { allowFail: true });
  return r.stdout.split(/\s+/).filter(Boolean).map(Number);
}

/** Delete namespaces in bulk; veths inside them go with them. Missing ones are not an error. */
export async function deleteNetns(list: string[]): Promise<void> {
  await ipBatch(list.map((ns) => `netns del ${ns}`), { force: true });
}
