// The scenario's routes (canary, header and path routing: scenario/policy-schema.ts) as each
// mesh's own objects: an Istio VirtualService for the sidecars, a Gateway API HTTPRoute attached
// to the Service (GAMMA) for Linkerd and the ambient waypoint, a CiliumEnvoyConfig for ebpf-l7.
// Dataplanes without an L7 proxy get none, as on the lab: the Service's selector balances.
import { inputError } from '../errors.js';
import { locate } from '../scenario/load.js';
import type { Route } from '../scenario/policy-schema.js';
import type { ServiceSpec } from '../topology/graph.js';
import { k8sNamespace, runLabels, type K8sObject, type Rendered } from './objects.js';
import type { MeshContext } from './policy.js';

/** Relative weights as integers summing to 100 (largest remainder), as Istio wants them. */
export function percentWeights(weights: number[]): number[] {
  const total = weights.reduce((a, b) => a + b, 0);
  const raw = weights.map((w) => (w * 100) / total);
  const out = raw.map(Math.floor);
  const order = raw.map((x, i) => [x - Math.floor(x), i] as const).sort((a, b) => b[0] - a[0]);
  for (let k = 0; k < 100 - out.reduce((a, b) => a + b, 0); k++) out[order[k % order.length]![1]]! += 1;
  return out;
}

function routeService(m: MeshContext, r: Route, name: string, ns: string | undefined): ServiceSpec {
  return m.cluster.services.find((x) => x.name === name && x.namespace === (ns ?? r.namespace))!;
}

export function renderRoutes(m: MeshContext): Rendered[] {
  const { s, prefix } = m;
  // Without an L7 proxy there is nothing to route with: the Service's own selector balances, as on the lab.
  if (!s.routes.length || !m.l7 || m.kind === 'ebpf' || m.kind === 'ambient' || m.mesh === 'none') return [];
  const errors: string[] = [];
  const out: Rendered[] = [];
  s.routes.forEach((r, i) => {
    const at = locate(s.file, ['routes', i]);
    const ns = k8sNamespace(prefix, r.namespace);
    const svc = routeService(m, r, r.service, r.namespace);
    const weights = (rule: Route['rules'][number]) => percentWeights(rule.to.map((d) => d.weight ?? 1));
    if (m.kind === 'istio-sidecar') {
      out.push({
        origin: at,
        object: {
          apiVersion: 'networking.istio.io/v1',
          kind: 'VirtualService',
          metadata: { name: r.service, namespace: ns, labels: runLabels(prefix) },
          spec: {
            hosts: [m.fqdn(svc)],
            http: r.rules.map((rule) => ({
              ...(rule.match
                ? {
                    match: [
                      {
                        ...(rule.match.headers
                          ? { headers: Object.fromEntries(Object.entries(rule.match.headers).map(([k, v]) => [k.toLowerCase(), { exact: v }])) }
                          : {}),
                        ...(rule.match.pathPrefix ? { uri: { prefix: rule.match.pathPrefix } } : {}),
                      },
                    ],
                  }
                : {}),
              route: rule.to.map((d, k) => ({ destination: { host: m.fqdn(routeService(m, r, d.service, d.namespace)) }, weight: weights(rule)[k] })),
            })),
          },
        },
      });
      return;
    }
    if (m.kind === 'linkerd-sidecar' || m.kind === 'ambient-waypoint') {
      const cross = r.rules.flatMap((rule, k) =>
        rule.to
          .filter((d) => (d.namespace ?? r.namespace) !== r.namespace)
          .map(
            (d) =>
              `${locate(s.file, ['routes', i, 'rules', k])}: routes.${i}.rules.${k}: ${d.service} is in another namespace; an HTTPRoute of a Service sends to its own namespace only here`,
          ),
      );
      errors.push(...cross);
      out.push({
        origin: at,
        object: {
          apiVersion: 'gateway.networking.k8s.io/v1',
          kind: 'HTTPRoute',
          metadata: { name: r.service, namespace: ns, labels: runLabels(prefix) },
          spec: {
            parentRefs: [{ group: '', kind: 'Service', name: r.service, port: svc.port }],
            rules: r.rules.map((rule) => ({
              ...(rule.match
                ? {
                    matches: [
                      {
                        ...(rule.match.pathPrefix ? { path: { type: 'PathPrefix', value: rule.match.pathPrefix } } : {}),
                        ...(rule.match.headers ? { headers: Object.entries(rule.match.headers).map(([name, value]) => ({ type: 'Exact', name, value })) } : {}),
                      },
                    ],
                  }
                : {}),
              backendRefs: rule.to.map((d, k) => ({
                name: d.service,
                port: routeService(m, r, d.service, d.namespace).port,
                weight: rule.to.length > 1 ? weights(rule)[k] : 1,
              })),
            })),
          },
        },
      });
      return;
    }
    if (m.kind === 'ebpf-l7') {
      out.push({ origin: at, object: ciliumEnvoyConfig(m, r, svc) });
      return;
    }
  });
  if (errors.length) throw inputError(`${m.kind} cannot express the routes of ${s.file} on Kubernetes`, errors);
  return out;
}

/** Cilium's L7 traffic management: an Envoy listener, route table and clusters for the Service, in a CiliumEnvoyConfig. */
function ciliumEnvoyConfig(m: MeshContext, r: Route, svc: ServiceSpec): K8sObject {
  const ns = k8sNamespace(m.prefix, r.namespace);
  const dests = [
    ...new Map(r.rules.flatMap((rule) => rule.to.map((d) => routeService(m, r, d.service, d.namespace))).map((x) => [`${x.namespace}/${x.name}`, x])).values(),
  ];
  const clusterName = (x: ServiceSpec) => `${k8sNamespace(m.prefix, x.namespace)}/${x.name}`;
  const name = `${r.service}-routes`;
  return {
    apiVersion: 'cilium.io/v2',
    kind: 'CiliumEnvoyConfig',
    metadata: { name, namespace: ns, labels: runLabels(m.prefix) },
    spec: {
      services: [{ name: svc.name, namespace: ns }],
      backendServices: dests.map((x) => ({ name: x.name, namespace: k8sNamespace(m.prefix, x.namespace) })),
      resources: [
        {
          '@type': 'type.googleapis.com/envoy.config.listener.v3.Listener',
          name: `${name}-listener`,
          filter_chains: [
            {
              filters: [
                {
                  name: 'envoy.filters.network.http_connection_manager',
                  typed_config: {
                    '@type': 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
                    stat_prefix: name,
                    rds: { route_config_name: `${name}-route` },
                    http_filters: [
                      { name: 'envoy.filters.http.router', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router' } },
                    ],
                  },
                },
              ],
            },
          ],
        },
        {
          '@type': 'type.googleapis.com/envoy.config.route.v3.RouteConfiguration',
          name: `${name}-route`,
          virtual_hosts: [
            {
              name,
              domains: ['*'],
              routes: r.rules.map((rule) => {
                const w = percentWeights(rule.to.map((d) => d.weight ?? 1));
                const headers = Object.entries(rule.match?.headers ?? {}).map(([n, v]) => ({ name: n.toLowerCase(), string_match: { exact: v } }));
                return {
                  match: { prefix: rule.match?.pathPrefix ?? '/', ...(headers.length ? { headers } : {}) },
                  route: {
                    weighted_clusters: { clusters: rule.to.map((d, k) => ({ name: clusterName(routeService(m, r, d.service, d.namespace)), weight: w[k] })) },
                  },
                };
              }),
            },
          ],
        },
        ...dests.map((x) => ({
          '@type': 'type.googleapis.com/envoy.config.cluster.v3.Cluster',
          name: clusterName(x),
          connect_timeout: '5s',
          lb_policy: 'ROUND_ROBIN',
          type: 'EDS',
          ...(x.protocol === 'grpc'
            ? {
                typed_extension_protocol_options: {
                  'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': {
                    '@type': 'type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions',
                    explicit_http_config: { http2_protocol_options: {} },
                  },
                },
              }
            : {}),
        })),
      ],
    },
  };
}
