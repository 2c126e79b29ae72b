// The sidecar dataplanes on the real kernel: two proxies per request, only TLS on the wire,
// identity required, the L7 policy and the canary split of 001_0f5dc0d57a371ed9.txt.
import { join } from 'node:path';
import { rootTest, cleanAround, labNetns } from '../helpers.js';
import { withLab, vip, captureUnderlay, MARKER, checkPathRoutes } from '../lab.js';
import { haproxy } from '../../harness/dataplanes/engine/haproxy.js';
import { createMeshCA } from '../../harness/dataplanes/mesh/ca.js';
import { exec } from '../../harness/util/exec.js';
import { pidAlive } from '../../harness/util/host.js';

cleanAround();

for (const dp of ['istio-sidecar', 'linkerd-sidecar']) {
  const P = dp === 'istio-sidecar' ? 'mbsci' : 'mbscl';

  rootTest(`${dp}: a request crosses two proxies, and the underlay carries only TLS`, async (t) => {
    await withLab(dp, `${P}1`, async ({ c, d, pod, curl }) => {
      const client = c.client;
      const server = pod('public-api-0');
      const before = { out: await haproxy.counters(d.adminSockets![client.name]), in: await haproxy.counters(d.adminSockets![server.name]) };
      const wire = await captureUnderlay(c, async () => {
        for (let i = 0; i < 5; i++) {
          const r = await curl(client, `${vip(c, 'public-api')}/api/v1/products/${MARKER}`);
          t.is(r.code, 0, r.out);
        }
      });
      const after = { out: await haproxy.counters(d.adminSockets![client.name]), in: await haproxy.counters(d.adminSockets![server.name]) };
      t.is(after.out.frontends.outbound - before.out.frontends.outbound, 5, "the client's sidecar handled each request on its outbound listener");
      t.is(after.in.frontends.inbound - (before.in.frontends.inbound ?? 0), 5, "the server's sidecar handled each request on its inbound listener");
      t.true(wire.length > 1000, 'tcpdump saw the traffic');
      t.false(wire.includes(MARKER), 'the marker never crosses the underlay in clear');
    });
  });

  rootTest(`${dp}: L7 policy of 001 — products and categories allowed from frontend, DELETE 403, other sources refused`, async (t) => {
    await withLab(dp, `${P}2`, async ({ c, pod, curl }) => {
      const url = vip(c, 'public-api');
      const code = (out: string) => Number(out.match(/HTTP\/[\d.]+ (\d{3})/)?.[1] ?? 0);
      let r = await curl(c.client, `${url}/api/v1/products/42`);
      t.is(r.code, 0, r.out);
      r = await curl(c.client, `${url}/api/v1/categories`);
      t.is(r.code, 0, r.out);
      r = await curl(c.client, `${url}/api/v1/products/1`, ['-X', 'DELETE']);
      t.is(code(r.out), 403, r.out);
      r = await curl(c.client, `${url}/api/v1/orders`, ['-payload', '{}', '-content-type', 'application/json']);
      t.is(r.code, 0, r.out);
      r = await curl(c.client, `${url}/api/v1/orders`, ['-payload', '{}', '-content-type', 'text/plain']);
      t.is(code(r.out), 403, 'POST /orders needs Content-Type: application/json');
      r = await curl(c.client, `${url}/admin`);
      t.is(code(r.out), 403);
      // A meshed pod without the frontend label: its identity is refused at the session.
      r = await curl(pod('other-0'), `${url}/api/v1/products/42`);
      t.not(r.code, 0);
      t.not(code(r.out), 200, r.out);
    });
  });

  rootTest(`${dp}: a pod without a valid workload certificate cannot reach a meshed pod`, async (t) => {
    await withLab(dp, `${P}3`, async ({ c, pod, curl, dir }) => {
      const server = pod('public-api-0');
      const uid = dp === 'istio-sidecar' ? 1337 : 2102;
      // Plaintext straight to the pod (as the proxy uid, so the client's own capture lets it pass).
      let r = await curl(c.client, `http://${server.ip}:8080/api/v1/products/1`, [], { uid });
      t.not(r.code, 0, r.out);
      // TLS with a certificate from another CA: the server's proxy refuses the handshake.
      const rogue = await createMeshCA({ dir: join(dir, 'rogue-ca'), keyType: 'ecdsa-p256' });
      const id = await rogue.issue('default', 'frontend');
      r = await curl(c.client, `https://${server.ip}:8080/api/v1/products/1`, ['-cert', id.certFile, '-key', id.keyFile, '-k'], { uid });
      t.not(r.code, 0, r.out);
      // Sanity: through the client's sidecar the same request works.
      r = await curl(c.client, `${vip(c, 'public-api')}/api/v1/products/1`);
      t.is(r.code, 0, r.out);
    });
  });
}

rootTest('baseline (control): the same capture does see the marker in clear', async (t) => {
  await withLab('baseline', 'mbscb1', async ({ c, curl }) => {
    const wire = await captureUnderlay(c, async () => {
      const r = await curl(c.client, `${vip(c, 'public-api')}/api/v1/products/${MARKER}`);
      t.is(r.code, 0, r.out);
    });
    t.true(wire.includes(MARKER));
  });
});

for (const [dp, prefix] of [
  ['istio-sidecar', 'mbsci4'],
  ['linkerd-sidecar', 'mbscl4'],
])
  rootTest(`${dp}: canary — x-canary: true always reaches v2; otherwise 90/10 within ±3 points over 2000 requests`, async (t) => {
    await withLab(dp, prefix, async ({ c, d, fortio }) => {
      const sock = d.adminSockets![c.client.name];
      const key = (svc: string) => `out_default_${svc}_80`;
      const before = await haproxy.counters(sock);
      const url = `${vip(c, 'api-service')}/echo`;
      let r = await exec(fortio, ['load', '-loglevel', 'error', '-qps', '0', '-c', '4', '-n', '200', '-H', 'x-canary: true', url], { netns: c.client.netns });
      t.regex(r.stdout + r.stderr, /Code 200 : 200 /);
      const mid = await haproxy.counters(sock);
      t.is(mid.backends[key('api-service-v2')] - (before.backends[key('api-service-v2')] ?? 0), 200);
      t.is(mid.backends[key('api-service-v1')] - (before.backends[key('api-service-v1')] ?? 0), 0);
      r = await exec(fortio, ['load', '-loglevel', 'error', '-qps', '0', '-c', '4', '-n', '2000', url], { netns: c.client.netns });
      t.regex(r.stdout + r.stderr, /Code 200 : 2000 /);
      const after = await haproxy.counters(sock);
      const v1 = after.backends[key('api-service-v1')] - mid.backends[key('api-service-v1')];
      const v2 = after.backends[key('api-service-v2')] - mid.backends[key('api-service-v2')];
      t.is(v1 + v2, 2000);
      t.log(`split over 2000 requests: v1 ${v1} (${(v1 / 20).toFixed(1)} %), v2 ${v2} (${(v2 / 20).toFixed(1)} %)`);
      t.true(Math.abs(v1 / 2000 - 0.9) <= 0.03, `v1 share ${v1 / 2000}`);
    });
  });

rootTest('sidecar teardown leaves no proxy process, rule or namespace behind', async (t) => {
  let pids: number[] = [];
  await withLab('linkerd-sidecar', 'mbscl5', async ({ procs }) => {
    pids = procs.procs.filter((p) => p.role === 'proxy').map((p) => p.pid);
    t.true(pids.length >= 5);
  });
  for (const pid of pids) t.false(pidAlive(pid));
  t.deepEqual(await labNetns(), []);
});

// Issue 12 item 10: a path-only rule steers by path, not as the weighted split (routes-path.yaml).
for (const [dp, prefix] of [
  ['istio-sidecar', 'mbsci6'],
  ['linkerd-sidecar', 'mbscl6'],
])
  rootTest(`${dp}: routes by path prefix — /v2/… and x-canary on /beta/… reach v2, the rest v1`, async (t) => {
    await withLab(
      dp,
      prefix,
      async ({ c, d, fortio }) => {
        const sock = d.adminSockets![c.client.name];
        const key = (svc: string) => `out_default_${svc}_80`;
        const cases: [string, string[], string][] = [
          ['/v2/echo', [], 'api-service-v2'],
          ['/echo', [], 'api-service-v1'],
          ['/beta/echo', ['-H', 'x-canary: true'], 'api-service-v2'],
          ['/beta/echo', [], 'api-service-v1'],
          ['/echo', ['-H', 'x-canary: true'], 'api-service-v1'],
        ];
        await checkPathRoutes(t, { c, fortio }, sock, key, cases);
      },
      'test/fixtures/scenarios/routes-path.yaml',
    );
  });
