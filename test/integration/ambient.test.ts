// Ambient on the real kernel: one node proxy per node, two L4 hops per request, only TLS on the
// wire, identities from the node proxies, no proxy start when a pod joins.
import { rootTest, cleanAround } from '../helpers.js';
import { withLab, vip, captureUnderlay, MARKER, checkPathRoutes } from '../lab.js';
import { join } from 'node:path';
import { haproxy, statsCommand } from '../../harness/dataplanes/engine/haproxy.js';
import { exec } from '../../harness/util/exec.js';

cleanAround();

rootTest('ambient: a request crosses exactly two node-proxy hops, and the underlay carries only TLS', async (t) => {
  await withLab('ambient', 'mbamb1', async ({ c, d, pod, curl, procs }) => {
    const client = c.client;
    const server = pod('public-api-0');
    t.is(procs.procs.filter((p) => p.role === 'node-proxy').length, 2, 'one node proxy per node');
    t.is(procs.procs.filter((p) => p.role === 'proxy').length, 0, 'no per-pod proxy');
    const src = d.adminSockets![client.name];
    const dst = d.adminSockets![server.name];
    t.not(src, dst, 'client and server are served by different node proxies');
    const before = { src: await haproxy.counters(src), dst: await haproxy.counters(dst) };
    const wire = await captureUnderlay(c, async () => {
      for (let i = 0; i < 5; i++) {
        const r = await curl(client, `${vip(c, 'public-api')}/api/v1/products/${MARKER}`);
        t.is(r.code, 0, r.out);
      }
    });
    const after = { src: await haproxy.counters(src), dst: await haproxy.counters(dst) };
    const delta = (a: Record<string, number>, b: Record<string, number>, k: string) => (a[k] ?? 0) - (b[k] ?? 0);
    // fortio curl opens one connection per request; the node proxies count connections (L4).
    t.is(delta(after.src.frontendSessions, before.src.frontendSessions, `out_${client.netns}`), 5, "node1's proxy took each connection in the client pod");
    t.is(delta(after.dst.frontendSessions, before.dst.frontendSessions, `tun_${server.netns}`), 5, "node2's proxy terminated each tunnel in the server pod");
    const otherHops = Object.keys(after.dst.frontendSessions).filter(
      (k) => k.startsWith('out_') && delta(after.dst.frontendSessions, before.dst.frontendSessions, k) > 0,
    );
    t.deepEqual(otherHops, [], 'no third hop');
    t.true(wire.length > 1000);
    t.false(wire.includes(MARKER), 'the marker never crosses the underlay in clear');
  });
});

rootTest('ambient: a pod whose identity no L4 rule allows is refused; the allowed one passes', async (t) => {
  await withLab('ambient', 'mbamb2', async ({ c, pod, curl }) => {
    let r = await curl(c.client, `${vip(c, 'public-api')}/api/v1/products/1`);
    t.is(r.code, 0, r.out);
    r = await curl(pod('other-0'), `${vip(c, 'public-api')}/api/v1/products/1`);
    t.not(r.code, 0, r.out);
  });
});

rootTest("ambient: the source node proxy refuses an endpoint that does not present the identity its node's table names", async (t) => {
  await withLab('ambient', 'mbamb4', async ({ c, d, dir, pod, curl }) => {
    const server = pod('public-api-0');
    const url = `${vip(c, 'public-api')}/api/v1/products/1`;
    t.is((await curl(c.client, url)).code, 0);
    // Rewrite the client node's workload table at run time (HAProxy's runtime API): the
    // endpoint's real certificate no longer matches the SPIFFE ID sent as SNI.
    const table = join(dir, 'node-proxies', c.client.node, 'identities.map');
    const sock = d.adminSockets![c.client.name];
    t.regex(await statsCommand(sock, `show map ${table}`), new RegExp(`${server.ip.replaceAll('.', '\\.')} spiffe://`));
    await statsCommand(sock, `set map ${table} ${server.ip} spiffe://cluster.local/ns/default/sa/impostor`);
    t.not((await curl(c.client, url)).code, 0, 'refused after the identity changed');
    await statsCommand(sock, `set map ${table} ${server.ip} spiffe://cluster.local/ns/default/sa/${server.serviceAccount}`);
    t.is((await curl(c.client, url)).code, 0, 'accepted again with the right identity');
  });
});

rootTest('ambient: adding a pod to the mesh costs a certificate and capture rules, no proxy start', async (t) => {
  await withLab('ambient', 'mbamb3', async ({ d }) => {
    for (const [pod, ph] of Object.entries(d.startup!)) {
      t.true(ph.certificateMs! > 0 && ph.captureMs! > 0, pod);
      t.is(ph.proxyMs, undefined, pod);
    }
  });
});

rootTest('ambient-waypoint: a Service with L7 policy takes three hops (node proxy → waypoint → node proxy), only TLS on the wire', async (t) => {
  await withLab('ambient-waypoint', 'mbamw1', async ({ c, d, pod, curl, procs }) => {
    const server = pod('public-api-0');
    const wp = procs.procs.filter((p) => p.role === 'waypoint');
    t.is(wp.length, 1, 'one waypoint for the namespace');
    const src = d.adminSockets![c.client.name];
    const dst = d.adminSockets![server.name];
    const wsock = d.adminSockets!['waypoint-default'];
    t.truthy(wsock);
    const before = { src: await haproxy.counters(src), wp: await haproxy.counters(wsock), dst: await haproxy.counters(dst) };
    const wire = await captureUnderlay(c, async () => {
      for (let i = 0; i < 5; i++) {
        const r = await curl(c.client, `${vip(c, 'public-api')}/api/v1/products/${MARKER}`);
        t.is(r.code, 0, r.out);
      }
    });
    const after = { src: await haproxy.counters(src), wp: await haproxy.counters(wsock), dst: await haproxy.counters(dst) };
    t.is(after.src.frontendSessions[`out_${c.client.netns}`] - before.src.frontendSessions[`out_${c.client.netns}`], 5, 'hop 1: source node proxy');
    t.is(after.wp.frontends.waypoint - (before.wp.frontends.waypoint ?? 0), 5, 'hop 2: waypoint (HTTP requests)');
    t.true(after.dst.frontendSessions[`tun_${server.netns}`] - (before.dst.frontendSessions[`tun_${server.netns}`] ?? 0) >= 1, 'hop 3: destination node proxy');
    t.is(
      before.src.frontendSessions[`tun_${c.client.netns}`] ?? 0,
      after.src.frontendSessions[`tun_${c.client.netns}`] ?? 0,
      'nothing tunnels back into the client',
    );
    t.false(wire.includes(MARKER));
  });
});

rootTest('ambient-waypoint: the L7 policy of 001 holds through the waypoint', async (t) => {
  await withLab('ambient-waypoint', 'mbamw2', async ({ c, pod, curl }) => {
    const url = vip(c, 'public-api');
    const code = (out: string) => Number(out.match(/HTTP\/[\d.]+ (\d{3})/)?.[1] ?? 0);
    t.is((await curl(c.client, `${url}/api/v1/products/42`)).code, 0);
    t.is(code((await curl(c.client, `${url}/api/v1/products/1`, ['-X', 'DELETE'])).out), 403);
    t.is(code((await curl(c.client, `${url}/api/v1/orders`, ['-payload', '{}', '-content-type', 'text/plain'])).out), 403);
    t.is((await curl(c.client, `${url}/api/v1/orders`, ['-payload', '{}', '-content-type', 'application/json'])).code, 0);
    const other = await curl(pod('other-0'), `${url}/api/v1/products/42`);
    t.not(code(other.out), 200, other.out);
  });
});

rootTest('ambient-waypoint: canary — x-canary: true always reaches v2; otherwise 90/10 within ±3 points over 2000 requests', async (t) => {
  await withLab('ambient-waypoint', 'mbamw3', async ({ c, d, fortio }) => {
    const sock = d.adminSockets!['waypoint-default'];
    const key = (svc: string) => `wo_default_${svc}_80`;
    const url = `${vip(c, 'api-service')}/echo`;
    const before = await haproxy.counters(sock);
    let r = await exec(fortio, ['load', '-loglevel', 'error', '-qps', '0', '-c', '4', '-n', '200', '-H', 'x-canary: true', url], { netns: c.client.netns });
    t.regex(r.stdout + r.stderr, /Code 200 : 200 /);
    const mid = await haproxy.counters(sock);
    t.is(mid.backends[key('api-service-v2')] - (before.backends[key('api-service-v2')] ?? 0), 200);
    t.is((mid.backends[key('api-service-v1')] ?? 0) - (before.backends[key('api-service-v1')] ?? 0), 0);
    r = await exec(fortio, ['load', '-loglevel', 'error', '-qps', '0', '-c', '4', '-n', '2000', url], { netns: c.client.netns });
    t.regex(r.stdout + r.stderr, /Code 200 : 2000 /);
    const after = await haproxy.counters(sock);
    const v1 = after.backends[key('api-service-v1')] - (mid.backends[key('api-service-v1')] ?? 0);
    const v2 = after.backends[key('api-service-v2')] - mid.backends[key('api-service-v2')];
    t.is(v1 + v2, 2000);
    t.log(`split through the waypoint: v1 ${v1}, v2 ${v2}`);
    t.true(Math.abs(v1 / 2000 - 0.9) <= 0.03, `v1 share ${v1 / 2000}`);
  });
});

// Issue 12 item 10: the waypoint routes by path prefix (routes-path.yaml).
rootTest('ambient-waypoint: routes by path prefix — /v2/… and x-canary on /beta/… reach v2, the rest v1', async (t) => {
  await withLab(
    'ambient-waypoint',
    'mbamw6',
    async ({ c, d, fortio }) => {
      const sock = d.adminSockets!['waypoint-default'];
      const key = (svc: string) => `wo_default_${svc}_80`;
      const cases: [string, string[], string][] = [
        ['/v2/echo', [], 'api-service-v2'],
        ['/echo', [], 'api-service-v1'],
        ['/beta/echo', ['-H', 'x-canary: true'], 'api-service-v2'],
        ['/beta/echo', [], 'api-service-v1'],
      ];
      await checkPathRoutes(t, { c, fortio }, sock, key, cases);
    },
    'test/fixtures/scenarios/routes-path.yaml',
  );
});
