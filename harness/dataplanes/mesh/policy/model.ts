// The policy model against a concrete cluster: verdicts for one flow (what every dataplane must
// agree on, and what the tests and `meshbench validate` check) and per-pod plans engines turn
// into their own configuration (HAProxy ACLs, Envoy RBAC, BPF policy maps). Semantics are
// documented in scenario/policy-schema.ts. Plain data; nothing here touches the host.
import { inputError } from '../../../errors.js';
import type { Cluster, PodSpec, ServiceSpec } from '../../../topology/graph.js';
import {
  anchorPath,
  parseHeader,
  type EgressRule,
  type GrpcRule,
  type HttpRule,
  type IngressRule,
  type LabelSelector,
  type Policy,
  type Route,
} from '../../../scenario/policy-schema.js';

export type Direction = 'ingress' | 'egress';

export interface HttpRequest {
  method: string;
  /** The request target as sent (:path), query string included. */
  path: string;
  headers: Record<string, string>;
}

export type VerdictReason = 'no-policy' | 'allowed' | 'denied-l4' | 'denied-l7' | 'auth-required';

export interface Verdict {
  allowed: boolean;
  reason: VerdictReason;
  /** namespace/name of the policy that allowed or denied; for denied-l4 every policy that made the pod default-deny, comma-separated. */
  policy?: string;
  /** The port has L7 rules: the flow goes through an L7 proxy (absent for no-policy). */
  l7?: boolean;
}

export interface VerdictOptions {
  /** The peer proved its identity (mTLS / SPIFFE). Default: true for a known pod, false for an unknown peer. */
  authenticated?: boolean;
}

/** One L7 allow rule as engines need it: exact method, anchored path regex, exact headers (names lower-case). {} allows every request. */
export interface L7Match {
  method?: string;
  pathRegex?: string;
  headers?: [name: string, value: string][];
}

/** Pods of one identity (namespace + service account) a plan entry allows. */
export interface PeerSet {
  namespace: string;
  serviceAccount: string;
  pods: string[];
  ips: string[];
}

interface PortPlanBase {
  /** Destination port; 'any' = every port that has no entry of its own. */
  port: number | 'any';
  /** Peers must be mutually authenticated. */
  authRequired: boolean;
  /** Present = the port goes through the L7 proxy and each request must match one of these. */
  l7?: L7Match[];
}

// Reading a plan: for port P use the entries with port P, or if there are none the entries with
// port 'any'. Within those, a peer listed in an entry's pods/identity gets that entry; any other
// peer gets the entry whose peers are 'any', if there is one; otherwise it is denied. Every
// (port, peer) appears in exactly one entry, with every rule that applies to it already merged.
export interface IngressPort extends PortPlanBase {
  sources: PeerSet[] | 'any';
}
export interface EgressPort extends PortPlanBase {
  destinations: PeerSet[] | 'any';
}
export interface IngressPlan {
  /** Some policy selects the pod for ingress: everything not in `ports` is denied. */
  enforced: boolean;
  ports: IngressPort[];
}
export interface EgressPlan {
  enforced: boolean;
  ports: EgressPort[];
}

type Rule = IngressRule | EgressRule;
interface Bound {
  policy: Policy;
  rule: Rule;
  dir: Direction;
}

export function matchLabels(labels: Record<string, string>, selector: LabelSelector): boolean {
  return Object.entries(selector).every(([k, v]) => labels[k] === v);
}

export const policyName = (p: Policy) => `${p.namespace}/${p.name}`;

/** Does the policy apply to this pod (same namespace, labels match)? */
export function selects(p: Policy, pod: PodSpec): boolean {
  return p.namespace === pod.namespace && matchLabels(pod.labels, p.selector);
}

/** Policies that put the pod in default-deny for this direction. */
export function selectingPolicies(policies: Policy[], pod: PodSpec, dir: Direction): Policy[] {
  return policies.filter((p) => p[dir] !== undefined && selects(p, pod));
}

const peerSelectors = (b: Bound) => (b.dir === 'ingress' ? (b.rule as IngressRule).from : (b.rule as EgressRule).to);
const anyPeer = (b: Bound) => !peerSelectors(b) && !b.rule.namespaces;
const hasL7 = (r: Rule) => !!(r.http || r.grpc);
const portMatches = (r: Rule, port: number) => !r.ports || r.ports.includes(port);

function bound(policies: Policy[], dir: Direction): Bound[] {
  return policies.flatMap((policy) => (policy[dir] ?? []).map((rule) => ({ policy, rule, dir })));
}

/** Namespaces a rule's peers may be in; undefined = any peer at all. */
function peerNamespaces(b: Bound): string[] | undefined {
  if (anyPeer(b)) return undefined;
  return b.rule.namespaces ?? [b.policy.namespace];
}

function peerMatches(b: Bound, peer: PodSpec | undefined): boolean {
  const nss = peerNamespaces(b);
  if (!nss) return true;
  if (!peer || !nss.includes(peer.namespace)) return false;
  const sels = peerSelectors(b);
  return !sels || sels.some((s) => matchLabels(peer.labels, s));
}

const reEscape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

export function compileHttpRule(h: HttpRule): L7Match {
  const m: L7Match = {};
  if (h.method) m.method = h.method;
  if (h.path !== undefined) m.pathRegex = anchorPath(h.path);
  if (h.headers?.length) m.headers = h.headers.map((s) => parseHeader(s)!).map(([n, v]) => [n.toLowerCase(), v]);
  return m;
}

/** gRPC is HTTP/2 POST to /<package.Service>/<Method>. */
export function compileGrpcRule(g: GrpcRule): L7Match {
  return { method: 'POST', pathRegex: `^/${reEscape(g.service)}/${g.method ? reEscape(g.method) : '[^/]+'}$` };
}

const l7Of = (r: Rule): L7Match[] => [...(r.http ?? []).map(compileHttpRule), ...(r.grpc ?? []).map(compileGrpcRule)];

const regexCache = new Map<string, RegExp>();
function regex(src: string): RegExp {
  let re = regexCache.get(src);
  if (!re) regexCache.set(src, (re = new RegExp(src)));
  return re;
}

/** Does one L7 rule allow the request? */
export function l7Allows(m: L7Match, req: HttpRequest): boolean {
  if (m.method !== undefined && m.method !== req.method) return false;
  if (m.pathRegex !== undefined && !regex(m.pathRegex).test(req.path)) return false;
  if (m.headers) {
    const lower = new Map(Object.entries(req.headers).map(([k, v]) => [k.toLowerCase(), v]));
    if (!m.headers.every(([n, v]) => lower.get(n) === v)) return false;
  }
  return true;
}

function verdict(
  dir: Direction,
  policies: Policy[],
  self: PodSpec,
  peer: PodSpec | undefined,
  port: number,
  req: HttpRequest | undefined,
  opts: VerdictOptions,
): Verdict {
  const selecting = selectingPolicies(policies, self, dir);
  if (!selecting.length) return { allowed: true, reason: 'no-policy' };
  const applicable = bound(selecting, dir).filter((b) => portMatches(b.rule, port));
  const l7 = applicable.some((b) => hasL7(b.rule));
  const matched = applicable.filter((b) => peerMatches(b, peer));
  if (!matched.length) return { allowed: false, reason: 'denied-l4', policy: selecting.map(policyName).join(','), l7 };
  const authenticated = opts.authenticated ?? peer !== undefined;
  const auth = matched.find((b) => b.rule.auth === 'required');
  if (auth && !authenticated) return { allowed: false, reason: 'auth-required', policy: policyName(auth.policy), l7 };
  if (!l7 || !req) return { allowed: true, reason: 'allowed', policy: policyName(matched[0].policy), l7 };
  // On an L7 port a rule without L7 rules allows every request of its peers (Cilium's wildcard).
  const ok = matched.find((b) => !hasL7(b.rule) || l7Of(b.rule).some((m) => l7Allows(m, req)));
  if (ok) return { allowed: true, reason: 'allowed', policy: policyName(ok.policy), l7 };
  return { allowed: false, reason: 'denied-l7', policy: policyName(matched.find((b) => hasL7(b.rule))!.policy), l7 };
}

/**
 * May `src` open a connection to `dst` on `port` (and, with `req`, send this request)?
 * `src` undefined is a peer the dataplane cannot identify (outside the cluster, no identity): only
 * rules without peer restrictions admit it. Without `req` on a port with L7 rules the answer is the
 * connection-level one (admitted to the proxy, which then judges each request).
 */
export function ingressVerdict(
  policies: Policy[],
  dst: PodSpec,
  src: PodSpec | undefined,
  port: number,
  req?: HttpRequest,
  opts: VerdictOptions = {},
): Verdict {
  return verdict('ingress', policies, dst, src, port, req, opts);
}

/** May `src` send to `dst` (undefined = a destination outside the cluster) on `port`, as far as `src`'s egress policies go? */
export function egressVerdict(policies: Policy[], src: PodSpec, dst: PodSpec | undefined, port: number, req?: HttpRequest, opts: VerdictOptions = {}): Verdict {
  return verdict('egress', policies, src, dst, port, req, opts);
}

/** Both ends: egress of the source, then ingress of the destination (the first denial wins). */
export function flowVerdict(
  policies: Policy[],
  src: PodSpec,
  dst: PodSpec,
  port: number,
  req?: HttpRequest,
  opts: VerdictOptions = {},
): Verdict & { direction?: Direction } {
  const out = egressVerdict(policies, src, dst, port, req, opts);
  if (!out.allowed) return { ...out, direction: 'egress' };
  const inn = ingressVerdict(policies, dst, src, port, req, opts);
  return inn.allowed ? { ...inn, l7: !!(inn.l7 || out.l7) } : { ...inn, direction: 'ingress' };
}

interface Effect {
  authRequired: boolean;
  l7?: L7Match[];
}

function effect(matched: Bound[], l7Port: boolean): Effect {
  const authRequired = matched.some((b) => b.rule.auth === 'required');
  if (!l7Port) return { authRequired };
  if (matched.some((b) => !hasL7(b.rule))) return { authRequired, l7: [{}] };
  const seen = new Set<string>();
  const l7 = matched
    .flatMap((b) => l7Of(b.rule))
    .filter((m) => {
      const k = JSON.stringify(m);
      return seen.has(k) ? false : (seen.add(k), true);
    });
  return { authRequired, l7 };
}

function peerSets(pods: PodSpec[]): PeerSet[] {
  const out = new Map<string, PeerSet>();
  for (const p of pods) {
    const k = `${p.namespace}/${p.serviceAccount}`;
    let s = out.get(k);
    if (!s) out.set(k, (s = { namespace: p.namespace, serviceAccount: p.serviceAccount, pods: [], ips: [] }));
    s.pods.push(p.name);
    s.ips.push(p.ip);
  }
  return [...out.values()];
}

function compile(
  dir: Direction,
  policies: Policy[],
  self: PodSpec,
  cluster: Cluster,
): { enforced: boolean; ports: (PortPlanBase & { peers: PeerSet[] | 'any' })[] } {
  const selecting = selectingPolicies(policies, self, dir);
  if (!selecting.length) return { enforced: false, ports: [] };
  const all = bound(selecting, dir);
  const keys: (number | 'any')[] = [...new Set(all.flatMap((b) => b.rule.ports ?? []))].sort((a, b) => a - b);
  if (all.some((b) => !b.rule.ports)) keys.push('any');
  const ports: (PortPlanBase & { peers: PeerSet[] | 'any' })[] = [];
  for (const port of keys) {
    const applicable = port === 'any' ? all.filter((b) => !b.rule.ports) : all.filter((b) => portMatches(b.rule, port));
    const l7Port = port !== 'any' && applicable.some((b) => hasL7(b.rule));
    const anyRules = applicable.filter(anyPeer);
    const anyEffect = anyRules.length ? effect(anyRules, l7Port) : undefined;
    const anyKey = anyEffect && JSON.stringify(anyEffect);
    const groups = new Map<string, { eff: Effect; pods: PodSpec[] }>();
    for (const pod of cluster.pods) {
      const m = applicable.filter((b) => peerMatches(b, pod));
      if (!m.length) continue;
      const eff = effect(m, l7Port);
      const k = JSON.stringify(eff);
      if (k === anyKey) continue; // the 'any' entry already says the same for this peer
      const g = groups.get(k);
      if (g) g.pods.push(pod);
      else groups.set(k, { eff, pods: [pod] });
    }
    if (anyEffect) ports.push({ port, peers: 'any', ...anyEffect });
    for (const g of groups.values()) ports.push({ port, peers: peerSets(g.pods), ...g.eff });
  }
  return { enforced: true, ports };
}

/** What `dst` admits, per port, merged over every policy selecting it for ingress. */
export function compileIngress(policies: Policy[], dst: PodSpec, cluster: Cluster): IngressPlan {
  const c = compile('ingress', policies, dst, cluster);
  return { enforced: c.enforced, ports: c.ports.map(({ peers, ...p }) => ({ ...p, sources: peers })) };
}

/** Where `src` may send, per destination port, merged over every policy selecting it for egress. */
export function compileEgress(policies: Policy[], src: PodSpec, cluster: Cluster): EgressPlan {
  const c = compile('egress', policies, src, cluster);
  return { enforced: c.enforced, ports: c.ports.map(({ peers, ...p }) => ({ ...p, destinations: peers })) };
}

// ---- Routes ----

export interface ResolvedBackend {
  pod: string;
  ip: string;
  port: number;
}

export interface ResolvedDestination {
  service: ServiceSpec;
  weight: number;
  /** weight / sum of the rule's weights. */
  share: number;
  /** The destination Service's backend pods at its targetPort. */
  backends: ResolvedBackend[];
}

export interface ResolvedRouteRule {
  /** Exact header matches, names lower-case; [] = no header condition. */
  headers: [name: string, value: string][];
  pathPrefix?: string;
  to: ResolvedDestination[];
}

export interface ResolvedRoute {
  /** The routed Service (clients address its VIP:port). */
  service: ServiceSpec;
  /** In order; the first rule that matches a request decides. No match → 404 from the proxy. */
  rules: ResolvedRouteRule[];
}

function findService(cluster: Cluster, namespace: string, name: string): ServiceSpec | undefined {
  return cluster.services.find((s) => s.namespace === namespace && s.name === name);
}

function serviceList(cluster: Cluster): string {
  return cluster.services.map((s) => `${s.namespace}/${s.name}`).join(', ') || 'none';
}

/** Routes with their Services and destination backends looked up; throws E_INPUT listing every unknown Service. */
export function resolveRoutes(routes: Route[], cluster: Cluster): ResolvedRoute[] {
  const errors: string[] = [];
  const out: ResolvedRoute[] = [];
  routes.forEach((r, i) => {
    const service = findService(cluster, r.namespace, r.service);
    if (!service) errors.push(`routes.${i}.service: unknown service "${r.namespace}/${r.service}" (declared: ${serviceList(cluster)})`);
    const rules: ResolvedRouteRule[] = r.rules.map((rule, j) => {
      const total = rule.to.reduce((s, d) => s + (d.weight ?? 1), 0);
      const to: ResolvedDestination[] = [];
      rule.to.forEach((d, k) => {
        const ns = d.namespace ?? r.namespace;
        const svc = findService(cluster, ns, d.service);
        if (!svc) {
          errors.push(`routes.${i}.rules.${j}.to.${k}.service: unknown service "${ns}/${d.service}" (declared: ${serviceList(cluster)})`);
          return;
        }
        const weight = d.weight ?? 1;
        to.push({ service: svc, weight, share: weight / total, backends: svc.backends.map((b) => ({ pod: b.name, ip: b.ip, port: svc.targetPort })) });
      });
      const headers = Object.entries(rule.match?.headers ?? {}).map(([n, v]) => [n.toLowerCase(), v] as [string, string]);
      return rule.match?.pathPrefix ? { headers, pathPrefix: rule.match.pathPrefix, to } : { headers, to };
    });
    if (service) out.push({ service, rules });
  });
  if (errors.length) throw inputError('routes name unknown services', errors);
  return out;
}

/** The rule a request takes on a resolved route (undefined = no rule matches: 404). */
export function routeRuleFor(route: ResolvedRoute, req: Pick<HttpRequest, 'path' | 'headers'>): ResolvedRouteRule | undefined {
  const lower = new Map(Object.entries(req.headers).map(([k, v]) => [k.toLowerCase(), v]));
  return route.rules.find((r) => r.headers.every(([n, v]) => lower.get(n) === v) && (!r.pathPrefix || req.path.startsWith(r.pathPrefix)));
}

// ---- Checks for `meshbench validate` ----

export interface PolicyProblem {
  severity: 'error' | 'warning';
  /** Where in the scenario: ['policies', 0, 'ingress', 1, 'from', 0] or ['routes', 2, 'service']. */
  path: (string | number)[];
  message: string;
}

/** Ports a pod listens on: the targetPort of every Service it backs. */
function listening(pod: PodSpec, cluster: Cluster): Set<number> {
  return new Set(cluster.services.filter((s) => s.backends.includes(pod)).map((s) => s.targetPort));
}

/**
 * Problems of policies and routes against the cluster. Errors: a policy defined twice, a route
 * naming an unknown Service or routing one Service twice. Warnings: selectors that match no pod,
 * namespaces without pods, ports nobody listens on, selectors that split a service account
 * (proxies authorize by identity, so they would admit the whole account), routes without a
 * catch-all rule, destinations speaking another protocol.
 */
export function checkPolicies(policies: Policy[], routes: Route[], cluster: Cluster): PolicyProblem[] {
  const problems: PolicyProblem[] = [];
  const warn = (path: PolicyProblem['path'], message: string) => problems.push({ severity: 'warning', path, message });
  const error = (path: PolicyProblem['path'], message: string) => problems.push({ severity: 'error', path, message });
  const namespaces = new Set(cluster.pods.map((p) => p.namespace));

  const seen = new Map<string, number>();
  policies.forEach((p, i) => {
    const name = policyName(p);
    if (seen.has(name)) error(['policies', i, 'name'], `policy ${name} is defined twice (first at policies.${seen.get(name)})`);
    else seen.set(name, i);
    const selected = cluster.pods.filter((pod) => selects(p, pod));
    if (!selected.length)
      warn(['policies', i, 'selector'], `policy ${name} selects no pod (no pod in namespace ${p.namespace} has labels ${JSON.stringify(p.selector)})`);
    if (p.ingress === undefined && p.egress === undefined) warn(['policies', i], `policy ${name} has neither ingress nor egress: it does nothing`);

    for (const dir of ['ingress', 'egress'] as const) {
      (p[dir] ?? []).forEach((rule, j) => {
        const b: Bound = { policy: p, rule, dir };
        const at = ['policies', i, dir, j];
        const peersKey = dir === 'ingress' ? 'from' : 'to';
        (rule.namespaces ?? []).forEach((ns, k) => {
          if (!namespaces.has(ns)) warn([...at, 'namespaces', k], `policy ${name}: namespace ${ns} has no pods`);
        });
        const nss = peerNamespaces(b);
        (peerSelectors(b) ?? []).forEach((sel, k) => {
          const hits = cluster.pods.filter((pod) => nss?.includes(pod.namespace) && matchLabels(pod.labels, sel));
          if (!hits.length) warn([...at, peersKey, k], `policy ${name}: ${JSON.stringify(sel)} matches no pod in ${nss?.join(', ')}`);
          // Identities the selector only partly covers.
          for (const sa of new Set(hits.map((h) => `${h.namespace}/${h.serviceAccount}`))) {
            const others = cluster.pods.filter((pod) => `${pod.namespace}/${pod.serviceAccount}` === sa && !hits.includes(pod));
            if (others.length)
              warn(
                [...at, peersKey, k],
                `policy ${name}: ${JSON.stringify(sel)} matches only some pods of service account ${sa}; proxies authorize by identity and will also allow ${others.map((o) => o.name).join(', ')}`,
              );
          }
        });
        // Ports nobody on the listening side serves.
        const listeners = dir === 'ingress' ? selected : anyPeer(b) ? [] : cluster.pods.filter((pod) => peerMatches(b, pod));
        if (listeners.length) {
          const served = new Set(listeners.flatMap((pod) => [...listening(pod, cluster)]));
          (rule.ports ?? []).forEach((port, k) => {
            if (!served.has(port))
              warn([...at, 'ports', k], `policy ${name}: no ${dir === 'ingress' ? 'selected' : 'destination'} pod listens on port ${port}`);
          });
        }
      });
    }
  });

  const routed = new Map<string, number>();
  routes.forEach((r, i) => {
    const key = `${r.namespace}/${r.service}`;
    if (routed.has(key)) error(['routes', i, 'service'], `service ${key} is routed twice (first at routes.${routed.get(key)})`);
    else routed.set(key, i);
    const svc = findService(cluster, r.namespace, r.service);
    if (!svc) error(['routes', i, 'service'], `unknown service "${key}" (declared: ${serviceList(cluster)})`);
    r.rules.forEach((rule, j) =>
      rule.to.forEach((d, k) => {
        const ns = d.namespace ?? r.namespace;
        const dst = findService(cluster, ns, d.service);
        if (!dst) error(['routes', i, 'rules', j, 'to', k, 'service'], `unknown service "${ns}/${d.service}" (declared: ${serviceList(cluster)})`);
        else if (svc && dst.protocol !== svc.protocol)
          warn(['routes', i, 'rules', j, 'to', k, 'service'], `${key} speaks ${svc.protocol} but destination ${ns}/${d.service} speaks ${dst.protocol}`);
      }),
    );
    const last = r.rules[r.rules.length - 1];
    if (last.match && (last.match.headers || last.match.pathPrefix))
      warn(['routes', i, 'rules', r.rules.length - 1], `route of ${key}: requests that match no rule get 404 from the proxy; end with a rule without "match"`);
  });
  return problems;
}
