import { join } from 'node:path';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { rootTest, cleanAround, labNetns, rootNetState } from '../helpers.js';
import { loadScenario } from '../../harness/scenario/load.js';
import { buildCluster } from '../../harness/topology/graph.js';
import { clusterUp } from '../../harness/topology/netns.js';
import { sweep } from '../../harness/topology/cleanup.js';
import { baseline } from '../../harness/dataplanes/baseline/index.js';
import { startApps } from '../../harness/workloads/fortio-server.js';
import { expandCases } from '../../harness/scenario/expand.js';
import { exec } from '../../harness/util/exec.js';
import { ProcessGroup } from '../../harness/util/procs.js';
import { pidAlive } from '../../harness/util/host.js';
import { requireTool } from '../../harness/util/tools.js';

cleanAround();

rootTest('topology up then down leaves no namespace, link, route or process behind', async (t) => {
  const before = await rootNetState();
  const s = loadScenario('scenarios/chain.yaml');
  const c = buildCluster(s, 'mbtop1');
  await clusterUp(c);
  const made = await labNetns();
  t.is(made.length, 1 + c.nodes.length + c.pods.length);
  // The pod really is a separate host: its own address on its veth, routed only to the lab range.
  const addr = await exec('ip', ['-j', 'addr', 'show', 'dev', c.client.podIf], { netns: c.client.netns });
  t.is(JSON.parse(addr.stdout)[0].addr_info[0].local, c.client.ip);
  const routes = await exec('ip', ['route'], { netns: c.client.netns });
  t.regex(routes.stdout, /^198\.18\.0\.0\/15 via 198\.19\.1\.1/m);
  t.notRegex(routes.stdout, /default/);
  const r = await sweep('mbtop1');
  t.is(r.namespaces, made.length);
  t.deepEqual(await labNetns(), []);
  t.is(await rootNetState(), before);
  const again = await sweep('mbtop1');
  t.is(again.namespaces, 0, 'down is safe to repeat');
});

rootTest('a pod on node1 reaches a pod on node2 through the Service VIP (baseline DNAT on node1)', async (t) => {
  const fortio = await requireTool('fortio');
  const s = loadScenario('scenarios/quick.yaml');
  const c = buildCluster(s, 'mbtop2');
  const dir = mkdtempSync(join(tmpdir(), 'mb-topo-'));
  const procs = new ProcessGroup('mbtop2', dir);
  try {
    await clusterUp(c);
    const dp = await baseline.deploy({ cluster: c, scenario: s, procs, caseDir: dir, log: () => {} });
    t.is(dp.path.userSpaceHops, 0);
    const apps = await startApps({ cluster: c, workload: expandCases(s)[0].workload, procs, fortio, logDir: dir });
    t.is(apps.procs.length, 1);
    const svc = c.services[0];
    // The server's /debug page echoes the peer address it saw: the client pod's own IP (no SNAT).
    const r = await exec(fortio, ['curl', '-loglevel', 'error', `http://${svc.vip}:${svc.port}/debug`], { netns: c.client.netns });
    t.is(r.code, 0, 'fortio curl exits 0 only on a 200');
    t.regex(r.stdout, new RegExp(`request from ${c.client.ip.replace(/\./g, '\\.')}:\\d+`));
    t.regex(r.stdout, new RegExp(`Host: ${svc.vip.replace(/\./g, '\\.')}:80`));
    // The VIP was translated by the service chain in node1's namespace (counters moved there).
    const nat = await exec('iptables', ['-t', 'nat', '-L', 'MBTOP2-SERVICES', '-v', '-x', '-n'], { netns: c.nodes[0].netns });
    const hits = nat.stdout.split('\n').find((l) => l.includes(svc.vip));
    t.truthy(hits);
    t.true(Number(hits!.trim().split(/\s+/)[0]) >= 1, hits);
    const pids = apps.procs.map((p) => p.pid);
    await procs.stopAll();
    for (const pid of pids) t.false(pidAlive(pid));
  } finally {
    await procs.stopAll();
    await procs.close();
    await sweep('mbtop2');
  }
  t.deepEqual(await labNetns(), []);
});

rootTest('a call chain goes client → frontend-api → order-service → inventory-service, one request per hop', async (t) => {
  const fortio = await requireTool('fortio');
  const s = loadScenario('scenarios/chain.yaml');
  const c = buildCluster(s, 'mbtop3');
  const dir = mkdtempSync(join(tmpdir(), 'mb-chain-'));
  const procs = new ProcessGroup('mbtop3', dir);
  try {
    await clusterUp(c);
    await baseline.deploy({ cluster: c, scenario: s, procs, caseDir: dir, log: () => {} });
    await startApps({ cluster: c, workload: expandCases(s)[0].workload, procs, fortio, logDir: dir });
    const [front, order, inventory] = c.services;
    // /debug is mirrored down the chain; only the last link answers it, naming the peer it saw.
    const r = await exec(fortio, ['curl', '-loglevel', 'error', `http://${front.vip}:${front.port}/debug`], { netns: c.client.netns });
    t.is(r.code, 0);
    t.regex(r.stdout, new RegExp(`request from ${order.backends[0].ip.replace(/\./g, '\\.')}:\\d+`), 'the last hop is called by order-service');
    t.regex(r.stdout, new RegExp(`Host: ${inventory.vip.replace(/\./g, '\\.')}:80`), "through inventory-service's VIP");
  } finally {
    await procs.stopAll();
    await procs.close();
    await sweep('mbtop3');
  }
});
