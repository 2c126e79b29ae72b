// The per-pod proxy family (Istio classic sidecar, Linkerd), built from a profile. For every meshed
// pod: a workload certificate from the run's mesh CA, nat capture rules inside the pod's
// namespace, and one proxy process in that namespace running as the excluded uid. Services keep
// their kube-proxy rules in the nodes, as in a real cluster; the proxies route by Service
// themselves and connect to pod addresses, so those rules are not on the meshed path.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { STATE_DIR } from '../../util/host.js';
import { waitListening } from '../../util/net.js';
import { pMap } from '../../util/pmap.js';
import { toolVersion } from '../../util/tools.js';
import type { Cluster, PodSpec } from '../../topology/graph.js';
import type { Scenario } from '../../scenario/schema.js';
import { applyCapture, describeCapture } from '../mesh/capture/index.js';
import { applyKubeProxy } from '../mesh/kube-proxy.js';
import { createMeshCA, spiffeId, type KeyType, type MeshCA } from '../mesh/ca.js';
import { TRUST_DOMAIN, inboundAuthz, outboundAuthz, outboundRoutes, outboundServices, routeTargets } from '../mesh/services.js';
import type { Dataplane, DataplaneContext, PodStartup } from '../types.js';
import { haproxy } from '../engine/haproxy.js';
import type { OutboundRoute, OutboundService, SidecarSpec } from '../engine/types.js';

export interface SidecarProfile {
  name: string;
  summary: string;
  standsFor?: string[];
  /** The real component HAProxy stands in for. */
  standInFor: string;
  captureProfile: 'istio' | 'linkerd';
  capture: () => string;
  uid: number;
  gid: number;
  outboundPort: number;
  inboundPort: number;
  threads: number;
  keyType: KeyType;
  upstream: 'h1' | 'h2';
  appSource?: string;
  origProtoHeader?: boolean;
  /** whole-mesh: every sidecar knows every Service (Istio without Sidecar scoping); used: only what the pod calls (Linkerd). */
  scope: 'whole-mesh' | 'used';
  loopbackLegs: number;
}

/** Services a pod calls in any workload of the scenario, plus where their routes lead. */
export function usedServices(s: Scenario, c: Cluster, pod: PodSpec, all: OutboundService[], routes: OutboundRoute[]): OutboundService[] {
  const names = new Set<string>();
  for (const w of s.workloads)
    w.chain.forEach((svc, i) => {
      const caller = i === 0 ? pod.role === 'client' : c.services.find((x) => x.name === w.chain[i - 1])?.backends.includes(pod);
      if (caller) names.add(svc);
    });
  const keys = new Set(all.filter((x) => names.has(x.name)).map((x) => x.key));
  for (const r of routes) if (keys.has(r.service)) routeTargets(r).forEach((k) => keys.add(k));
  return all.filter((x) => keys.has(x.key));
}

export function sidecarSpec(
  profile: SidecarProfile,
  s: Scenario,
  c: Cluster,
  pod: PodSpec,
  ca: { rootCertFile: string },
  bundleFile: string,
  all: OutboundService[],
  routes: OutboundRoute[],
): SidecarSpec {
  const services = profile.scope === 'whole-mesh' ? all : usedServices(s, c, pod, all, routes);
  const keys = new Set(services.map((x) => x.key));
  const inbound = c.services.filter((x) => x.backends.includes(pod)).map((x) => ({ port: x.targetPort, protocol: x.protocol }));
  return {
    pod: pod.name,
    netns: pod.netns,
    uid: profile.uid,
    gid: profile.gid,
    threads: profile.threads,
    outboundPort: profile.outboundPort,
    inboundPort: profile.inboundPort,
    appSource: profile.appSource,
    identity: { spiffeId: spiffeId(TRUST_DOMAIN, pod.namespace, pod.serviceAccount), bundleFile },
    rootCaFile: ca.rootCertFile,
    upstream: profile.upstream,
    services,
    routes: routes.filter((r) => keys.has(r.service)),
    inbound: [...new Map(inbound.map((p) => [p.port, p])).values()],
    authz: inboundAuthz(s, c, pod),
    egress: outboundAuthz(s, c, pod),
    adminSocket: join(STATE_DIR, c.prefix, `${pod.netns}.sock`),
    origProtoHeader: profile.origProtoHeader,
  };
}

export function sidecarDataplane(profile: SidecarProfile): Dataplane {
  return {
    name: profile.name,
    summary: profile.summary,
    standsFor: profile.standsFor,

    needs: [{ tool: 'haproxy' }, { tool: 'iptables-restore' }, { host: 'iptables REDIRECT' }],

    plan({ cluster: c, scenario: s }) {
      // The mesh CA's file names, as createMeshCA and issue() will write them.
      const ca = { rootCertFile: join('mesh-ca', 'root.pem') };
      const all = outboundServices(c);
      const routes = outboundRoutes(s, c);
      const configs: Record<string, string> = { capture: profile.capture() };
      for (const pod of c.pods.filter((p) => p.role !== 'idle'))
        configs[pod.name] = haproxy.renderSidecar(
          sidecarSpec(profile, s, c, pod, ca, join('mesh-ca', `${pod.namespace}.${pod.serviceAccount}.bundle.pem`), all, routes),
        );
      return { configs };
    },

    async deploy(ctx: DataplaneContext) {
      const { cluster: c, scenario: s } = ctx;
      const t0 = performance.now();
      const ca: MeshCA = await createMeshCA({ dir: join(ctx.caseDir, 'mesh-ca'), trustDomain: TRUST_DOMAIN, keyType: profile.keyType });
      const caMs = performance.now() - t0;
      await applyKubeProxy(c);
      const all = outboundServices(c);
      const routes = outboundRoutes(s, c);
      const proxyDir = join(ctx.caseDir, 'proxies');
      mkdirSync(proxyDir, { recursive: true });
      mkdirSync(join(STATE_DIR, c.prefix), { recursive: true });
      const meshed = c.pods.filter((p) => p.role !== 'idle');
      const startup: Record<string, PodStartup> = {};
      const configBytes: number[] = [];
      await pMap(meshed, 8, async (pod) => {
        const a = performance.now();
        const id = await ca.issue(pod.namespace, pod.serviceAccount);
        const b = performance.now();
        await applyCapture(pod.netns, profile.capture());
        const cc = performance.now();
        const spec = sidecarSpec(profile, s, c, pod, ca, id.bundleFile, all, routes);
        const cfg = haproxy.renderSidecar(spec);
        const file = join(proxyDir, `${pod.name}.cfg`);
        writeFileSync(file, cfg);
        configBytes.push(Buffer.byteLength(cfg));
        const proc = haproxy.start(ctx.procs, spec, file, join(proxyDir, `${pod.name}.log`), 'proxy');
        await waitListening(pod.netns, [profile.outboundPort, profile.inboundPort], 15000, proc);
        startup[pod.name] = { certificateMs: b - a, captureMs: cc - b, proxyMs: performance.now() - cc };
      });
      const capture = await describeCapture(profile.captureProfile);
      const tls = ca.describe();
      const meanBytes = Math.round(configBytes.reduce((x, y) => x + y, 0) / Math.max(1, configBytes.length));
      return {
        provenance: {
          proxy: {
            engine: 'haproxy',
            version: await haproxy.version(),
            standInFor: profile.standInFor,
            configBytes: meanBytes,
            configBytesTotal: configBytes.reduce((x, y) => x + y, 0),
            instances: meshed.length,
            threads: profile.threads,
            scope: profile.scope === 'whole-mesh' ? 'every Service and endpoint of the mesh in every sidecar' : 'only the Services the pod calls',
            mechanism: `one HAProxy per pod in the pod's namespace as uid ${profile.uid}; outbound :${profile.outboundPort} routes by original destination (SO_ORIGINAL_DST) to endpoints over pooled mTLS (${profile.upstream === 'h2' ? 'HTTP/2 multiplexed' : 'HTTP/1.1, HTTP/2 for gRPC'}); inbound :${profile.inboundPort} terminates mTLS, authorizes, forwards over loopback`,
          },
          capture: { engine: 'iptables', version: await toolVersion('iptables'), mechanism: capture.mechanism },
          'mesh-ca': {
            engine: tls.library,
            mechanism: `per-run root CA, ${tls.keyType} workload certificates (${tls.signature}), chain depth ${tls.chainDepth}, TTL ${tls.workloadTtlSeconds} s, one URI SAN spiffe://${tls.trustDomain}/ns/<ns>/sa/<sa>; TLS ${'1.3'} ${'TLS_AES_128_GCM_SHA256'}; CA set-up ${Math.round(caMs)} ms`,
          },
        },
        path: {
          userSpaceHops: 2,
          // The client's and the server's sidecar, at every hop of the chain.
          traversalsByRole: { proxy: 2 * Math.max(1, ctx.chain?.length ?? 1) },
          loopbackLegs: profile.loopbackLegs,
          redirect: capture.mechanism,
          encryption: `mTLS between the two proxies (TLS 1.3, ${profile.keyType}), connections pooled`,
          serviceRouting: 'in the client-side proxy, by original destination (kube-proxy rules present but bypassed)',
        },
        startup,
        adminSockets: Object.fromEntries(meshed.map((p) => [p.name, join(STATE_DIR, c.prefix, `${p.netns}.sock`)])),
      };
    },

    // Proxies are stopped with the run's other processes; capture rules and certificates live
    // in the pod namespaces and the case directory.
    async teardown() {},
  };
}
