// The per-node proxy family (Istio Ambient): one node proxy per node serving all of its pods,
// listeners inside each pod's namespace, mTLS tunnels between pods, identities held by the node
// proxy on behalf of its pods; optionally a waypoint per namespace for L7. Shared by `ambient`
// and `ambient-waypoint`. `ambient[mtls=off]` (issue 17 ablation): the same tunnels without TLS
// or certificates, policy peers by pod address; not offered with a waypoint (its ALPN leg).
import { chownSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { STATE_DIR } from '../../util/host.js';
import { waitListening } from '../../util/net.js';
import { pMap } from '../../util/pmap.js';
import { toolVersion } from '../../util/tools.js';
import type { Cluster, PodSpec } from '../../topology/graph.js';
import type { Scenario } from '../../scenario/schema.js';
import { applyKubeProxy } from '../mesh/kube-proxy.js';
import { ambientInpodRules, applyAmbientCapture } from '../mesh/capture/ambient.js';
import { describeCapture } from '../mesh/capture/index.js';
import { createMeshCA, spiffeId, type MeshCA } from '../mesh/ca.js';
import {
  TRUST_DOMAIN,
  addressAuthz,
  inboundAuthz,
  outboundAuthz,
  refuseMutualAuth,
  outboundRoutes,
  outboundServices,
  routeTargets,
  serviceKey,
} from '../mesh/services.js';
import type { Dataplane, DataplaneContext, DataplaneOption, PlanContext, PodStartup, Settings } from '../types.js';
import { haproxy, renderNodeProxy, renderWaypoint, spawnHaproxy } from '../engine/haproxy.js';
import type { InboundAuthz, NodeProxyPod, NodeProxySpec, OutboundService, Waypoint, WaypointSpec } from '../engine/types.js';
import { infraPod } from '../../topology/graph.js';
import { podUp } from '../../topology/netns.js';

/** Node proxy sockets are excluded from capture by this uid (HAProxy 2.6 cannot set SO_MARK). */
export const NODE_PROXY_UID = 1337;
/** What the node proxy keeps of its root privileges: setns into pod namespaces, IP_TRANSPARENT, reading keys. */
export const NODE_PROXY_CAPS = ['sys_admin', 'net_admin', 'dac_read_search'];

export interface CaptureModel {
  /** Install the in-pod redirect rules; returns a one-line description for the record. */
  apply(pod: PodSpec): Promise<void>;
  mechanism: string;
}

/** The in-pod rules istioCniCapture installs (no host touched). */
export const istioCniRules = () => ambientInpodRules({ exclude: { uid: NODE_PROXY_UID } });

/** istio-cni's in-pod rules, with the node proxy's sockets excluded by uid (see NODE_PROXY_UID). */
export async function istioCniCapture(): Promise<CaptureModel> {
  const opts = { exclude: { uid: NODE_PROXY_UID } };
  const rules = ambientInpodRules(opts);
  const d = await describeCapture({ kind: 'ambient', opts });
  return {
    mechanism: `${d.mechanism} (istio-cni in-pod rules, DNS capture on as upstream's default; the node proxy's own sockets excluded by uid ${NODE_PROXY_UID} instead of mark 0x539)`,
    apply: (pod) => applyAmbientCapture(pod.netns, rules).then(() => undefined),
  };
}

export interface NodeProxyOptions {
  name: string;
  summary: string;
  standsFor?: string[];
  capture: () => Promise<CaptureModel>;
  threads: number;
  keepSourceIp: boolean;
  /** A waypoint per namespace for Services with L7 policy or routes. */
  waypoint: boolean;
}

/** `ambient`'s switches (none for ambient-waypoint). */
export const NODE_PROXY_OPTIONS: readonly DataplaneOption[] = [
  {
    key: 'mtls',
    values: ['on', 'off'],
    default: 'on',
    summary: 'off: node proxies tunnel in plaintext (PROXY v2 to :15008, no TLS, no certificates); policy peers are checked by pod address',
  },
];

export function nodeProxyPods(
  s: Scenario,
  c: Cluster,
  node: string,
  identities: Map<string, string>,
  waypoints: Waypoint[] = [],
  plain = false,
): NodeProxyPod[] {
  return c.pods
    .filter((p) => p.node === node && p.role !== 'idle')
    .map((p) => ({
      pod: p.name,
      netns: p.netns,
      ip: p.ip,
      identity: { spiffeId: podSpiffeId(p), bundleFile: identities.get(p.name)! },
      inbound: c.services.filter((x) => x.backends.includes(p)).map((x) => ({ vip: x.vip, port: x.port, targetPort: x.targetPort, protocol: x.protocol })),
      authz: plain ? addressAuthz(s, c, p) : withWaypoints(inboundAuthz(s, c, p), p, c, waypoints),
      egress: outboundAuthz(s, c, p),
    }));
}

const podSpiffeId = (p: PodSpec) => spiffeId(TRUST_DOMAIN, p.namespace, p.serviceAccount);

/** A pod behind a waypoint also accepts the waypoint's identity: the waypoint has already applied its policy. */
function withWaypoints(a: InboundAuthz, pod: PodSpec, c: Cluster, waypoints: Waypoint[]): InboundAuthz {
  const fronting = waypoints.filter((w) => c.services.some((x) => x.backends.includes(pod) && w.services.includes(serviceKey(x.namespace, x.name, x.port))));
  if (!a.enforced || !fronting.length) return a;
  return { ...a, ports: a.ports.map((p) => (p.identities === 'any' ? p : { ...p, identities: [...p.identities, ...fronting.map((w) => w.spiffeId)] })) };
}

/** One node's proxy: every local meshed pod, the node's tables; undefined when the node has no meshed pod. */
function nodeProxySpec(
  o: NodeProxyOptions,
  s: Scenario,
  c: Cluster,
  node: string,
  identities: Map<string, string>,
  waypoints: Waypoint[],
  all: OutboundService[],
  rootCaFile: string,
  mapDir: string,
  netns: string,
  adminSocket = join(STATE_DIR, c.prefix, 'node-proxy', `${netns}.sock`),
  plain = false,
): NodeProxySpec | undefined {
  const pods = nodeProxyPods(s, c, node, identities, waypoints, plain);
  if (!pods.length) return undefined;
  return {
    node,
    netns,
    threads: o.threads,
    outboundPort: 15001,
    inboundPlainPort: 15006,
    tunnelPort: 15008,
    rootCaFile,
    adminSocket,
    pods,
    services: all,
    workloads: c.pods.filter((p) => p.role !== 'idle').map((p) => ({ ip: p.ip, spiffeId: podSpiffeId(p) })),
    mapDir,
    keepSourceIp: o.keepSourceIp,
    waypoints,
    ...(plain ? { transport: 'plain' as const } : {}),
  };
}

export function nodeProxyDataplane(o: NodeProxyOptions, settings: Settings = { mtls: 'on' }, name = o.name): Dataplane {
  const mtls = settings.mtls !== 'off';
  const plain = !mtls;
  return {
    name,
    summary: mtls ? o.summary : `${o.summary}; mtls=off ablation: plaintext tunnels, policy peers by pod address`,
    standsFor: o.standsFor,
    ...(o.waypoint ? {} : { options: NODE_PROXY_OPTIONS, settings, configure: (st: Settings, n: string) => nodeProxyDataplane(o, st, n) }),

    needs: [
      { tool: 'haproxy' },
      { tool: 'iptables-restore' },
      { tool: 'setpriv' },
      { engine: 'haproxy', flags: ['NS', 'TPROXY'] },
      { host: 'iptables TPROXY' },
    ],

    plan(p: PlanContext) {
      const { cluster: c, scenario: s } = p;
      if (plain) refuseMutualAuth(name, s, c);
      const all = outboundServices(c);
      // Where the mesh CA would write its files; none with mtls=off.
      const rootCaFile = plain ? '' : join('mesh-ca', 'root.pem');
      const bundle = (ns: string, sa: string) => (plain ? '' : join('mesh-ca', `${ns}.${sa}.bundle.pem`));
      const rules = istioCniRules();
      const configs: Record<string, string> = { capture: rules.iptables, 'capture routes': rules.ipRoute.join('\n') };
      const waypoints = o.waypoint ? waypointPlans(c, s, all, rootCaFile, (ns) => bundle(ns, 'waypoint')) : [];
      for (const w of waypoints) configs[`waypoint-${w.namespace}`] = renderWaypoint(w.spec);
      const identities = new Map(c.pods.map((x) => [x.name, bundle(x.namespace, x.serviceAccount)]));
      for (const n of c.nodes) {
        const spec = nodeProxySpec(
          o,
          s,
          c,
          n.name,
          identities,
          waypoints.map((w) => w.waypoint),
          all,
          rootCaFile,
          join('node-proxies', n.name),
          n.netns,
          undefined,
          plain,
        );
        if (!spec) continue;
        const { config, maps } = renderNodeProxy(spec);
        configs[n.name] = config;
        for (const [file, text] of Object.entries(maps)) configs[file] = text;
      }
      return { configs };
    },

    async deploy(ctx: DataplaneContext) {
      const { cluster: c, scenario: s } = ctx;
      if (plain) refuseMutualAuth(name, s, c);
      const ca: MeshCA | undefined = mtls
        ? await createMeshCA({ dir: join(ctx.caseDir, 'mesh-ca'), trustDomain: TRUST_DOMAIN, keyType: 'rsa-2048' })
        : undefined;
      await applyKubeProxy(c);
      const capture = await o.capture();
      const all = outboundServices(c);
      const dir = join(ctx.caseDir, 'node-proxies');
      mkdirSync(dir, { recursive: true });
      // The node proxy never runs as root: its admin sockets go in a directory it owns.
      const sockDir = join(STATE_DIR, c.prefix, 'node-proxy');
      mkdirSync(sockDir, { recursive: true });
      chownSync(sockDir, NODE_PROXY_UID, NODE_PROXY_UID);

      // Adding a pod to the mesh: its identity (held by the node proxy) and its capture rules.
      // No proxy starts for it.
      const startup: Record<string, PodStartup> = {};
      const identities = new Map<string, string>();
      const meshPods = c.pods.filter((p) => p.role !== 'idle');
      await pMap(meshPods, 8, async (pod) => {
        const a = performance.now();
        const id = ca ? await ca.issue(pod.namespace, pod.serviceAccount) : undefined;
        identities.set(pod.name, id?.bundleFile ?? '');
        const b = performance.now();
        await capture.apply(pod);
        startup[pod.name] = { ...(id ? { certificateMs: b - a } : {}), captureMs: performance.now() - b };
      });

      const waypoints = o.waypoint && ca ? await startWaypoints(ctx, ca, all, dir) : [];

      const nodeStartMs: Record<string, number> = {};
      const configBytes: number[] = [];
      const adminSockets: Record<string, string> = {};
      await Promise.all(
        c.nodes.map(async (n) => {
          const spec = nodeProxySpec(
            o,
            s,
            c,
            n.name,
            identities,
            waypoints.map((w) => w.waypoint),
            all,
            ca?.rootCertFile ?? '',
            join(dir, n.name),
            n.netns,
            join(sockDir, `${n.netns}.sock`),
            plain,
          );
          if (!spec) return;
          const pods = spec.pods;
          const { config, maps } = renderNodeProxy(spec);
          const file = join(dir, `${n.name}.cfg`);
          writeFileSync(file, config);
          mkdirSync(spec.mapDir, { recursive: true });
          for (const [path, text] of Object.entries(maps)) writeFileSync(path, text);
          configBytes.push(Buffer.byteLength(config) + Object.values(maps).reduce((a, m) => a + Buffer.byteLength(m), 0));
          const t0 = performance.now();
          const proc = spawnHaproxy(ctx.procs, {
            name: `node-proxy-${n.name}`,
            role: 'node-proxy',
            netns: n.netns,
            configFile: file,
            logFile: join(dir, `${n.name}.log`),
            as: { uid: NODE_PROXY_UID, caps: NODE_PROXY_CAPS },
          });
          await Promise.all(pods.map((p) => waitListening(p.netns, [15001, 15006, 15008], 15000, proc)));
          nodeStartMs[n.name] = Math.round(performance.now() - t0);
          adminSockets[n.name] = spec.adminSocket;
          for (const p of pods) adminSockets[p.pod] = spec.adminSocket;
        }),
      );
      for (const w of waypoints) adminSockets[`waypoint-${w.namespace}`] = w.adminSocket;
      const tls = ca?.describe();
      const tunnel = mtls
        ? 'tunnel: mTLS to the endpoint pod :15008 presenting the source workload identity and checking the peer against its SPIFFE ID sent as SNI, the endpoint pod IP and app port in a PROXY v2 header sent before the TLS handshake (HBONE sends the same address inside TLS as the CONNECT authority), '
        : 'tunnel (mtls=off ablation): plain TCP to the endpoint pod :15008, the endpoint pod IP and app port in a PROXY v2 header, no TLS and no certificates; the destination checks policy peers by their pod address (the PROXY header source), ';
      return {
        provenance: {
          'node-proxy': {
            engine: 'haproxy',
            version: await haproxy.version(),
            standInFor: 'ztunnel',
            configBytes: Math.round(configBytes.reduce((a, b) => a + b, 0) / Math.max(1, configBytes.length)),
            instances: configBytes.length,
            threads: o.threads,
            startMs: nodeStartMs,
            mechanism:
              `one HAProxy per node, listeners 15001/15006/15008 bound inside each local pod's namespace (bind … namespace), connections made from the pod's namespace; ` +
              `runs as uid ${NODE_PROXY_UID} with ambient capabilities ${NODE_PROXY_CAPS.join(', ')}; its own sockets are excluded from capture by uid (HAProxy 2.6 cannot set SO_MARK, ztunnel marks 0x539); ` +
              "Service → endpoint from the node's tables (HAProxy map files shared by its pods: a uniformly random endpoint per connection), so the config grows with pods + Services, not pods × Services; " +
              tunnel +
              `one ${mtls ? 'TLS' : 'tunnel'} connection per client connection (HBONE multiplexes streams over pooled HTTP/2 connections); ` +
              `the destination delivers to that app port (from a waypoint: the port named in ALPN); delivery ${o.keepSourceIp ? "keeps the client's source address (IP_TRANSPARENT)" : "from the pod's own address"}`,
          },
          ...(o.waypoint
            ? {
                waypoint: {
                  engine: 'haproxy',
                  version: await haproxy.version(),
                  standInFor: 'Envoy (waypoint proxy)',
                  instances: waypoints.length,
                  configBytes: Math.round(waypoints.reduce((a, w) => a + w.configBytes, 0) / Math.max(1, waypoints.length)),
                  placement: Object.fromEntries(waypoints.map((w) => [w.namespace, w.node])),
                  mechanism:
                    "one HAProxy per namespace in its own pod (HTTP mode), the namespace enrolled as a whole (istio.io/use-waypoint): tunnels from source node proxies arrive with the source identity, the waypoint applies the Services' L7 policy and routes, then tunnels to the endpoint's node proxy with its own identity",
                },
              }
            : {}),
          capture: { engine: 'iptables', version: await toolVersion('iptables'), mechanism: capture.mechanism },
          ...(tls
            ? {
                'mesh-ca': {
                  engine: tls.library,
                  mechanism: `per-run root CA, ${tls.keyType} workload certificates held by the node proxies for their local service accounts`,
                },
              }
            : {}),
        },
        path: {
          userSpaceHops: o.waypoint ? 3 : 2,
          // Source and destination node proxy (the same process when both pods share a node), and the waypoint, at every hop.
          traversalsByRole: Object.fromEntries(
            Object.entries({ 'node-proxy': 2, waypoint: o.waypoint ? 1 : 0 })
              .filter(([, n]) => n > 0)
              .map(([r, n]) => [r, n * Math.max(1, ctx.chain?.length ?? 1)]),
          ),
          // app → in-pod listener and listener → app are local deliveries inside each pod's
          // namespace, as with a sidecar; the proxy process just lives outside the pod.
          loopbackLegs: 4,
          redirect: capture.mechanism,
          encryption: !mtls
            ? 'none (mtls=off ablation: plaintext tunnel between the two node proxies, one per client connection)'
            : o.waypoint
              ? 'two mTLS legs: source node proxy → waypoint → destination node proxy (TLS 1.3, rsa-2048)'
              : 'mTLS tunnel between the two node proxies (TLS 1.3, rsa-2048), one per client connection',
          serviceRouting: 'in the source node proxy, by original destination (kube-proxy rules present but bypassed)',
        },
        startup,
        adminSockets,
      };
    },

    async teardown() {},
  };
}

/**
 * One waypoint pod per namespace, placed on the node of its first Service's first backend. The
 * namespace is enrolled as a whole (Istio's `istio.io/use-waypoint` on the namespace): every
 * Service in it goes through the waypoint, and the waypoint applies their L7 policy and routes.
 * Pure: what deploy starts and plan renders.
 */
function waypointPlans(c: Cluster, s: Scenario, all: OutboundService[], rootCaFile: string, bundleFile: (ns: string) => string) {
  const routes = outboundRoutes(s, c);
  const l7 = all.filter((svc) => c.services.some((x) => x.namespace === svc.namespace && x.name === svc.name && x.backends.length));
  const perNode = new Map<string, number>();
  return [...new Set(l7.map((x) => x.namespace))].map((ns) => {
    const fronted = l7.filter((x) => x.namespace === ns);
    const first = c.services.find((x) => x.namespace === ns && x.name === fronted[0].name)!.backends[0];
    const node = c.nodes.find((n) => n.name === first.node)!;
    const k = perNode.get(node.name) ?? 0;
    perNode.set(node.name, k + 1);
    const pod = infraPod(c, node, k, `waypoint-${ns}`, ns, 'waypoint');
    const nsRoutes = routes.filter((r) => fronted.some((x) => x.key === r.service));
    const targetKeys = new Set([...fronted.map((x) => x.key), ...nsRoutes.flatMap(routeTargets)]);
    const id = spiffeId(TRUST_DOMAIN, ns, 'waypoint');
    const spec: WaypointSpec = {
      namespace: ns,
      threads: 2,
      port: 15008,
      tunnelPort: 15008,
      identity: { spiffeId: id, bundleFile: bundleFile(ns) },
      rootCaFile,
      adminSocket: join(STATE_DIR, c.prefix, `${pod.netns}.sock`),
      services: fronted.map((svc) => {
        const spec = c.services.find((x) => x.namespace === svc.namespace && x.name === svc.name)!;
        return {
          service: svc,
          targetPort: spec.targetPort,
          authz: spec.backends.length ? inboundAuthz(s, c, spec.backends[0]) : { enforced: false, ports: [] },
        };
      }),
      routes: nsRoutes,
      targets: all.filter((x) => targetKeys.has(x.key)),
    };
    const waypoint: Waypoint = { ip: pod.ip, port: 15008, spiffeId: id, services: fronted.map((x) => x.key) };
    return { namespace: ns, node: node.name, pod, spec, waypoint };
  });
}

async function startWaypoints(ctx: DataplaneContext, ca: MeshCA, all: OutboundService[], dir: string) {
  const { cluster: c, scenario: s } = ctx;
  const bundles = new Map<string, string>();
  for (const ns of waypointPlans(c, s, all, ca.rootCertFile, () => '').map((w) => w.namespace)) bundles.set(ns, (await ca.issue(ns, 'waypoint')).bundleFile);
  const out: { namespace: string; node: string; configBytes: number; adminSocket: string; waypoint: Waypoint }[] = [];
  for (const w of waypointPlans(c, s, all, ca.rootCertFile, (ns) => bundles.get(ns)!)) {
    await podUp(c, w.pod);
    const cfg = renderWaypoint(w.spec);
    const file = join(dir, `waypoint-${w.namespace}.cfg`);
    writeFileSync(file, cfg);
    const proc = spawnHaproxy(ctx.procs, {
      name: `waypoint-${w.namespace}`,
      role: 'waypoint',
      netns: w.pod.netns,
      configFile: file,
      logFile: join(dir, `waypoint-${w.namespace}.log`),
    });
    await waitListening(w.pod.netns, 15008, 15000, proc);
    out.push({ namespace: w.namespace, node: w.node, configBytes: Buffer.byteLength(cfg), adminSocket: w.spec.adminSocket, waypoint: w.waypoint });
  }
  return out;
}
