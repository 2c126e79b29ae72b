import test from 'ava';
import { loadScenario } from '../../harness/scenario/load.js';
import { buildCluster } from '../../harness/topology/graph.js';
import { dataplaneChecks } from '../../harness/dataplanes/registry.js';
import { sidecarSpec, type SidecarProfile } from '../../harness/dataplanes/sidecar/family.js';
import { outboundServices, outboundRoutes } from '../../harness/dataplanes/mesh/services.js';
import { renderSidecar } from '../../harness/dataplanes/engine/haproxy.js';
import { uriSanDerHex } from '../../harness/dataplanes/mesh/ca.js';
import { resolveRoutes } from '../../harness/dataplanes/mesh/policy/model.js';
import { RouteSchema } from '../../harness/scenario/policy-schema.js';
import { exec } from '../../harness/util/exec.js';
import { findTool } from '../../harness/util/tools.js';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { evalFrontend, modelRoute, pathRouteSets, routeProbes } from '../helpers.js';

const s = loadScenario('test/fixtures/scenarios/sidecar-policy.yaml', { dataplanes: dataplaneChecks });
const c = buildCluster(s, 'mbcfg0');
const all = outboundServices(c);
const routes = outboundRoutes(s, c);
const profile = (scope: SidecarProfile['scope'], upstream: SidecarProfile['upstream']) =>
  ({ scope, upstream, uid: 1337, gid: 1337, threads: 2, outboundPort: 15001, inboundPort: 15006, appSource: '127.0.0.6' }) as SidecarProfile;
const spec = (scope: SidecarProfile['scope'], podName: string, upstream: SidecarProfile['upstream'] = 'h1') =>
  sidecarSpec(
    profile(scope, upstream),
    s,
    c,
    c.pods.find((p) => p.name === podName)!,
    { rootCertFile: '/ca/root.pem' },
    `/ca/${podName}.bundle.pem`,
    all,
    routes,
  );

test('istio scope: every sidecar holds every Service; linkerd scope: only what the pod calls and where its routes lead', (t) => {
  t.is(all.length, 5);
  t.is(spec('whole-mesh', 'client').services.length, 5);
  t.is(spec('whole-mesh', 'other-0').services.length, 5);
  t.deepEqual(
    spec('used', 'client')
      .services.map((x) => x.name)
      .sort(),
    ['api-service', 'api-service-v1', 'api-service-v2', 'other', 'public-api'],
  );
  t.deepEqual(
    spec('used', 'other-0').services.map((x) => x.name),
    ['public-api'],
    'a chain link knows the next service',
  );
  t.deepEqual(spec('used', 'public-api-0').services, [], 'a server that calls nobody knows no destination');
});

test('the rendered config: uid, listeners, routing by original destination, pooled mTLS to each endpoint with its identity', (t) => {
  const cfg = renderSidecar(spec('whole-mesh', 'client'));
  t.regex(cfg, /^ {2}uid 1337$/m);
  t.regex(cfg, /^ {2}nbthread 2$/m);
  t.regex(cfg, /^ {2}bind 0\.0\.0\.0:15001$/m);
  t.regex(cfg, /^ {2}http-reuse always$/m);
  const api = c.services.find((x) => x.name === 'public-api')!;
  const ep = api.backends[0];
  t.true(cfg.includes(`use_backend out_default_public-api_80 if { dst ${api.vip} } { dst_port 80 }`));
  t.true(
    cfg.includes(
      `server ${ep.name} ${ep.ip}:8080 ssl crt /ca/client.bundle.pem ca-file /ca/root.pem verify required verifyhost spiffe://cluster.local/ns/default/sa/public-api alpn http/1.1`,
    ),
  );
  t.regex(cfg, /bind 0\.0\.0\.0:15006 ssl crt \/ca\/client\.bundle\.pem ca-file \/ca\/root\.pem verify required/);
});

test('linkerd upstream is HTTP/2 for every Service', (t) => {
  const cfg = renderSidecar(spec('used', 'client', 'h2'));
  const servers = cfg.split('\n').filter((l) => l.trim().startsWith('server ') && l.includes('ssl'));
  t.true(servers.length >= 2);
  for (const l of servers) t.regex(l, /alpn h2 proto h2$/);
});

test('canary: header rule first, then a cumulative 90/10 draw, then every other Service by destination', (t) => {
  const cfg = renderSidecar(spec('whole-mesh', 'client'));
  const vip = c.services.find((x) => x.name === 'api-service')!.vip;
  const at = `{ dst ${vip} } { dst_port 80 }`;
  const lines = cfg.split('\n').map((l) => l.trim());
  const h = lines.indexOf(
    `http-request set-var(txn.route) str(default_api-service-v2_80) if ${at} { req.hdr(x-canary) -m str true } !{ var(txn.route) -m found }`,
  );
  const draw = lines.indexOf(`http-request set-var(txn.split) rand(100) if ${at} !{ var(txn.route) -m found }`);
  const w1 = lines.indexOf(
    `http-request set-var(txn.route) str(default_api-service-v1_80) if ${at} !{ var(txn.route) -m found } { var(txn.split) -m int lt 90 }`,
  );
  const w2 = lines.indexOf(`http-request set-var(txn.route) str(default_api-service-v2_80) if ${at} !{ var(txn.route) -m found }`);
  const use = lines.indexOf('use_backend out_default_api-service-v2_80 if { var(txn.route) -m str default_api-service-v2_80 }');
  const plain = lines.indexOf(`use_backend out_default_api-service_80 if ${at}`);
  t.true(h >= 0 && draw > h && w1 > draw && w2 > w1 && use > w2 && plain > use, `${h} ${draw} ${w1} ${w2} ${use} ${plain}`);
});

// Issue 12 item 10: path prefixes were dropped (a path-only rule became the weighted split).
// Rules as the model reads them: in order, headers and path prefix together, weights per rule.
const api = c.services.find((x) => x.name === 'api-service')!;
const routeSets = pathRouteSets('default');

for (const [name, input] of Object.entries(routeSets))
  test(`routes with path prefixes (${name}): the sidecar sends every request where the model does`, (t) => {
    const routed = { ...s, routes: input.map((r) => RouteSchema.parse(r)) };
    const rs = outboundRoutes(routed, c);
    const model = resolveRoutes(routed.routes, c)[0];
    for (const scope of ['whole-mesh', 'used'] as const) {
      const sp = sidecarSpec(profile(scope, 'h1'), routed, c, c.client, { rootCertFile: '/ca/root.pem' }, '/ca/client.bundle.pem', all, rs);
      const cfg = renderSidecar(sp);
      let checked = 0;
      for (const req of routeProbes(api.vip, 80)) {
        const got = evalFrontend(cfg, 'outbound', req);
        const want = modelRoute(model, req);
        t.deepEqual(got.status ?? got.backend, want === 404 ? 404 : `out_${want}`, `${req.path} ${JSON.stringify(req.headers)} draw ${req.draw}`);
        checked++;
      }
      t.true(checked > 200);
      // Other Services are not routed: straight to their backend.
      const other = c.services.find((x) => x.name === 'other')!;
      t.is(evalFrontend(cfg, 'outbound', { dst: other.vip, dport: 80, path: '/v2/x', headers: {}, draw: 0 }).backend, 'out_default_other_80');
    }
    t.deepEqual(
      rs[0].rules?.map((r) => r.pathPrefix),
      routed.routes[0].rules.map((x) => x.match?.pathPrefix),
      'every rule kept, with its path prefix',
    );
  });

test('HAProxy accepts a sidecar config with path-prefix routes', async (t) => {
  const bin = await findTool('haproxy');
  if (!bin) return t.pass('haproxy not installed here');
  const dir = mkdtempSync(join(tmpdir(), 'mb-sc-'));
  const routed = { ...s, routes: routeSets['path, headers+path (weighted), headers, catch-all split'].map((r) => RouteSchema.parse(r)) };
  const sp = sidecarSpec(
    profile('whole-mesh', 'h1'),
    routed,
    c,
    c.client,
    { rootCertFile: '/ca/root.pem' },
    '/ca/client.bundle.pem',
    all,
    outboundRoutes(routed, c),
  );
  // Only the outbound frontend's rules are checked: certificates and the uid are not on this host.
  const cfg = renderSidecar(sp)
    .replace(/ ssl crt .*$/gm, '')
    .replace(/^ {2}(uid|gid|stats socket) .*$/gm, '');
  writeFileSync(join(dir, 'client.cfg'), cfg.slice(0, cfg.indexOf('frontend inbound')));
  const r = await exec(bin, ['-c', '-f', join(dir, 'client.cfg')], { allowFail: true });
  t.is(r.code, 0, r.stdout + r.stderr);
});

test('inbound authorization: allowed identities by URI SAN bytes, L7 rules per port, 403 otherwise', (t) => {
  const cfg = renderSidecar(spec('whole-mesh', 'public-api-0'));
  const frontendHex = uriSanDerHex('spiffe://cluster.local/ns/default/sa/client').toUpperCase();
  t.true(cfg.includes(`ssl_c_der,hex -m sub ${frontendHex}`), 'the client (label app: frontend) is the allowed source');
  t.regex(cfg, /tcp-request session accept if \{ dst_port 8080 \} peer_0/);
  t.regex(cfg, /^ {2}tcp-request session reject$/m);
  t.regex(cfg, /http-request allow if \{ dst_port 8080 \} peer_0 \{ method GET \} \{ pathq -m reg .*products/);
  t.regex(cfg, /http-request allow if .*\{ method POST \} .*orders.*\{ req\.hdr\(content-type\) -m str application\/json \}/i);
  t.regex(cfg, /http-request deny deny_status 403 if \{ dst_port 8080 \} peer_0/);
  t.regex(cfg, /backend app_8080\n {2}source 127\.0\.0\.6\n {2}server app 127\.0\.0\.1:8080/);
  // A pod no policy selects is not enforced.
  t.notRegex(renderSidecar(spec('whole-mesh', 'other-0')), /tcp-request session reject/);
});
