// The mesh as every dataplane sees it: the trust domain, each Service with its endpoints and their
// identities, routes, and the ingress/egress authorization of a pod in engine terms. Built from the
// policy model; shared by the sidecar, ambient and eBPF families.
import type { Cluster, PodSpec } from '../../topology/graph.js';
import type { Scenario } from '../../scenario/schema.js';
import { spiffeId } from './ca.js';
import { compileEgress, compileIngress, resolveRoutes } from './policy/model.js';
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
