// Where the lab's load resolution ends: the load engine's own ceiling (the highest rate mb-load
// sustains, HTTP/1.1 and gRPC, straight to a fortio server in another pod: no Service, no
// dataplane) and its latency floor (p50/p99 at a low rate on the same path). Both engines and the
// server share this machine's cores, so the ceiling is the lab's, not the generator's alone.
// A step is sustained while the requests of the window complete within 5 % of the window's length
// (open loop: every scheduled request is sent, so a saturated path shows as the queue draining
// after the window, not as a lower count) and none fails.
// Usage (root): npx tsx bench/load-ceiling.ts [stepS=2]
import { isRoot } from '../harness/util/host.js';
import {
  GRPC_PORT,
  HTTP_PORT,
  loadTools,
  type MbLoadResult,
  mbLoad,
  pairPrefix,
  podPairDown,
  podPairUp,
  SERVER_IP,
  startFortioServer,
} from '../test/pod-pair.js';

const [stepS = 2] = process.argv.slice(2).map(Number);
if (!isRoot()) {
  console.error('bench/load-ceiling.ts needs root (it builds two lab pods)');
  process.exit(3);
}
const tools = await loadTools();
if (tools.missing) {
  console.error(tools.missing);
  process.exit(3);
}
const WARMUP_S = 0.5;
const RATES = [1000, 2000, 4000, 6000, 8000, 12000, 16000, 24000, 32000, 48000, 64000, 80000, 100000];
const target = {
  http1: ['-protocol', 'http1', '-target', `http://${SERVER_IP}:${HTTP_PORT}/`, '-connections', '16'],
  // fortio's fgrpc.PingServer/Ping: an empty BytesValue is an empty PingMessage.
  grpc: ['-protocol', 'grpc', '-target', `${SERVER_IP}:${GRPC_PORT}`, '-method', '/fgrpc.PingServer/Ping', '-connections', '2', '-streams', '16'],
};

/** Requests of the window per second from the window's start to the last completion. */
const achieved = (r: MbLoadResult) => r.actual.requests / (r.generator.wallSeconds - WARMUP_S - 0.01);
const ms = (us: number | null) => (us === null ? '     -' : `${(us / 1000).toFixed(2).padStart(6)} ms`);

const pair = await podPairUp(pairPrefix());
const lines: string[] = [];
try {
  await startFortioServer(pair, tools.fortio!);
  for (const [proto, args] of Object.entries(target)) {
    const floor = await mbLoad(pair, tools.mbLoad!, [...args, '-rate', '200', '-duration', '5s', '-warmup', '1s']);
    lines.push(
      `${proto} floor at 200 req/s: response p50 ${ms(floor.responseTimeUs.p50)} p99 ${ms(floor.responseTimeUs.p99)}; service p50 ${ms(floor.serviceTimeUs.p50)} p99 ${ms(floor.serviceTimeUs.p99)}; send lag p99 ${ms(floor.sendLagUs.p99)}`,
    );
    let best = 0;
    for (const rate of RATES) {
      // A second try before giving up: the cores are shared, and one burst of other work near the
      // end of a 2 s step is enough to fail it.
      let okStep = false;
      for (let attempt = 1; attempt <= 2 && !okStep; attempt++) {
        const r = await mbLoad(pair, tools.mbLoad!, [...args, '-rate', String(rate), '-duration', `${stepS}s`, '-warmup', `${WARMUP_S}s`, '-timeout', '2s']);
        const a = achieved(r);
        okStep = a >= 0.95 * rate && r.actual.errors === 0;
        lines.push(
          `${proto} ${String(rate).padStart(6)} req/s: achieved ${a.toFixed(0).padStart(6)}/s, errors ${r.actual.errors}, response p50 ${ms(r.responseTimeUs.p50)} p99 ${ms(r.responseTimeUs.p99)}, service p99 ${ms(r.serviceTimeUs.p99)}, generator CPU ${(r.generator.cpuUtilisation * 100).toFixed(0)} % of a core${okStep ? '' : `  <- not sustained (try ${attempt})`}`,
        );
      }
      if (!okStep) break;
      best = rate;
    }
    lines.push(`${proto} ceiling: ${best ? `${best} req/s` : `below ${RATES[0]} req/s`} (highest step sustained)`);
  }
} finally {
  await podPairDown(pair);
}
console.log(`load engine ceiling and floor, mb-load → fortio server, direct pod to pod, ${stepS} s steps`);
for (const l of lines) console.log(l);
