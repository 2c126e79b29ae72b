import test from 'ava';
import { loadScenario } from '../../harness/scenario/load.js';
import type { Scenario } from '../../harness/scenario/schema.js';
import { buildCluster } from '../../harness/topology/graph.js';
import { dataplaneChecks, getDataplane } from '../../harness/dataplanes/registry.js';
import { outboundRoutes, outboundServices } from '../../harness/dataplanes/mesh/services.js';
import { nodeProxyPods } from '../../harness/dataplanes/ambient/family.js';
import { renderNodeProxy, renderWaypoint } from '../../harness/dataplanes/engine/haproxy.js';
import type { Waypoint, WaypointSpec } from '../../harness/dataplanes/engine/types.js';
import { resolveRoutes } from '../../harness/dataplanes/mesh/policy/model.js';
import { RouteSchema } from '../../harness/scenario/policy-schema.js';
import { exec } from '../../harness/util/exec.js';
import { findTool } from '../../harness/util/tools.js';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { evalFrontend, modelRoute, pathRouteSets, routeProbes } from '../helpers.js';

/** One node, `services` one-replica Services on it, plus the client. */
function oneNode(services: number): Scenario {
  const s = loadScenario('test/fixtures/scenarios/sidecar-policy.yaml', { dataplanes: dataplaneChecks });
  s.topology = { ...s.topology, nodes: ['node1'], podsPerNode: 0 };
  s.client = { ...s.client, node: 'node1' };
  s.services = Array.from({ length: services }, (_, i) => ({
    name: `svc-${i}`,
    namespace: 'default',
    port: 80,
    targetPort: 8080,
    protocol: 'http' as const,
    replicas: i === 0 ? 3 : 1,
    nodes: ['node1'],
  }));
  s.policies = [];
  s.routes = [];
  s.workloads = [{ ...s.workloads[0], chain: ['svc-0'] }];
  return s;
}

function render(s: Scenario, waypoints: Waypoint[] = []) {
  const c = buildCluster(s, 'mbcfg1');
  const ids = new Map(c.pods.map((p) => [p.name, `/ca/${p.name}.pem`]));
  const services = outboundServices(c);
  const out = renderNodeProxy({
    node: 'node1',
    netns: c.nodes[0].netns,
    threads: 1,
    outboundPort: 15001,
    inboundPlainPort: 15006,
    tunnelPort: 15008,
    rootCaFile: '/ca/root.pem',
    adminSocket: '/run/x.sock',
    pods: nodeProxyPods(s, c, 'node1', ids, waypoints),
    services,
    workloads: c.pods.map((p) => ({ ip: p.ip, spiffeId: `spiffe://cluster.local/ns/${p.namespace}/sa/${p.serviceAccount}` })),
    mapDir: '/maps',
    keepSourceIp: false,
    waypoints,
  });
  return { c, services, ...out };
}

test("the node proxy's config grows with its pods, not with pods × Services: Services and workloads live in the node's tables", (t) => {
  // Each Service adds a local pod here, so the config per local pod must stay flat from 10 to 40.
  const small = render(oneNode(10));
  const big = render(oneNode(40));
  const perPod = (r: typeof small) => r.config.split('\n').length / r.c.pods.length;
  t.true(Math.abs(perPod(small) - perPod(big)) < 1, `${perPod(small)} vs ${perPod(big)} lines per pod`);
  t.is((small.config.match(/^\s+server .* ssl /gm) ?? []).length, small.c.pods.length, 'one TLS server line per local pod');
  const svc0 = big.services[0];
  t.is(
    big.maps['/maps/services.map'].split('\n').find((l) => l.startsWith(`${svc0.vip}:80 `)),
    `${svc0.vip}:80 3`,
  );
  const eps = big.maps['/maps/endpoints.map'].split('\n').filter((l) => l.startsWith(`${svc0.vip}:80/`));
  t.deepEqual(
    eps,
    svc0.endpoints.map((e, i) => `${svc0.vip}:80/${i} ${e.ip}`),
  );
  t.true(big.maps['/maps/identities.map'].includes(`${svc0.endpoints[0].ip} spiffe://cluster.local/ns/default/sa/svc-0\n`));
  t.true(
    big.config.includes(
      `server endpoint 0.0.0.0:15008 namespace ${big.c.client.netns} ssl crt /ca/client.pem ca-file /ca/root.pem verify required sni var(txn.id) send-proxy-v2`,
    ),
  );
});

test('Services fronted by a waypoint go to it (by index), not to an endpoint', (t) => {
  const s = oneNode(3);
  const c = buildCluster(s, 'mbcfg1');
  const svc1 = outboundServices(c)[1];
  const r = render(s, [{ ip: '198.19.1.254', port: 15008, spiffeId: 'spiffe://cluster.local/ns/default/sa/waypoint', services: [svc1.key] }]);
  t.is(r.maps['/maps/waypoints.map'], `${svc1.vip}:80 0\n`);
  t.false(r.maps['/maps/services.map'].includes(`${svc1.vip}:80 `), 'no endpoint choice for it at the source');
  t.true(r.config.includes(`use_backend w_${c.client.netns}_%[var(txn.wp)] if { var(txn.wp) -m found }`));
  t.regex(r.config, /server waypoint 198\.19\.1\.254:15008 .* verifyhost spiffe:\/\/cluster\.local\/ns\/default\/sa\/waypoint send-proxy-v2/);
});

// Issue 12 item 10: the waypoint (Envoy's role in ambient) routes by path prefix like the model.
for (const [name, input] of Object.entries(pathRouteSets('default')))
  test(`waypoint routes with path prefixes (${name}): every request goes where the model sends it`, async (t) => {
    const s = loadScenario('test/fixtures/scenarios/sidecar-policy.yaml', { dataplanes: dataplaneChecks });
    s.routes = input.map((r) => RouteSchema.parse(r));
    const c = buildCluster(s, 'mbcfg2');
    const all = outboundServices(c);
    const routes = outboundRoutes(s, c);
    const spec: WaypointSpec = {
      namespace: 'default',
      threads: 1,
      port: 15008,
      tunnelPort: 15008,
      identity: { spiffeId: 'spiffe://cluster.local/ns/default/sa/waypoint', bundleFile: '/ca/waypoint.pem' },
      rootCaFile: '/ca/root.pem',
      adminSocket: '/run/wp.sock',
      services: all.map((svc) => ({ service: svc, targetPort: 8080, authz: { enforced: false, ports: [] } })),
      routes,
      targets: all,
    };
    const cfg = renderWaypoint(spec);
    const model = resolveRoutes(s.routes, c)[0];
    const api = c.services.find((x) => x.name === 'api-service')!;
    for (const req of routeProbes(api.vip, 80)) {
      const got = evalFrontend(cfg, 'waypoint', req);
      const want = modelRoute(model, req);
      t.deepEqual(got.status ?? got.backend, want === 404 ? 404 : `wo_${want}`, `${req.path} ${JSON.stringify(req.headers)} draw ${req.draw}`);
    }
    const v1 = c.services.find((x) => x.name === 'api-service-v1')!;
    t.is(
      evalFrontend(cfg, 'waypoint', { dst: v1.vip, dport: 80, path: '/v2/', headers: {}, draw: 0 }).backend,
      'wo_default_api-service-v1_80',
      'an unrouted Service goes to itself',
    );
    const bin = await findTool('haproxy');
    if (!bin) return;
    const dir = mkdtempSync(join(tmpdir(), 'mb-wp-'));
    writeFileSync(join(dir, 'wp.cfg'), cfg.replace(/ (accept-proxy )?ssl crt .*$/gm, '').replace(/^ {2}stats socket .*$/m, ''));
    const r = await exec(bin, ['-c', '-f', join(dir, 'wp.cfg')], { allowFail: true });
    t.is(r.code, 0, r.stdout + r.stderr);
  });

// Issue 17: ambient[mtls=off] — the same tunnels (PROXY v2 to :15008) without TLS, policy peers by address.
test('ambient[mtls=off]: plaintext tunnels, no TLS word, the `from` pods by address; ambient-waypoint has no such option', (t) => {
  const s = loadScenario('test/fixtures/scenarios/sidecar-policy.yaml', { dataplanes: dataplaneChecks });
  const c = buildCluster(s, 'mbcfg3');
  const dp = getDataplane('ambient[mtls=off]');
  t.is(dp.name, 'ambient[mtls=off]');
  t.deepEqual(dp.settings, { mtls: 'off' });
  t.deepEqual(getDataplane('ambient').settings, { mtls: 'on' });
  t.is(getDataplane('ambient-waypoint').options, undefined);
  t.throws(() => getDataplane('ambient-waypoint[mtls=off]'), { message: /ambient-waypoint has no options/ });
  const on = getDataplane('ambient').plan({ cluster: c, scenario: s }).configs;
  const off = dp.plan({ cluster: c, scenario: s }).configs;
  t.deepEqual(Object.keys(off), Object.keys(on));
  const server = c.pods.find((p) => p.name === 'public-api-0')!;
  const node2 = off[server.node]!;
  t.notRegex(node2, /ssl|verify|alpn|sni |crt /);
  t.notRegex(off[c.client.node]!, /ssl|verify|alpn|sni |crt /);
  t.regex(off[c.client.node]!, /backend t_\S+\n {2}server endpoint 0\.0\.0\.0:15008 namespace \S+ send-proxy-v2\n/);
  const tun = node2.slice(node2.indexOf(`frontend tun_${server.netns}`));
  t.regex(tun, new RegExp(`^ {2}bind 0\\.0\\.0\\.0:15008 namespace ${server.netns}\\n {2}tcp-request connection expect-proxy layer4\\n`, 'm'));
  t.true(tun.includes(`  acl peer_0 src ${c.client.ip}\n`), 'the client (label app: frontend) by its address');
  t.regex(tun, /tcp-request session accept if to_8080 peer_0\n {2}tcp-request session reject/);
  // Everything else is the mesh variant's: the same routing tables.
  for (const [k, v] of Object.entries(on)) if (k.endsWith('.map')) t.is(off[k], v, k);
});

test('ambient[mtls=off]: HAProxy accepts the node proxy configs as rendered', async (t) => {
  const bin = await findTool('haproxy');
  if (!bin) return t.pass('haproxy not installed here');
  const s = loadScenario('test/fixtures/scenarios/sidecar-policy.yaml', { dataplanes: dataplaneChecks });
  const c = buildCluster(s, 'mbcfg4');
  const dir = mkdtempSync(join(tmpdir(), 'mb-amb-off-'));
  const configs = getDataplane('ambient[mtls=off]').plan({ cluster: c, scenario: s }).configs;
  for (const n of c.nodes) {
    // Pod namespaces, the admin socket's directory and the map files are not on this host: map
    // paths point into dir, `namespace` words go (haproxy -c would look the namespaces up).
    let cfg = configs[n.name]!.replace(/^ {2}stats socket .*$/gm, '').replace(/ namespace \S+/g, '');
    for (const [k, v] of Object.entries(configs))
      if (k.endsWith('.map')) {
        const file = join(dir, k.replace(/\//g, '_'));
        writeFileSync(file, v);
        cfg = cfg.split(k).join(file);
      }
    const file = join(dir, `${n.name}.cfg`);
    writeFileSync(file, cfg);
    const r = await exec(bin, ['-c', '-f', file], { allowFail: true });
    t.is(r.code, 0, `${n.name}: ${r.stdout}${r.stderr}`);
  }
});
