// The eBPF family (`ebpf`, `ebpf-l7`): a sidecarless dataplane modelled on Cilium. Every request stays in
// the kernel: socket-level load balancing at connect() (cgroup/connect4 on the run's cgroup),
// identity-based policy in tc on the pods' host-side veths and on each node's network devices,
// delivery to local pods with bpf_redirect_peer, WireGuard between nodes (option encryption=none:
// plain native routing over the underlay, Cilium's default), and flow events from a ring buffer
// written to the run directory by one small agent per node (mb-flowd).
//
// Kernel objects: a private bpffs mounted at /run/meshbench/<prefix>/bpffs (unmounted at
// teardown; `meshbench down` unmounts leftovers), programs and maps pinned under it per node
// (<bpffs>/<node>/…) and for the socket LB (<bpffs>/lb/…), the socket-LB programs attached to the
// run's cgroup (detached at teardown before the cgroup goes; `down` detaches leftovers); tc
// filters live on links inside the lab's node namespaces and go with them.
// Nodes on several machines (`run --hosts`): the bpffs, the socket LB and its map entries once per
// machine (on that machine's run cgroup), everything of a node on its machine; kernel costs are
// summed over the machines (docs/hosts.md, ebpf/).
// Over 500 lines: deploy, plan and the L7 proxy planning share the pin layout and node-id scheme.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { envError, inputError, runError } from '../../errors.js';
import { shq } from '../../hosts/ssh.js';
import { isLocal, localPlace, makeDir, onHosts, placeOfNode, placesOf, putFile, type Place } from '../../place/index.js';
import { exec } from '../../util/exec.js';
import { detachCgroupPrograms } from '../../topology/cleanup.js';
import { STATE_DIR } from '../../util/host.js';
import { PROJECT_ROOT, findTool, installHint, toolVersion } from '../../util/tools.js';
import type { Cluster, NodeSpec } from '../../topology/graph.js';
import type { Dataplane, DataplaneContext, DataplaneOption, Deployed, PlanContext, Settings } from '../types.js';
import type { Need } from '../needs.js';
import { RESERVED, allocateIdentities, endpointPolicy, type EndpointPolicy, type Identities } from './identity.js';
import { AUTH_TYPE_SPIRE, EP_F_EGRESS_ENFORCED, EP_F_INGRESS_ENFORCED, applyUpdates, enc, update, type MapUpdate } from './maps.js';
import { WG_PORT, wireguardTxBytes, wireguardUp, wgDevice, type WireGuard } from './wireguard.js';
import { compileEgress, compileIngress, policyName } from '../mesh/policy/model.js';
import { ConfigWordError, haproxy, renderL7Proxy, spawnHaproxy, statsCommand, type NodeProxyConfig } from '../engine/haproxy.js';
import { L7_STATS_SUFFIX } from '../../probes/flows.js';
import { TRUST_DOMAIN, outboundRoutes, outboundServices, routeTargets } from '../mesh/services.js';
import type { L7IngressPort, L7ProxySpec, OutboundRoute, OutboundService } from '../engine/types.js';
import type { ProcessGroup } from '../../util/procs.js';
import { waitListening } from '../../util/net.js';
import { createMeshCA } from '../mesh/ca.js';
import type { AuthAgentConfig } from './auth-agent.js';

export const BPF_OBJECTS = { sockLb: 'sock_lb.o', lxc: 'lxc.o' } as const;
/** A built object in the meshbench checkout of the machine that loads it. */
const objectPath = (name: string, place: Place) => join(place.root, 'bpf', 'build', name);
export const bpffsDir = (prefix: string) => join(STATE_DIR, prefix, 'bpffs');
export const SOCK_HOOKS = [
  ['connect4', 'sock4_connect'],
  ['sendmsg4', 'sock4_sendmsg'],
  ['recvmsg4', 'sock4_recvmsg'],
] as const;

/** Where one node's programs and maps are pinned. */
export const nodePins = (prefix: string, n: NodeSpec) => {
  const dir = join(bpffsDir(prefix), n.name);
  return { dir, map: (m: string) => join(dir, 'maps', m), prog: (p: string) => join(dir, p) };
};
export const lbPins = (prefix: string) => {
  const dir = join(bpffsDir(prefix), 'lb');
  return { dir, map: (m: string) => join(dir, 'maps', m), prog: (p: string) => join(dir, p) };
};

/** The node-local ids the datapath uses for peers: 0 for this node, the node index for others. */
const nodeIdSeenFrom = (self: NodeSpec, other: NodeSpec) => (self === other ? 0 : other.index);

interface LinkInfo {
  ifindex: number;
  address: string;
}

async function links(netns: string): Promise<Map<string, LinkInfo>> {
  const r = await exec('ip', ['-j', 'link', 'show'], { netns });
  return new Map(
    (JSON.parse(r.stdout) as { ifname: string; ifindex: number; address: string }[]).map((l) => [l.ifname, { ifindex: l.ifindex, address: l.address }]),
  );
}

/** Each pod's eth0 MAC, read with one shell for all of a node's pods (on the node's machine). */
async function podMacs(n: NodeSpec, place: Place): Promise<Map<string, string>> {
  // /sys under nsenter --net still shows the root namespace's links, so ask ip.
  const script = n.pods.map((p) => `nsenter --net=/run/netns/${p.netns} ip -br link show ${p.podIf} | awk '{print $3}'`).join('\n');
  const r = await exec('sh', ['-s'], { input: script + '\n', place });
  const macs = r.stdout.trim().split('\n');
  return new Map(n.pods.map((p, i) => [p.name, macs[i]]));
}

function nodeUpdates(
  c: Cluster,
  n: NodeSpec,
  ids: Identities,
  policyOf: Map<string, EndpointPolicy>,
  l7: L7Plan | undefined,
  hostLinks: Map<string, LinkInfo>,
  macs: Map<string, string>,
): MapUpdate[] {
  const pin = nodePins(c.prefix, n);
  const u: MapUpdate[] = [];
  const ipcache = pin.map('mb_ipcache');
  for (const p of c.pods) {
    const home = c.nodes.find((x) => x.name === p.node)!;
    u.push(
      update(ipcache, enc.ipcacheKey(p.ip), enc.remoteEndpoint(ids.byPod.get(p.name)!, home === n ? undefined : home.underlayIp, nodeIdSeenFrom(n, home))),
    );
  }
  for (const other of c.nodes) {
    const id = other === n ? RESERVED.host : RESERVED.remoteNode;
    u.push(update(ipcache, enc.ipcacheKey(other.underlayIp), enc.remoteEndpoint(id, other === n ? undefined : other.underlayIp, nodeIdSeenFrom(n, other))));
    u.push(update(ipcache, enc.ipcacheKey(other.gatewayIp), enc.remoteEndpoint(id, other === n ? undefined : other.underlayIp, nodeIdSeenFrom(n, other))));
  }
  n.pods.forEach((p, i) => {
    const epId = i + 1;
    const pol = policyOf.get(p.name)!;
    const host = hostLinks.get(p.hostIf)!;
    const flags = (pol.ingressEnforced ? EP_F_INGRESS_ENFORCED : 0) | (pol.egressEnforced ? EP_F_EGRESS_ENFORCED : 0);
    u.push(
      update(
        pin.map('mb_lxc'),
        enc.endpointKey(p.ip),
        enc.endpointInfo({ ifindex: host.ifindex, epId, flags, identity: ids.byPod.get(p.name)!, mac: macs.get(p.name)!, nodeMac: host.address }),
      ),
    );
    for (const e of pol.entries)
      u.push(
        update(
          pin.map('mb_policy'),
          enc.policyKey({ epId, peer: e.peer, port: e.port, proto: e.proto, egress: e.egress }),
          // `ebpf` is L3/L4 only: a port with L7 rules is allowed at L4 for the peers those rules
          // name. `ebpf-l7` sends such ports to the node's L7 proxy.
          enc.policyEntry({ deny: e.deny, authType: e.authRequired ? AUTH_TYPE_SPIRE : 0, proxyPort: l7 && e.l7 && !e.deny ? l7.proxyPorts[e.port] : 0 }),
        ),
      );
  });
  for (const v of l7?.routed ?? []) u.push(update(pin.map('mb_l7lb'), enc.l7lbKey(v.vip, v.port), enc.l7lbEntry(L7_LB_PORT)));
  return u;
}

/** The node L7 proxy's listener for routed Services (ebpf-l7); ingress redirects use L7_FIRST_PORT + i. */
export const L7_LB_PORT = 15090;
const L7_FIRST_PORT = 15100;

export interface L7Plan {
  /** App port with ingress L7 rules → the proxy listener its connections are redirected to. */
  proxyPorts: Record<number, number>;
  /** Services balanced by the proxy (they have routes): not in the socket LB. */
  routed: { vip: string; port: number }[];
  routes: OutboundRoute[];
  /** The routed Services and every Service their routes lead to. */
  lbServices: OutboundService[];
}

/**
 * What `ebpf-l7` sends to the node proxies: every app port some ingress policy has L7 rules for
 * (one listener each, like Cilium's per-port redirects) and the routed Services. Egress L7 rules
 * are refused: the proxy here enforces destination-side rules only.
 */
export function l7Plan(s: DataplaneContext['scenario'], c: Cluster): L7Plan {
  const egress = c.pods.flatMap((p) =>
    compileEgress(s.policies, p, c)
      .ports.filter((x) => x.l7)
      .map(() => p),
  );
  if (egress.length) {
    const names = s.policies.filter((pol) => pol.egress?.some((r) => r.http || r.grpc)).map(policyName);
    throw inputError(
      'ebpf-l7 enforces L7 rules on ingress only',
      names.map((n) => `policy ${n} has egress HTTP/gRPC rules`),
      'state the L7 rules on the destination (ingress), or use a sidecar or ambient dataplane',
    );
  }
  const ports = [
    ...new Set(
      c.pods.flatMap((p) =>
        compileIngress(s.policies, p, c)
          .ports.filter((x) => x.l7 && x.port !== 'any')
          .map((x) => x.port as number),
      ),
    ),
  ].sort((a, b) => a - b);
  const routes = outboundRoutes(s, c);
  const routedKeys = new Set(routes.map((r) => r.service));
  const lbKeys = new Set(routes.flatMap((r) => [r.service, ...routeTargets(r)]));
  const services = outboundServices(c);
  return {
    proxyPorts: Object.fromEntries(ports.map((p, i) => [p, L7_FIRST_PORT + i])),
    routed: services.filter((x) => routedKeys.has(x.key)).map((x) => ({ vip: x.vip, port: x.port })),
    routes,
    lbServices: services.filter((x) => lbKeys.has(x.key)),
  };
}

/** Node L7 proxy traversals of one request along a chain of Services: one per routed Service, one per Service whose pods have L7 rules on its port. */
function l7Hops(c: Cluster, s: DataplaneContext['scenario'], plan: L7Plan, chain: string[]): number {
  return chain.reduce((hops, name) => {
    const svc = c.services.find((x) => x.name === name);
    if (!svc) return hops;
    const routed = plan.routed.some((r) => r.vip === svc.vip && r.port === svc.port);
    const l7 = svc.backends.some((b) => compileIngress(s.policies, b, c).ports.some((x) => x.l7 && x.port === svc.targetPort));
    return hops + (routed ? 1 : 0) + (l7 ? 1 : 0);
  }, 0);
}

/** The local pods' app ports with L7 rules, and who may send which requests there. */
function l7Ingress(s: DataplaneContext['scenario'], c: Cluster, n: NodeSpec, ids: Identities): L7IngressPort[] {
  return n.pods.flatMap((p) => {
    const ports = compileIngress(s.policies, p, c).ports.filter((x) => x.l7 && x.port !== 'any');
    return [...new Set(ports.map((x) => x.port as number))].map((port) => ({
      pod: p.name,
      netns: p.netns,
      ip: p.ip,
      port,
      protocol: c.services.find((x) => x.targetPort === port && x.backends.includes(p))?.protocol ?? 'http',
      rules: ports
        .filter((x) => x.port === port)
        .map((x) => ({
          identities:
            x.sources === 'any' ? ('any' as const) : [...new Set(x.sources.flatMap((g) => g.pods.map((name) => ids.byPod.get(name)!)))].sort((a, b) => a - b),
          l7: x.l7!,
        })),
    }));
  });
}

/** TPROXY in a node's namespace (Cilium's to-proxy rules): marked packets are delivered to the proxy listener named in the mark. */
async function tproxyRules(n: NodeSpec, ports: number[]): Promise<void> {
  await exec('ip', ['rule', 'add', 'fwmark', '0x200/0xf00', 'lookup', '2004', 'pref', '9'], { netns: n.netns });
  await exec('ip', ['route', 'add', 'local', '0.0.0.0/0', 'dev', 'lo', 'table', '2004'], { netns: n.netns });
  const rules = ports.map(
    (p) =>
      `-A PREROUTING -p tcp -m mark --mark 0x${((p << 16) | 0x200).toString(16)} -m comment --comment "meshbench: TPROXY to the node L7 proxy :${p}" -j TPROXY --on-port ${p} --on-ip 0.0.0.0 --tproxy-mark 0x200/0xffffffff`,
  );
  await exec('iptables-restore', ['--noflush'], { netns: n.netns, input: ['*mangle', ...rules, 'COMMIT', ''].join('\n') });
}

/** The node L7 proxy's admin socket. Unix socket paths are short (HAProxy: 97 bytes): under the lab's state directory, not the run's. */
export const l7AdminSocket = (prefix: string, node: string) => join(STATE_DIR, prefix, 'l7-proxy', `${node}.sock`);

/** What one node's L7 proxy serves: its pods' ingress L7 ports and, if there are routes, the routed Services; undefined = nothing. */
export function l7ProxySpec(c: Cluster, s: DataplaneContext['scenario'], plan: L7Plan, ids: Identities, n: NodeSpec, dir: string): L7ProxySpec | undefined {
  const ingress = l7Ingress(s, c, n, ids);
  if (!ingress.length && !plan.routes.length) return undefined;
  return {
    node: n.name,
    threads: 2,
    adminSocket: l7AdminSocket(c.prefix, n.name),
    mapDir: join(dir, n.name),
    proxyPorts: plan.proxyPorts,
    ingress,
    identities: [
      ...c.pods.map((p) => ({ ip: p.ip, identity: ids.byPod.get(p.name)! })),
      ...c.nodes.flatMap((o) => [o.underlayIp, o.gatewayIp].map((ip) => ({ ip, identity: o === n ? RESERVED.host : RESERVED.remoteNode }))),
    ],
    lb: plan.routes.length
      ? { port: L7_LB_PORT, routes: plan.routes, services: plan.lbServices, clients: n.pods.map((p) => ({ ip: p.ip, netns: p.netns })) }
      : undefined,
  };
}

interface RenderedL7Proxy extends NodeProxyConfig {
  node: NodeSpec;
  spec: L7ProxySpec;
}

/** Every node's L7 proxy configuration, rendered before anything is built: a rule HAProxy cannot express is bad input. */
export function renderL7Proxies(c: Cluster, s: DataplaneContext['scenario'], plan: L7Plan, ids: Identities, dir: string): RenderedL7Proxy[] {
  return c.nodes.flatMap((n) => {
    const spec = l7ProxySpec(c, s, plan, ids, n, dir);
    if (!spec) return [];
    try {
      return [{ node: n, spec, ...renderL7Proxy(spec) }];
    } catch (e) {
      // A string the engine cannot hold: the caller (run's plan step) points it at the scenario's line.
      if (e instanceof ConfigWordError) throw e;
      throw inputError(`the L7 rules cannot be given to the node proxy on ${n.name}`, [e instanceof Error ? e.message : String(e)]);
    }
  });
}

/** One L7 proxy per node that has something for it: ingress L7 ports, or routed Services. */
async function startL7Proxies(
  rendered: RenderedL7Proxy[],
  plan: L7Plan,
  procs: ProcessGroup,
  dir: string,
  flowDir: string,
): Promise<{ nodes: string[]; configBytes: number }> {
  const started: string[] = [];
  let configBytes = 0;
  await Promise.all(
    rendered.map(async ({ node: n, spec, config, maps }) => {
      mkdirSync(spec.mapDir, { recursive: true });
      mkdirSync(dirname(spec.adminSocket), { recursive: true });
      for (const [path, text] of Object.entries(maps)) writeFileSync(path, text);
      const file = join(dir, `${n.name}.cfg`);
      writeFileSync(file, config);
      configBytes += Buffer.byteLength(config);
      const ports = [...new Set([...spec.ingress.map((x) => plan.proxyPorts[x.port]), ...(spec.lb ? [spec.lb.port] : [])])];
      await tproxyRules(n, ports);
      const proc = spawnHaproxy(procs, {
        name: `l7-proxy-${n.name}`,
        role: 'l7-proxy',
        netns: n.netns,
        configFile: file,
        logFile: join(flowDir, `${n.name}-l7.jsonl`),
      });
      await waitListening(n.netns, ports, 15000, proc);
      started.push(n.name);
    }),
  );
  return { nodes: started.sort(), configBytes };
}

/**
 * Each node L7 proxy's count of request records it could not write (HAProxy's DroppedLogs: with
 * `log stdout`, a thread that finds the output busy drops its line and counts it, like Hubble's
 * lost events), written as flows/<node>-l7-stats.json for the flow summary. A proxy that is gone
 * (a failed case) leaves no file.
 */
async function writeL7Stats(prefix: string, nodes: string[], flowDir: string): Promise<void> {
  for (const node of nodes) {
    const info = await statsCommand(l7AdminSocket(prefix, node), 'show info').catch(() => '');
    const dropped = /^DroppedLogs: (\d+)/m.exec(info)?.[1];
    if (dropped !== undefined)
      writeFileSync(
        join(flowDir, `${node}${L7_STATS_SUFFIX}`),
        JSON.stringify({ node, droppedLogs: Number(dropped), source: 'HAProxy show info (DroppedLogs)' }) + '\n',
      );
  }
}

/** Cilium's mutual-auth port (mesh-auth-mutual-listener-port). */
export const AUTH_PORT = 4250;
const AUTH_EXPIRY_SECONDS = 3600;

/**
 * The agent's entry point: compiled JavaScript next to this file, or the TypeScript source under
 * tsx (tests); on another machine the same file of that machine's checkout, run by its `node`.
 */
export function authAgentCommand(config: string, place: Place = localPlace, here = fileURLToPath(import.meta.url)): { cmd: string; args: string[] } {
  const ts = here.endsWith('.ts');
  const file = join(dirname(here), ts ? 'auth-agent.ts' : 'auth-agent.js');
  const flags = ts ? ['--import', 'tsx'] : [];
  if (isLocal(place)) return { cmd: process.execPath, args: [...flags, file, config] };
  return { cmd: 'node', args: [...flags, join(place.root, relative(PROJECT_ROOT, file)), config] };
}

/**
 * One mutual-authentication agent per node (Cilium's auth manager with SPIRE), started when some
 * policy entry requires authentication: each identity gets a SPIFFE certificate from the run's CA
 * (the workloads' namespace and service account); a node's agent holds only its local identities'
 * keys. On an AUTH_REQUIRED drop the agent handshakes (TLS 1.3) with the agent of the peer's node
 * at its underlay address and writes the auth map entry.
 */
async function startAuthAgents(c: Cluster, ids: Identities, procs: ProcessGroup, dir: string, flowDir: string): Promise<{ ms: number; identities: number }> {
  const t0 = performance.now();
  mkdirSync(dir, { recursive: true });
  const ca = await createMeshCA({ dir: join(dir, 'ca'), trustDomain: TRUST_DOMAIN, keyType: 'ecdsa-p256' });
  const certs = new Map<number, { spiffeId: string; certFile: string; keyFile: string }>();
  for (const [id] of ids.labels) {
    const p = c.pods.find((x) => ids.byPod.get(x.name) === id)!;
    const w = await ca.issue(p.namespace, p.serviceAccount);
    certs.set(id, { spiffeId: w.spiffeId, certFile: w.certFile, keyFile: w.keyFile });
  }
  await Promise.all(
    c.nodes.map(async (n) => {
      const local = new Set(n.pods.map((p) => ids.byPod.get(p.name)!));
      const config: AuthAgentConfig = {
        node: n.name,
        listen: { ip: n.underlayIp, port: AUTH_PORT },
        authMap: nodePins(c.prefix, n).map('mb_auth'),
        flowsFile: join(flowDir, `${n.name}.jsonl`),
        rootCaFile: ca.rootCertFile,
        // Keys of local identities only; peers' SPIFFE IDs to check their certificates against.
        identities: Object.fromEntries([...certs].map(([id, x]) => [id, local.has(id) ? x : { spiffeId: x.spiffeId, certFile: '', keyFile: '' }])),
        endpoints: Object.fromEntries(c.pods.map((p) => [p.ip, { identity: ids.byPod.get(p.name)!, node: p.node }])),
        nodes: Object.fromEntries(c.nodes.map((o) => [o.name, { agentIp: o.underlayIp, nodeId: nodeIdSeenFrom(n, o) }])),
        expirySeconds: AUTH_EXPIRY_SECONDS,
      };
      const place = placeOfNode(n.index);
      // Another machine gets the files its agent reads: the root certificate, its identities' certificates and keys.
      if (!isLocal(place)) {
        await putFile(place, ca.rootCertFile, readFileSync(ca.rootCertFile, 'utf8'));
        for (const id of local) {
          const x = certs.get(id)!;
          await putFile(place, x.certFile, readFileSync(x.certFile, 'utf8'));
          await putFile(place, x.keyFile, readFileSync(x.keyFile, 'utf8'), { mode: 0o600 });
        }
      }
      const file = join(dir, `${n.name}.json`);
      await putFile(place, file, JSON.stringify(config, null, 1));
      const { cmd, args } = authAgentCommand(file, place);
      const proc = await procs.startAsync({
        name: `authd-${n.name}`,
        role: 'agent',
        cmd,
        args,
        netns: n.netns,
        logFile: join(dir, `${n.name}.log`),
        cwd: place.root,
      });
      await waitListening(n.netns, AUTH_PORT, 15000, proc);
    }),
  );
  return { ms: Math.round(performance.now() - t0), identities: certs.size };
}

function lbUpdates(c: Cluster, skip: { vip: string; port: number }[] = []): MapUpdate[] {
  const pin = lbPins(c.prefix);
  const u: MapUpdate[] = [];
  let backendId = 0;
  c.services.forEach((s, k) => {
    if (!s.backends.length || skip.some((x) => x.vip === s.vip && x.port === s.port)) return;
    u.push(update(pin.map('mb_lb4_services'), enc.lb4Key(s.vip, s.port, 0), enc.lb4Service(0, s.backends.length, k + 1)));
    s.backends.forEach((b, i) => {
      backendId++;
      u.push(update(pin.map('mb_lb4_backends'), enc.u32Key(backendId), enc.lb4Backend(b.ip, s.targetPort)));
      u.push(update(pin.map('mb_lb4_services'), enc.lb4Key(s.vip, s.port, i + 1), enc.lb4Service(backendId, 0, k + 1)));
    });
  });
  return u;
}

export interface KernelCost {
  bpfMapBytes: number;
  bpfRunTimeNs: number;
  bpfRunCount: number;
}

/** One shell for one machine: `M <bpftool json>` per map pinned in `mapDirs`, `P <bpftool json>` per program in `progs`. */
export function kernelCostScript(mapDirs: string[], progs: string[]): string {
  return (
    [
      `for d in ${mapDirs.map(shq).join(' ')}; do for f in "$d"/*; do [ -e "$f" ] || continue; echo "M $(bpftool -j map show pinned "$f" 2>/dev/null)"; done; done`,
      `for f in ${progs.map(shq).join(' ')}; do echo "P $(bpftool -j prog show pinned "$f" 2>/dev/null)"; done`,
    ].join('\n') + '\n'
  );
}

/** kernelCostScript's output summed (a map or program bpftool could not show counts 0). */
export function parseKernelCost(out: string): KernelCost {
  const k: KernelCost = { bpfMapBytes: 0, bpfRunTimeNs: 0, bpfRunCount: 0 };
  for (const line of out.split('\n')) {
    let j: Record<string, unknown> | null;
    try {
      j = JSON.parse(line.slice(2));
    } catch {
      continue;
    }
    if (!j || typeof j !== 'object') continue;
    if (line.startsWith('M ')) k.bpfMapBytes += Number(j.bytes_memlock ?? 0);
    else if (line.startsWith('P ')) {
      k.bpfRunTimeNs += Number(j.run_time_ns ?? 0);
      k.bpfRunCount += Number(j.run_cnt ?? 0);
    }
  }
  return k;
}

/**
 * Sum of map memory and program run time of everything pinned for this run: one shell per
 * machine (its socket LB and its nodes' programs), summed over machines (the socket LB is one
 * copy per machine, as Cilium's is per node).
 */
async function kernelCost(prefix: string, c: Cluster): Promise<KernelCost> {
  const each = await Promise.all(
    placesOf(c.nodes).map(async (place) => {
      const nodes = c.nodes.filter((n) => placeOfNode(n.index) === place);
      const mapDirs = [lbPins(prefix).dir, ...nodes.map((n) => nodePins(prefix, n).dir)].map((d) => join(d, 'maps'));
      const progs = [
        ...SOCK_HOOKS.map(([, p]) => lbPins(prefix).prog(p)),
        ...nodes.flatMap((n) => ['from_container', 'from_network', 'from_netdev'].map((p) => nodePins(prefix, n).prog(p))),
      ];
      const r = await exec('sh', ['-s'], { input: kernelCostScript(mapDirs, progs), allowFail: true, place });
      return parseKernelCost(r.stdout);
    }),
  );
  return each.reduce((a, k) => ({
    bpfMapBytes: a.bpfMapBytes + k.bpfMapBytes,
    bpfRunTimeNs: a.bpfRunTimeNs + k.bpfRunTimeNs,
    bpfRunCount: a.bpfRunCount + k.bpfRunCount,
  }));
}

/** How the nodes encrypt, for the record: one kind, or each node's when machines differ. */
export function wgSummary(wg: Pick<WireGuard, 'implementation' | 'perNode'>): { mechanism: string; path: string } {
  if (wg.implementation === 'mixed') {
    const each = Object.entries(wg.perNode)
      .map(([node, kind]) => `${node} ${kind}`)
      .join(', ');
    return {
      mechanism: `per node, as each machine's kernel allows: ${each} (wireguard-go's CPU and memory are counted under the wireguard role)`,
      path: `mixed: ${each}`,
    };
  }
  return wg.implementation === 'wireguard-go'
    ? {
        mechanism: 'user-space wireguard-go (this kernel has no WireGuard module): its CPU and memory are counted under the wireguard role',
        path: 'wireguard-go, in user space',
      }
    : { mechanism: 'the kernel module', path: 'kernel' };
}

/** Identities, endpoint policies and (ebpf-l7) every node L7 proxy config: pure, for plan() and deploy. */
function planEbpf({ cluster: c, scenario: s }: PlanContext, l7: boolean, l7Dir: string) {
  const ids = allocateIdentities(c);
  const policyOf = new Map(c.pods.map((p) => [p.name, endpointPolicy(s.policies, p, c, ids)]));
  const plan = l7 ? l7Plan(s, c) : undefined;
  const l7Configs = plan ? renderL7Proxies(c, s, plan, ids, l7Dir) : [];
  const configs: Record<string, string> = {};
  for (const x of l7Configs) {
    configs[x.node.name] = x.config;
    Object.assign(configs, x.maps);
  }
  return { ids, policyOf, plan, l7Configs, configs };
}

const EBPF_NEEDS: Need[] = [
  { tool: 'bpftool' },
  { tool: 'tc' },
  { tool: 'wg' },
  { tool: 'wireguard-go' },
  { tool: 'mb-flowd' },
  { tool: 'mount' },
  { tool: 'clang', toBuild: true },
  { tool: 'llc', toBuild: true },
  { host: 'libbpf headers' },
  ...Object.values(BPF_OBJECTS).map((f) => ({ file: `bpf/build/${f}`, fix: 'run scripts/setup.sh (make -C bpf)' })),
  { host: 'prog sched_cls' },
  { host: 'prog cgroup_sock_addr' },
  { host: 'cgroup v2' },
  { host: 'bpffs' },
];
/** The node L7 proxy: HAProxy with namespace-aware servers and transparent listeners, TPROXY in the node namespaces. */
const L7_NEEDS: Need[] = [{ tool: 'haproxy' }, { tool: 'iptables-restore' }, { engine: 'haproxy', flags: ['NS', 'TPROXY'] }, { host: 'iptables TPROXY' }];

/** Tools only WireGuard uses (key generation, device set-up, the user-space fallback). */
const WG_TOOLS = new Set(['wg', 'wireguard-go']);

export type Encryption = 'none' | 'wireguard';

/**
 * Node-to-node encryption. The lab's default stays WireGuard (what every earlier run measured);
 * Cilium's own default is none, so claims are judged on `encryption=none`.
 */
export const ENCRYPTION_OPTION: DataplaneOption = {
  key: 'encryption',
  values: ['none', 'wireguard'],
  default: 'wireguard',
  product: 'none',
  summary: `pod traffic between nodes: wireguard (a WireGuard device per node, UDP ${WG_PORT}; wireguard-go where the kernel has no module) or none (native routing over the underlay, in clear: Cilium's default)`,
};

const encryptionOf = (s: Settings): Encryption => {
  const v = s.encryption ?? ENCRYPTION_OPTION.default;
  if (v !== 'none' && v !== 'wireguard') throw new Error(`encryption=${v} reached the eBPF dataplane unchecked`);
  return v;
};

export interface EbpfOptions {
  name: string;
  /** What the kind does, without its encryption (the factory adds that). */
  summary: string;
  standsFor?: string[];
  l7: boolean;
  encryption: Encryption;
}

export function ebpfDataplane(o: EbpfOptions): Dataplane {
  const wireguard = o.encryption === 'wireguard';
  return {
    name: o.name,
    summary: `${o.summary}; ${wireguard ? 'WireGuard between nodes' : "no encryption between nodes (native routing, Cilium's default)"}`,
    standsFor: o.standsFor,

    needs: [...EBPF_NEEDS.filter((n) => wireguard || !('tool' in n && WG_TOOLS.has(n.tool))), ...(o.l7 ? L7_NEEDS : [])],
    options: [ENCRYPTION_OPTION],
    settings: { encryption: o.encryption },
    configure: (s: Settings, name: string) => ebpfDataplane({ ...o, name, encryption: encryptionOf(s) }),

    plan(p: PlanContext) {
      return { configs: planEbpf(p, o.l7, 'l7-proxy').configs };
    },

    async deploy(ctx: DataplaneContext): Promise<Deployed> {
      const { cluster: c, scenario: s } = ctx;
      if (o.l7 && onHosts())
        throw runError(
          `${o.name} does not run on the hosts backend yet: its node L7 proxies' configs, maps and admin sockets are on this host only; run ebpf (L3/L4) with --hosts`,
        );
      // Each machine of the run once (one, this host, unless an inventory placed the nodes).
      const places = placesOf(c.nodes);
      const cgroups = new Map<Place, string>();
      for (const place of places) {
        const cgroup = await ctx.procs.cgroupBaseOn(place);
        if (!cgroup)
          throw envError(
            `cgroup v2 is not mounted${isLocal(place) ? '' : ` on ${place.name}`}: the socket load balancer attaches to a cgroup v2 directory`,
            'mount cgroup2 (see meshbench doctor)',
          );
        cgroups.set(place, cgroup);
      }
      // Everything that can be bad input is worked out before the host is touched (plan() did it first).
      const { ids, policyOf, plan, l7Configs } = planEbpf(ctx, o.l7, join(ctx.caseDir, 'l7-proxy'));
      const fs = bpffsDir(c.prefix);
      for (const place of places) {
        await place.mkdir(fs);
        await exec('mount', ['-t', 'bpf', `${c.prefix}-bpffs`, fs], { place });
      }
      const t0 = performance.now();

      // Socket LB: one copy per machine, attached to its run cgroup (every lab process there is
      // below it), the way Cilium attaches once per node at its cgroup root. Same entries on each.
      const lb = lbPins(c.prefix);
      const lbEntries = lbUpdates(c, plan?.routed);
      for (const place of places) {
        await exec('bpftool', ['prog', 'loadall', objectPath(BPF_OBJECTS.sockLb, place), lb.dir, 'pinmaps', join(lb.dir, 'maps')], { place });
        for (const [hook, prog] of SOCK_HOOKS)
          await exec('bpftool', ['cgroup', 'attach', cgroups.get(place)!, hook, 'pinned', lb.prog(prog), 'multi'], { place });
        await applyUpdates(lbEntries, join(ctx.caseDir, 'bpf-lb.batch'), place);
      }

      // Without encryption nothing is added: the node namespaces already route other nodes' pod
      // CIDRs via their underlay addresses (topology/netns.ts), which is Cilium's native routing.
      const wg = wireguard ? await wireguardUp(c, ctx.procs, join(ctx.caseDir, 'wireguard')) : undefined;
      if (wg && wg.handshakes.done < wg.handshakes.of)
        ctx.log(`WireGuard: ${wg.handshakes.done} of ${wg.handshakes.of} node pairs handshook before the load; the others will on their first packet`);
      // Each machine's flow files land in its copy of the case directory (the run pulls them back);
      // identities.json is the controller's own.
      const flowDir = join(ctx.caseDir, 'flows');
      for (const place of places) await makeDir(place, flowDir);
      await Promise.all(
        c.nodes.map(async (n) => {
          const place = placeOfNode(n.index);
          const pin = nodePins(c.prefix, n);
          await exec('bpftool', ['prog', 'loadall', objectPath(BPF_OBJECTS.lxc, place), pin.dir, 'pinmaps', join(pin.dir, 'maps')], { place });
          const [hostLinks, macs] = await Promise.all([links(n.netns), podMacs(n, place)]);
          await applyUpdates(nodeUpdates(c, n, ids, policyOf, plan, hostLinks, macs), join(ctx.caseDir, `bpf-${n.name}.batch`), place);
          const tc = [
            ...n.pods.flatMap((p) => [`qdisc add dev ${p.hostIf} clsact`, `filter add dev ${p.hostIf} ingress bpf da pinned ${pin.prog('from_container')}`]),
            ...(wg ? [`qdisc add dev ${wgDevice(c, n)} clsact`, `filter add dev ${wgDevice(c, n)} ingress bpf da pinned ${pin.prog('from_network')}`] : []),
            `qdisc add dev ${c.prefix}-ul clsact`,
            `filter add dev ${c.prefix}-ul ingress bpf da pinned ${pin.prog('from_netdev')}`,
          ];
          await exec('tc', ['-batch', '-'], { netns: n.netns, input: tc.join('\n') + '\n' });
          const flowd = await findTool('mb-flowd', place);
          if (!flowd) throw envError(`mb-flowd not found${isLocal(place) ? '' : ` on ${place.name}`}`, installHint('mb-flowd'));
          await ctx.procs.startAsync({
            name: `flowd-${n.name}`,
            role: 'agent',
            cmd: flowd,
            args: [pin.map('mb_events'), n.name, join(flowDir, `${n.name}.jsonl`)],
            logFile: join(flowDir, `${n.name}.log`),
            place,
          });
        }),
      );
      const needsAuth = [...policyOf.values()].some((p) => p.entries.some((e) => e.authRequired));
      const auth = needsAuth ? await startAuthAgents(c, ids, ctx.procs, join(ctx.caseDir, 'auth'), flowDir) : undefined;
      const l7 = plan ? await startL7Proxies(l7Configs, plan, ctx.procs, join(ctx.caseDir, 'l7-proxy'), flowDir) : undefined;
      writeFileSync(
        join(flowDir, 'identities.json'),
        JSON.stringify(
          {
            identities: Object.fromEntries([...ids.labels].map(([id, l]) => [id, l])),
            endpoints: Object.fromEntries(c.pods.map((p) => [p.ip, { pod: p.name, namespace: p.namespace, node: p.node, identity: ids.byPod.get(p.name) }])),
            services: Object.fromEntries(c.services.map((x) => [x.vip, { namespace: x.namespace, name: x.name }])),
            reserved: RESERVED,
          },
          null,
          1,
        ),
      );
      const deployMs = Math.round(performance.now() - t0);
      // Tools from the first machine; the kernel of each (the distinct releases).
      const [clang, bpftool, releases] = await Promise.all([
        exec('clang', ['--version'], { allowFail: true, place: places[0] }).then((r) => r.stdout.split('\n')[0]),
        toolVersion('bpftool', places[0]),
        Promise.all(places.map(async (place) => (await exec('uname', ['-r'], { place })).stdout.trim())),
      ]);
      const kernels = [...new Set(releases)];
      const wgText = wg ? wgSummary(wg) : undefined;
      return {
        provenance: {
          ebpf: {
            engine: 'eBPF (clang -target bpf, loaded with bpftool, attached with bpftool cgroup and tc)',
            version: `${clang}; bpftool ${bpftool ?? '?'}; kernel${kernels.length > 1 ? 's' : ''} ${kernels.join(', ')}`,
            mechanism:
              `cgroup/connect4, sendmsg4, recvmsg4 on the run cgroup${places.length > 1 ? ` of each of the ${places.length} machines` : ''} rewrite Service VIP:port to a random backend at connect() (no DNAT rule anywhere); ` +
              `tc ingress on every pod host-side veth (from_container: egress policy, local ingress policy, bpf_redirect_peer to local pods) and on the ${wg ? 'WireGuard and underlay devices' : 'underlay device'} (ingress policy for local pods); ` +
              (wg ? '' : "no encryption between nodes: pod traffic to other nodes is routed over the underlay in clear (native routing, Cilium's default); ") +
              `identities from security labels (${ids.labels.size} in this run, from ${256}); policy keyed (endpoint, peer identity, direction, protocol, port); connection tracking per node; ` +
              (o.l7
                ? 'ports with L7 rules are redirected to the node L7 proxy'
                : 'L3/L4 only: ports with L7 rules are allowed at L4 for the identities the rules name'),
            deployMs,
          },
          ...(wg && wgText
            ? {
                wireguard: {
                  engine: wg.implementation,
                  version: wg.version,
                  handshakesBeforeLoad: `${wg.handshakes.done} of ${wg.handshakes.of} node pairs`,
                  mechanism: `one WireGuard device per node (${Object.values(wg.devices).join(', ')}), UDP ${WG_PORT}, peers allowed each other's pod CIDR; ${wgText.mechanism}`,
                },
              }
            : {}),
          ...(plan && l7?.nodes.length
            ? {
                'l7-proxy': {
                  engine: 'haproxy',
                  version: await haproxy.version(),
                  standInFor: "Envoy (Cilium's per-node L7 proxy)",
                  instances: l7.nodes.length,
                  nodes: l7.nodes,
                  configBytes: Math.round(l7.configBytes / Math.max(1, l7.nodes.length)),
                  proxyPorts: plan.proxyPorts,
                  mechanism:
                    'one HAProxy per node (HTTP mode) on transparent listeners; the tc programs mark connections to app ports with ingress L7 rules (and to routed Services) with 0x200 | port << 16, ' +
                    "the node's ip rule (fwmark 0x200/0xf00 → table 2004, local route) and iptables TPROXY rule deliver them to the listener with their original addresses; " +
                    "the source identity is looked up by address; requests are judged against the destination pod's L7 rules (403 otherwise) and delivered into the pod's namespace from the pod's own address (Cilium's Envoy keeps the client's); " +
                    "routed Services are balanced here (route, then a random endpoint) and the upstream connection is made from the client pod's namespace, so policy sees the client's identity; every request is logged as an L7 flow record. " +
                    'Connections to other ports never reach the proxy.',
                },
              }
            : {}),
          agent: {
            engine: auth ? 'mb-flowd + auth-agent (Node.js)' : 'mb-flowd',
            mechanism:
              'one mb-flowd per node: reads the node ring buffer of flow events (drops, and new connections as with Hubble monitor aggregation "medium") and appends them to flows/<node>.jsonl' +
              (auth
                ? `; one mutual-auth agent per node (Cilium's auth manager): on an AUTH_REQUIRED drop a TLS 1.3 handshake with the peer node's agent (port ${AUTH_PORT}, underlay) presenting both identities' SPIFFE certificates (ECDSA P-256 from the run's CA, ${auth.identities} identities, set up in ${auth.ms} ms), then an auth map entry valid ${AUTH_EXPIRY_SECONDS} s (or the certificates' remaining lifetime); the handshake itself travels over the underlay in TLS${wg ? ', not through WireGuard' : ''}`
                : '; no policy requires mutual authentication, so no auth agent runs'),
          },
        },
        path: {
          // Per request of the measured chain: each routed Service and each port with L7 rules adds a node proxy traversal.
          userSpaceHops: plan && l7?.nodes.length ? l7Hops(c, s, plan, ctx.chain ?? []) : 0,
          ...(plan && l7?.nodes.length ? { traversalsByRole: { 'l7-proxy': l7Hops(c, s, plan, ctx.chain ?? []) } } : {}),
          loopbackLegs: 0,
          redirect: `eBPF (cgroup/connect4 socket LB; tc programs on the pod veths)${l7?.nodes.length ? '; ports with L7 rules and routed Services: tc mark + TPROXY to the node L7 proxy' : ''}`,
          encryption: wgText
            ? `WireGuard between nodes (${wgText.path}); no per-connection handshake`
            : "none (native routing over the underlay, Cilium's default)",
          serviceRouting: `at connect() by cgroup/connect4 (no kube-proxy rules)${plan?.routed.length ? '; Services with routes by the node L7 proxy (route, then a random endpoint)' : ''}`,
        },
        kernelResources: async () => {
          const k = await kernelCost(c.prefix, c);
          // No WireGuard, no figure: absent rather than a 0 that would read as "measured, idle".
          return {
            bpfMapBytes: k.bpfMapBytes,
            bpfRunTimeNs: k.bpfRunTimeNs,
            bpfRunCount: k.bpfRunCount,
            ...(wg ? { wireguardTxBytes: await wireguardTxBytes(c) } : {}),
          };
        },
        ...(l7?.nodes.length ? { beforeStop: () => writeL7Stats(c.prefix, l7.nodes, flowDir) } : {}),
      };
    },

    async teardown(ctx: DataplaneContext) {
      // Detach while each run cgroup still exists (the process group removes them only at close):
      // programs on a removed cgroup stay loaded, out of reach, until the kernel frees it. By id,
      // so it works when the pins are gone too. Then each machine's bpffs.
      for (const place of placesOf(ctx.cluster.nodes)) {
        const cgroup = await ctx.procs.cgroupBaseOn(place);
        if (cgroup && (await place.exists(cgroup))) await detachCgroupPrograms(cgroup, place);
        await unmountBpffs(ctx.cluster.prefix, place);
      }
    },
  };
}

/** Unmount a run's private bpffs on `place` (the pins go with it; attached programs stay until their hooks go). */
export async function unmountBpffs(prefix: string, place: Place = localPlace): Promise<void> {
  const fs = bpffsDir(prefix);
  if (await place.exists(fs)) await exec('umount', ['-l', fs], { allowFail: true, place });
}
