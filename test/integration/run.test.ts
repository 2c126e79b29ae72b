import { existsSync, mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { rootTest, cleanAround, cli, labNetns, rootNetState, quickArgs } from '../helpers.js';
import { cgroup2Root, pidAlive, STATE_DIR } from '../../harness/util/host.js';
import type { RunRecord } from '../../harness/results/types.js';

cleanAround();

const tmp = () => mkdtempSync(join(tmpdir(), 'mb-run-'));
const labCgroups = () => {
  const root = cgroup2Root();
  return root ? readdirSync(root).filter((d) => /^mb[0-9a-z]{4}$/.test(d)) : [];
};
/** The quick scenario with these dataplanes, 2 s per case, as the CLI runs it. */
async function quickRun(t: import('ava').ExecutionContext, dataplanes: string): Promise<{ rec: RunRecord; summary: { runJson: string; report: string } }> {
  const dir = tmp();
  const r = await cli(quickArgs(join(dir, 'results'), join(dir, 'reports'), '--dataplanes', dataplanes, '--json'));
  t.is(r.code, 0, r.stderr);
  const summary = JSON.parse(r.stdout);
  return { rec: JSON.parse(readFileSync(summary.runJson, 'utf8')), summary };
}

const stateFiles = () => (existsSync(STATE_DIR) ? readdirSync(STATE_DIR) : []);

rootTest('meshbench run quick: a complete record with latency, resources by role, and a report; nothing left behind', async (t) => {
  const before = await rootNetState();
  const dir = tmp();
  const r = await cli(quickArgs(join(dir, 'results'), join(dir, 'reports'), '--quick', '--json'));
  t.is(r.code, 0, r.stderr);
  t.is(r.stderr, '', '--json keeps stderr quiet');
  const summary = JSON.parse(r.stdout);
  t.is(summary.status, 'complete');
  const rec: RunRecord = JSON.parse(readFileSync(summary.runJson, 'utf8'));
  t.is(rec.schema, 'meshbench/run/v1');
  t.is(rec.status, 'complete');
  t.is(rec.cases.length, 1);
  const c = rec.cases[0];
  t.is(c.dataplane, 'baseline');
  t.is(c.status, 'ok');
  t.is(c.load.actual.errors, 0);
  t.true(c.load.actual.requests >= 300, `${c.load.actual.requests} requests at 200 qps for 2 s`);
  t.true(c.latencyUs!.p50 > 0 && c.latencyUs!.p50 <= c.latencyUs!.p99 && c.latencyUs!.p99 <= c.latencyUs!.max);
  t.is(c.latencyUs!.count, c.load.actual.requests);
  t.deepEqual(Object.keys(c.resources!.byRole).sort(), ['app', 'load']);
  t.true(c.resources!.byRole.app.rssBytes > 1e6);
  t.true(c.resources!.byRole.load.cpuSeconds > 0);
  t.true(c.startup!.firstRequestMs > 0);
  t.truthy(rec.environment.tools.fortio);
  t.truthy(summary.report && existsSync(summary.report), 'report written');
  t.regex(readFileSync(summary.report, 'utf8'), /baseline/);
  t.deepEqual(await labNetns(), []);
  t.deepEqual(labCgroups(), []);
  t.deepEqual(
    stateFiles().filter((f) => f.startsWith(rec.prefix)),
    [],
  );
  t.is(await rootNetState(), before, "the root namespace's links, routes, rules and ip_forward are as found");
});

rootTest('HTTP/2, gRPC (closed loop) and a 3-service HTTP chain each produce latency figures without errors', async (t) => {
  const dir = tmp();
  const r = await cli(['run', 'test/fixtures/scenarios/protocols.yaml', '--results', join(dir, 'results'), '--no-report', '--json']);
  t.is(r.code, 0, r.stderr);
  const rec: RunRecord = JSON.parse(readFileSync(JSON.parse(r.stdout).runJson, 'utf8'));
  t.deepEqual(
    rec.cases.map((c) => [c.workload, c.status, c.load.actual.errors]),
    [
      ['chain-http1', 'ok', 0],
      ['direct-http2', 'ok', 0],
      ['grpc-ping', 'ok', 0],
    ],
  );
  const [chain, h2, grpc] = rec.cases;
  t.deepEqual(chain.load.requested.chain, ['frontend-api', 'order-service', 'inventory-service']);
  t.is(chain.load.requested.payloadBytes, 1024);
  t.deepEqual(Object.keys(grpc.load.actual.retCodes), ['SERVING']);
  t.regex(grpc.load.model, /closed loop/);
  // Three app servers in the chain case work for every request: each hop's CPU shows up under app.
  t.is(chain.resources!.byRole.app.processes, 5);
  for (const c of [chain, h2, grpc]) t.true(c.latencyUs!.p50 > 0 && c.latencyUs!.count > 0);
  t.true(chain.latencyUs!.p50 > h2.latencyUs!.p50, 'three hops take longer than one');
  t.deepEqual(await labNetns(), []);
});

rootTest(
  'baseline, istio-sidecar and linkerd-sidecar in one run: overhead over baseline and proxy memory per pod, HAProxy named as the stand-in',
  async (t) => {
    const { rec, summary } = await quickRun(t, 'baseline,istio-sidecar,linkerd-sidecar');
    t.deepEqual(
      rec.cases.map((c) => [c.dataplane, c.status, c.load.actual.errors]),
      [
        ['baseline', 'ok', 0],
        ['istio-sidecar', 'ok', 0],
        ['linkerd-sidecar', 'ok', 0],
      ],
    );
    for (const c of rec.cases.slice(1)) {
      t.is(c.resources!.byRole.proxy.processes, 2, `${c.dataplane}: one proxy per pod (client and server)`);
      t.true(c.resources!.byRole.proxy.rssBytes > 1e6);
      t.is(c.provenance.proxy.engine, 'haproxy');
      t.regex(String(c.provenance.proxy.standInFor), c.dataplane === 'istio-sidecar' ? /Envoy/ : /linkerd2-proxy/);
      t.is(c.path!.userSpaceHops, 2);
      t.true(c.startup!.phases!.client.certificateMs! > 0 && c.startup!.phases!.client.proxyMs! > 0);
    }
    t.false('proxy' in rec.cases[0].resources!.byRole, 'baseline runs no proxy');
    const html = readFileSync(summary.report, 'utf8');
    t.regex(html, /added over baseline/);
    t.regex(html, /haproxy standing in for Envoy/i);
    t.regex(html, /haproxy standing in for linkerd2-proxy/i);
    t.regex(html, /RSS MiB per process/);
    t.deepEqual(await labNetns(), []);
  },
);

rootTest('baseline, istio-sidecar, ambient and ambient-waypoint side by side: node-proxy memory per node and per pod', async (t) => {
  const { rec, summary } = await quickRun(t, 'baseline,istio-sidecar,ambient,ambient-waypoint');
  t.deepEqual(
    rec.cases.map((c) => [c.dataplane, c.status, c.load.actual.errors]),
    [
      ['baseline', 'ok', 0],
      ['istio-sidecar', 'ok', 0],
      ['ambient', 'ok', 0],
      ['ambient-waypoint', 'ok', 0],
    ],
  );
  const [, , amb, wp] = rec.cases;
  for (const c of [amb, wp]) {
    t.is(c.resources!.byRole['node-proxy'].processes, 2, `${c.dataplane}: one node proxy per node`);
    t.false('proxy' in c.resources!.byRole, 'no per-pod proxy');
    const n = c.resources!.normalized!;
    t.is(n.pods, 2);
    t.is(n.nodes, 2);
    t.is(n.perNode['node-proxy'].rssBytes, Math.round(c.resources!.byRole['node-proxy'].rssBytes / 2));
    t.is(c.provenance['node-proxy'].standInFor, 'ztunnel');
  }
  t.is(amb.path!.userSpaceHops, 2);
  t.is(wp.path!.userSpaceHops, 3);
  t.is(wp.resources!.byRole.waypoint.processes, 1, 'one waypoint for the namespace');
  const html = readFileSync(summary.report, 'utf8');
  t.regex(html, /Mesh proxies per pod and per node/);
  t.regex(html, /haproxy standing in for ztunnel/i);
  t.regex(html, /haproxy standing in for Envoy \(waypoint proxy\)/i);
  t.deepEqual(await labNetns(), []);
});

rootTest('Ctrl-C during a run tears everything down and leaves a record marked incomplete', async (t) => {
  const dir = tmp();
  const pids: number[] = [];
  let sent = false;
  const r = await cli(quickArgs(join(dir, 'results'), join(dir, 'reports'), '--duration', '30'), {
    onStderr: (chunk, child) => {
      if (sent || !/measuring/.test(chunk)) return;
      sent = true;
      // Remember what the run started, then interrupt it as a terminal would.
      for (const f of stateFiles()) {
        const st = JSON.parse(readFileSync(join(STATE_DIR, f), 'utf8'));
        pids.push(...st.pids.map((p: { pid: number }) => p.pid));
      }
      setTimeout(() => child.kill('SIGINT'), 500);
    },
  });
  t.true(sent, 'the run reached its measured window');
  t.is(r.code, 130, r.stderr);
  t.regex(r.stderr, /SIGINT received/);
  const file = r.stdout.match(/run record: (\S+)/)?.[1];
  t.truthy(file, r.stdout);
  const rec: RunRecord = JSON.parse(readFileSync(file!, 'utf8'));
  t.is(rec.status, 'incomplete');
  t.regex(rec.error ?? '', /SIGINT/);
  t.is(rec.cases[0]?.status, 'interrupted');
  t.truthy(rec.finishedAt);
  t.true(pids.length >= 2, `lab processes seen: ${pids}`);
  for (const pid of pids) t.false(pidAlive(pid), `process ${pid} still alive`);
  t.deepEqual(await labNetns(), []);
  t.deepEqual(labCgroups(), []);
});

rootTest('a broken scenario: file:line errors, exit 2, and nothing is built', async (t) => {
  const before = await rootNetState();
  const r = await cli(['run', 'test/fixtures/scenarios/broken.yaml']);
  t.is(r.code, 2);
  t.regex(r.stderr, /test\/fixtures\/scenarios\/broken\.yaml:6: client\.node: unknown node "node9"/);
  t.regex(r.stderr, /broken\.yaml:19: dataplanes\.1: unknown dataplane "warp-drive"/);
  t.is(r.stderr.split('\n').filter((l) => /broken\.yaml:\d+: /.test(l)).length, 8);
  const v = await cli(['validate', 'test/fixtures/scenarios/broken.yaml']);
  t.is(v.code, 2);
  t.deepEqual(await labNetns(), []);
  t.deepEqual(labCgroups(), []);
  t.is(await rootNetState(), before);
});

rootTest('without root: a clear message, exit 3, nothing changed', async (t) => {
  const before = await rootNetState();
  const states = stateFiles();
  const r = await cli(['run', 'scenarios/quick.yaml'], { wrap: ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups'] });
  t.is(r.code, 3, r.stderr);
  t.regex(r.stderr, /needs root/);
  const d = await cli(['down'], { wrap: ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups'] });
  t.is(d.code, 3);
  t.deepEqual(await labNetns(), []);
  t.deepEqual(stateFiles(), states);
  t.is(await rootNetState(), before);
});
