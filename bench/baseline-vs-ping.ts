// The baseline dataplane's HTTP latency next to the raw round trip (ICMP ping) between the very
// same two pods of the same topology: what the kernel path costs versus what a request costs.
// Usage (root): npx tsx bench/baseline-vs-ping.ts [durationS=10] [pings=1000]
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runScenario } from '../harness/run/run.js';
import { exec } from '../harness/util/exec.js';
import { isRoot } from '../harness/util/host.js';
import { percentile } from '../harness/load/fortio.js';
import { Progress } from '../harness/util/progress.js';

const [durationS = 10, pings = 1000] = process.argv.slice(2).map(Number);
if (!isRoot()) {
  console.error('bench/baseline-vs-ping.ts needs root (it builds a topology)');
  process.exit(3);
}
let ping: Float64Array | undefined;
let pair = '';
const res = await runScenario('scenarios/quick.yaml', {
  dataplanes: ['baseline'],
  durationS,
  resultsRoot: mkdtempSync(join(tmpdir(), 'mb-bench-')),
  progress: new Progress('quiet'),
  beforeTeardown: async (cluster) => {
    const server = cluster.services[0].backends[0];
    pair = `${cluster.client.name} (${cluster.client.node}, ${cluster.client.ip}) → ${server.name} (${server.node}, ${server.ip})`;
    // 2 ms apart: bounded (pings × 2 ms) and gentle; root may go below ping's 200 ms floor.
    const r = await exec('ping', ['-n', '-c', String(pings), '-i', '0.002', server.ip], { netns: cluster.client.netns });
    ping = Float64Array.from([...r.stdout.matchAll(/time=([\d.]+) ms/g)].map((m) => Number(m[1]) * 1000)).sort();
  },
});
const c = res.record.cases[0];
if (!c?.latencyUs || !ping?.length) {
  console.error(`run did not produce figures: ${res.record.error ?? c?.error ?? 'no ping replies'} (${res.file})`);
  process.exit(1);
}
const l = c.latencyUs;
const p = (x: number) => `${x.toFixed(1).padStart(8)} µs`;
console.log(`pods: ${pair}`);
console.log(`                         p50          p90          p99`);
console.log(`ping (ICMP, ${ping.length} echoes)  ${p(percentile(ping, 50))} ${p(percentile(ping, 90))} ${p(percentile(ping, 99))}`);
console.log(
  `baseline HTTP/1.1 via VIP ${p(l.p50)} ${p(l.p90)} ${p(l.p99)}   (${c.load.actual.requests} requests at ${c.load.actual.qps} qps, ${c.load.requested.connections} connections)`,
);
console.log(`HTTP minus ping          ${p(l.p50 - percentile(ping, 50))} ${p(l.p90 - percentile(ping, 90))} ${p(l.p99 - percentile(ping, 99))}`);
console.log(`run record: ${res.file}`);
