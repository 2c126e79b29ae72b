// `meshbench run --hosts`: each node of the topology on a machine of an inventory, reached over
// SSH (docs/hosts.md). Before anything is built: the inventory is read (errors file:line, exit 2),
// every node gets a host, every host answers (exit 3 otherwise) as root or through sudo, and has
// the tools, built files and kernel features the run needs (exit 3, per host). Then each node's
// place is registered, so every command, process and file of a case on that node goes there.
import { join } from 'node:path';
import { envError, inputError } from '../errors.js';
import { getDataplane } from '../dataplanes/registry.js';
import { hostsInventory } from '../hosts/doctor.js';
import { hostTarget, hostsForNodes, type Inventory, type InventoryHost } from '../hosts/inventory.js';
import { SshRunner } from '../hosts/ssh.js';
import { isLocal, registerPlace, resetPlaces, type Place } from '../place/index.js';
import { checkPrefix, sweepPlace, type DownReport } from '../topology/cleanup.js';
import { PREFIX_RE } from '../util/host.js';
import { RemotePlace } from '../place/remote.js';
import { detectVirtualisation } from '../probes/kernel.js';
import type { HostRecord } from '../results/types.js';
import type { Scenario } from '../scenario/schema.js';
import { nodeNames } from '../scenario/load.js';
import { which } from '../util/exec.js';
import { installHint } from '../util/tools.js';

/**
 * Dataplanes whose every command, process and file goes through the place seam. The sidecar and
 * ambient families still keep admin sockets and certificates on this host (docs/hosts.md, steps
 * 7b), ebpf-l7 its L7 proxies' admin sockets.
 */
export const HOSTS_DATAPLANES = ['baseline', 'ebpf'];

/** Tools every machine needs whatever the dataplanes (the run's own, as preflight's TOOLS). */
const HOST_TOOLS = ['ip', 'iptables-restore', 'ss', 'taskset', 'fortio', 'nsenter', 'find'];

export interface Hosts {
  inventory: Inventory;
  /** node name → the machine playing it. */
  byNode: Map<string, { host: InventoryHost; place: RemotePlace }>;
  /** node name → inventory labInterface. */
  labInterfaces: Record<string, string>;
  /** Every machine once. */
  places: Place[];
  /** What each machine is, for the run record. */
  records: HostRecord[];
  /** Places unregistered, polling stopped, SSH masters closed. Safe to repeat. */
  close(): Promise<void>;
}

/** E_INPUT unless the scenario's dataplanes all run on the hosts backend. */
export function checkHostsDataplanes(s: Scenario): void {
  const other = s.dataplanes.filter((d) => !HOSTS_DATAPLANES.includes(d));
  if (other.length)
    throw inputError(
      `--hosts: ${other.join(', ')} ${other.length === 1 ? 'does' : 'do'} not run on several machines yet (only ${HOSTS_DATAPLANES.join(', ')})`,
      [],
      `choose them with --dataplanes ${s.dataplanes.filter((d) => HOSTS_DATAPLANES.includes(d)).join(',') || HOSTS_DATAPLANES.join(',')}, or run on this host without --hosts`,
    );
}

/** What one machine lacks for this run, each with what to do. */
async function missingOn(place: RemotePlace, h: InventoryHost, s: Scenario): Promise<string[]> {
  const missing: string[] = [];
  const tools = new Set(HOST_TOOLS);
  const files = new Set<string>();
  for (const d of s.dataplanes)
    for (const n of getDataplane(d).needs) {
      if ('tool' in n && !n.toBuild) tools.add(n.tool);
      if ('file' in n) files.add(n.file);
    }
  const found = await Promise.all([...tools].map(async (t) => [t, await place.findTool(t)] as const));
  for (const [t, p] of found) if (!p) missing.push(`${t} not found (${installHint(t)}, on that machine in ${place.root})`);
  // One command for the rest: uid, cgroup v2, built files.
  const script = `id -u; grep -c ' cgroup2 ' /proc/self/mounts || true; for f do [ -e "$f" ] && echo y || echo n; done`;
  const r = await place.exec('sh', ['-c', script, 'sh', ...[...files].map((f) => join(place.root, f))], { allowFail: true });
  const [uid, cgroups, ...have] = r.stdout.trim().split('\n');
  if (uid?.trim() !== '0') missing.push(`commands there do not run as root (uid ${uid?.trim() || '?'}): log in as root, or allow ${h.user} passwordless sudo`);
  if (!Number(cgroups)) missing.push('cgroup v2 is not mounted there (meshbench doctor --hosts tells more)');
  [...files].forEach((f, i) => {
    if (have[i] !== 'y') missing.push(`${join(place.root, f)} not built: run scripts/setup.sh there`);
  });
  if (!h.labInterface)
    missing.push(
      `the inventory gives ${h.name} no labInterface (${h.line ? `line ${h.line}` : 'its entry'}): name the interface that carries the lab's underlay`,
    );
  return missing;
}

/** What a machine is: kernel, CPUs, memory, and how it runs (bare metal, a VM, emulated). */
async function describeHost(place: RemotePlace, h: InventoryHost): Promise<HostRecord> {
  const [release, cpuinfo, meminfo, clocksources, dmiVendor, dmiProduct] = await place.readFiles([
    '/proc/sys/kernel/osrelease',
    '/proc/cpuinfo',
    '/proc/meminfo',
    '/sys/devices/system/clocksource/clocksource0/available_clocksource',
    '/sys/class/dmi/id/sys_vendor',
    '/sys/class/dmi/id/product_name',
  ]);
  const virt = detectVirtualisation({ cpuinfo, clocksources, dmiVendor, dmiProduct });
  return {
    name: h.name,
    address: h.address,
    kernel: release?.trim() ?? '?',
    cpus: (cpuinfo?.match(/^processor\s*:/gm) ?? []).length,
    memoryBytes: Number(/^MemTotal:\s+(\d+) kB/m.exec(meminfo ?? '')?.[1] ?? 0) * 1024,
    labInterface: h.labInterface ?? '',
    virtualisation: virt.virtualisation,
    ...(virt.hypervisor ? { hypervisor: virt.hypervisor } : {}),
    functionalOnly: virt.virtualisation === 'tcg',
  };
}

/**
 * Read the inventory, reach every node's machine and check it; registers their places. Nothing
 * is built on any machine here; on failure every connection is closed again.
 */
export async function connectHosts(spec: string, s: Scenario, log: (m: string) => void = () => {}): Promise<Hosts> {
  checkHostsDataplanes(s);
  const inventory = await hostsInventory(spec);
  const nodes = nodeNames(s.topology);
  const hosts = hostsForNodes(inventory, nodes);
  const seen = new Map<string, string>();
  for (const [i, h] of hosts.entries()) {
    const key = `${h.address}:${h.port}`;
    if (seen.has(key))
      throw inputError(
        `${inventory.file}: nodes ${seen.get(key)} and ${nodes[i]} are both ${key}`,
        [`${inventory.file}:${h.line || 1}: address: one machine per node (a machine's root namespace holds one node's underlay)`],
        'give every node its own machine',
      );
    seen.set(key, nodes[i]);
  }
  if (!(await which('ssh'))) throw envError('ssh (the OpenSSH client) is not installed', 'install openssh-client (scripts/setup.sh does)');
  const ssh = new SshRunner({ connectTimeoutS: 10 });
  const places: RemotePlace[] = [];
  const close = async () => {
    for (const p of places) p.close();
    resetPlaces();
    await ssh.close().catch(() => {});
  };
  try {
    log(`connecting to ${hosts.length} host(s) of ${inventory.file}: ${hosts.map((h) => `${h.name} (${h.address})`).join(', ')}`);
    // run() throws E_ENV (exit 3) saying what to do for a host that does not answer or refuses the login.
    await Promise.all(hosts.map((h) => ssh.host(hostTarget(h)).run(['true'], { timeoutMs: 30_000 })));
    places.push(...hosts.map((h) => RemotePlace.of(ssh, h)));
    const missing = await Promise.all(places.map((p, i) => missingOn(p, hosts[i], s)));
    const lines = missing.flatMap((m, i) => m.map((x) => `${hosts[i].name}: ${x}`));
    if (lines.length)
      throw envError(`the hosts lack what this run needs:\n  - ${lines.join('\n  - ')}`, 'run `meshbench doctor --hosts <inventory>` for the full picture');
    const records = await Promise.all(places.map((p, i) => describeHost(p, hosts[i])));
    const tcg = records.filter((r) => r.functionalOnly).map((r) => r.name);
    if (tcg.length) log(`${tcg.join(', ')}: TCG (emulation: figures are functional only)`);
    places.forEach((p, i) => registerPlace(i + 1, p));
    return {
      inventory,
      byNode: new Map(nodes.map((n, i) => [n, { host: hosts[i], place: places[i] }])),
      labInterfaces: Object.fromEntries(nodes.map((n, i) => [n, hosts[i].labInterface!])),
      places,
      records,
      close,
    };
  } catch (e) {
    await close();
    throw e;
  }
}

/**
 * Make `dir` on a remote place, returning the topmost directory this made there (to remove at the
 * end of the run), or undefined when all of it existed.
 */
export async function makeRunDirOn(place: Place, dir: string): Promise<string | undefined> {
  if (isLocal(place)) return undefined;
  const r = await place.exec('mkdir', ['-pv', '--', dir]);
  // GNU mkdir -v: "mkdir: created directory '<path>'" per directory made, outermost first.
  const first = /created directory '([^']+)'/.exec(r.stdout)?.[1];
  return first;
}

/** Remove a directory tree a run made on a remote place (never anything outside the results tree). */
export async function removeRunDirOn(place: Place, dir: string | undefined): Promise<void> {
  if (!dir || isLocal(place) || dir === '/' || !dir.startsWith('/')) return;
  await place.exec('rm', ['-rf', '--', dir], { allowFail: true });
}

/** fortio on every machine of a --hosts run: the client's and the apps' machines must agree on the path (the load and servers are started by it). */
export async function fortioOnHosts(hosts: Hosts): Promise<string> {
  const paths = await Promise.all(hosts.places.map((p) => p.findTool('fortio')));
  const distinct = [...new Set(paths)];
  if (distinct.length !== 1 || !distinct[0])
    throw envError(
      `fortio is at different paths on the hosts (${hosts.places.map((p, i) => `${p.name}: ${paths[i] ?? 'missing'}`).join(', ')})`,
      'install it the same way on every machine (scripts/setup.sh puts it in <meshbench>/.tools/bin; give every host the same meshbenchDir)',
    );
  return distinct[0];
}

/** Run prefixes with objects on a machine: its state files and directories, namespaces, cgroups. */
export async function prefixesOn(place: Place): Promise<string[]> {
  const script =
    'ls /run/meshbench 2>/dev/null; ip netns list 2>/dev/null; d=$(awk \'$3 == "cgroup2" { print $2; exit }\' /proc/self/mounts); [ -n "$d" ] && ls "$d"; exit 0';
  const r = await place.exec('sh', ['-c', script]);
  const found = r.stdout.split(/\s+/).map((w) => /^(mb[0-9a-z]{4})(?:-|\.json$|$)/.exec(w)?.[1]);
  return [...new Set(found.filter((p): p is string => !!p && PREFIX_RE.test(p)))].sort();
}

/**
 * `meshbench down --hosts`: on every machine of the inventory, what `down` does here, for one run
 * prefix or every one found there (a controller killed mid-run leaves its objects on the machines);
 * one line per machine saying what went.
 */
export async function downOnHosts(spec: string, prefix?: string, log: (m: string) => void = () => {}): Promise<string> {
  if (prefix !== undefined) checkPrefix(prefix);
  const inventory = await hostsInventory(spec);
  if (!(await which('ssh'))) throw envError('ssh (the OpenSSH client) is not installed', 'install openssh-client (scripts/setup.sh does)');
  const ssh = new SshRunner({ connectTimeoutS: 10 });
  const places = inventory.hosts.map((h) => RemotePlace.of(ssh, h));
  try {
    await Promise.all(inventory.hosts.map((h) => ssh.host(hostTarget(h)).run(['true'], { timeoutMs: 30_000 })));
    const out = new Map<string, DownReport & { prefixes: string[] }>();
    for (const p of places) {
      const prefixes = prefix ? [prefix] : await prefixesOn(p);
      const total: DownReport & { prefixes: string[] } = { processes: 0, namespaces: 0, cgroups: 0, bpfPrograms: 0, tmpDirs: 0, interfaces: 0, prefixes };
      for (const x of prefixes) {
        const r = await sweepPlace(x, p);
        for (const k of ['processes', 'namespaces', 'cgroups', 'bpfPrograms', 'interfaces'] as const) total[k] = (total[k] ?? 0) + (r[k] ?? 0);
      }
      log(`${p.name}: ${prefixes.length ? `swept ${prefixes.join(', ')}` : 'nothing of the lab there'}`);
      out.set(p.name, total);
    }
    const line = ([host, x]: [string, DownReport]) =>
      `${host}: removed ${x.namespaces} namespace(s), ${x.processes} process(es), ${x.bpfPrograms} BPF program attachment(s), ${x.cgroups} cgroup tree(s), ${x.interfaces ?? 0} lab interface(s) given back\n`;
    return [...out].map(line).join('');
  } finally {
    for (const p of places) p.close();
    await ssh.close();
  }
}
