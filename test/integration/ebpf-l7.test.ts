// ebpf-l7 on the real kernel: the node L7 proxy enforces 001's L7 API filter and 003's gRPC
// method rule and balances 001's canary route; connections to ports without L7 rules never reach
// it. Requests are sent with curl inside the lab's pods (and its cgroup, where the socket LB is).
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { rootTest, cleanAround } from '../helpers.js';
import { withLab, vip, type Lab } from '../lab.js';
import { exec } from '../../harness/util/exec.js';
import type { PodSpec } from '../../harness/topology/graph.js';
import { l7AdminSocket } from '../../harness/dataplanes/ebpf/family.js';
import { statsCommand } from '../../harness/dataplanes/engine/haproxy.js';
import { summarizeCaseFlows } from '../../harness/probes/flows.js';

cleanAround();
const SCENARIO = 'test/fixtures/scenarios/ebpf-l7.yaml';

interface Record {
  node: string;
  type?: string;
  verdict: string;
  dropReason?: string;
  source: { ip: string; identity: number };
  destination: { ip: string; port: number };
  l7?: { method: string; path: string; status: number; upstream: string; route: string };
}

/** Every flow record of the lab (kernel events and the proxies' L7 records). */
async function records(lab: Lab): Promise<Record[]> {
  await sleep(500); // mb-flowd polls every 200 ms; HAProxy logs when a request ends
  const files = (readdirSync(join(lab.dir, 'flows')) as string[]).filter((f) => f.endsWith('.jsonl'));
  return files.flatMap((f) =>
    readFileSync(join(lab.dir, 'flows', f), 'utf8')
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record),
  );
}

/** HTTP status of one request from a pod (000 = no answer). */
async function status(lab: Lab, from: PodSpec, method: string, url: string, args: string[] = []): Promise<string> {
  const r = await exec('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', '-m', '3', '-X', method, ...args, url], {
    netns: from.netns,
    cgroup: lab.procs.cgroupFor('test'),
    allowFail: true,
  });
  return r.stdout.trim();
}

const grpc = ['--http2-prior-knowledge', '-H', 'content-type: application/grpc', '-H', 'te: trailers', '--data-binary', '@-'];

rootTest('ebpf-l7: the L7 API filter of 001 and the gRPC method rule of 003 hold at the node proxy; denials are L7 flow records', async (t) => {
  await withLab(
    'ebpf-l7',
    'mbel71',
    async (lab) => {
      const { c, pod } = lab;
      const api = `${vip(c, 'public-api')}/api/v1`;
      const cases: [string, string, string, string[], string][] = [
        ['frontend', 'GET', `${api}/products/7`, [], '200'],
        ['frontend', 'GET', `${api}/categories`, [], '200'],
        ['frontend', 'GET', `${api}/users`, [], '403'],
        ['frontend', 'DELETE', `${api}/products/7`, [], '403'],
        ['frontend', 'POST', `${api}/orders`, ['-H', 'Content-Type: application/json', '-d', '{}'], '200'],
        ['frontend', 'POST', `${api}/orders`, ['-d', '{}'], '403'], // no JSON content type
        ['api-gateway-0', 'GET', `${api}/products/7`, [], '000'], // not a frontend: dropped in the kernel
        ['frontend-api-0', 'POST', `${vip(c, 'order-service')}/orders`, ['-d', '{}'], '200'],
        ['frontend-api-0', 'GET', `${vip(c, 'order-service')}/orders`, [], '403'],
        // gRPC: the allowed method reaches fortio's gRPC server (which does not implement it:
        // HTTP 200 with grpc-status 12); any other method is refused by the proxy.
        ['order-service-0', 'POST', `${vip(c, 'inventory-service')}/inventory.v1.InventoryService/CheckStock`, grpc, '200'],
        ['order-service-0', 'POST', `${vip(c, 'inventory-service')}/inventory.v1.InventoryService/Reserve`, grpc, '403'],
        ['order-service-0', 'POST', `${vip(c, 'inventory-service')}/fortio.PingServer/Ping`, grpc, '403'],
        ['frontend-api-0', 'POST', `${vip(c, 'inventory-service')}/inventory.v1.InventoryService/CheckStock`, grpc, '000'],
      ];
      for (const [from, method, url, args, want] of cases) t.is(await status(lab, pod(from), method, url, args), want, `${from} ${method} ${url}`);
      // A real gRPC client (fortio's ping) is refused too.
      const ping = await exec(
        lab.fortio,
        ['grpcping', '-n', '1', '-loglevel', 'error', `${c.services.find((s) => s.name === 'inventory-service')!.vip}:50051`],
        { netns: pod('order-service-0').netns, cgroup: lab.procs.cgroupFor('test'), allowFail: true },
      );
      t.not(ping.code, 0, `fortio grpcping is denied: ${ping.stdout}${ping.stderr}`);

      const seen = await records(lab);
      const l7 = seen.filter((r) => r.type === 'L7');
      const denied = l7.filter((r) => r.verdict === 'DROPPED');
      t.true(denied.length >= 6, `${denied.length} denied L7 records`);
      t.true(denied.every((r) => r.dropReason === 'POLICY_DENIED' && r.l7!.status === 403));
      t.true(
        denied.some(
          (r) => r.l7!.path === '/api/v1/users' && r.source.ip === pod('frontend').ip && r.destination.ip === pod('public-api-0').ip && r.node === 'node2',
        ),
      );
      t.true(denied.filter((r) => r.l7!.path.endsWith('PingServer/Ping')).length >= 2, 'curl and grpcping refused at the proxy');
      t.true(l7.some((r) => r.verdict === 'FORWARDED' && r.l7!.path === '/inventory.v1.InventoryService/CheckStock' && r.l7!.status === 200));
      // The kernel drops the peer without L4 access before any proxy sees it.
      t.true(
        seen.some(
          (r) =>
            !r.type &&
            r.verdict === 'DROPPED' &&
            r.dropReason === 'POLICY_DENIED' &&
            r.source.ip === pod('api-gateway-0').ip &&
            r.destination.ip === pod('public-api-0').ip,
        ),
      );
      t.false(l7.some((r) => r.source.ip === pod('api-gateway-0').ip || (r.source.ip === pod('frontend-api-0').ip && r.destination.port === 50051)));
    },
    SCENARIO,
  );
});

rootTest(
  'ebpf-l7: traffic to ports without L7 rules never reaches the proxy; the canary route is balanced there (x-canary → v2; else 90/10 ±3 points)',
  async (t) => {
    await withLab(
      'ebpf-l7',
      'mbel72',
      async (lab) => {
        const { c, pod } = lab;
        for (let i = 0; i < 10; i++) {
          t.is(await status(lab, pod('frontend'), 'GET', `${vip(c, 'echo')}/echo`), '200');
          t.is(await status(lab, pod('api-gateway-0'), 'GET', `${vip(c, 'backend-service')}/x`), '200');
        }
        let seen = await records(lab);
        const quiet = [pod('echo-0').ip, pod('echo-1').ip, pod('backend-service-0').ip];
        t.false(
          seen.some((r) => r.type === 'L7'),
          'no L7 record',
        );
        t.false(
          seen.some((r) => r.verdict === 'REDIRECTED'),
          'no redirect',
        );
        t.true(seen.filter((r) => r.verdict === 'FORWARDED' && quiet.includes(r.destination.ip)).length >= 20);

        const load = (n: number, headers: string[]) =>
          exec(lab.fortio, ['load', '-loglevel', 'error', '-qps', '0', '-c', '4', '-n', String(n), ...headers, `${vip(c, 'api-service')}/`], {
            netns: pod('frontend').netns,
            cgroup: lab.procs.cgroupFor('test'),
          });
        const v1 = pod('api-service-v1-0').ip;
        const v2 = pod('api-service-v2-0').ip;
        // HAProxy drops a log line rather than wait when another thread holds the log output (it
        // counts them, like Hubble's lost events): every request is either recorded or counted.
        const droppedLogs = async () => Number((await statsCommand(l7AdminSocket(c.prefix, 'node1'), 'show info')).match(/^DroppedLogs: (\d+)/m)?.[1]);
        const isRouted = (r: Record) => r.type === 'L7' && r.l7!.route !== '-';
        // Records reach the files through mb-flowd's 200 ms poll: on a busy machine the last ones
        // can lag, so wait (up to 10 s) until recorded + lost accounts for every request.
        const settle = async (want: number) => {
          for (let i = 0; ; i++) {
            const all = await records(lab);
            const lostNow = await droppedLogs();
            if (all.filter(isRouted).length + lostNow >= want || i >= 20) return { all, lostNow };
          }
        };
        await load(200, ['-H', 'x-canary: true']);
        const settled = await settle(200);
        seen = settled.all;
        let routed = seen.filter(isRouted);
        const lostFirst = settled.lostNow;
        t.is(routed.length + lostFirst, 200);
        const first = routed.length;
        t.true(
          routed.every((r) => r.l7!.upstream === `${v2}:8080` && r.l7!.status === 200),
          JSON.stringify(routed.find((r) => r.l7!.upstream !== `${v2}:8080`)),
        );
        // The upstream connections come from the client pod itself: the kernel saw frontend → v2 only.
        t.false(seen.some((r) => !r.type && r.source.ip === pod('frontend').ip && r.destination.ip === v1));
        const big = await load(2000, []);
        const after = await settle(first + lostFirst + 2000);
        routed = after.all.filter(isRouted).slice(first);
        const toV1 = routed.filter((r) => r.l7!.upstream === `${v1}:8080` && r.l7!.status === 200).length;
        const toV2 = routed.filter((r) => r.l7!.upstream === `${v2}:8080` && r.l7!.status === 200).length;
        const lostAll = after.lostNow;
        const lost = lostAll - lostFirst;
        t.is(toV1 + toV2 + lost, 2000, `${routed.length} records, ${lost} lost; fortio: ${(big.stdout + big.stderr).match(/Code .*/g)?.join('; ')}`);
        if (lost) t.log(`${lost} L7 records lost (HAProxy DroppedLogs)`);
        // What a run records of it: the dataplane writes each proxy's count before its processes
        // stop, and the flow summary in run.json carries the sum.
        await lab.d.beforeStop!();
        const stats = JSON.parse(readFileSync(join(lab.dir, 'flows', 'node1-l7-stats.json'), 'utf8')) as { droppedLogs: number };
        t.is(stats.droppedLogs, lostAll);
        t.true((summarizeCaseFlows(lab.dir)!.records.l7Dropped ?? -1) >= lostAll);
        t.log(`split over 2000 requests: v1 ${toV1}, v2 ${toV2}`);
        t.true(Math.abs((toV1 / (toV1 + toV2)) * 100 - 90) <= 3, `v1 share ${toV1 / 20} %`);
      },
      SCENARIO,
    );
  },
);

rootTest(
  'ebpf-l7: with the node L7 proxy down, L7 ports fail closed and L4-only traffic keeps flowing (001: "L7 policies stop, L4 policies keep working")',
  async (t) => {
    await withLab(
      'ebpf-l7',
      'mbel73',
      async (lab) => {
        const { c, pod, procs } = lab;
        const products = `${vip(c, 'public-api')}/api/v1/products/7`;
        t.is(await status(lab, pod('frontend'), 'GET', products), '200');
        await Promise.all(procs.procs.filter((p) => p.name.startsWith('l7-proxy-')).map((p) => procs.stop(p)));
        t.is(await status(lab, pod('frontend'), 'GET', products), '000', 'redirected to a proxy that is gone: no answer, never around it');
        t.is(await status(lab, pod('api-gateway-0'), 'GET', `${vip(c, 'backend-service')}/x`), '200', 'L4 policy still enforced and forwarding in the kernel');
        t.is(await status(lab, pod('frontend'), 'GET', `${vip(c, 'backend-service')}/x`), '000', 'and still denying');
        t.is(await status(lab, pod('frontend'), 'GET', `${vip(c, 'echo')}/echo`), '200');
      },
      SCENARIO,
    );
  },
);
