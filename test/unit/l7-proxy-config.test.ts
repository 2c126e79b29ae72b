// The ebpf-l7 node proxy's configuration, from the acceptance scenario (001's L7 API filter, 003's
// gRPC method rule, 001's canary route), checked line by line and by HAProxy's own parser.
import test from 'ava';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadScenario } from '../../harness/scenario/load.js';
import { buildCluster } from '../../harness/topology/graph.js';
import { dataplaneChecks } from '../../harness/dataplanes/registry.js';
import { readCiliumPolicies } from '../../harness/dataplanes/mesh/policy/cnp.js';
import { allocateIdentities } from '../../harness/dataplanes/ebpf/identity.js';
import { L7_LB_PORT, l7Plan, l7ProxySpec, renderL7Proxies } from '../../harness/dataplanes/ebpf/family.js';
import { renderL7Proxy } from '../../harness/dataplanes/engine/haproxy.js';
import { exec } from '../../harness/util/exec.js';
import { findTool } from '../../harness/util/tools.js';
import { MeshbenchError } from '../../harness/errors.js';
import { resolveRoutes } from '../../harness/dataplanes/mesh/policy/model.js';
import { RouteSchema } from '../../harness/scenario/policy-schema.js';
import { evalFrontend, modelRoute, pathRouteSets, routeProbes } from '../helpers.js';

// HAProxy's own parser is a check below: without haproxy it is skipped, with the reason. Awaited
// before any test is declared (ava wants every declaration in one synchronous run).
const haproxy = await findTool('haproxy');

const load = () => loadScenario('test/fixtures/scenarios/ebpf-l7.yaml', { dataplanes: dataplaneChecks, readPolicyFile: readCiliumPolicies });

function setup(dir = '/l7') {
  const s = load();
  const c = buildCluster(s, 'mbl7u');
  const ids = allocateIdentities(c);
  const plan = l7Plan(s, c);
  const node = (name: string) => c.nodes.find((n) => n.name === name)!;
  const pod = (name: string) => c.pods.find((p) => p.name === name)!;
  return { s, c, ids, plan, pod, spec: (n: string) => l7ProxySpec(c, s, plan, ids, node(n), dir)! };
}

test('one listener per app port with ingress L7 rules; the routed Service leaves the socket LB for the proxy', (t) => {
  const { c, plan } = setup();
  t.deepEqual(plan.proxyPorts, { 8080: 15100, 50051: 15101 });
  const api = c.services.find((x) => x.name === 'api-service')!;
  t.deepEqual(plan.routed, [{ vip: api.vip, port: 80 }]);
});

test("the destination node's proxy allows exactly the L7 rules' requests from the named identity and refuses the rest with 403", (t) => {
  const { spec, ids, pod } = setup();
  const n2 = spec('node2');
  t.deepEqual(
    n2.ingress.map((x) => [x.pod, x.port, x.protocol]),
    [
      ['public-api-0', 8080, 'http'],
      ['inventory-service-0', 50051, 'grpc'],
    ],
  );
  const { config } = renderL7Proxy(n2);
  const lines = config.split('\n');
  const frontend = ids.byPod.get('frontend')!;
  const at = `{ dst ${pod('public-api-0').ip} } { dst_port 8080 }`;
  t.true(
    lines.includes(`  http-request allow if ${at} { var(txn.sid) -m int ${frontend} } { method GET } { pathq -m reg '^(?:/api/v1/products.*)$' }`),
    config,
  );
  t.true(
    lines.includes(
      `  http-request allow if ${at} { var(txn.sid) -m int ${frontend} } { method POST } { pathq -m reg '^(?:/api/v1/orders)$' } { req.hdr(content-type) -m str application/json }`,
    ),
  );
  const orders = ids.byPod.get('order-service-0')!;
  t.true(
    lines.includes(
      `  http-request allow if { dst ${pod('inventory-service-0').ip} } { dst_port 50051 } { var(txn.sid) -m int ${orders} } { method POST } { pathq -m reg '^/inventory\\.v1\\.InventoryService/CheckStock$' }`,
    ),
  );
  t.is(lines.filter((l) => l.startsWith('  http-request allow')).length, 4);
  t.true(lines.includes('  http-request deny deny_status 403'));
  t.true(lines.includes('  bind 0.0.0.0:15100 transparent') && lines.includes('  bind 0.0.0.0:15101 transparent'));
  t.true(lines.includes(`  server app ${pod('inventory-service-0').ip}:50051 namespace ${pod('inventory-service-0').netns} proto h2`));
});

test('the canary route: x-canary first, then one draw per request split 90/10; the upstream leaves from the client pod', (t) => {
  const { spec, pod } = setup();
  const n1 = spec('node1');
  t.is(n1.lb!.port, L7_LB_PORT);
  t.true(n1.adminSocket.length < 98, n1.adminSocket);
  const { config, maps } = renderL7Proxy(n1);
  const lines = config.split('\n');
  const set = lines.filter((l) => l.includes('set-var(txn.target)'));
  t.is(set.length, 3);
  t.regex(set[0], /str\(production_api-service-v2_80\) if .* \{ req\.hdr\(x-canary\) -m str true \}/);
  t.regex(set[1], /str\(production_api-service-v1_80\) if .* \{ var\(txn\.split\) -m int lt 90 \}/);
  t.true(lines.some((l) => /set-var\(txn\.split\) rand\(100\)/.test(l)));
  t.true(lines.includes(`backend via_${pod('frontend').netns}`));
  // A route to a Service without endpoints is refused, never sent on to the VIP (which would come back here).
  const noEp = lines.indexOf('  http-request deny deny_status 503 unless { var(txn.ep) -m found }');
  t.true(noEp > 0 && noEp < lines.indexOf('  http-request set-dst var(txn.ep) if { var(txn.ep) -m found }'));
  t.is(maps['/l7/node1/clients.map'].split('\n').filter(Boolean).length, n1.lb!.clients.length);
  t.regex(maps['/l7/node1/endpoints.map'], new RegExp(`production_api-service-v1_80/0 ${pod('api-service-v1-0').ip.replace(/\./g, '\\.')}`));
  // node1 has no pod with ingress L7 rules on a port … except order-service's POST /orders.
  t.deepEqual(
    n1.ingress.map((x) => x.pod),
    ['order-service-0'],
  );
});

(haproxy ? test : test.skip)(
  `HAProxy accepts the rendered configuration (namespaces left out)${haproxy ? '' : ' (skipped: haproxy not installed)'}`,
  async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'mb-l7-'));
    const { spec } = setup(dir);
    for (const n of ['node1', 'node2']) {
      const { config, maps } = renderL7Proxy(spec(n));
      mkdirSync(join(dir, n), { recursive: true });
      for (const [p, text] of Object.entries(maps)) writeFileSync(p, text);
      // -c opens the namespaces a config names; the lab's exist only while it runs.
      writeFileSync(join(dir, `${n}.cfg`), config.replace(/ namespace \S+/g, ''));
      const r = await exec(haproxy!, ['-c', '-f', join(dir, `${n}.cfg`)], { allowFail: true });
      t.is(r.code, 0, r.stdout + r.stderr);
    }
  },
);

test('egress L7 rules are refused by ebpf-l7, naming the policy', (t) => {
  const s = load();
  s.policies = [
    ...s.policies,
    {
      name: 'egress-l7',
      namespace: 'production',
      selector: { app: 'frontend' },
      egress: [{ to: [{ app: 'echo' }], ports: [8080], http: [{ method: 'GET' }] }],
    },
  ];
  const c = buildCluster(s, 'mbl7u');
  const e = t.throws(() => l7Plan(s, c));
  t.true(e instanceof MeshbenchError);
  t.regex(e!.message + JSON.stringify((e as MeshbenchError).details ?? ''), /production\/egress-l7/);
});

test('an L7 rule HAProxy cannot express is bad input before anything is built', (t) => {
  const s = load();
  s.policies = s.policies.map((p) => (p.name === 'public-api-l7' ? { ...p, ingress: [{ ...p.ingress![0], http: [{ method: 'GET', path: "/it's" }] }] } : p));
  const c = buildCluster(s, 'mbl7u');
  const ids = allocateIdentities(c);
  const e = t.throws(() => renderL7Proxies(c, s, l7Plan(s, c), ids, '/l7'));
  t.true(e instanceof MeshbenchError && e.code === 'E_INPUT', String(e));
});

// Issue 12 item 10: the ebpf-l7 proxy balances routed Services by path prefix like the model.
for (const [name, input] of Object.entries(pathRouteSets('production')))
  test(`L7 proxy routes with path prefixes (${name}): every request goes where the model sends it`, async (t) => {
    const s = load();
    s.routes = input.map((r) => RouteSchema.parse(r));
    const c = buildCluster(s, 'mbl7u');
    const plan = l7Plan(s, c);
    const spec = l7ProxySpec(c, s, plan, allocateIdentities(c), c.nodes.find((n) => n.name === 'node1')!, '/l7')!;
    const { config } = renderL7Proxy(spec);
    const model = resolveRoutes(s.routes, c)[0];
    const api = c.services.find((x) => x.name === 'api-service')!;
    for (const req of routeProbes(api.vip, 80)) {
      // The route decides txn.target (or 404); the node's tables pick the endpoint after that.
      const got = evalFrontend(config, 'l7_lb', req, /map_str_int/);
      const want = modelRoute(model, req);
      t.deepEqual(got.status ?? got.vars['txn.target'], want, `${req.path} ${JSON.stringify(req.headers)} draw ${req.draw}`);
    }
    const bin = await findTool('haproxy');
    if (!bin) return;
    const dir = mkdtempSync(join(tmpdir(), 'mb-l7-'));
    const { config: cfg, maps } = renderL7Proxy(l7ProxySpec(c, s, plan, allocateIdentities(c), c.nodes.find((n) => n.name === 'node1')!, dir)!);
    mkdirSync(join(dir, 'node1'), { recursive: true });
    for (const [p, text] of Object.entries(maps)) writeFileSync(p, text);
    writeFileSync(join(dir, 'node1.cfg'), cfg.replace(/ namespace \S+/g, ''));
    const r = await exec(bin, ['-c', '-f', join(dir, 'node1.cfg')], { allowFail: true });
    t.is(r.code, 0, r.stdout + r.stderr);
  });
