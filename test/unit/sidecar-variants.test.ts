// Issue 17: the sidecar family's ablation variants, rendered without touching the host.
// mtls=off: same proxies and HTTP processing, no TLS anywhere, policy peers by pod address.
// mode=capture-only: a mode-tcp pass-through per pod, no HTTP, no policy, no routes.
// l7=off: the mesh proxies in mode tcp, same mTLS and session authorization, L7 rules at L4, no routes.
import test from 'ava';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadScenario } from '../../harness/scenario/load.js';
import type { Scenario } from '../../harness/scenario/schema.js';
import { buildCluster } from '../../harness/topology/graph.js';
import { dataplaneChecks, dataplaneKey, getDataplane } from '../../harness/dataplanes/registry.js';
import { createMeshCA } from '../../harness/dataplanes/mesh/ca.js';
import { istioSidecar } from '../../harness/dataplanes/sidecar/istio.js';
import { MeshbenchError } from '../../harness/errors.js';
import { exec } from '../../harness/util/exec.js';
import { findTool } from '../../harness/util/tools.js';

const FIXTURE = 'test/fixtures/scenarios/sidecar-policy.yaml';
const s = loadScenario(FIXTURE, { dataplanes: dataplaneChecks });
const c = buildCluster(s, 'mbvar0');
const pod = (name: string) => c.pods.find((p) => p.name === name)!;
const plan = (dp: string, sc: Scenario = s) => getDataplane(dp).plan({ cluster: c, scenario: sc }).configs;
const noRoutes: Scenario = { ...s, routes: [] };
const podConfigs = (configs: Record<string, string>) => Object.entries(configs).filter(([k]) => k !== 'capture');

test('configure(): each variant is the kind with its settings, under the exact string it was written as', (t) => {
  t.deepEqual(istioSidecar.settings, { mtls: 'on', mode: 'mesh', l7: 'on' });
  t.deepEqual(
    istioSidecar.options?.map((o) => [o.key, o.values, o.default]),
    [
      ['mtls', ['on', 'off'], 'on'],
      ['mode', ['mesh', 'capture-only'], 'mesh'],
      ['l7', ['on', 'off'], 'on'],
    ],
  );
  for (const [text, settings] of [
    ['istio-sidecar[mtls=off]', { mtls: 'off', mode: 'mesh', l7: 'on' }],
    ['istio-sidecar[mode=capture-only]', { mtls: 'on', mode: 'capture-only', l7: 'on' }],
    ['linkerd-sidecar[mtls=off,mode=mesh]', { mtls: 'off', mode: 'mesh', l7: 'on' }],
    ['istio-sidecar[l7=off]', { mtls: 'on', mode: 'mesh', l7: 'off' }],
    ['istio-sidecar[l7=off,mtls=off]', { mtls: 'off', mode: 'mesh', l7: 'off' }],
  ] as const) {
    const d = getDataplane(text);
    t.is(d.name, text);
    t.deepEqual(d.settings, settings);
    t.truthy(d.configure, 'a variant can be configured again');
  }
  t.regex(getDataplane('istio-sidecar[mtls=off]').summary, /mtls=off ablation/);
  t.is(getDataplane('istio-sidecar'), istioSidecar, 'the bare kind is the registered one');
  const e = t.throws(() => getDataplane('istio-sidecar[mtls=maybe]'));
  t.true(e instanceof MeshbenchError && e.code === 'E_INPUT');
  t.regex(e!.message, /mtls must be one of on, off/);
});

test('mtls=off: the same routing and HTTP rules, and not one TLS word in any config', (t) => {
  const on = plan('istio-sidecar');
  const off = plan('istio-sidecar[mtls=off]');
  t.deepEqual(Object.keys(off), Object.keys(on));
  for (const [name, cfg] of podConfigs(off)) {
    t.notRegex(cfg, /ssl|verify|alpn|ca-file|crt /, name);
    t.regex(cfg, /^ {2}mode http$/m, name);
  }
  const client = off.client!;
  const ep = c.services.find((x) => x.name === 'public-api')!.backends[0]!;
  t.regex(client, new RegExp(`^ {2}server ${ep.name} ${ep.ip.replace(/\./g, '\\.')}:8080$`, 'm'), 'plain HTTP/1.1 to the endpoint');
  t.regex(client, /^ {2}bind 0\.0\.0\.0:15006$/m);
  // The canary's request rules are the mesh variant's, line for line.
  const routeLines = (cfg: string) => cfg.split('\n').filter((l) => /txn\.(route|split)/.test(l));
  t.true(routeLines(client).length >= 4);
  t.deepEqual(routeLines(client), routeLines(on.client!));
  // Linkerd: HTTP/2 prior knowledge between the proxies, no ALPN.
  const l5d = plan('linkerd-sidecar[mtls=off]').client!;
  const servers = l5d.split('\n').filter((l) => /^ {2}server \S+ 198\./.test(l));
  t.true(servers.length >= 2);
  for (const l of servers) t.regex(l, /:\d+ proto h2$/);
});

test('mtls=off: policy peers are the `from` pods by address, L7 rules unchanged; others refused at the session', (t) => {
  const cfg = plan('istio-sidecar[mtls=off]')['public-api-0']!;
  const acls = cfg.split('\n').filter((l) => l.includes(' acl '));
  t.deepEqual(acls, [`  acl peer_0 src ${c.client.ip}`], 'only the pod with the frontend label, by its address');
  t.not(pod('other-0').ip, c.client.ip);
  t.regex(cfg, /tcp-request session accept if \{ dst_port 8080 \} peer_0\n {2}tcp-request session reject/);
  t.regex(cfg, /http-request allow if \{ dst_port 8080 \} peer_0 \{ method GET \} \{ pathq -m reg .*products/);
  t.regex(cfg, /http-request deny deny_status 403 if \{ dst_port 8080 \} peer_0/);
  // A pod no policy selects admits everyone.
  t.notRegex(plan('istio-sidecar[mtls=off]')['other-0']!, /tcp-request session reject/);
});

test('mtls=off refuses a policy that requires mutual authentication, naming it', (t) => {
  const p0 = s.policies![0]!;
  const authed: Scenario = { ...s, policies: [{ ...p0, ingress: p0.ingress!.map((r) => ({ ...r, auth: 'required' as const })) }] };
  t.notThrows(() => plan('istio-sidecar', authed));
  const e = t.throws(() => plan('istio-sidecar[mtls=off]', authed));
  t.true(e instanceof MeshbenchError && e.code === 'E_INPUT');
  t.regex((e as MeshbenchError).details.join('\n'), /sidecar-policy\.yaml:\d+: policy default\/public-api-l7 requires mutual authentication/);
});

test('capture-only: mode tcp pass-through in every pod: original destination out, loopback in, nothing else', (t) => {
  const configs = plan('istio-sidecar[mode=capture-only]', noRoutes);
  t.is(configs.capture, plan('istio-sidecar').capture, 'the same capture rules');
  for (const [name, cfg] of podConfigs(configs)) {
    t.regex(cfg, /^ {2}mode tcp$/m, name);
    t.notRegex(cfg, /mode http|http-request|http-reuse|ssl|use_backend|tcp-request|acl /, name);
    t.regex(cfg, /frontend outbound\n {2}bind 0\.0\.0\.0:15001\n {2}default_backend passthrough/);
    t.regex(cfg, /backend passthrough\n {2}server original 0\.0\.0\.0:0/);
    t.regex(cfg, /frontend inbound\n {2}bind 0\.0\.0\.0:15006\n {2}default_backend app_original/);
    t.regex(cfg, /backend app_original\n {2}source 127\.0\.0\.6\n {2}server app 127\.0\.0\.1\n/);
    t.regex(cfg, /^ {2}uid 1337$/m);
  }
  const l5d = plan('linkerd-sidecar[mode=capture-only]', noRoutes).client!;
  t.regex(l5d, /bind 0\.0\.0\.0:4140\n/);
  t.regex(l5d, /backend app_original\n {2}server app 127\.0\.0\.1\n/, 'linkerd keeps the app source as is');
  // Policies are not enforced (as in baseline); nothing of them is rendered.
  t.notRegex(configs['public-api-0']!, /reject|403/);
});

test('capture-only refuses routes it cannot honour, naming each at its line', (t) => {
  const e = t.throws(() => plan('istio-sidecar[mode=capture-only]'));
  t.true(e instanceof MeshbenchError && e.code === 'E_INPUT');
  t.regex(e!.message, /istio-sidecar\[mode=capture-only\] cannot honour the routes/);
  t.deepEqual((e as MeshbenchError).details, [
    `${FIXTURE}:24: routes.0: the route on Service api-service needs HTTP routing, which the capture-only pass-through does not do`,
  ]);
});

test('HAProxy accepts the mtls=off and capture-only configs as rendered (no certificates needed)', async (t) => {
  const bin = await findTool('haproxy');
  if (!bin) return t.pass('haproxy not installed here');
  const dir = mkdtempSync(join(tmpdir(), 'mb-var-'));
  for (const [dp, sc] of [
    ['istio-sidecar[mtls=off]', s],
    ['linkerd-sidecar[mtls=off]', s],
    ['istio-sidecar[mode=capture-only]', noRoutes],
  ] as const)
    for (const [name, cfg] of podConfigs(plan(dp, sc))) {
      // The uid and the admin socket's directory are not this host's.
      const file = join(dir, `${name}.cfg`);
      writeFileSync(file, cfg.replace(/^ {2}(uid|gid|stats socket) .*$/gm, ''));
      const r = await exec(bin, ['-c', '-f', file], { allowFail: true });
      t.is(r.code, 0, `${dp} ${name}: ${r.stdout}${r.stderr}`);
    }
});

test('l7=off: options in declaration order make the key; the summary says what is off', (t) => {
  t.is(dataplaneKey('istio-sidecar[l7=off,mtls=off]'), 'istio-sidecar[mtls=off,l7=off]');
  t.is(dataplaneKey('istio-sidecar[mtls=off,l7=off]'), 'istio-sidecar[mtls=off,l7=off]');
  t.is(dataplaneKey('linkerd-sidecar[l7=off,mode=mesh]'), 'linkerd-sidecar[l7=off]');
  t.is(dataplaneKey('istio-sidecar[l7=on]'), 'istio-sidecar');
  t.is(getDataplane('istio-sidecar[mtls=off,l7=off]').name, 'istio-sidecar[mtls=off,l7=off]');
  t.regex(getDataplane('istio-sidecar[l7=off]').summary, /l7=off ablation: proxies in TCP mode \(no HTTP processing\), L7 rules enforced at L4/);
  t.regex(getDataplane('istio-sidecar[mtls=off,l7=off]').summary, /plain TCP between the proxies.*l7=off ablation/);
  const e = t.throws(() => getDataplane('istio-sidecar[l7=maybe]'));
  t.regex(e!.message, /l7 must be one of on, off/);
});

test('l7=off: both proxies in mode tcp, no HTTP word, still mTLS; Services by original destination, round-robin', (t) => {
  const configs = plan('istio-sidecar[l7=off]', noRoutes);
  t.deepEqual(Object.keys(configs), Object.keys(plan('istio-sidecar', noRoutes)));
  t.is(configs.capture, plan('istio-sidecar').capture, 'the same capture rules');
  for (const [name, cfg] of podConfigs(configs)) {
    t.regex(cfg, /^ {2}mode tcp$/m, name);
    t.notRegex(cfg, /mode http|http-request|http-reuse|http-keep-alive|pathq|req\.hdr|method |proto h2|alpn|l5d-orig-proto|403/, name);
    t.regex(cfg, /^ {2}bind 0\.0\.0\.0:15006 ssl crt \S+ ca-file \S+ verify required$/m, name);
    t.regex(cfg, /frontend outbound\n {2}bind 0\.0\.0\.0:15001\n/, name);
    t.regex(cfg, /default_backend passthrough\n\nbackend passthrough\n {2}server original 0\.0\.0\.0:0\n/, name);
  }
  const client = configs.client!;
  for (const svc of c.services) {
    const key = `${svc.namespace}_${svc.name}_${svc.port}`;
    t.true(client.includes(`  use_backend out_${key} if { dst ${svc.vip} } { dst_port ${svc.port} }`), key);
    const ep = svc.backends[0];
    if (!ep) continue;
    t.regex(
      client,
      new RegExp(
        `backend out_${key}\\n {2}balance roundrobin\\n {2}server ${ep.name} ${ep.ip.replace(/\./g, '\\.')}:8080 ssl crt \\S+ ca-file \\S+ verify required verifyhost spiffe://\\S+\\n`,
      ),
      `${key}: mTLS to the endpoint, checked against its SPIFFE ID`,
    );
  }
  // Linkerd too: no HTTP/2 multiplexing, bytes over mTLS.
  const l5d = plan('linkerd-sidecar[l7=off]', noRoutes).client!;
  t.regex(l5d, /^ {2}mode tcp$/m);
  t.notRegex(l5d, /proto h2|alpn|l5d-orig-proto|http-/);
  // mtls=off too: plain TCP, no TLS word.
  for (const [name, cfg] of podConfigs(plan('istio-sidecar[mtls=off,l7=off]', noRoutes))) {
    t.regex(cfg, /^ {2}mode tcp$/m, name);
    t.notRegex(cfg, /ssl|verify|alpn|ca-file|crt |http-request/, name);
  }
});

test('l7=off: a port with L7 rules admits the peers those rules name at L4, the same session rules as the mesh variant', (t) => {
  const session = (cfg: string) => cfg.split('\n').filter((l) => / acl |tcp-request session/.test(l));
  const l4 = plan('istio-sidecar[l7=off]', noRoutes)['public-api-0']!;
  const l7 = plan('istio-sidecar', noRoutes)['public-api-0']!;
  t.regex(l4, /acl peer_0 ssl_c_der,hex -m sub [0-9A-F]+\n {2}tcp-request session accept if \{ dst_port 8080 \} peer_0\n {2}tcp-request session reject\n/);
  t.deepEqual(session(l4), session(l7), 'identity rules unchanged');
  t.true(l7.includes('http-request allow'), 'the mesh variant has the L7 rules');
  // mtls=off,l7=off: the same peers by address.
  const plainL4 = plan('istio-sidecar[mtls=off,l7=off]', noRoutes)['public-api-0']!;
  t.deepEqual(session(plainL4), [
    `  acl peer_0 src ${c.client.ip}`,
    '  tcp-request session accept if { dst_port 8080 } peer_0',
    '  tcp-request session reject',
  ]);
  // A pod no policy selects admits everyone.
  t.notRegex(plan('istio-sidecar[l7=off]', noRoutes)['other-0']!, /tcp-request session/);
});

test('l7=off refuses routes, naming each at its line; with capture-only l7 changes nothing', (t) => {
  for (const dp of ['istio-sidecar[l7=off]', 'linkerd-sidecar[mtls=off,l7=off]']) {
    const e = t.throws(() => plan(dp));
    t.true(e instanceof MeshbenchError && e.code === 'E_INPUT', dp);
    t.regex(e!.message, /cannot honour the routes/);
    t.deepEqual((e as MeshbenchError).details, [
      `${FIXTURE}:24: routes.0: the route on Service api-service needs HTTP routing, which the l7=off proxies (TCP mode) do not do`,
    ]);
    t.regex((e as MeshbenchError).hint ?? '', /l7=on/);
  }
  t.deepEqual(plan('istio-sidecar[mode=capture-only,l7=off]', noRoutes), plan('istio-sidecar[mode=capture-only]', noRoutes));
  const e = t.throws(() => plan('istio-sidecar[mode=capture-only,l7=off]'));
  t.regex((e as MeshbenchError).details.join('\n'), /capture-only pass-through does not do/);
});

test('HAProxy accepts the l7=off configs as rendered, with real workload certificates', async (t) => {
  const bin = await findTool('haproxy');
  if (!bin) return t.pass('haproxy not installed here');
  const dir = mkdtempSync(join(tmpdir(), 'mb-var-l7-'));
  const ca = await createMeshCA({ dir: join(dir, 'mesh-ca'), trustDomain: 'cluster.local', keyType: 'ecdsa-p256' });
  for (const sa of new Set(c.pods.map((p) => `${p.namespace}.${p.serviceAccount}`))) await ca.issue(...(sa.split('.') as [string, string]));
  for (const dp of ['istio-sidecar[l7=off]', 'linkerd-sidecar[l7=off]', 'istio-sidecar[mtls=off,l7=off]'])
    for (const [name, cfg] of podConfigs(plan(dp, noRoutes))) {
      const file = join(dir, `${name}.cfg`);
      writeFileSync(file, cfg.replace(/^ {2}(uid|gid|stats socket) .*$/gm, '').replaceAll('mesh-ca/', `${dir}/mesh-ca/`));
      const r = await exec(bin, ['-c', '-f', file], { allowFail: true });
      t.is(r.code, 0, `${dp} ${name}: ${r.stdout}${r.stderr}`);
      t.notRegex(r.stdout + r.stderr, /WARNING|ALERT/, `${dp} ${name}`);
    }
});
