import test from 'ava';
import { loadScenario } from '../../harness/scenario/load.js';
import { buildCluster } from '../../harness/topology/graph.js';
import { dataplaneNames } from '../../harness/dataplanes/registry.js';
import { sidecarSpec, outboundServices, outboundRoutes, type SidecarProfile } from '../../harness/dataplanes/proxy/sidecar.js';
import { renderSidecar } from '../../harness/dataplanes/proxy/haproxy.js';
import { uriSanDerHex } from '../../harness/dataplanes/mesh-ca/index.js';

const s = loadScenario('test/fixtures/scenarios/sidecar-policy.yaml', { knownDataplanes: dataplaneNames() });
const c = buildCluster(s, 'mbcfg0');
const all = outboundServices(c);
const routes = outboundRoutes(s, c);
const profile = (scope: SidecarProfile['scope'], upstream: SidecarProfile['upstream']) =>
  ({ scope, upstream, uid: 1337, gid: 1337, threads: 2, outboundPort: 15001, inboundPort: 15006, appSource: '127.0.0.6' }) as SidecarProfile;
const spec = (scope: SidecarProfile['scope'], podName: string, upstream: SidecarProfile['upstream'] = 'h1') =>
  sidecarSpec(profile(scope, upstream), s, c, c.pods.find((p) => p.name === podName)!, { rootCertFile: '/ca/root.pem' }, `/ca/${podName}.bundle.pem`, all, routes);

test('istio scope: every sidecar holds every Service; linkerd scope: only what the pod calls and where its routes lead', (t) => {
  t.is(all.length, 5);
  t.is(spec('whole-mesh', 'client').services.length, 5);
  t.is(spec('whole-mesh', 'other-0').services.length, 5);
  t.deepEqual(spec('used', 'client').services.map((x) => x.name).sort(), ['api-service', 'api-service-v1', 'api-service-v2', 'other', 'public-api']);
  t.deepEqual(spec('used', 'other-0').services.map((x) => x.name), ['public-api'], 'a chain link knows the next service');
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
  t.true(cfg.includes(`server ${ep.name} ${ep.ip}:8080 ssl crt /ca/client.bundle.pem ca-file /ca/root.pem verify required verifyhost spiffe://cluster.local/ns/default/sa/public-api alpn http/1.1`));
  t.regex(cfg, /bind 0\.0\.0\.0:15006 ssl crt \/ca\/client\.bundle\.pem ca-file \/ca\/root\.pem verify required/);
});

test('linkerd upstream is HTTP/2 for every Service', (t) => {
  const cfg = renderSidecar(spec('used', 'client', 'h2'));
  const servers = cfg.split('\n').filter((l) => l.trim().startsWith('server ') && l.includes('ssl'));
  t.true(servers.length >= 2);
  for (const l of servers) t.regex(l, /alpn h2 proto h2$/);
});

test('canary: header rule first, then a cumulative 90/10 draw', (t) => {
  const cfg = renderSidecar(spec('whole-mesh', 'client'));
  const vip = c.services.find((x) => x.name === 'api-service')!.vip;
  const lines = cfg.split('\n').map((l) => l.trim());
  const h = lines.findIndex((l) => l === `use_backend out_default_api-service-v2_80 if { dst ${vip} } { dst_port 80 } { req.hdr(x-canary) -m str true }`);
  const w1 = lines.findIndex((l) => l === `use_backend out_default_api-service-v1_80 if { dst ${vip} } { dst_port 80 } { var(txn.split) -m int lt 90 }`);
  const w2 = lines.findIndex((l) => l === `use_backend out_default_api-service-v2_80 if { dst ${vip} } { dst_port 80 }`);
  const plain = lines.findIndex((l) => l === `use_backend out_default_api-service_80 if { dst ${vip} } { dst_port 80 }`);
  t.true(h >= 0 && w1 > h && w2 > w1 && plain > w2, `${h} ${w1} ${w2} ${plain}`);
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
