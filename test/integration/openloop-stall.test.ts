// The open-loop engine sees a real stall (issue 16 acceptance): mb-load at a fixed rate against a
// fortio server in another pod; the server process is stopped (SIGSTOP) for 200 ms once. Timed
// from the intended send times, the stall shows in the maximum and in how many requests exceeded
// 100 ms; timed from the actual sends (service time, what a closed-loop tool reports) only the few
// requests on the wire during the stall see it. A run without a stall shows none of it.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import test from 'ava';
import { cleanAround, newLabPrefix, rootTest } from '../helpers.js';
import {
  countAbove,
  HTTP_PORT,
  loadTools,
  type MbLoadResult,
  mbLoad,
  NICE,
  type PodPair,
  podPairDown,
  podPairUp,
  stall,
  SERVER_IP,
  startFortioServer,
} from '../pod-pair.js';

const RATE = 500;
const CONNS = 4;
const STALL_MS = 200;
const tools = await loadTools(); // before any test or hook: ava wants them declared in one go
cleanAround();
const stallTest = tools.missing
  ? (((title: string, ...rest: unknown[]) => (test.skip as any)(`${title} (skipped: ${tools.missing})`, ...rest)) as typeof rootTest)
  : rootTest;

const args = ['-target', `http://${SERVER_IP}:${HTTP_PORT}/`, '-protocol', 'http1', '-rate', String(RATE), '-duration', '3s', '-warmup', '500ms'];
const args4 = [...args, '-connections', String(CONNS), '-timeout', '5s'];

let pair: PodPair | undefined;
test.serial.after.always(async () => {
  await podPairDown(pair);
});

const fmt = (r: MbLoadResult) => {
  const s = (x: MbLoadResult['responseTimeUs']) => `p50 ${x.p50} p99 ${x.p99} max ${x.max} µs, >100 ms: ${countAbove(x, 100_000)}`;
  return `${r.actual.requests} requests (${r.actual.ok} ok); response ${s(r.responseTimeUs)}; service ${s(r.serviceTimeUs)}`;
};

stallTest('mb-load: a 200 ms SIGSTOP of the server shows in the response time, not in the service time', async (t) => {
  pair = await podPairUp(newLabPrefix());
  const server = await startFortioServer(pair, tools.fortio!);
  // The recorded pid is fortio itself once the cgroup shell and nsenter have exec'd into it.
  for (let i = 0; i < 100 && readFileSync(`/proc/${server.pid}/comm`, 'utf8').trim() !== 'fortio'; i++) await sleep(10);
  t.is(readFileSync(`/proc/${server.pid}/comm`, 'utf8').trim(), 'fortio', 'the pid to stop is the fortio server');

  // The 2 cores are shared with other work (parallel test runs while developing; not in CI), whose
  // bursts can hold the server or mb-load off the CPU for tens of milliseconds: a stall of their
  // own. An attempt counts when the host was quiet: the run without a stall stays below 100 ms and,
  // in the stall run, the service time (which sees the injected stall only for the requests on the
  // wire, at most one per connection) keeps p99 < 20 ms. Up to 3 attempts; the assertions are on
  // the last, so a host that is never quiet fails the test rather than passing it.
  let calm: MbLoadResult | undefined;
  let r: MbLoadResult | undefined;
  let stallMs = 0;
  for (let attempt = 1; attempt <= 3; attempt++) {
    r = undefined;
    calm = await mbLoad(pair, tools.mbLoad!, args4);
    t.log(`attempt ${attempt}, no stall: ${fmt(calm)}`);
    if (calm.responseTimeUs.max! >= 100_000) continue;
    // Stop the server 1.5 s into the run (1 s into the window), once.
    const run = mbLoad(pair, tools.mbLoad!, args4);
    await sleep(1500);
    stallMs = await stall(server.pid, STALL_MS);
    r = await run;
    t.log(`attempt ${attempt}, stall ${stallMs.toFixed(1)} ms: ${fmt(r)}`);
    if (r.serviceTimeUs.p99! < 20_000) break;
  }
  t.is(calm!.actual.errors, 0);
  t.true(calm!.responseTimeUs.max! < 100_000, `without a stall the max is ${calm!.responseTimeUs.max} µs (must stay below 100 ms; host too busy?)`);
  if (!r) return;

  t.is(r.actual.errors, 0);
  t.is(r.actual.requests, RATE * 3);
  const resp = r.responseTimeUs;
  const svc = r.serviceTimeUs;
  t.true(resp.max! >= 150_000, `response-time max ${resp.max} µs, want ≥ 150 ms`);
  // A request intended t ms into the stall waits ≈ stall − t, so only those intended in its first
  // (stall − 100 ms) exceed 100 ms: rate × (stall − 100 ms), not the rate × stall (which
  // counts every request delayed at all, most of them by less than 100 ms). Both are logged.
  const expected = (RATE * (stallMs - 100)) / 1000;
  const above = countAbove(resp, 100_000);
  t.log(
    `response times > 100 ms: ${above}; rate × (stall − 100 ms) = ${expected.toFixed(1)}; the issue's rate × stall = ${((RATE * stallMs) / 1000).toFixed(1)}`,
  );
  t.true(Math.abs(above - expected) <= 0.2 * expected, `${above} requests > 100 ms, want ${expected.toFixed(1)} ± 20 %`);
  // Service time sees the stall only for requests already sent: at most one per connection.
  t.true(svc.max! >= 150_000, `service-time max ${svc.max} µs: the request on the wire during the stall waited too`);
  const svcAbove = countAbove(svc, 100_000);
  t.true(svcAbove >= 1 && svcAbove <= CONNS, `${svcAbove} service times > 100 ms, want 1..${CONNS}`);
  t.true(resp.p99! >= 100_000, `response-time p99 ${resp.p99} µs shows the stall`);
  t.true(svc.p99! < 20_000, `service-time p99 ${svc.p99} µs hides it (${CONNS} connections)`);
});

stallTest('mb-load: a target that is down gives errors, not a hang; SIGINT writes the partial result and exits 130', async (t) => {
  pair ??= await podPairUp(newLabPrefix());
  // Nothing listens on port 9: every request fails at connect, and the run still ends on time.
  const t0 = performance.now();
  const down = await mbLoad(pair, tools.mbLoad!, ['-target', `http://${SERVER_IP}:9/`, '-rate', '200', '-duration', '1s', '-timeout', '1s']);
  t.log(`target down: ${JSON.stringify(down.actual)} in ${(performance.now() - t0).toFixed(0)} ms`);
  t.deepEqual([down.actual.requests, down.actual.ok, down.actual.codes.connect], [200, 0, 200]);
  t.is(down.responseTimeUs.count, 0);
  t.is(down.responseTimeUs.p99, null);
  t.true(performance.now() - t0 < 5000);

  const child = spawn('nsenter', [`--net=/run/netns/${pair.client}`, '--', 'nice', ...NICE, tools.mbLoad!, '-quiet', ...args, '-duration', '20s'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (d) => (out += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  await sleep(1500);
  child.kill('SIGINT'); // nsenter exec'd into mb-load: this pid is mb-load's
  const code = await exited;
  const r = JSON.parse(out) as MbLoadResult & { interrupted: boolean };
  t.log(`interrupted after 1.5 s: exit ${code}, ${JSON.stringify(r.actual)}`);
  t.is(code, 130);
  t.true(r.interrupted);
  t.true(r.actual.windowS > 0.5 && r.actual.windowS < 1.5, `windowS ${r.actual.windowS}: the part of the window that ran`);
  t.true(Math.abs(r.actual.requests - RATE * r.actual.windowS) < 0.1 * RATE, `${r.actual.requests} requests in ${r.actual.windowS} s`);
});
