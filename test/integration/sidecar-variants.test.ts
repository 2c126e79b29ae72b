// Issue 17: the sidecar ablation variants on the real kernel, two nodes. mtls=off: requests still
// cross both proxies, the marker is on the underlay in clear (not with the bare kind), policy
// peers are still enforced by address. capture-only: the pass-through carries the requests.
// l7=off: both proxies in mode tcp carry HTTP and gRPC over mTLS; peers still refused at L4.
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { rootTest, cleanAround } from '../helpers.js';
import { withLab, vip, captureUnderlay, MARKER, type Lab } from '../lab.js';
import { haproxy } from '../../harness/dataplanes/engine/haproxy.js';
import { exec } from '../../harness/util/exec.js';

cleanAround();

/** Five requests for the marker from the client through public-api; what each proxy counted and what the underlay carried. */
async function markerRequests(t: import('ava').ExecutionContext, { c, d, pod, curl }: Lab, svc = 'public-api', server = 'public-api-0') {
  const socks = { out: d.adminSockets![c.client.name]!, in: d.adminSockets![pod(server).name]! };
  const before = { out: await haproxy.counters(socks.out), in: await haproxy.counters(socks.in) };
  const wire = await captureUnderlay(c, async () => {
    for (let i = 0; i < 5; i++) {
      const r = await curl(c.client, `${vip(c, svc)}/api/v1/products/${MARKER}`);
      t.is(r.code, 0, r.out);
    }
  });
  const after = { out: await haproxy.counters(socks.out), in: await haproxy.counters(socks.in) };
  const delta = (k: 'frontends' | 'frontendSessions', side: 'out' | 'in', fe: string) => (after[side][k][fe] ?? 0) - (before[side][k][fe] ?? 0);
  return { wire, delta };
}

rootTest('istio-sidecar (bare): both proxies handle each request, only TLS on the underlay, the mesh CA issued certificates', async (t) => {
  await withLab('istio-sidecar', 'mbsva1', async (lab) => {
    const { wire, delta } = await markerRequests(t, lab);
    t.is(delta('frontends', 'out', 'outbound'), 5);
    t.is(delta('frontends', 'in', 'inbound'), 5);
    t.true(wire.length > 1000, 'tcpdump saw the traffic');
    t.false(wire.includes(MARKER), 'the marker never crosses the underlay in clear');
    t.true(existsSync(join(lab.dir, 'mesh-ca', 'root.pem')));
    t.truthy(lab.d.provenance['mesh-ca']);
    t.regex(lab.d.path.encryption, /^mTLS/);
  });
});

rootTest('istio-sidecar[mtls=off]: the same two proxies handle each request in plain HTTP, the marker is on the underlay, no CA', async (t) => {
  await withLab('istio-sidecar[mtls=off]', 'mbsva2', async (lab) => {
    const { wire, delta } = await markerRequests(t, lab);
    t.is(delta('frontends', 'out', 'outbound'), 5, "the client's sidecar parsed each request");
    t.is(delta('frontends', 'in', 'inbound'), 5, "the server's sidecar parsed each request");
    t.true(wire.includes(MARKER), 'the marker crosses the underlay in clear');
    t.regex(wire, /GET \/api\/v1\/products\/MESHBENCH/, 'as an HTTP request line');
    t.false(existsSync(join(lab.dir, 'mesh-ca')), 'no mesh CA when nothing uses it');
    t.false('mesh-ca' in lab.d.provenance);
    t.regex(lab.d.path.encryption, /^none \(mtls=off/);
    t.is(lab.d.startup![lab.c.client.name]!.certificateMs, undefined);
  });
});

rootTest('linkerd-sidecar[mtls=off]: HTTP/2 between the proxies without TLS (prior knowledge), the marker in clear', async (t) => {
  await withLab('linkerd-sidecar[mtls=off]', 'mbsva5', async (lab) => {
    const { wire, delta } = await markerRequests(t, lab);
    t.is(delta('frontends', 'out', 'outbound'), 5);
    t.is(delta('frontends', 'in', 'inbound'), 5);
    t.true(wire.includes('PRI * HTTP/2.0'), 'an h2c connection preface on the underlay');
    t.true(wire.includes(MARKER), 'the marker crosses the underlay in clear');
  });
});

rootTest('istio-sidecar[mtls=off]: policy peers by address — frontend allowed (L7 rules applied), other pods refused', async (t) => {
  await withLab('istio-sidecar[mtls=off]', 'mbsva3', async ({ c, pod, curl }) => {
    const url = vip(c, 'public-api');
    const code = (out: string) => Number(out.match(/HTTP\/[\d.]+ (\d{3})/)?.[1] ?? 0);
    let r = await curl(c.client, `${url}/api/v1/products/42`);
    t.is(r.code, 0, r.out);
    r = await curl(c.client, `${url}/api/v1/products/1`, ['-X', 'DELETE']);
    t.is(code(r.out), 403, r.out);
    r = await curl(c.client, `${url}/admin`);
    t.is(code(r.out), 403, r.out);
    // The pod without the frontend label: through its own sidecar, and straight to the pod
    // (as the proxy uid, past its own capture), both refused at the server's session.
    r = await curl(pod('other-0'), `${url}/api/v1/products/42`);
    t.not(r.code, 0, r.out);
    t.not(code(r.out), 200, r.out);
    r = await curl(pod('other-0'), `http://${pod('public-api-0').ip}:8080/api/v1/products/42`, [], { uid: 1337 });
    t.not(r.code, 0, r.out);
    t.not(code(r.out), 200, r.out);
  });
});

rootTest('istio-sidecar[mode=capture-only]: a policy-less scenario works, the pass-through carries every connection, plain on the wire', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'mb-capture-only-'));
  const scenario = join(dir, 'plain.yaml');
  writeFileSync(
    scenario,
    [
      'kind: Scenario',
      'name: capture-only',
      'topology: {kind: Topology, name: two, nodes: 2, podsPerNode: 0}',
      'client: {node: node1}',
      'services:',
      '  - {name: public-api, port: 80, targetPort: 8080, nodes: [node2]}',
      'workloads:',
      '  - {name: products, protocol: http1, qps: 50, connections: 2, duration: 2s, warmup: 1s, chain: [public-api]}',
      'dataplanes: [istio-sidecar]',
      '',
    ].join('\n'),
  );
  await withLab(
    'istio-sidecar[mode=capture-only]',
    'mbsva4',
    async (lab) => {
      const { wire, delta } = await markerRequests(t, lab);
      // fortio curl opens one connection per request: five sessions through each pass-through.
      t.is(delta('frontendSessions', 'out', 'outbound'), 5, "the client's pass-through carried each connection");
      t.is(delta('frontendSessions', 'in', 'inbound'), 5, "the server's pass-through carried each connection");
      t.is(delta('frontends', 'out', 'outbound'), 0, 'mode tcp: no HTTP request parsed');
      t.true(wire.includes(MARKER), 'no encryption');
      t.false(existsSync(join(lab.dir, 'mesh-ca')));
      t.is(lab.d.provenance.proxy!.standInFor, 'none: TCP pass-through (capture-only ablation)');
      t.is(lab.d.path.encryption, 'none (capture-only ablation)');
      // Load through it, as a run would.
      const r = await exec(lab.fortio, ['load', '-loglevel', 'error', '-qps', '0', '-c', '2', '-n', '200', `${vip(lab.c, 'public-api')}/echo`], {
        netns: lab.c.client.netns,
      });
      t.regex(r.stdout + r.stderr, /Code 200 : 200 /);
    },
    scenario,
  );
});

rootTest('ambient[mtls=off]: two node-proxy hops through a plaintext tunnel, the marker in clear, other pods refused by address, no CA', async (t) => {
  await withLab('ambient[mtls=off]', 'mbsva6', async ({ c, d, dir, pod, curl }) => {
    const server = pod('public-api-0');
    const src = d.adminSockets![c.client.name]!;
    const dst = d.adminSockets![server.name]!;
    const before = { src: await haproxy.counters(src), dst: await haproxy.counters(dst) };
    const wire = await captureUnderlay(c, async () => {
      for (let i = 0; i < 5; i++) {
        const r = await curl(c.client, `${vip(c, 'public-api')}/api/v1/products/${MARKER}`);
        t.is(r.code, 0, r.out);
      }
    });
    const after = { src: await haproxy.counters(src), dst: await haproxy.counters(dst) };
    const delta = (a: typeof after.src, b: typeof after.src, k: string) => (a.frontendSessions[k] ?? 0) - (b.frontendSessions[k] ?? 0);
    t.is(delta(after.src, before.src, `out_${c.client.netns}`), 5, "node1's proxy took each connection in the client pod");
    t.is(delta(after.dst, before.dst, `tun_${server.netns}`), 5, "node2's proxy took each tunnel in the server pod");
    t.true(wire.includes(MARKER), 'the marker crosses the underlay in clear');
    t.false(existsSync(join(dir, 'mesh-ca')));
    t.regex(d.path.encryption, /^none \(mtls=off/);
    const r = await curl(pod('other-0'), `${vip(c, 'public-api')}/api/v1/products/1`);
    t.not(r.code, 0, r.out);
  });
});

/** A routes-free copy of the policy fixture plus a gRPC Service: what l7=off can honour. */
function l7OffScenario(): string {
  const file = join(mkdtempSync(join(tmpdir(), 'mb-l7-off-')), 'l7-off.yaml');
  const load = (name: string, protocol: string, chain: string) =>
    `  - {name: ${name}, protocol: ${protocol}, qps: 50, connections: 2, duration: 2s, warmup: 1s, chain: [${chain}]}`;
  writeFileSync(
    file,
    [
      'kind: Scenario',
      'name: l7-off',
      'topology: {kind: Topology, name: two, nodes: 2, podsPerNode: 0}',
      'client: {node: node1, labels: {app: frontend}}',
      'services:',
      '  - {name: public-api, port: 80, targetPort: 8080, nodes: [node2]}',
      '  - {name: other, port: 80, targetPort: 8080, nodes: [node1]}',
      '  - {name: grpc-api, port: 8079, targetPort: 8079, protocol: grpc, nodes: [node2]}',
      'policies:',
      '  - name: public-api-l7',
      '    selector: {app: public-api}',
      '    ingress:',
      '      - from: [{app: frontend}]',
      '        ports: [8080]',
      "        http: [{method: GET, path: '/api/v1/products.*'}]",
      'workloads:',
      load('products', 'http1', 'public-api'),
      load('denied', 'http1', 'other, public-api'),
      load('ping', 'grpc', 'grpc-api'),
      'dataplanes: [istio-sidecar]',
      '',
    ].join('\n'),
  );
  return file;
}

/** Sessions, not requests, through both proxies; mTLS on the wire; gRPC pings pass the TCP-mode proxies. */
async function checkL7Off(t: import('ava').ExecutionContext, lab: Lab): Promise<void> {
  const { wire, delta } = await markerRequests(t, lab);
  t.is(delta('frontendSessions', 'out', 'outbound'), 5, "the client's proxy carried each connection");
  t.is(delta('frontendSessions', 'in', 'inbound'), 5, "the server's proxy carried each connection");
  t.is(delta('frontends', 'out', 'outbound'), 0, 'mode tcp: no HTTP request parsed');
  t.is(delta('frontends', 'in', 'inbound'), 0, 'mode tcp: no HTTP request parsed');
  t.true(wire.length > 1000, 'tcpdump saw the traffic');
  t.false(wire.includes(MARKER), 'mTLS between the proxies');
  const svc = lab.c.services.find((x) => x.name === 'grpc-api')!;
  const r = await exec(lab.fortio, ['load', '-loglevel', 'error', '-grpc', '-ping', '-qps', '0', '-c', '2', '-n', '40', `${svc.vip}:${svc.port}`], {
    netns: lab.c.client.netns,
    allowFail: true,
  });
  t.is(r.code, 0, r.stdout + r.stderr);
  t.regex(r.stdout + r.stderr, /SERVING : 40/, 'every gRPC ping answered through both TCP-mode proxies');
  t.regex(lab.d.provenance.proxy!.policy as string, /L7 rules enforced at L4/);
  t.regex(lab.d.path.encryption, /^mTLS .*one connection per client connection/);
}

rootTest('istio-sidecar[l7=off]: mode tcp proxies carry HTTP and gRPC over mTLS; the L7 rule admits its peer at L4, other pods refused', async (t) => {
  await withLab(
    'istio-sidecar[l7=off]',
    'mbsva7',
    async (lab) => {
      await checkL7Off(t, lab);
      const { c, pod, curl } = lab;
      const url = vip(c, 'public-api');
      // The named peer may send what the L7 rules would refuse: nothing reads the request.
      let r = await curl(c.client, `${url}/admin`);
      t.is(r.code, 0, r.out);
      r = await curl(c.client, `${url}/api/v1/products/1`, ['-X', 'DELETE']);
      t.is(r.code, 0, r.out);
      // Not a peer of the rule: refused at the server's session, via its sidecar and straight to the pod.
      r = await curl(pod('other-0'), `${url}/api/v1/products/42`);
      t.not(r.code, 0, r.out);
      r = await curl(pod('other-0'), `http://${pod('public-api-0').ip}:8080/api/v1/products/42`, [], { uid: 1337 });
      t.not(r.code, 0, r.out);
      t.regex(lab.d.provenance.proxy!.standInFor as string, /in TCP mode \(l7=off ablation\)/);
    },
    l7OffScenario(),
  );
});

rootTest('linkerd-sidecar[l7=off]: mode tcp proxies carry HTTP and gRPC over mTLS (no HTTP/2 multiplexing)', async (t) => {
  await withLab('linkerd-sidecar[l7=off]', 'mbsva8', (lab) => checkL7Off(t, lab), l7OffScenario());
});
