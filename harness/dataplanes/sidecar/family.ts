// The per-pod proxy family (Istio classic sidecar, Linkerd), built from a profile. For every meshed
// pod: a workload certificate from the run's mesh CA, nat capture rules inside the pod's
// namespace, and one proxy process in that namespace running as the excluded uid. Services keep
// their kube-proxy rules in the nodes, as in a real cluster; the proxies route by Service
// themselves and connect to pod addresses, so those rules are not on the meshed path.
// Ablation variants (issue 17): `mtls=off` keeps the same proxies and HTTP processing over plain
// HTTP (no certificates; policy peers checked by pod address); `mode=capture-only` keeps the
// capture rules but the per-pod process is a TCP pass-through (policies unenforced, as baseline);
// `l7=off` keeps proxies, capture and mTLS but both proxies run in TCP mode (L7 rules at L4).
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
import { TRUST_DOMAIN, addressAuthz, inboundAuthz, outboundAuthz, outboundRoutes, outboundServices, routeTargets } from '../mesh/services.js';
import type { Dataplane, DataplaneContext, PodStartup, Settings } from '../types.js';
import { haproxy } from '../engine/haproxy.js';
import type { OutboundRoute, OutboundService, SidecarSpec } from '../engine/types.js';
import { SIDECAR_DEFAULTS, SIDECAR_OPTIONS, checkVariant, sidecarVariant, tcpMode, variantSummary, type SidecarVariant } from './variants.js';

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
  variant: SidecarVariant = { mtls: true, passThrough: false, l7: true },
): SidecarSpec {
  // capture-only: no Services, routes or policy reach the pass-through.
  const pass = variant.passThrough;
  const services = pass ? [] : profile.scope === 'whole-mesh' ? all : usedServices(s, c, pod, all, routes);
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
    authz: pass ? { enforced: false, ports: [] } : variant.mtls ? inboundAuthz(s, c, pod) : addressAuthz(s, c, pod),
    egress: pass ? { enforced: false, allow: [] } : outboundAuthz(s, c, pod),
    adminSocket: join(STATE_DIR, c.prefix, `${pod.netns}.sock`),
    origProtoHeader: profile.origProtoHeader,
    ...(variant.mtls ? {} : { transport: 'plain' as const }),
    ...(pass ? { passThrough: true } : {}),
    ...(tcpMode(variant) ? { l7: false } : {}),
  };
}

/** A sidecar kind from its profile; `settings` (checked by the registry) and `name` make a variant. */
export function sidecarDataplane(profile: SidecarProfile, settings: Settings = SIDECAR_DEFAULTS, name = profile.name): Dataplane {
  const v = sidecarVariant(settings);
  const extra = variantSummary(v);
  // Where the mesh CA would write a pod's files; nothing is issued when no variant uses TLS.
  const noCa = { rootCertFile: '' };
  return {
    name,
    summary: extra ? `${profile.summary}; ${extra}` : profile.summary,
    standsFor: profile.standsFor,
    options: SIDECAR_OPTIONS,
    settings,
    configure: (st, n) => sidecarDataplane(profile, st, n),

    needs: [{ tool: 'haproxy' }, { tool: 'iptables-restore' }, { host: 'iptables REDIRECT' }],

    plan({ cluster: c, scenario: s }) {
      checkVariant(name, v, s, c);
      // The mesh CA's file names, as createMeshCA and issue() will write them.
      const ca = v.mtls ? { rootCertFile: join('mesh-ca', 'root.pem') } : noCa;
      const all = outboundServices(c);
      const routes = outboundRoutes(s, c);
      const configs: Record<string, string> = { capture: profile.capture() };
      for (const pod of c.pods.filter((p) => p.role !== 'idle')) {
        const bundle = v.mtls ? join('mesh-ca', `${pod.namespace}.${pod.serviceAccount}.bundle.pem`) : '';
        configs[pod.name] = haproxy.renderSidecar(sidecarSpec(profile, s, c, pod, ca, bundle, all, routes, v));
      }
      return { configs };
    },

    async deploy(ctx: DataplaneContext) {
      const { cluster: c, scenario: s } = ctx;
      checkVariant(name, v, s, c);
      const t0 = performance.now();
      const ca: MeshCA | undefined = v.mtls
        ? await createMeshCA({ dir: join(ctx.caseDir, 'mesh-ca'), trustDomain: TRUST_DOMAIN, keyType: profile.keyType })
        : undefined;
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
        const id = ca ? await ca.issue(pod.namespace, pod.serviceAccount) : undefined;
        const b = performance.now();
        await applyCapture(pod.netns, profile.capture());
        const cc = performance.now();
        const spec = sidecarSpec(profile, s, c, pod, ca ?? noCa, id?.bundleFile ?? '', all, routes, v);
        const cfg = haproxy.renderSidecar(spec);
        const file = join(proxyDir, `${pod.name}.cfg`);
        writeFileSync(file, cfg);
        configBytes.push(Buffer.byteLength(cfg));
        const proc = haproxy.start(ctx.procs, spec, file, join(proxyDir, `${pod.name}.log`), 'proxy');
        await waitListening(pod.netns, [profile.outboundPort, profile.inboundPort], 15000, proc);
        startup[pod.name] = { ...(id ? { certificateMs: b - a } : {}), captureMs: cc - b, proxyMs: performance.now() - cc };
      });
      const capture = await describeCapture(profile.captureProfile);
      const meanBytes = Math.round(configBytes.reduce((x, y) => x + y, 0) / Math.max(1, configBytes.length));
      const hops = Math.max(1, ctx.chain?.length ?? 1);
      const upstream = profile.upstream === 'h2' ? 'HTTP/2 multiplexed' : 'HTTP/1.1, HTTP/2 for gRPC';
      const tcp = tcpMode(v);
      const mechanism = v.passThrough
        ? `one HAProxy per pod in the pod's namespace as uid ${profile.uid}, mode tcp: outbound :${profile.outboundPort} forwards to the original destination (SO_ORIGINAL_DST), inbound :${profile.inboundPort} forwards to the app over loopback; no TLS, no HTTP parsing, no authorization, no routing`
        : tcp
          ? `l7=off ablation: one HAProxy per pod in the pod's namespace as uid ${profile.uid}, mode tcp (no HTTP processing); outbound :${profile.outboundPort} picks the Service by original destination (SO_ORIGINAL_DST) and balances its endpoints round-robin per connection over ${v.mtls ? 'mTLS' : 'plain TCP (mtls=off)'}, one upstream connection per client connection; inbound :${profile.inboundPort} ${v.mtls ? 'terminates mTLS, authorizes the peer identity' : 'authorizes the peer by its pod address'} at the session (L7 rules enforced at L4 for the peers they name), forwards bytes over loopback`
          : `one HAProxy per pod in the pod's namespace as uid ${profile.uid}; outbound :${profile.outboundPort} routes by original destination (SO_ORIGINAL_DST) to endpoints over pooled ${v.mtls ? 'mTLS' : 'plain HTTP (mtls=off)'} (${upstream}); inbound :${profile.inboundPort} ${v.mtls ? 'terminates mTLS, authorizes' : 'authorizes the peer by its pod address'}, forwards over loopback`;
      const tls = ca?.describe();
      return {
        provenance: {
          proxy: {
            engine: 'haproxy',
            version: await haproxy.version(),
            standInFor: v.passThrough
              ? 'none: TCP pass-through (capture-only ablation)'
              : tcp
                ? `${profile.standInFor} in TCP mode (l7=off ablation)`
                : profile.standInFor,
            ...(v.passThrough || tcp ? { ablationOf: profile.standInFor } : {}),
            configBytes: meanBytes,
            configBytesTotal: configBytes.reduce((x, y) => x + y, 0),
            instances: meshed.length,
            threads: profile.threads,
            scope: v.passThrough
              ? 'no Services: bytes to the original destination'
              : profile.scope === 'whole-mesh'
                ? 'every Service and endpoint of the mesh in every sidecar'
                : 'only the Services the pod calls',
            policy: v.passThrough
              ? "not enforced (capture-only ablation, as baseline: the scenario's workloads are allowed flows)"
              : `${v.mtls ? 'peer SPIFFE ID from the mTLS certificate' : "peer by source pod address (no identity without mTLS: the `from` pods' addresses)"}, ${
                  tcp ? 'at the session only (l7=off ablation: L7 rules enforced at L4 for the peers they name)' : 'HTTP rules per request'
                }`,
            mechanism,
          },
          capture: { engine: 'iptables', version: await toolVersion('iptables'), mechanism: capture.mechanism },
          ...(tls
            ? {
                'mesh-ca': {
                  engine: tls.library,
                  mechanism: `per-run root CA, ${tls.keyType} workload certificates (${tls.signature}), chain depth ${tls.chainDepth}, TTL ${tls.workloadTtlSeconds} s, one URI SAN spiffe://${tls.trustDomain}/ns/<ns>/sa/<sa>; TLS ${'1.3'} ${'TLS_AES_128_GCM_SHA256'}; CA set-up ${Math.round(caMs)} ms`,
                },
              }
            : {}),
        },
        path: {
          userSpaceHops: 2,
          // The client's and the server's sidecar (or pass-through), at every hop of the chain.
          traversalsByRole: { proxy: 2 * hops },
          loopbackLegs: profile.loopbackLegs,
          redirect: capture.mechanism,
          encryption: v.passThrough
            ? 'none (capture-only ablation)'
            : v.mtls
              ? `mTLS between the two proxies (TLS 1.3, ${profile.keyType}), ${tcp ? 'one connection per client connection (l7=off: mode tcp)' : 'connections pooled'}`
              : tcp
                ? 'none (mtls=off ablation: plain TCP between the two proxies, one connection per client connection, l7=off)'
                : 'none (mtls=off ablation: plain HTTP between the two proxies, connections pooled)',
          serviceRouting: v.passThrough
            ? "iptables DNAT in the client's node (kube-proxy rules, as baseline): the pass-through forwards to the original destination"
            : tcp
              ? 'in the client-side proxy in TCP mode, by original destination, per connection (kube-proxy rules present but bypassed)'
              : 'in the client-side proxy, by original destination (kube-proxy rules present but bypassed)',
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
