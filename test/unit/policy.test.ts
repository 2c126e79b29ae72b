import test from 'ava';
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { z } from 'zod';
import { PolicySchema, RouteSchema, type Policy, type Route } from '../../harness/scenario/policy-schema.js';
import { loadCiliumPolicies, parseCiliumPolicies, readCiliumPolicies } from '../../harness/dataplanes/mesh/policy/cnp.js';
import {
  checkPolicies,
  compileEgress,
  compileIngress,
  egressVerdict,
  flowVerdict,
  ingressVerdict,
  resolveRoutes,
  routeRuleFor,
  type HttpRequest,
} from '../../harness/dataplanes/mesh/policy/model.js';
import { buildCluster, type Cluster, type PodSpec } from '../../harness/topology/graph.js';
import { ScenarioSchema, type Scenario, type Topology } from '../../harness/scenario/schema.js';
import { MeshbenchError } from '../../harness/errors.js';

const fx = (f: string) => `test/fixtures/policy/${f}`;
const nativePolicies = (f: string): Policy[] => z.array(PolicySchema).parse(parse(readFileSync(fx(f), 'utf8')).policies);
const nativeRoutes = (f: string): Route[] => z.array(RouteSchema).parse(parse(readFileSync(fx(f), 'utf8')).routes);

type Svc = {
  name: string;
  namespace?: string;
  port?: number;
  targetPort?: number;
  protocol?: 'http' | 'grpc';
  selector?: Record<string, string>;
  labels?: Record<string, string>;
};

/** A two-node cluster with one pod per service (the Scenario built as the loader would). */
function cluster(services: Svc[]): Cluster {
  const raw = ScenarioSchema.parse({
    kind: 'Scenario',
    name: 'policy',
    topology: { kind: 'Topology', name: 't', nodes: 2 },
    client: { node: 'node1' },
    services: services.map((s) => ({ port: 80, targetPort: 8080, ...s })),
    workloads: [{ protocol: 'http1', qps: 10, duration: '1s', chain: [services[0].name] }],
    dataplanes: ['baseline'],
  });
  return buildCluster({ ...raw, topology: raw.topology as Topology, file: 'test' } as Scenario, 'mbtest');
}

const prod = (name: string, targetPort = 8080): Svc => ({ name, namespace: 'production', targetPort });
const production = cluster([
  prod('public-api'),
  prod('frontend'),
  prod('api-gateway'),
  prod('backend-service'),
  prod('database', 5432),
  prod('cache', 6379),
  prod('payment-service'),
  prod('order-service'),
]);
const op = (name: string, targetPort = 8080, protocol: 'http' | 'grpc' = 'http'): Svc => ({ name, namespace: 'order-processing', targetPort, protocol });
const orders = cluster([op('frontend-api'), op('order-service'), op('inventory-service', 50051, 'grpc')]);

const pod = (c: Cluster, name: string): PodSpec => {
  const p = c.pods.find((x) => x.name === name);
  if (!p) throw new Error(`no pod ${name}`);
  return p;
};
const req = (method: string, path: string, headers: Record<string, string> = {}): HttpRequest => ({ method, path, headers });

const productionSets: [string, () => Policy[]][] = [
  ['native', () => nativePolicies('native-production.yaml')],
  ['CiliumNetworkPolicy', () => loadCiliumPolicies(fx('cnp-production.yaml'))],
];
const orderSets: [string, () => Policy[]][] = [
  ['native', () => nativePolicies('native-orders.yaml')],
  ['CiliumNetworkPolicy', () => loadCiliumPolicies(fx('cnp-orders.yaml'))],
];

for (const [kind, load] of productionSets) {
  test(`${kind}: L7 policy on public-api allows the listed requests from frontend only`, (t) => {
    const pols = load();
    const api = pod(production, 'public-api-0');
    const fe = pod(production, 'frontend-0');
    const v = (src: PodSpec | undefined, r?: HttpRequest, port = 8080) => ingressVerdict(pols, api, src, port, r);
    t.like(v(fe, req('GET', '/api/v1/products')), { allowed: true, reason: 'allowed', policy: 'production/public-api-l7', l7: true });
    t.like(v(fe, req('GET', '/api/v1/products/42')), { allowed: true, reason: 'allowed' });
    t.like(v(fe, req('GET', '/api/v1/categories/7')), { allowed: true, reason: 'allowed' });
    t.like(v(fe, req('DELETE', '/api/v1/products/1')), { allowed: false, reason: 'denied-l7', policy: 'production/public-api-l7' });
    t.like(v(fe, req('get', '/api/v1/products')), { allowed: false, reason: 'denied-l7' }, 'methods are case-sensitive');
    t.like(v(fe, req('GET', '/v2/api/v1/products')), { allowed: false, reason: 'denied-l7' }, 'paths match in full');
    t.like(v(fe, req('POST', '/api/v1/orders', { 'Content-Type': 'application/json' })), { allowed: true, reason: 'allowed' });
    t.like(v(fe, req('POST', '/api/v1/orders', { 'content-type': 'application/json' })), { allowed: true }, 'header names are case-insensitive');
    t.like(v(fe, req('POST', '/api/v1/orders')), { allowed: false, reason: 'denied-l7' });
    t.like(v(fe, req('POST', '/api/v1/orders', { 'Content-Type': 'text/plain' })), { allowed: false, reason: 'denied-l7' });
    t.like(v(fe, req('POST', '/api/v1/orders/9', { 'Content-Type': 'application/json' })), { allowed: false, reason: 'denied-l7' });
    // Sources without the frontend label, other ports, unknown peers: refused before any proxy.
    t.like(v(pod(production, 'api-gateway-0'), req('GET', '/api/v1/products')), { allowed: false, reason: 'denied-l4' });
    t.like(v(production.client, req('GET', '/api/v1/products')), { allowed: false, reason: 'denied-l4' });
    t.like(v(undefined, req('GET', '/api/v1/products')), { allowed: false, reason: 'denied-l4' });
    t.like(v(fe, req('GET', '/api/v1/products'), 9090), { allowed: false, reason: 'denied-l4', l7: false });
    // Without a request: the connection is admitted to the proxy.
    t.like(v(fe), { allowed: true, reason: 'allowed', l7: true });
  });

  test(`${kind}: L4 policy of backend-service (8080/9090 in; 5432 to database, 6379 to cache out)`, (t) => {
    const pols = load();
    const be = pod(production, 'backend-service-0');
    const gw = pod(production, 'api-gateway-0');
    const db = pod(production, 'database-0');
    const cache = pod(production, 'cache-0');
    t.like(ingressVerdict(pols, be, gw, 8080), { allowed: true, reason: 'allowed', policy: 'production/backend-l4', l7: false });
    t.like(ingressVerdict(pols, be, gw, 9090), { allowed: true, reason: 'allowed' });
    t.like(ingressVerdict(pols, be, gw, 8081), { allowed: false, reason: 'denied-l4' });
    t.like(ingressVerdict(pols, be, pod(production, 'frontend-0'), 8080), { allowed: false, reason: 'denied-l4' });
    t.like(ingressVerdict(pols, be, gw, 8080, req('DELETE', '/anything')), { allowed: true }, 'no L7 rules: every request');
    t.like(egressVerdict(pols, be, db, 5432), { allowed: true, reason: 'allowed' });
    t.like(egressVerdict(pols, be, cache, 6379), { allowed: true, reason: 'allowed' });
    t.like(egressVerdict(pols, be, db, 5433), { allowed: false, reason: 'denied-l4' });
    t.like(egressVerdict(pols, be, cache, 5432), { allowed: false, reason: 'denied-l4' }, 'port allowed, but to the database only');
    t.like(egressVerdict(pols, be, undefined, 443), { allowed: false, reason: 'denied-l4' });
    // Others are untouched by it.
    t.like(egressVerdict(pols, gw, db, 5433), { allowed: true, reason: 'no-policy' });
    t.like(ingressVerdict(pols, db, gw, 5432), { allowed: true, reason: 'no-policy' });
    t.like(flowVerdict(pols, gw, be, 8080), { allowed: true });
    t.like(flowVerdict(pols, be, db, 5433), { allowed: false, direction: 'egress' });
  });

  test(`${kind}: mutual authentication required from order-service to payment-service`, (t) => {
    const pols = load();
    const pay = pod(production, 'payment-service-0');
    const os = pod(production, 'order-service-0');
    t.like(ingressVerdict(pols, pay, os, 8080), { allowed: true, reason: 'allowed' });
    t.like(ingressVerdict(pols, pay, os, 8080, undefined, { authenticated: true }), { allowed: true });
    t.like(ingressVerdict(pols, pay, os, 8080, undefined, { authenticated: false }), {
      allowed: false,
      reason: 'auth-required',
      policy: 'production/payment-mutual-auth',
    });
    t.like(ingressVerdict(pols, pay, pod(production, 'frontend-0'), 8080), { allowed: false, reason: 'denied-l4' });
    t.like(ingressVerdict(pols, pay, undefined, 8080), { allowed: false, reason: 'denied-l4' });
  });
}

for (const [kind, load] of orderSets) {
  test(`${kind}: gRPC rule on inventory-service allows only CheckStock from order-service`, (t) => {
    const pols = load();
    const inv = pod(orders, 'inventory-service-0');
    const os = pod(orders, 'order-service-0');
    const grpc = (m: string) => req('POST', `/inventory.v1.InventoryService/${m}`, { 'content-type': 'application/grpc' });
    t.like(ingressVerdict(pols, inv, os, 50051, grpc('CheckStock')), {
      allowed: true,
      reason: 'allowed',
      l7: true,
      policy: 'order-processing/inventory-from-orders',
    });
    t.like(ingressVerdict(pols, inv, os, 50051, grpc('ReserveStock')), { allowed: false, reason: 'denied-l7' });
    t.like(ingressVerdict(pols, inv, os, 50051, req('GET', '/inventory.v1.InventoryService/CheckStock')), { allowed: false, reason: 'denied-l7' });
    t.like(
      ingressVerdict(pols, inv, os, 50051, req('POST', '/inventoryXv1.InventoryService/CheckStock')),
      { allowed: false, reason: 'denied-l7' },
      'dots are literal',
    );
    t.like(ingressVerdict(pols, inv, pod(orders, 'frontend-api-0'), 50051, grpc('CheckStock')), { allowed: false, reason: 'denied-l4' });
  });

  test(`${kind}: order-service accepts only POST /orders from frontend-api`, (t) => {
    const pols = load();
    const os = pod(orders, 'order-service-0');
    const fe = pod(orders, 'frontend-api-0');
    t.like(ingressVerdict(pols, os, fe, 8080, req('POST', '/orders')), { allowed: true, reason: 'allowed' });
    t.like(ingressVerdict(pols, os, fe, 8080, req('GET', '/orders')), { allowed: false, reason: 'denied-l7' });
    t.like(ingressVerdict(pols, os, fe, 8080, req('POST', '/orders/12')), { allowed: false, reason: 'denied-l7' });
    t.like(ingressVerdict(pols, os, pod(orders, 'inventory-service-0'), 8080, req('POST', '/orders')), { allowed: false, reason: 'denied-l4' });
    // frontend-api itself is selected by no policy.
    t.like(ingressVerdict(pols, fe, os, 8080, req('DELETE', '/x')), { allowed: true, reason: 'no-policy' });
  });
}

test('no policy: everything is allowed', (t) => {
  const api = pod(production, 'public-api-0');
  t.deepEqual(ingressVerdict([], api, undefined, 1234, req('DELETE', '/')), { allowed: true, reason: 'no-policy' });
  t.deepEqual(egressVerdict([], api, undefined, 1234), { allowed: true, reason: 'no-policy' });
  // A policy in another namespace with the same labels does not select the pod.
  const other = PolicySchema.parse({ name: 'x', namespace: 'staging', selector: { app: 'public-api' }, ingress: [] });
  t.is(ingressVerdict([other], api, pod(production, 'frontend-0'), 8080).reason, 'no-policy');
});

test('native semantics: ingress: [] denies all; {} allows all; omitted peers admit unknown peers; auth without peers', (t) => {
  const api = pod(production, 'public-api-0');
  const fe = pod(production, 'frontend-0');
  const P = (x: unknown) => [PolicySchema.parse({ name: 'p', namespace: 'production', selector: { app: 'public-api' }, ...(x as object) })];
  t.like(ingressVerdict(P({ ingress: [] }), api, fe, 8080), { reason: 'denied-l4' });
  t.like(ingressVerdict(P({ egress: [] }), api, fe, 8080), { reason: 'no-policy' });
  t.like(ingressVerdict(P({ ingress: [{}] }), api, undefined, 1), { reason: 'allowed' });
  t.like(ingressVerdict(P({ ingress: [{ ports: [8080] }] }), api, undefined, 8080), { reason: 'allowed' });
  t.like(ingressVerdict(P({ ingress: [{ from: [{}] }] }), api, undefined, 8080), { reason: 'denied-l4' }, '[{}] = pods of the namespace');
  t.like(ingressVerdict(P({ ingress: [{ from: [{}] }] }), api, production.client, 8080), { reason: 'denied-l4' }, 'client is in default');
  t.like(ingressVerdict(P({ ingress: [{ from: [{}] }] }), api, fe, 8080), { reason: 'allowed' });
  t.like(ingressVerdict(P({ ingress: [{ namespaces: ['default'] }] }), api, production.client, 8080), { reason: 'allowed' });
  t.like(ingressVerdict(P({ ingress: [{ from: [{ app: 'client' }], namespaces: ['default'] }] }), api, production.client, 8080), { reason: 'allowed' });
  t.like(ingressVerdict(P({ ingress: [{ auth: 'required' }] }), api, undefined, 8080), { reason: 'auth-required' });
  // A rule without L7 rules on the same port lets its peers through the proxy with any request.
  const mixed = P({
    ingress: [
      { from: [{ app: 'frontend' }], ports: [8080], http: [{ method: 'GET' }] },
      { from: [{ app: 'api-gateway' }], ports: [8080] },
    ],
  });
  t.like(ingressVerdict(mixed, api, pod(production, 'api-gateway-0'), 8080, req('DELETE', '/')), { allowed: true, l7: true });
  t.like(ingressVerdict(mixed, api, fe, 8080, req('DELETE', '/')), { reason: 'denied-l7' });
});

test('CiliumNetworkPolicy fixtures load into the same policies as the native fixtures', (t) => {
  t.deepEqual(loadCiliumPolicies(fx('cnp-production.yaml')), nativePolicies('native-production.yaml'));
  t.deepEqual(loadCiliumPolicies(fx('cnp-orders.yaml')), nativePolicies('native-orders.yaml'));
  const r = readCiliumPolicies(fx('cnp-production.yaml'));
  t.deepEqual(r.errors, []);
  t.deepEqual(r.origins, [`${fx('cnp-production.yaml')}:4`, `${fx('cnp-production.yaml')}:21`, `${fx('cnp-production.yaml')}:44`]);
});

test('CiliumNetworkPolicy outside the subset: every problem at once, each as file:line', (t) => {
  const f = fx('cnp-unsupported.yaml');
  const { errors, policies } = readCiliumPolicies(f);
  t.deepEqual(policies, []);
  const at = (line: number, re: RegExp) =>
    t.true(
      errors.some((e) => e.startsWith(`${f}:${line}: `) && re.test(e)),
      `line ${line} ${re}\n${errors.join('\n')}`,
    );
  at(4, /kind: CiliumClusterwideNetworkPolicy is not supported/);
  at(15, /spec\.endpointSelector\.matchExpressions: matchExpressions are not supported; use matchLabels/);
  at(18, /spec\.egress\.0\.toFQDNs: .*not supported/);
  at(21, /spec\.egress\.1\.toPorts\.0\.ports\.0\.protocol: unsupported protocol "UDP" \(supported: TCP/);
  at(31, /ports\.0\.port: unsupported port "http"/);
  at(34, /http\.0\.method: unsupported method "GET\|HEAD"/);
  at(34, /http\.0\.path: not a valid regular expression/);
  at(35, /http\.1\.headers\.0: expected "Name: value"/);
  at(36, /spec\.ingress\.1\.fromEntities: entities .* not supported/);
  t.is(errors.length, 9, errors.join('\n'));

  const e = t.throws(() => loadCiliumPolicies(f), { instanceOf: MeshbenchError });
  t.is(e?.code, 'E_INPUT');
  t.deepEqual(e?.details, errors);
  t.regex(readCiliumPolicies(fx('nope.yaml')).errors[0], /nope\.yaml:1: file not found/);
});

test('CiliumNetworkPolicy special cases convert like Cilium reads them', (t) => {
  const doc = (spec: string, meta = '{name: p, namespace: production}') =>
    parseCiliumPolicies(
      `apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: ${meta}\nspec:\n  endpointSelector: {matchLabels: {app: web}}\n${spec}`,
      'x.yaml',
    );
  t.deepEqual(doc('  ingress: [{}]\n').policies[0].ingress, [], '- {} only turns default-deny on');
  t.false('ingress' in doc('  ingress: []\n').policies[0], 'an empty section does not enable enforcement');
  t.deepEqual(doc('  ingress: [{toPorts: [{ports: [{port: "80"}]}]}]\n').policies[0].ingress, [{ ports: [80] }], 'ports only: any peer');
  t.deepEqual(
    doc(
      '  ingress:\n  - fromEndpoints: [{matchLabels: {k8s:io.kubernetes.pod.namespace: monitoring, app: prom}}, {matchLabels: {app: a}}]\n    toPorts: [{ports: [{port: 9090}]}, {ports: [{port: 80}], rules: {http: [{}]}}]\n',
    ).policies[0].ingress,
    [
      { from: [{ app: 'prom' }], namespaces: ['monitoring'], ports: [9090] },
      { from: [{ app: 'prom' }], namespaces: ['monitoring'], ports: [80], http: [{}] },
      { from: [{ app: 'a' }], ports: [9090] },
      { from: [{ app: 'a' }], ports: [80], http: [{}] },
    ],
  );
  t.deepEqual(doc('  egress: [{toEndpoints: [{}], authentication: {mode: disabled}}]\n', '{name: p}').policies[0], {
    name: 'p',
    namespace: 'default',
    selector: { app: 'web' },
    egress: [{ to: [{}] }],
  });
  const bad = doc('  ingress: [{fromEndpoints: [{matchLabels: {app: 1}}]}]\n', '{name: Bad_Name, namespace: production}').errors;
  t.true(
    bad.some((e) => /^x\.yaml:3: metadata\.name: must be a lowercase DNS label/.test(e)),
    bad.join('\n'),
  );
  t.true(
    bad.some((e) => /^x\.yaml:6: .*matchLabels\.app: label values must be strings/.test(e)),
    bad.join('\n'),
  );
  t.regex(parseCiliumPolicies('a: [\n', 'y.yaml').errors[0], /^y\.yaml:\d+: /);
  const twice = parseCiliumPolicies(
    `apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: p}\nspec: {endpointSelector: {}}\n---\napiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: p}\nspec: {endpointSelector: {}}\n`,
    'z.yaml',
  );
  t.deepEqual(twice.errors, ['z.yaml:8: metadata.name: policy default/p is defined twice (first at line 3)']);
});

test('native schema rejects what engines could not enforce', (t) => {
  const issues = (x: unknown) => {
    const r = PolicySchema.safeParse(x);
    return r.success ? [] : r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
  };
  const base = { name: 'p', selector: { app: 'x' } };
  t.deepEqual(issues({ ...base, ingress: [{ ports: [80], http: [{ method: 'GET', path: '/a', headers: ['X-A: 1'] }] }] }), []);
  t.true(
    issues({ ...base, ingress: [{ ports: [80], http: [{ path: '/api/(' }] }] }).some((m) =>
      /^ingress\.0\.http\.0\.path: not a valid regular expression/.test(m),
    ),
  );
  t.true(
    issues({ ...base, ingress: [{ ports: [80], http: [{ path: '/a(?!b)' }] }] }).some((m) => /path: .*lookaround and backreferences are not supported/.test(m)),
  );
  t.true(issues({ ...base, ingress: [{ ports: [80], http: [{ method: 'GET|HEAD' }] }] }).some((m) => /method: must be an HTTP method/.test(m)));
  t.true(
    issues({ ...base, ingress: [{ ports: [80], http: [{ method: 'GET POST' }] }] }).some((m) => /^ingress\.0\.http\.0\.method: must be an HTTP method/.test(m)),
  );
  t.true(issues({ ...base, ingress: [{ ports: [80], http: [{ headers: ['X-Debug'] }] }] }).some((m) => /headers\.0: must be "Name: value"/.test(m)));
  t.true(issues({ ...base, ingress: [{ http: [{ method: 'GET' }] }] }).some((m) => /^ingress\.0\.http: L7 rules need the ports/.test(m)));
  t.true(issues({ ...base, egress: [{ ports: [80], grpc: [{ service: 'bad service' }] }] }).some((m) => /grpc\.0\.service/.test(m)));
  t.true(issues({ ...base, ingress: [{ ports: [0] }] }).some((m) => /ports\.0/.test(m)));
  t.true(issues({ ...base, ingress: [{ fromEndpoints: [] }] }).some((m) => /Unrecognized key/i.test(m)));
  t.is(PolicySchema.parse(base).namespace, 'default');

  const rissues = (x: unknown) => {
    const r = RouteSchema.safeParse(x);
    return r.success ? [] : r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
  };
  t.deepEqual(
    rissues({
      service: 's',
      rules: [
        {
          to: [
            { service: 'a', weight: 1 },
            { service: 'b', weight: 3 },
          ],
        },
      ],
    }),
    [],
  );
  t.true(
    rissues({ service: 's', rules: [{ to: [{ service: 'a', weight: 1 }, { service: 'b' }] }] }).some((m) =>
      /^rules\.0\.to: give every destination a weight/.test(m),
    ),
  );
  t.true(rissues({ service: 's', rules: [{ to: [{ service: 'a', weight: 0.5 }] }] }).some((m) => /weight/.test(m)));
  t.true(
    rissues({ service: 's', rules: [{ to: [{ service: 'a' }] }, { match: { headers: { x: 'y' } }, to: [{ service: 'b' }] }] }).some((m) =>
      /^rules\.1: never used/.test(m),
    ),
  );
});

test('compileIngress / compileEgress: per-port plans with identities, IPs and anchored L7 rules', (t) => {
  const pols = nativePolicies('native-production.yaml');
  const ip = (n: string) => pod(production, n).ip;
  const peer = (n: string) => ({ namespace: 'production', serviceAccount: n, pods: [`${n}-0`], ips: [ip(`${n}-0`)] });
  t.deepEqual(compileIngress(pols, pod(production, 'public-api-0'), production), {
    enforced: true,
    ports: [
      {
        port: 8080,
        sources: [peer('frontend')],
        authRequired: false,
        l7: [
          { method: 'GET', pathRegex: '^(?:/api/v1/products.*)$' },
          { method: 'GET', pathRegex: '^(?:/api/v1/categories.*)$' },
          { method: 'POST', pathRegex: '^(?:/api/v1/orders)$', headers: [['content-type', 'application/json']] },
        ],
      },
    ],
  });
  t.deepEqual(compileIngress(pols, pod(production, 'backend-service-0'), production), {
    enforced: true,
    ports: [
      { port: 8080, sources: [peer('api-gateway')], authRequired: false },
      { port: 9090, sources: [peer('api-gateway')], authRequired: false },
    ],
  });
  t.deepEqual(compileEgress(pols, pod(production, 'backend-service-0'), production), {
    enforced: true,
    ports: [
      { port: 5432, destinations: [peer('database')], authRequired: false },
      { port: 6379, destinations: [peer('cache')], authRequired: false },
    ],
  });
  t.deepEqual(compileIngress(pols, pod(production, 'payment-service-0'), production).ports, [
    { port: 8080, sources: [peer('order-service')], authRequired: true },
  ]);
  t.deepEqual(compileIngress(pols, pod(production, 'database-0'), production), { enforced: false, ports: [] });
  t.deepEqual(compileEgress(pols, pod(production, 'public-api-0'), production), { enforced: false, ports: [] });

  const grpcPlan = compileIngress(nativePolicies('native-orders.yaml'), pod(orders, 'inventory-service-0'), orders);
  t.deepEqual(grpcPlan.ports[0].l7, [{ method: 'POST', pathRegex: '^/inventory\\.v1\\.InventoryService/CheckStock$' }]);
  t.true(new RegExp(grpcPlan.ports[0].l7![0].pathRegex!).test('/inventory.v1.InventoryService/CheckStock'));
});

test('compile merges rules per port and agrees with the verdicts', (t) => {
  const api = pod(production, 'public-api-0');
  const pols = [
    PolicySchema.parse({
      name: 'a',
      namespace: 'production',
      selector: { app: 'public-api' },
      ingress: [
        { from: [{ app: 'frontend' }], ports: [8080], http: [{ method: 'GET' }] },
        { from: [{ app: 'api-gateway' }], ports: [8080] },
        { ports: [9090], auth: 'required' },
        { from: [{}], namespaces: ['default'] },
      ],
    }),
    PolicySchema.parse({
      name: 'b',
      namespace: 'production',
      selector: { app: 'public-api' },
      ingress: [{ from: [{ app: 'frontend' }], ports: [8080], http: [{ method: 'HEAD' }] }],
    }),
  ];
  const plan = compileIngress(pols, api, production);
  const client = { namespace: 'default', serviceAccount: 'client', pods: ['client'], ips: [production.client.ip] };
  t.deepEqual(
    plan.ports.map((p) => ({ ...p, sources: p.sources === 'any' ? 'any' : p.sources.map((s) => s.serviceAccount) })),
    [
      { port: 8080, sources: ['client', 'api-gateway'], authRequired: false, l7: [{}] },
      { port: 8080, sources: ['frontend'], authRequired: false, l7: [{ method: 'GET' }, { method: 'HEAD' }] },
      { port: 9090, sources: 'any', authRequired: true },
      { port: 'any', sources: ['client'], authRequired: false },
    ],
  );
  t.deepEqual((plan.ports[3].sources as unknown[])[0], client);
  // Every (peer, port) the plan admits, the verdict admits, and the other way round.
  for (const peer of [...production.pods, undefined])
    for (const port of [8080, 9090, 1234]) {
      const entries = plan.ports.filter((p) => p.port === port).length ? plan.ports.filter((p) => p.port === port) : plan.ports.filter((p) => p.port === 'any');
      const own = entries.find((e) => e.sources !== 'any' && peer && e.sources.some((s) => s.pods.includes(peer.name)));
      const entry = own ?? entries.find((e) => e.sources === 'any');
      const v = ingressVerdict(pols, api, peer, port, undefined, { authenticated: true });
      t.is(v.allowed, !!entry, `${peer?.name ?? 'unknown'}:${port}`);
      if (entry) t.is(v.l7, !!entry.l7);
      if (entry) t.is(ingressVerdict(pols, api, peer, port, undefined, { authenticated: false }).reason, entry.authRequired ? 'auth-required' : 'allowed');
    }
});

test('resolveRoutes: canary header rule first, then the 90/10 split, with backend pods', (t) => {
  const c = cluster([
    { name: 'api-service', namespace: 'production', selector: { app: 'api' }, labels: { version: 'v1' } },
    { name: 'api-service-v1', namespace: 'production', selector: { app: 'api', version: 'v1' } },
    { name: 'api-service-v2', namespace: 'production', selector: { app: 'api', version: 'v2' } },
  ]);
  const [r, ...rest] = resolveRoutes(nativeRoutes('routes-canary.yaml'), c);
  t.is(rest.length, 0);
  t.is(r.service.name, 'api-service');
  t.is(r.service.port, 80);
  t.deepEqual(r.rules[0].headers, [['x-canary', 'true']]);
  t.deepEqual(
    r.rules[0].to.map((d) => [d.service.name, d.weight, d.share]),
    [['api-service-v2', 1, 1]],
  );
  t.deepEqual(r.rules[1].headers, []);
  t.deepEqual(
    r.rules[1].to.map((d) => [d.service.name, d.weight, d.share]),
    [
      ['api-service-v1', 90, 0.9],
      ['api-service-v2', 10, 0.1],
    ],
  );
  const ipOf = (n: string) => pod(c, n).ip;
  t.deepEqual(r.rules[1].to[0].backends.map((b) => b.pod).sort(), ['api-service-0', 'api-service-v1-0']);
  t.deepEqual(r.rules[1].to[1].backends, [{ pod: 'api-service-v2-0', ip: ipOf('api-service-v2-0'), port: 8080 }]);
  t.is(routeRuleFor(r, { path: '/', headers: { 'X-Canary': 'true' } }), r.rules[0]);
  t.is(routeRuleFor(r, { path: '/', headers: { 'x-canary': 'false' } }), r.rules[1]);
  t.deepEqual(checkPolicies([], nativeRoutes('routes-canary.yaml'), c), []);

  const bad = RouteSchema.parse({ service: 'nope', namespace: 'production', rules: [{ to: [{ service: 'api-service-v1' }, { service: 'gone' }] }] });
  const e = t.throws(() => resolveRoutes([bad], c), { instanceOf: MeshbenchError });
  t.is(e?.code, 'E_INPUT');
  t.deepEqual(
    e?.details.map((d) => d.split(' (')[0]),
    ['routes.0.service: unknown service "production/nope"', 'routes.0.rules.0.to.1.service: unknown service "production/gone"'],
  );
});

test('checkPolicies: errors for duplicates and unknown services, warnings for what matches nothing', (t) => {
  const pols = [
    ...nativePolicies('native-production.yaml'),
    PolicySchema.parse({
      name: 'ghost',
      namespace: 'production',
      selector: { app: 'nothing' },
      ingress: [{ from: [{ app: 'nobody' }], namespaces: ['nowhere'] }],
    }),
    PolicySchema.parse({ name: 'backend-l4', namespace: 'production', selector: { app: 'backend-service' } }),
  ];
  const routes = [
    RouteSchema.parse({ service: 'public-api', namespace: 'production', rules: [{ match: { headers: { 'x-a': '1' } }, to: [{ service: 'frontend' }] }] }),
    RouteSchema.parse({ service: 'public-api', namespace: 'production', rules: [{ to: [{ service: 'missing' }] }] }),
  ];
  const p = checkPolicies(pols, routes, production).map((x) => `${x.severity} ${x.path.join('.')}: ${x.message}`);
  const has = (re: RegExp) =>
    t.true(
      p.some((x) => re.test(x)),
      `${re}\n${p.join('\n')}`,
    );
  has(/^warning policies\.1\.ingress\.0\.ports\.1: policy production\/backend-l4: no selected pod listens on port 9090$/);
  has(/^warning policies\.3\.selector: policy production\/ghost selects no pod/);
  has(/^warning policies\.3\.ingress\.0\.namespaces\.0: .*namespace nowhere has no pods/);
  has(/^warning policies\.3\.ingress\.0\.from\.0: .*matches no pod in nowhere/);
  has(/^error policies\.4\.name: policy production\/backend-l4 is defined twice \(first at policies\.1\)/);
  has(/^warning policies\.4: .*neither ingress nor egress/);
  has(/^warning routes\.0\.rules\.0: .*404/);
  has(/^error routes\.1\.service: service production\/public-api is routed twice/);
  has(/^error routes\.1\.rules\.0\.to\.0\.service: unknown service "production\/missing"/);
  t.is(p.length, 9, p.join('\n'));
  t.deepEqual(checkPolicies(nativePolicies('native-orders.yaml'), [], orders), []);
});
