// One 200 ms stall of the server (SIGSTOP, once, mid-run), measured by the open-loop engine
// (mb-load: latency from each request's intended send time) and by fortio (fixed rate with
// catch-up, latency from the actual send) at the same rate and connections, side by side: how
// much of the stall each engine's p99, max and count above 100 ms show. Direct pod to pod.
// Usage (root): npx tsx bench/load-stall.ts [rate=500] [connections=4] [stallMs=200]
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { exec } from '../harness/util/exec.js';
import { isRoot } from '../harness/util/host.js';
import { countAbove, HTTP_PORT, NICE, loadTools, mbLoad, pairPrefix, podPairDown, podPairUp, SERVER_IP, stall, startFortioServer } from '../test/pod-pair.js';

const [rate = 500, conns = 4, stallMs = 200] = process.argv.slice(2).map(Number);
if (!isRoot()) {
  console.error('bench/load-stall.ts needs root (it builds two lab pods)');
  process.exit(3);
}
const tools = await loadTools();
if (tools.missing) {
  console.error(tools.missing);
  process.exit(3);
}
const url = `http://${SERVER_IP}:${HTTP_PORT}/`;
const pair = await podPairUp(pairPrefix());
const rows: { engine: string; p50: number; p99: number; max: number; above: number; n: number; stall: number }[] = [];
try {
  const server = await startFortioServer(pair, tools.fortio!);

  // mb-load: 0.5 s warm-up, 3 s window; the stall 1 s into the window.
  const run = mbLoad(pair, tools.mbLoad!, ['-target', url, '-rate', String(rate), '-duration', '3s', '-warmup', '500ms', '-connections', String(conns)]);
  await sleep(1500);
  let stalled = await stall(server.pid, stallMs);
  const m = await run;
  const r = m.responseTimeUs;
  const s = m.serviceTimeUs;
  rows.push({ engine: 'mb-load response time (open loop)', p50: r.p50!, p99: r.p99!, max: r.max!, above: countAbove(r, 100_000), n: r.count, stall: stalled });
  rows.push({ engine: 'mb-load service time', p50: s.p50!, p99: s.p99!, max: s.max!, above: countAbove(s, 100_000), n: s.count, stall: stalled });

  // fortio: its own warm-up call per connection, 3 s; the stall 1.5 s in.
  const out = join(pair.dir, 'fortio.json');
  const f = exec('nice', [...NICE, tools.fortio!, 'load', '-quiet', '-qps', String(rate), '-c', String(conns), '-t', '3s', '-p', '50,99', '-json', out, url], {
    netns: pair.client,
    cgroup: pair.procs.cgroupFor('fortio'),
  });
  await sleep(1500);
  stalled = await stall(server.pid, stallMs);
  await f;
  const h = JSON.parse(readFileSync(out, 'utf8')).DurationHistogram as {
    Count: number;
    Max: number;
    Data: { Start: number; End: number; Count: number }[];
    Percentiles: { Percentile: number; Value: number }[];
  };
  const pct = (p: number) => (h.Percentiles.find((x) => x.Percentile === p)?.Value ?? Number.NaN) * 1e6;
  // A bucket straddling 100 ms counts in proportion to its part above it.
  const above = h.Data.reduce((n, b) => n + (b.Start >= 0.1 ? b.Count : b.End > 0.1 ? (b.Count * (b.End - 0.1)) / (b.End - b.Start) : 0), 0);
  rows.push({ engine: 'fortio (fixed rate, catch-up)', p50: pct(50), p99: pct(99), max: h.Max * 1e6, above: Math.round(above), n: h.Count, stall: stalled });
} finally {
  await podPairDown(pair);
}

const ms = (us: number) => `${(us / 1000).toFixed(2).padStart(8)} ms`;
console.log(`stall of the server, ${rate} req/s, ${conns} connections, HTTP/1.1, direct pod to pod`);
console.log(`${'engine'.padEnd(36)} ${'p50'.padStart(11)} ${'p99'.padStart(11)} ${'max'.padStart(11)}  >100 ms  requests  stall`);
for (const x of rows)
  console.log(
    `${x.engine.padEnd(36)} ${ms(x.p50)} ${ms(x.p99)} ${ms(x.max)}  ${String(x.above).padStart(7)}  ${String(x.n).padStart(8)}  ${x.stall.toFixed(0)} ms`,
  );
console.log(`expected above 100 ms when timed from the intended send: rate × (stall − 100 ms) ≈ ${Math.round((rate * (rows[0].stall - 100)) / 1000)}`);
