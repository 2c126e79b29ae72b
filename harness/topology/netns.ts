// The network-namespace backend: makes a Cluster real on its machines and removes it again.
// Creation is bulk, per machine (the place of each node, place/index.ts): one `ip -batch` for its
// namespaces, one for its veth pairs (created straight into their namespaces, never in the root
// one), then one `ip -batch` per namespace for addresses and routes, run from a few shell scripts.
// On one host a fabric namespace with a bridge joins the nodes. With the hosts backend
// (c.labInterfaces) the real network between machines is the underlay instead: each machine's lab
// interface is moved into its node namespace and renamed P-ul (its original name and MTU recorded
// on that machine first, so `down` can give it back: cleanup.ts sweepPlace). That move is the only
// root-namespace link this file touches; never its routes or sysctls.
import { readdirSync, readlinkSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { runError } from '../errors.js';
import { isLocal, localPlace, placeOfNode, type Place } from '../place/index.js';
import { exec, ipBatch } from '../util/exec.js';
import { LAB_OBJECT_RE, STATE_DIR } from '../util/host.js';
import { names, type Cluster, type NodeSpec, type PodSpec } from './graph.js';

const SHELLS = 4;

export interface UpTimings {
  namespacesMs: number;
  linksMs: number;
  configMs: number;
  totalMs: number;
}

/** One namespace's configuration: an `ip -batch` run inside it, then sysctls. */
export interface NsJob {
  ns: string;
  lines: string[];
  sysctl?: string[];
}

/** An interface name as the inventory allows it (hosts/inventory.ts): safe in a command line. */
const IFNAME_RE = /^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,14}$/;

/** Where the lab interface's original name and MTU are kept on its machine while the lab has it. */
export const underlayRecordPath = (prefix: string): string => join(STATE_DIR, prefix, 'underlay.json');

/** The lab interface of node `n` (hosts mode), or undefined on one host. */
function labIf(c: Cluster, n: NodeSpec): string | undefined {
  return c.labInterfaces?.[n.name];
}

/**
 * Root-namespace `ip -batch` lines of one machine holding `nodes`: its namespaces, then its links.
 * On one host (`fabric`) the fabric namespace comes first and each node gets a veth to it; in
 * hosts mode each node's lab interface is moved into the node namespace instead.
 */
export function rootLines(c: Cluster, nodes: NodeSpec[], fabric: boolean): { netns: string[]; links: string[] } {
  const p = c.prefix;
  const netns = [...(fabric ? [c.fabricNetns] : []), ...nodes.map((n) => n.netns), ...nodes.flatMap((n) => n.pods.map((x) => x.netns))].map(
    (ns) => `netns add ${ns}`,
  );
  const links: string[] = [];
  for (const n of nodes) {
    const dev = labIf(c, n);
    if (fabric)
      links.push(
        `link add ${names.fabricPort(p, n.index)} netns ${c.fabricNetns} mtu ${c.mtu} type veth peer name ${names.nodeUplink(p)} netns ${n.netns} mtu ${c.mtu}`,
      );
    else if (dev) links.push(`link set dev ${dev} netns ${n.netns}`);
    for (const pod of n.pods) links.push(`link add ${pod.hostIf} netns ${n.netns} type veth peer name ${pod.podIf} netns ${pod.netns}`);
  }
  return { netns, links };
}

/** The configuration of the fabric (on one host) and of each node's and pod's namespace. */
export function configJobs(c: Cluster, nodes: NodeSpec[], fabric: boolean): NsJob[] {
  const p = c.prefix;
  const ul = names.nodeUplink(p);
  const jobs: NsJob[] = [];
  if (fabric)
    jobs.push({
      ns: c.fabricNetns,
      lines: [
        'link set lo up',
        `link add ${c.bridge} type bridge`,
        `link set ${c.bridge} up`,
        ...nodes.flatMap((n) => [`link set ${names.fabricPort(p, n.index)} master ${c.bridge}`, `link set ${names.fabricPort(p, n.index)} up`]),
      ],
    });
  for (const n of nodes) {
    const dev = labIf(c, n);
    // The moved lab interface takes the veth's name, so everything after (addresses, routes, the
    // eBPF dataplane's tc filters, WireGuard endpoints) is the same on one host and on several.
    const rename = !fabric && dev ? [`link set dev ${dev} name ${ul}`, `link set dev ${ul} mtu ${c.mtu}`] : [];
    const lines = [...rename, 'link set lo up', `addr add ${n.underlayIp}/24 dev ${ul}`, `link set ${ul} up`];
    for (const pod of n.pods)
      lines.push(`addr add ${n.gatewayIp}/32 dev ${pod.hostIf}`, `link set ${pod.hostIf} up`, `route add ${pod.ip}/32 dev ${pod.hostIf} scope link`);
    for (const peer of c.nodes) if (peer !== n) lines.push(`route add ${peer.podCidr} via ${peer.underlayIp} dev ${ul}`);
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
  return jobs;
}

/**
 * One `ip -batch` per namespace, written as a few shell scripts run side by side (forking ~1000
 * processes from a small shell beats forking them from Node). nsenter --net only joins the
 * network namespace; `ip -n` and `ip netns exec` also unshare the mount namespace, copying a
 * mount table that holds one bind mount per lab namespace, which made creation quadratic.
 */
export function configScripts(jobs: NsJob[], shells = SHELLS): string[] {
  const scripts: string[][] = Array.from({ length: Math.min(shells, jobs.length) }, () => ['set -e']);
  jobs.forEach((j, i) => {
    const sh = scripts[i % scripts.length];
    const enter = `nsenter --net=/run/netns/${j.ns}`;
    sh.push(`${enter} ip -batch - <<'EOF' || { echo "meshbench: configuring ${j.ns} failed" >&2; exit 1; }`, ...j.lines, 'EOF');
    if (j.sysctl) sh.push(`${enter} sysctl -q -w ${j.sysctl.join(' ')}`);
  });
  return scripts.map((sh) => sh.join('\n') + '\n');
}

/** The nodes of each machine, machines in node order. */
function byPlace(nodes: NodeSpec[]): Map<Place, NodeSpec[]> {
  const m = new Map<Place, NodeSpec[]>();
  for (const n of nodes) {
    const place = placeOfNode(n.index);
    m.set(place, [...(m.get(place) ?? []), n]);
  }
  return m;
}

/**
 * What a machine says about the interface it is to give the lab: its link line, global
 * addresses, default routes, and the SSH connection this command came in on (from the nearest
 * ancestor's environment: sudo drops it from ours) with the route back to its client.
 */
export const LAB_IF_CHECK_SCRIPT = [
  'PATH=$PATH:/usr/local/sbin:/usr/sbin:/sbin; d=$1',
  `l=$(ip -o link show dev "$d" 2>/dev/null) || { echo missing; ls /sys/class/net | sed 's/^/have /'; exit 0; }`,
  'echo "link $l"',
  `ip -o addr show dev "$d" scope global | awk '{print "addr", $3, $4}'`,
  `{ ip -4 route show default; ip -6 route show default; } 2>/dev/null | sed 's/^/default /'`,
  'p=$$; i=0',
  'while [ "$i" -lt 10 ] && [ "$p" -gt 1 ] 2>/dev/null; do',
  `  c=$(tr '\\0' '\\n' < /proc/$p/environ 2>/dev/null | sed -n 's/^SSH_CONNECTION=//p')`,
  '  if [ -n "$c" ]; then echo "ssh $c"; set -- $c; ip route get "$1" 2>/dev/null | head -n 1 | sed \'s/^/sshroute /\'; break; fi',
  `  p=$(sed 's/.*) //' /proc/$p/stat 2>/dev/null | cut -d' ' -f2); i=$((i+1))`,
  'done',
].join('\n');

export interface LabIfCheck {
  exists: boolean;
  /** The machine's interfaces, when the named one is missing. */
  have: string[];
  mtu: number;
  up: boolean;
  /** Global addresses, with their prefix length: [family, address/len]. */
  addrs: [string, string][];
  /** Devices the default routes leave through. */
  defaultDevs: string[];
  /** This SSH session: the server's address there, and the device its replies leave through. */
  sshServer?: string;
  sshDev?: string;
}

export function parseLabIfCheck(out: string): LabIfCheck {
  const r: LabIfCheck = { exists: true, have: [], mtu: 0, up: false, addrs: [], defaultDevs: [] };
  for (const l of out.split('\n')) {
    const [k, ...rest] = l.split(' ');
    const v = rest.join(' ');
    if (k === 'missing') r.exists = false;
    else if (k === 'have') r.have.push(v);
    else if (k === 'link') {
      r.mtu = Number(/ mtu (\d+)/.exec(v)?.[1] ?? 0);
      r.up = (/<([^>]*)>/.exec(v)?.[1] ?? '').split(',').includes('UP');
    } else if (k === 'addr' && rest.length >= 2) r.addrs.push([rest[0], rest[1]]);
    else if (k === 'default') r.defaultDevs.push(...[...v.matchAll(/\bdev (\S+)/g)].map((m) => m[1]));
    else if (k === 'ssh') r.sshServer = rest[2];
    else if (k === 'sshroute') r.sshDev = /\bdev (\S+)/.exec(v)?.[1];
  }
  return r;
}

const inLabRange = (ip: string) => /^198\.(18|19)\.\d+\.\d+$/.test(ip);

/**
 * Why `dev` must not be given to the lab, or undefined. An interface holding a global IPv4 address
 * outside 198.18.0.0/15, carrying a default route, or carrying the SSH session (by its server
 * address, the route back to the client, or the inventory's address) is how the user reaches the
 * machine: moving it into a namespace would cut the machine off.
 */
export function labInterfaceProblem(host: string, dev: string, ck: LabIfCheck, sshAddrs: string[] = []): string | undefined {
  const fix = `name a dedicated interface with no address of its own (a second NIC) as its labInterface in the inventory`;
  if (!ck.exists) return `host ${host}: the lab interface ${dev} does not exist there${ck.have.length ? ` (it has ${ck.have.join(', ')})` : ''}; ${fix}`;
  const refuse = (why: string) => `host ${host}: refusing to move ${dev} into the lab: ${why}; ${fix}`;
  const own = ck.addrs.map(([, a]) => a.split('/')[0]);
  const foreign = ck.addrs.filter(([fam, a]) => fam === 'inet' && !inLabRange(a.split('/')[0]));
  if (foreign.length)
    return refuse(
      `it has the address ${foreign.map(([, a]) => a).join(', ')} (outside the lab range 198.18.0.0/15), so it is likely the machine's management interface`,
    );
  if (ck.defaultDevs.includes(dev)) return refuse('the default route leaves through it');
  const ssh = [ck.sshServer, ...sshAddrs].filter((a): a is string => !!a && own.includes(a));
  if (ssh.length || ck.sshDev === dev)
    return refuse(`it carries the SSH connection meshbench uses (${ssh[0] ?? `the route back to the controller leaves through it`})`);
  return undefined;
}

/** The address meshbench reaches a remote place at, when the place says (RemotePlace: its SSH target). */
function sshAddressOf(place: Place): string | undefined {
  return (place as { host?: { target?: { address?: unknown } } }).host?.target?.address as string | undefined;
}

/**
 * Hosts mode, before anything is built on any machine: each lab interface exists and is not the
 * machine's management interface (else E_RUN naming host, interface and what to do). Returns
 * the record to keep on each machine (original name, MTU, up) before the interface moves.
 */
async function checkLabInterfaces(c: Cluster, groups: Map<Place, NodeSpec[]>): Promise<Map<Place, string>> {
  const records = new Map<Place, string>();
  const problems: string[] = [];
  await Promise.all(
    [...groups].map(async ([place, nodes]) => {
      if (nodes.length > 1)
        return problems.push(
          `host ${place.name} plays nodes ${nodes.map((n) => n.name).join(', ')}: one node per machine (its lab interface becomes that node's underlay)`,
        );
      const n = nodes[0];
      const dev = labIf(c, n);
      if (!dev) return problems.push(`node ${n.name} (host ${place.name}) has no lab interface: give it a labInterface in the inventory`);
      if (!IFNAME_RE.test(dev) || dev === 'lo' || LAB_OBJECT_RE.test(dev))
        return problems.push(`host ${place.name}: ${JSON.stringify(dev)} cannot be the lab interface; name a dedicated interface of that machine`);
      const r = await exec('sh', ['-c', LAB_IF_CHECK_SCRIPT, 'sh', dev], { place });
      const ck = parseLabIfCheck(r.stdout);
      const why = labInterfaceProblem(
        place.name,
        dev,
        ck,
        [sshAddressOf(place)].filter((a): a is string => !!a),
      );
      if (why) return problems.push(why);
      records.set(place, JSON.stringify({ node: n.name, name: dev, mtu: ck.mtu, up: ck.up }) + '\n');
    }),
  );
  if (problems.length) throw runError(problems.join('\n'));
  return records;
}

export async function clusterUp(c: Cluster): Promise<UpTimings> {
  const t0 = performance.now();
  const groups = byPlace(c.nodes);
  const fabric = !c.labInterfaces;
  if (fabric && [...groups.keys()].some((pl) => !isLocal(pl)))
    throw runError('nodes on other machines need a lab interface each (Cluster.labInterfaces): the fabric bridge joins namespaces of one host only');
  if (!fabric) {
    // Recorded on each machine before its interface moves, so `down` there can always give it back.
    const records = await checkLabInterfaces(c, groups);
    await Promise.all(
      [...records].map(async ([place, text]) => {
        await place.mkdir(join(STATE_DIR, c.prefix));
        await place.writeFile(underlayRecordPath(c.prefix), text);
      }),
    );
  }
  const lines = new Map([...groups].map(([place, nodes]) => [place, rootLines(c, nodes, fabric)]));
  await Promise.all([...lines].map(([place, l]) => ipBatch(l.netns, { place })));
  const t1 = performance.now();
  await Promise.all([...lines].map(([place, l]) => ipBatch(l.links, { place })));
  const t2 = performance.now();
  await Promise.all([...groups].flatMap(([place, nodes]) => configScripts(configJobs(c, nodes, fabric)).map((input) => exec('sh', ['-s'], { place, input }))));
  const t3 = performance.now();
  return { namespacesMs: t1 - t0, linksMs: t2 - t1, configMs: t3 - t2, totalMs: t3 - t0 };
}

/** Add one pod to a running cluster (same wiring as clusterUp's pods), on its node's machine. */
export async function podUp(c: Cluster, pod: PodSpec): Promise<void> {
  const node = c.nodes.find((n) => n.name === pod.node)!;
  const place = placeOfNode(node.index);
  await ipBatch([`netns add ${pod.netns}`, `link add ${pod.hostIf} netns ${node.netns} type veth peer name ${pod.podIf} netns ${pod.netns}`], { place });
  await exec('ip', ['-n', node.netns, '-batch', '-'], {
    place,
    input:
      [`addr add ${node.gatewayIp}/32 dev ${pod.hostIf}`, `link set ${pod.hostIf} up`, `route add ${pod.ip}/32 dev ${pod.hostIf} scope link`].join('\n') + '\n',
  });
  await exec('ip', ['-n', pod.netns, '-batch', '-'], {
    place,
    input:
      [
        'link set lo up',
        `addr add ${pod.ip}/32 dev ${pod.podIf}`,
        `link set ${pod.podIf} up`,
        `route add 198.18.0.0/15 via ${node.gatewayIp} dev ${pod.podIf} onlink`,
      ].join('\n') + '\n',
  });
}

/** Names of network namespaces on a machine (default this host) matching `re`. */
export async function listNetns(re: RegExp, place: Place = localPlace): Promise<string[]> {
  const r = await exec('ip', ['netns', 'list'], { allowFail: true, place });
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
export async function deleteNetns(list: string[], place: Place = localPlace): Promise<void> {
  const foreign = list.filter((ns) => !LAB_OBJECT_RE.test(ns));
  if (foreign.length) throw new Error(`refusing to delete network namespaces without the lab prefix: ${foreign.join(', ')}`);
  await ipBatch(
    list.map((ns) => `netns del ${ns}`),
    { force: true, place },
  );
}
