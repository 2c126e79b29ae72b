// The lab's policy model (scenario/policy-schema.ts) as each mesh's own objects: Istio
// AuthorizationPolicy, Linkerd Server / AuthorizationPolicy / MeshTLSAuthentication / HTTPRoute,
// CiliumNetworkPolicy (users' own CNP files pass through). Routes are routes.ts. Peers named by labels become the identities of the
// scenario's pods that carry them (their ServiceAccounts). What a mesh cannot express is refused
// with the scenario's file:line, every problem at once, before anything is applied. Mapping and
// its limits: docs/kubernetes.md.
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { LineCounter, parseAllDocuments } from 'yaml';
import { YAML_PARSE_OPTIONS, yamlLine } from '../util/yaml.js';
import { inputError } from '../errors.js';
import { locate, shownPath } from '../scenario/load.js';
import type { Scenario } from '../scenario/schema.js';
import type { GrpcRule, HttpRule, IngressRule, EgressRule, LabelSelector, Policy } from '../scenario/policy-schema.js';
import { parseHeader } from '../scenario/policy-schema.js';
import { matchLabels } from '../dataplanes/mesh/policy/model.js';
import type { Cluster, PodSpec, ServiceSpec } from '../topology/graph.js';
import { k8sNamespace, runLabels, type K8sObject, type Rendered } from './objects.js';

export type Mesh = 'none' | 'istio' | 'linkerd' | 'cilium';

export function meshOf(kind: string): Mesh {
  if (kind === 'istio-sidecar' || kind.startsWith('ambient')) return 'istio';
  if (kind === 'linkerd-sidecar') return 'linkerd';
  if (kind.startsWith('ebpf')) return 'cilium';
  return 'none';
}

export interface MeshContext {
  s: Scenario;
  cluster: Cluster;
  prefix: string;
  /** The dataplane's kind (istio-sidecar, ambient-waypoint, ebpf-l7 …). */
  kind: string;
  mesh: Mesh;
  mtls: boolean;
  /** The mesh's proxies read HTTP on the app ports (else L7 rules are enforced at L4, as on the lab). */
  l7: boolean;
  fqdn(svc: Pick<ServiceSpec, 'name' | 'namespace'>): string;
}

type Rule = IngressRule | EgressRule;
const peersOf = (r: Rule, dir: 'ingress' | 'egress') => (dir === 'ingress' ? (r as IngressRule).from : (r as EgressRule).to);
const hasL7 = (r: Rule) => !!(r.http || r.grpc);
const objectName = (...parts: (string | number)[]) => parts.join('-').slice(0, 63).replace(/-+$/, '');

/** Where policy `i` was written: its scenario line, or the policyFiles line for a policy read from a file. */
const policyAt = (s: Scenario, i: number, ...path: (string | number)[]) => locate(s.file, i < s.inlinePolicies ? ['policies', i, ...path] : ['policyFiles']);

/** The scenario's pods a rule's peers are (undefined: any peer at all, as model.ts reads it). */
function peerPods(m: MeshContext, p: Policy, r: Rule, dir: 'ingress' | 'egress'): PodSpec[] | undefined {
  const sels = peersOf(r, dir);
  if (!sels && !r.namespaces) return undefined;
  const nss = r.namespaces ?? [p.namespace];
  return m.cluster.pods.filter((x) => x.role !== 'idle' && nss.includes(x.namespace) && (!sels || sels.some((sel) => matchLabels(x.labels, sel))));
}

/** The app ports of the pods a policy selects (for meshes whose objects need a port). */
function selectedPorts(m: MeshContext, p: Policy): number[] {
  const pods = m.cluster.pods.filter((x) => x.role === 'app' && x.namespace === p.namespace && matchLabels(x.labels, p.selector));
  return [...new Set(m.cluster.services.filter((svc) => svc.backends.some((b) => pods.includes(b))).map((svc) => svc.targetPort))].sort((a, b) => a - b);
}

/** A regex path rule as Istio's exact / prefix (`x*`) / suffix (`*x`) match, or undefined when it is none of those. */
export function istioPath(re: string): string | undefined {
  // A literal is the regex with no metacharacter but escaped dots.
  const lit = (x: string) => (/[.*+?^${}()|[\]\\]/.test(x.replace(/\\\./g, '')) ? undefined : x.replace(/\\\./g, '.'));
  const [head, tail] = re.endsWith('.*') ? [lit(re.slice(0, -2)), '*'] : re.startsWith('.*') ? [lit(re.slice(2)), '*'] : [lit(re), ''];
  if (head === undefined) return undefined;
  return re.startsWith('.*') && !re.endsWith('.*') ? `*${head}` : `${head}${tail}`;
}

const grpcPath = (g: GrpcRule) => `/${g.service}/${g.method ?? '*'}`;
const escapeRe = (x: string) => x.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

// ---------------------------------------------------------------------------------------------
// Istio (sidecar and ambient): AuthorizationPolicy, enforced by the destination's proxy

function istioPolicies(m: MeshContext, errors: string[]): Rendered[] {
  const { s, prefix } = m;
  const out: Rendered[] = [];
  const waypoint = m.kind === 'ambient-waypoint';
  s.policies.forEach((p, i) => {
    if (p.egress !== undefined)
      errors.push(`${policyAt(s, i, 'egress')}: policies.${i}.egress: Istio authorizes at the destination only; it has no egress policy`);
    if (p.ingress === undefined) return;
    const ns = k8sNamespace(prefix, p.namespace);
    const rules: Record<string, unknown>[] = [];
    p.ingress.forEach((r, j) => {
      const peers = peerPods(m, p, r, 'ingress');
      if (peers && !m.mtls) {
        errors.push(
          `${policyAt(s, i, 'ingress', j)}: policies.${i}.ingress.${j}: with mtls=off Istio sees no peer identity, and a cluster's pod addresses are not known before the run: only rules without peers can be kept`,
        );
        return;
      }
      const principals = peers && [...new Set(peers.map((x) => `cluster.local/ns/${k8sNamespace(prefix, x.namespace)}/sa/${x.serviceAccount}`))].sort();
      if (principals && !principals.length) return; // no pod of the scenario is such a peer: the rule admits nobody
      const from = principals ? [{ source: { principals } }] : r.auth === 'required' ? [{ source: { principals: ['*'] } }] : undefined;
      const ports = r.ports?.map(String);
      const base = { ...(from ? { from } : {}) };
      if (!hasL7(r) || !m.l7) {
        rules.push({ ...base, ...(ports ? { to: [{ operation: { ports } }] } : {}) });
        return;
      }
      (r.http ?? []).forEach((h: HttpRule, k) => {
        const path = h.path === undefined ? undefined : istioPath(h.path);
        if (h.path !== undefined && path === undefined)
          errors.push(
            `${policyAt(s, i, 'ingress', j, 'http', k, 'path')}: policies.${i}.ingress.${j}.http.${k}.path: Istio matches paths exactly, by prefix (x*) or by suffix (*x), not by the regex ${JSON.stringify(h.path)}`,
          );
        const when = (h.headers ?? []).map((x) => parseHeader(x)!).map(([n, v]) => ({ key: `request.headers[${n}]`, values: [v] }));
        const operation = { ...(ports ? { ports } : {}), ...(h.method ? { methods: [h.method] } : {}), ...(path ? { paths: [path] } : {}) };
        rules.push({ ...base, to: [{ operation }], ...(when.length ? { when } : {}) });
      });
      for (const g of r.grpc ?? []) rules.push({ ...base, to: [{ operation: { ...(ports ? { ports } : {}), methods: ['POST'], paths: [grpcPath(g)] } }] });
    });
    // Through a waypoint the destination's node proxy sees the waypoint's identity: the policy goes to the waypoint, for the Services of the pods it selects.
    const services = m.cluster.services.filter(
      (svc) => svc.namespace === p.namespace && svc.backends.length && svc.backends.every((b) => matchLabels(b.labels, p.selector)),
    );
    const target = waypoint && services.length ? { targetRefs: services.map((svc) => ({ group: '', kind: 'Service', name: svc.name })) } : undefined;
    const selector = Object.keys(p.selector).length ? { selector: { matchLabels: p.selector } } : {};
    out.push({
      origin: policyAt(s, i),
      object: {
        apiVersion: 'security.istio.io/v1',
        kind: 'AuthorizationPolicy',
        metadata: { name: p.name, namespace: ns, labels: runLabels(prefix) },
        // No rules: allow nothing (the lab's `ingress: []`).
        spec: { ...(target ?? selector), action: 'ALLOW', ...(rules.length ? { rules } : {}) },
      },
    });
  });
  return out;
}

// ---------------------------------------------------------------------------------------------
// Linkerd: a Server per selected port, authorizations by identity, L7 rules as routes

function linkerdPolicies(m: MeshContext, errors: string[]): Rendered[] {
  const { s, prefix } = m;
  const out: Rendered[] = [];
  const L = (o: K8sObject, origin: string) => out.push({ origin, object: o });
  s.policies.forEach((p, i) => {
    if (p.egress !== undefined)
      errors.push(`${policyAt(s, i, 'egress')}: policies.${i}.egress: Linkerd authorizes at the destination only; it has no egress policy`);
    if (p.ingress === undefined) return;
    const ns = k8sNamespace(prefix, p.namespace);
    const meta = (name: string) => ({ name, namespace: ns, labels: runLabels(prefix) });
    const portsOf = (r?: Rule) => r?.ports ?? selectedPorts(m, p);
    const ports = [...new Set([...(p.ingress.length ? p.ingress.flatMap((r) => portsOf(r)) : portsOf())])].sort((a, b) => a - b);
    const proto = (port: number) => {
      const svc = m.cluster.services.find((x) => x.namespace === p.namespace && x.targetPort === port);
      if (!m.l7) return 'opaque';
      return svc?.protocol === 'grpc' ? 'gRPC' : 'HTTP/1';
    };
    for (const port of ports)
      L(
        {
          apiVersion: 'policy.linkerd.io/v1beta3',
          kind: 'Server',
          metadata: meta(objectName(p.name, port)),
          spec: { podSelector: { matchLabels: p.selector }, port, proxyProtocol: proto(port) },
        },
        policyAt(s, i),
      );
    p.ingress.forEach((r, j) => {
      const at = policyAt(s, i, 'ingress', j);
      const peers = peerPods(m, p, r, 'ingress');
      if (peers && !peers.length) return;
      const authName = objectName(p.name, 'r', j);
      if (peers || r.auth === 'required')
        L(
          {
            apiVersion: 'policy.linkerd.io/v1alpha1',
            kind: 'MeshTLSAuthentication',
            metadata: meta(authName),
            spec: peers
              ? {
                  identityRefs: [
                    ...new Map(
                      peers.map((x) => [
                        `${x.namespace}/${x.serviceAccount}`,
                        { kind: 'ServiceAccount', name: x.serviceAccount, namespace: k8sNamespace(prefix, x.namespace) },
                      ]),
                    ).values(),
                  ],
                }
              : { identities: ['*'] },
          },
          at,
        );
      else
        L(
          {
            apiVersion: 'policy.linkerd.io/v1alpha1',
            kind: 'NetworkAuthentication',
            metadata: meta(authName),
            spec: { networks: [{ cidr: '0.0.0.0/0' }, { cidr: '::/0' }] },
          },
          at,
        );
      const authRef = { group: 'policy.linkerd.io', kind: peers || r.auth === 'required' ? 'MeshTLSAuthentication' : 'NetworkAuthentication', name: authName };
      for (const port of portsOf(r)) {
        const server = objectName(p.name, port);
        const l7Port = m.l7 && p.ingress!.some((x) => hasL7(x) && portsOf(x).includes(port));
        let targetRef = { group: 'policy.linkerd.io', kind: 'Server', name: server };
        if (l7Port) {
          // On a port with L7 rules every request needs a route: a rule without L7 rules routes every path.
          const matches = hasL7(r)
            ? [
                ...(r.http ?? []).map((h) => ({
                  ...(h.path !== undefined ? { path: { type: 'RegularExpression', value: h.path } } : {}),
                  ...(h.method ? { method: h.method } : {}),
                  ...(h.headers?.length ? { headers: h.headers.map((x) => parseHeader(x)!).map(([name, value]) => ({ name, value })) } : {}),
                })),
                ...(r.grpc ?? []).map((g) => ({
                  method: 'POST',
                  path: g.method ? { type: 'Exact', value: grpcPath(g) } : { type: 'PathPrefix', value: `/${g.service}/` },
                })),
              ]
            : [{ path: { type: 'PathPrefix', value: '/' } }];
          const route = objectName(p.name, 'r', j, port);
          L(
            {
              apiVersion: 'policy.linkerd.io/v1beta3',
              kind: 'HTTPRoute',
              metadata: meta(route),
              spec: { parentRefs: [{ group: 'policy.linkerd.io', kind: 'Server', name: server }], rules: [{ matches }] },
            },
            at,
          );
          targetRef = { group: 'policy.linkerd.io', kind: 'HTTPRoute', name: route };
        }
        L(
          {
            apiVersion: 'policy.linkerd.io/v1alpha1',
            kind: 'AuthorizationPolicy',
            metadata: meta(objectName(p.name, 'r', j, port, 'authz')),
            spec: { targetRef, requiredAuthenticationRefs: [authRef] },
          },
          at,
        );
      }
    });
  });
  return out;
}

// ---------------------------------------------------------------------------------------------
// Cilium: CiliumNetworkPolicy (the L4 projection for `ebpf`, which has no node proxy)

const NS_KEY = 'k8s:io.kubernetes.pod.namespace';
/** Label keys whose value is a namespace, moved into the run's with the policy. */
const NS_KEYS = [NS_KEY, 'io.kubernetes.pod.namespace', 'k8s:io.cilium.k8s.namespace.labels.kubernetes.io/metadata.name'];

function ciliumRule(m: MeshContext, p: Policy, r: Rule, dir: 'ingress' | 'egress'): Record<string, unknown> {
  const sels = peersOf(r, dir);
  const nss = (r.namespaces ?? [p.namespace]).map((n) => k8sNamespace(m.prefix, n));
  const peerKey = dir === 'ingress' ? 'fromEndpoints' : 'toEndpoints';
  const peers: Record<string, unknown> =
    !sels && !r.namespaces
      ? { [dir === 'ingress' ? 'fromEntities' : 'toEntities']: ['all'] }
      : { [peerKey]: nss.flatMap((ns) => (sels ?? [{}]).map((sel: LabelSelector) => ({ matchLabels: { ...sel, [NS_KEY]: ns } }))) };
  const http =
    m.l7 && hasL7(r)
      ? [...(r.http ?? []).map(ciliumHttp), ...(r.grpc ?? []).map((g) => ({ method: 'POST', path: escapeRe(`/${g.service}/`) + (g.method ?? '.*') }))]
      : undefined;
  const toPorts = r.ports ? [{ ports: r.ports.map((port) => ({ port: String(port), protocol: 'TCP' })), ...(http ? { rules: { http } } : {}) }] : undefined;
  return { ...peers, ...(toPorts ? { toPorts } : {}), ...(r.auth === 'required' ? { authentication: { mode: 'required' } } : {}) };
}

const ciliumHttp = (h: HttpRule) => ({
  ...(h.method ? { method: h.method } : {}),
  ...(h.path !== undefined ? { path: h.path } : {}),
  ...(h.headers?.length ? { headers: h.headers.map((x) => parseHeader(x)!.join(': ')) } : {}),
});

function ciliumPolicies(m: MeshContext): Rendered[] {
  const { s, prefix } = m;
  const out: Rendered[] = [];
  s.policies.slice(0, s.inlinePolicies).forEach((p, i) => {
    const spec: Record<string, unknown> = { endpointSelector: { matchLabels: p.selector } };
    // An empty list: default-deny in that direction (Cilium's `- {}`).
    for (const dir of ['ingress', 'egress'] as const) {
      const rules = p[dir];
      if (rules !== undefined) spec[dir] = rules.length ? rules.map((r: Rule) => ciliumRule(m, p, r, dir)) : [{}];
    }
    out.push({
      origin: policyAt(s, i),
      object: {
        apiVersion: 'cilium.io/v2',
        kind: 'CiliumNetworkPolicy',
        metadata: { name: p.name, namespace: k8sNamespace(prefix, p.namespace), labels: runLabels(prefix) },
        spec,
      },
    });
  });
  out.push(...ciliumPolicyFiles(m));
  return out;
}

/**
 * The user's own CiliumNetworkPolicy files, as written: each document moved to the run's
 * namespace (and peers' namespace labels with it). For `ebpf` (no node proxy) their L7 rules are
 * dropped, as the lab enforces them at L4.
 */
function ciliumPolicyFiles(m: MeshContext): Rendered[] {
  const { s, prefix } = m;
  const out: Rendered[] = [];
  for (const f of s.policyFiles) {
    const file = resolve(dirname(s.file), f);
    const lines = new LineCounter();
    for (const doc of parseAllDocuments(readFileSync(file, 'utf8'), { lineCounter: lines, ...YAML_PARSE_OPTIONS })) {
      const o = doc.toJS() as K8sObject | null;
      if (o?.kind !== 'CiliumNetworkPolicy') continue;
      const moved = JSON.parse(JSON.stringify(o, (k, v) => (NS_KEYS.includes(k) && typeof v === 'string' ? k8sNamespace(prefix, v) : v))) as K8sObject;
      if (!m.l7)
        for (const dir of ['ingress', 'egress'])
          for (const r of (moved.spec as Record<string, { toPorts?: { rules?: unknown }[] }[]>)?.[dir] ?? []) for (const tp of r.toPorts ?? []) delete tp.rules;
      moved.metadata = {
        ...moved.metadata,
        namespace: k8sNamespace(prefix, o.metadata?.namespace ?? 'default'),
        labels: runLabels(prefix, o.metadata?.labels),
      };
      const at = (path: (string | number)[]) => `${shownPath(file)}:${yamlLine(doc, lines, path)}`;
      out.push({ origin: at([]), object: moved, locate: at });
    }
  }
  return out;
}

/** Every policy of the scenario as the mesh's objects; E_INPUT with every problem when the mesh cannot express one. */
export function renderPolicies(m: MeshContext): Rendered[] {
  const errors: string[] = [];
  const out = m.mesh === 'istio' ? istioPolicies(m, errors) : m.mesh === 'linkerd' ? linkerdPolicies(m, errors) : m.mesh === 'cilium' ? ciliumPolicies(m) : [];
  if (errors.length)
    throw inputError(`${m.kind} cannot express the policies of ${m.s.file} on Kubernetes`, errors, 'docs/kubernetes.md lists what each mesh can express');
  return out;
}
