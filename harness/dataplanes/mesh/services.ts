// The mesh as every dataplane sees it: the trust domain, each Service with its endpoints and their
// identities, routes, and the ingress/egress authorization of a pod in engine terms. Built from the
// policy model; shared by the sidecar, ambient and eBPF families.
import type { Cluster, PodSpec } from '../../topology/graph.js';
import type { Scenario } from '../../scenario/schema.js';
import { inputError } from '../../errors.js';
import { locate } from '../../scenario/load.js';
import { spiffeId } from './ca.js';
import { compileEgress, compileIngress, policyName, resolveRoutes, selects } from './policy/model.js';
import type { InboundAuthz, OutboundAuthz, OutboundRoute, OutboundService } from '../engine/types.js';

export const TRUST_DOMAIN = 'cluster.local';

export const serviceKey = (ns: string, name: string, port: number) => `${ns}_${name}_${port}`;

/** Every Service of the cluster as the proxies see it. */
export function outboundServices(c: Cluster): OutboundService[] {
  return c.services.map((s) => ({
    key: serviceKey(s.namespace, s.name, s.port),
    name: s.name,
    namespace: s.namespace,
    vip: s.vip,
    port: s.port,
    protocol: s.protocol,
    endpoints: s.backends.map((b) => ({ pod: b.name, ip: b.ip, port: s.targetPort, spiffeId: spiffeId(TRUST_DOMAIN, b.namespace, b.serviceAccount) })),
  }));
}

export function outboundRoutes(s: Scenario, c: Cluster): OutboundRoute[] {
  return resolveRoutes(s.routes ?? [], c).map((r) => ({
    service: serviceKey(r.service.namespace, r.service.name, r.service.port),
    // Every rule, in order, with its path prefix: a path-only rule is a match, not the split.
    rules: r.rules.map((x) => ({
      headers: x.headers,
      ...(x.pathPrefix ? { pathPrefix: x.pathPrefix } : {}),
      to: x.to.map((d) => ({ to: key(d.service), weight: d.weight })),
    })),
  }));
  function key(svc: { namespace: string; name: string; port: number }) {
    return serviceKey(svc.namespace, svc.name, svc.port);
  }
}

/** Every Service a route may send requests to (OutboundService keys). */
export const routeTargets = (r: OutboundRoute): string[] => [...new Set(r.rules.flatMap((x) => x.to.map((d) => d.to)))];

export function inboundAuthz(s: Scenario, c: Cluster, pod: PodSpec): InboundAuthz {
  const plan = compileIngress(s.policies ?? [], pod, c);
  return {
    enforced: plan.enforced,
    ports: plan.ports.map((p) => ({
      port: p.port,
      identities: p.sources === 'any' ? 'any' : [...new Set(p.sources.map((x) => spiffeId(TRUST_DOMAIN, x.namespace, x.serviceAccount)))],
      l7: p.l7,
    })),
  };
}

/**
 * Ingress authorization without identities (a plaintext mesh, mtls=off): each entry's peers by
 * their pods' addresses, what an ipBlock of the `from` pods would admit; L7 rules unchanged.
 */
export function addressAuthz(s: Scenario, c: Cluster, pod: PodSpec): InboundAuthz {
  const a = inboundAuthz(s, c, pod);
  const plan = compileIngress(s.policies ?? [], pod, c);
  return {
    ...a,
    ports: a.ports.map((p, i) => {
      const src = plan.ports[i]!.sources;
      return { ...p, addresses: src === 'any' ? 'any' : [...new Set(src.flatMap((x) => x.ips))] };
    }),
  };
}

/** A plaintext variant (`name`) cannot honour `auth: required`: E_INPUT naming each such policy that selects a meshed pod, at its line. */
export function refuseMutualAuth(name: string, s: Scenario, c: Cluster): void {
  const errors: string[] = [];
  (s.policies ?? []).forEach((p, i) => {
    const auth = [...(p.ingress ?? []), ...(p.egress ?? [])].some((r) => r.auth === 'required');
    if (!auth || !c.pods.some((pod) => pod.role !== 'idle' && selects(p, pod))) return;
    const where = locate(s.file, i < s.inlinePolicies ? ['policies', i] : ['policyFiles']);
    errors.push(`${where}: policy ${policyName(p)} requires mutual authentication (auth: required), which plain traffic between the proxies cannot give`);
  });
  if (errors.length) throw inputError(`${name} cannot enforce the policies of ${s.file}`, errors, 'use mtls=on for policies with auth: required');
}

export function outboundAuthz(s: Scenario, c: Cluster, pod: PodSpec): OutboundAuthz {
  const plan = compileEgress(s.policies ?? [], pod, c);
  if (!plan.enforced) return { enforced: false, allow: [] };
  const allow: OutboundAuthz['allow'] = [];
  for (const p of plan.ports) {
    const dests = p.destinations === 'any' ? [{ ips: ['0.0.0.0/0'] }] : p.destinations;
    for (const d of dests)
      for (const ip of d.ips) {
        allow.push({ ip, port: p.port });
        // A Service whose backends include an allowed pod may be reached by its VIP.
        for (const svc of c.services)
          if (svc.backends.some((b) => b.ip === ip) && (p.port === 'any' || svc.targetPort === p.port)) allow.push({ ip: svc.vip, port: svc.port });
      }
  }
  return { enforced: true, allow };
}
