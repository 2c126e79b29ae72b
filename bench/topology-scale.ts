// Time to bring up and tear down a cluster of N nodes × M pods on network namespaces.
// Usage (root): npx tsx bench/topology-scale.ts [nodes=100] [podsPerNode=10] [rounds=3]
import { loadScenario } from '../harness/scenario/load.js';
import { buildCluster } from '../harness/topology/graph.js';
import { clusterUp, listNetns } from '../harness/topology/netns.js';
import { sweep } from '../harness/topology/cleanup.js';
import { isRoot } from '../harness/util/host.js';

const [nodes = 100, pods = 10, rounds = 3] = process.argv.slice(2).map(Number);
if (!isRoot()) {
  console.error('bench/topology-scale.ts needs root (it creates network namespaces)');
  process.exit(3);
}
const s = loadScenario('scenarios/quick.yaml');
s.topology = { ...s.topology, nodes, podsPerNode: pods };
const prefix = 'mbbnch';
const cluster = buildCluster(s, prefix);
const nsCount = 1 + cluster.nodes.length + cluster.pods.length;
console.log(`topology ${nodes} nodes × ${pods} idle pods (+2 scenario pods): ${nsCount} namespaces, ${cluster.pods.length + nodes} veth pairs`);
await sweep(prefix);
const f = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
for (let r = 1; r <= rounds; r++) {
  try {
    const up = await clusterUp(cluster);
    const made = (await listNetns(new RegExp(`^${prefix}-`))).length;
    const t0 = performance.now();
    const down = await sweep(prefix);
    const downMs = performance.now() - t0;
    console.log(
      `round ${r}: up ${f(up.totalMs)} (namespaces ${f(up.namespacesMs)}, veth pairs ${f(up.linksMs)}, addresses+routes ${f(up.configMs)}) · ` +
        `down ${f(downMs)} (${down.namespaces} namespaces removed) · ${made === nsCount ? 'all namespaces present' : `ONLY ${made}/${nsCount} namespaces present`}`,
    );
  } finally {
    await sweep(prefix);
  }
}
