// Sidecar memory per pod as the mesh grows: 10, 100 and 500 Services, for both sidecar profiles.
// Istio's profile puts every Service and endpoint of the mesh into every sidecar; Linkerd's only
// what the pod calls. A few sampled sidecars are started for real (HAProxy, in their pod's
// namespace, with their certificates); every other pod exists as a namespace with an address, so
// the configuration is the one a full mesh of that size would give.
// Usage (root): npx tsx bench/sidecar-memory.ts [sizes=10,100,500] [samples=3]
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { loadScenario } from '../harness/scenario/load.js';
import type { Scenario } from '../harness/scenario/schema.js';
import { buildCluster } from '../harness/topology/graph.js';
import { clusterUp } from '../harness/topology/netns.js';
import { sweep } from '../harness/topology/cleanup.js';
import { createMeshCA } from '../harness/dataplanes/mesh/ca.js';
import { haproxy } from '../harness/dataplanes/engine/haproxy.js';
import { sidecarSpec, type SidecarProfile } from '../harness/dataplanes/sidecar/family.js';
import { outboundRoutes, outboundServices } from '../harness/dataplanes/mesh/services.js';
import { istioProfile } from '../harness/dataplanes/sidecar/istio.js';
import { linkerdProfile } from '../harness/dataplanes/sidecar/linkerd.js';
import { smapsRollup } from '../harness/probes/resources.js';
import { isRoot, STATE_DIR } from '../harness/util/host.js';
import { waitListening } from '../harness/util/net.js';
import { ProcessGroup } from '../harness/util/procs.js';

const sizes = (process.argv[2] ?? '10,100,500').split(',').map(Number);
const samples = Number(process.argv[3] ?? 3);
if (!isRoot()) {
  console.error('bench/sidecar-memory.ts needs root (it builds namespaces and starts proxies)');
  process.exit(3);
}

function meshOf(n: number): Scenario {
  const s = loadScenario('scenarios/quick.yaml');
  const nodes = Math.max(2, Math.ceil(n / 100));
  s.topology = { ...s.topology, nodes, podsPerNode: 0 };
  s.services = Array.from({ length: n }, (_, i) => ({
    name: `svc-${i + 1}`,
    namespace: 'default',
    port: 80,
    targetPort: 8080,
    protocol: 'http' as const,
    replicas: 1,
  }));
  s.workloads = [{ ...s.workloads[0], chain: ['svc-1'] }];
  return s;
}

const prefix = 'mbbsid';
const mib = (b: number) => (b / 1048576).toFixed(1).padStart(7);
console.log(
  `sidecar memory per pod (HAProxy ${await haproxy.version()} standing in for Envoy / linkerd2-proxy), ${samples} sampled sidecars per row, idle after start`,
);
console.log('profile            services  config KiB   RSS MiB   PSS MiB   (per sidecar, mean of samples)');
for (const n of sizes)
  for (const profile of [istioProfile, linkerdProfile] as SidecarProfile[]) {
    await sweep(prefix);
    const dir = mkdtempSync(join(tmpdir(), 'mb-bench-sidecar-'));
    const procs = new ProcessGroup(prefix, dir);
    try {
      const s = meshOf(n);
      const c = buildCluster(s, prefix);
      await clusterUp(c);
      const ca = await createMeshCA({ dir: join(dir, 'ca'), keyType: profile.keyType });
      mkdirSync(join(STATE_DIR, prefix), { recursive: true });
      const all = outboundServices(c);
      const routes = outboundRoutes(s, c);
      const apps = c.pods.filter((p) => p.role === 'app');
      const sampled = [c.client, ...apps.filter((_, i) => i % Math.max(1, Math.floor(apps.length / (samples - 1))) === 0)].slice(0, samples);
      const rows: { rss: number; pss: number; bytes: number }[] = [];
      for (const pod of sampled) {
        const id = await ca.issue(pod.namespace, pod.serviceAccount);
        const spec = sidecarSpec(profile, s, c, pod, ca, id.bundleFile, all, routes);
        const cfg = haproxy.renderSidecar(spec);
        const file = join(dir, `${pod.name}.cfg`);
        writeFileSync(file, cfg);
        const proc = haproxy.start(procs, spec, file, join(dir, `${pod.name}.log`), 'proxy');
        await waitListening(pod.netns, [profile.outboundPort, profile.inboundPort], 30000, proc);
        await sleep(1000);
        const m = smapsRollup(proc.pid)!;
        rows.push({ rss: m.rss, pss: m.pss, bytes: Buffer.byteLength(cfg) });
      }
      const mean = (k: 'rss' | 'pss' | 'bytes') => rows.reduce((a, r) => a + r[k], 0) / rows.length;
      console.log(
        `${profile.name.padEnd(18)} ${String(n).padStart(8)} ${(mean('bytes') / 1024).toFixed(1).padStart(11)} ${mib(mean('rss'))}   ${mib(mean('pss'))}`,
      );
    } finally {
      await procs.stopAll();
      await procs.close();
      await sweep(prefix);
    }
  }
