// Node proxy (ambient) memory as the pods on one node grow: 10, 100 and 500 pods. The whole
// ambient dataplane is deployed for real on a one-node cluster — certificates for every pod held
// by the node proxy, capture rules in every pod, listeners inside every pod's namespace — and the
// node proxy's RSS/PSS read after start, also per pod.
// The stand-in keeps Services and workloads once per node (map files) and one TLS server line per
// local pod (its certificate, its namespace), so config and memory should grow with pods, not
// pods × Services; the table prints both so that can be checked. Above 250 pods the node gets a
// larger pod block than /24.
// Usage (root): npx tsx bench/node-proxy-memory.ts [sizes=10,100,500]
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { loadScenario } from '../harness/scenario/load.js';
import type { Scenario } from '../harness/scenario/schema.js';
import { buildCluster } from '../harness/topology/graph.js';
import { clusterUp } from '../harness/topology/netns.js';
import { sweep } from '../harness/topology/cleanup.js';
import { getDataplane } from '../harness/dataplanes/registry.js';
import { haproxy } from '../harness/dataplanes/engine/haproxy.js';
import { smapsRollup } from '../harness/probes/resources.js';
import { isRoot } from '../harness/util/host.js';
import { ProcessGroup } from '../harness/util/procs.js';

const sizes = (process.argv[2] ?? '10,100,500').split(',').map(Number);
if (!isRoot()) {
  console.error('bench/node-proxy-memory.ts needs root (it builds namespaces and starts proxies)');
  process.exit(3);
}

function oneNode(pods: number): Scenario {
  const s = loadScenario('scenarios/quick.yaml');
  s.topology = { ...s.topology, nodes: ['node1'], podsPerNode: 0 };
  s.client = { ...s.client, node: 'node1' };
  // The client is a pod too: pods − 1 services of one replica each.
  s.services = Array.from({ length: pods - 1 }, (_, i) => ({
    name: `svc-${i + 1}`,
    namespace: 'default',
    port: 80,
    targetPort: 8080,
    protocol: 'http' as const,
    replicas: 1,
    nodes: ['node1'],
  }));
  s.workloads = [{ ...s.workloads[0], chain: ['svc-1'] }];
  return s;
}

const prefix = 'mbbnpx';
const mib = (b: number) => (b / 1048576).toFixed(1).padStart(8);
console.log(`ambient node proxy memory on one node (HAProxy ${await haproxy.version()} standing in for ztunnel), idle after start`);
console.log('pods   config KiB    RSS MiB    PSS MiB   RSS KiB per pod   deploy s   TLS server lines');
for (const n of sizes) {
  await sweep(prefix);
  const dir = mkdtempSync(join(tmpdir(), 'mb-bench-ztunnel-'));
  const procs = new ProcessGroup(prefix, dir);
  const dp = getDataplane('ambient');
  const s = oneNode(n);
  const c = buildCluster(s, prefix);
  const ctx = { cluster: c, scenario: s, procs, caseDir: dir, log: () => {} };
  try {
    await clusterUp(c);
    const t0 = performance.now();
    const d = await dp.deploy(ctx);
    const deployS = (performance.now() - t0) / 1000;
    await sleep(1000);
    const proc = procs.procs.find((p) => p.role === 'node-proxy')!;
    const m = smapsRollup(proc.pid)!;
    const cfg = Number(d.provenance['node-proxy'].configBytes);
    const servers = readFileSync(join(dir, 'node-proxies', 'node1.cfg'), 'utf8')
      .split('\n')
      .filter((l) => /^\s+server .* ssl /.test(l)).length;
    console.log(
      `${String(n).padStart(4)} ${(cfg / 1024).toFixed(1).padStart(11)} ${mib(m.rss)}   ${mib(m.pss)}   ${(m.rss / 1024 / n).toFixed(1).padStart(15)}   ${deployS.toFixed(1).padStart(8)}   ${String(servers).padStart(16)}`,
    );
  } finally {
    await procs.stopAll();
    await dp.teardown(ctx);
    await procs.close();
    await sweep(prefix);
  }
}
