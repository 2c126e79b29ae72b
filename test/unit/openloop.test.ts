// The open-loop engine (harness/load/openloop.ts): mb-load's command line, its result JSON
// (test/fixtures/mb-load-http1.json follows the contract in docs/load.md: 100 qps for 2 s with
// one 200 ms stall, which the response time shows and the service time mostly hides) mapped into
// the record, the binary looked up, scenarios that ask for it checked, and the report's latency
// table naming the load model.
import test from 'ava';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MeshbenchError } from '../../harness/errors.js';
import {
  findMbLoad,
  isOpenLoop,
  openLoopArgs,
  openLoopFigures,
  openLoopModel,
  parseMbLoadJson,
  requireMbLoad,
  toHistogram,
} from '../../harness/load/openloop.js';
import { loadScenario } from '../../harness/scenario/load.js';
import type { ResolvedWorkload } from '../../harness/scenario/expand.js';
import { renderReport } from '../../harness/report/report.js';
import { judgeCase } from '../../harness/run/validity.js';
import type { RunRecord } from '../../harness/results/types.js';

const FIXTURE = readFileSync('test/fixtures/mb-load-http1.json', 'utf8');
const target = { host: '198.18.64.1', port: 80 };
const w = (o: Partial<ResolvedWorkload> = {}): ResolvedWorkload => ({
  name: 'ol',
  protocol: 'http1',
  qps: 100,
  connections: 4,
  duration: '2s',
  warmup: '1s',
  payloadBytes: 0,
  responseBytes: 128,
  chain: ['echo'],
  durationS: 2,
  warmupS: 1,
  engine: 'openloop',
  ...o,
});
const flag = (a: string[], f: string) => a[a.indexOf(f) + 1];

test('command line: target URL, protocol, rate, window, connections, arrival, JSON file', (t) => {
  const a = openLoopArgs(w(), target, 2, '/run/case/load.json');
  t.is(flag(a, '-target'), 'http://198.18.64.1:80/echo?size=128');
  t.is(flag(a, '-protocol'), 'http1');
  t.is(flag(a, '-rate'), '100');
  t.is(flag(a, '-duration'), '2s');
  t.is(flag(a, '-warmup'), '0s', 'the warm-up is a run of its own, outside the probes’ window');
  t.is(flag(a, '-connections'), '4');
  t.is(flag(a, '-arrival'), 'uniform', 'uniform when the scenario says nothing');
  t.is(flag(a, '-payload'), '0');
  t.is(flag(a, '-json'), '/run/case/load.json');
  t.true(a.includes('-quiet'));
  const h2 = openLoopArgs(w({ protocol: 'http2', arrival: 'poisson', payloadBytes: 1024, qps: 250.5 }), target, 0.5, 'x.json');
  t.is(flag(h2, '-protocol'), 'h2c');
  t.is(flag(h2, '-arrival'), 'poisson');
  t.is(flag(h2, '-payload'), '1024');
  t.is(flag(h2, '-rate'), '250.5');
  t.is(flag(h2, '-duration'), '0.5s');
  t.throws(
    () => openLoopArgs(w({ protocol: 'grpc' }), target, 2, 'x.json'),
    { message: /needs a method/ },
    'gRPC calls one method (grpc-chain.test.ts covers the rest)',
  );
  t.throws(() => openLoopArgs(w({ qps: 'max' }), target, 2, 'x.json'), { message: /fixed rate/ });
});

test('the load model is stated as open-loop with its arrivals', (t) => {
  t.regex(openLoopModel(w()), /^open-loop: 100 qps, uniform arrivals over 4 connections.*intended send time/);
  t.regex(openLoopModel(w({ arrival: 'poisson' })), /poisson arrivals/);
  t.true(isOpenLoop(w()));
  t.false(isOpenLoop({}), 'no engine is fortio');
});

test('JSON mapped: latencyUs is the response time, serviceTimeUs beside it, actual figures and generator CPU', (t) => {
  const f = openLoopFigures(parseMbLoadJson(FIXTURE));
  t.is(f.version, '0.1.0');
  t.deepEqual(f.actual, { qps: 100, requests: 200, errors: 1, durationS: 2, retCodes: { '200': 199, timeout: 1 } });
  const L = f.latencyUs!;
  t.deepEqual([L.p50, L.p90, L.p99, L.p999, L.max, L.min, L.count], [150, 400, 150000, 201000, 201000, 80, 199]);
  t.regex(L.source, /intended send time/);
  const S = f.serviceTimeUs!;
  t.deepEqual([S.p50, S.p99, S.max, S.count], [140, 1200, 200500, 199]);
  t.regex(S.source, /actual send time/);
  t.true(L.p99 > 100 * S.p99, 'the stall shows in the response time, not in the service time');
  // HDR buckets into the record's 10 µs histogram, each at its upper bound; counts kept.
  t.deepEqual(L.histogram.buckets, [
    [80, 1],
    [90, 30],
    [150, 100],
    [400, 48],
    [150000, 10],
    [201000, 10],
  ]);
  t.is(L.histogram.count, 199);
  t.is(L.histogram.resolutionUs, 10);
  t.deepEqual(f.sendLagUs, { p50: 12, p99: 180000, max: 199800 });
  t.like(f.generator, { engine: 'mb-load', cpuSeconds: 0.05, wallSeconds: 2.3, cpuUtilisation: 0.0217, cpus: 1 });
  t.false(f.interrupted);
  t.is(toHistogram(undefined).count, 0);
});

test('no successful request: no latency figures, and the case fails for it', (t) => {
  const j = JSON.parse(FIXTURE);
  j.actual = { ...j.actual, ok: 0, errors: 200, codes: { connect: 200 } };
  for (const k of ['responseTimeUs', 'serviceTimeUs'] as const)
    j[k] = { count: 0, min: null, mean: null, p50: null, p90: null, p99: null, p999: null, max: null, histogram: [] };
  const f = openLoopFigures(parseMbLoadJson(JSON.stringify(j)));
  t.is(f.latencyUs, undefined);
  t.is(f.serviceTimeUs, undefined);
  const v = judgeCase({ requestedQps: 100, actual: f.actual, latencyCount: f.latencyUs?.count ?? 0, processesDown: [] });
  t.is(v.status, 'failed');
  t.regex(v.validity.reasons.join('\n'), /200 of 200 requests failed/);
});

test('JSON that does not follow the contract is a run error naming what is wrong', (t) => {
  const e1 = t.throws(() => parseMbLoadJson('{"schema":"fortio"}'), { instanceOf: MeshbenchError });
  t.is(e1?.code, 'E_RUN');
  t.regex(e1!.message, /meshbench\/mb-load\/v1/);
  const j = JSON.parse(FIXTURE);
  delete j.generator;
  t.regex(t.throws(() => parseMbLoadJson(JSON.stringify(j)))!.message, /generator\.cpuSeconds/);
  t.regex(t.throws(() => parseMbLoadJson('not json'))!.message, /does not parse/);
});

test('binary: .tools/bin first, then PATH; missing is E_ENV (exit 3) naming it and scripts/setup.sh', (t) => {
  const root = mkdtempSync(join(tmpdir(), 'mb-ol-'));
  const onPath = join(root, 'path');
  mkdirSync(onPath);
  mkdirSync(join(root, '.tools/bin'), { recursive: true });
  const e = t.throws(() => requireMbLoad({ root, path: onPath }), { instanceOf: MeshbenchError });
  t.is(e?.code, 'E_ENV');
  t.is(e?.exitCode, 3);
  t.regex(e!.message, /mb-load not found/);
  t.regex(e!.hint ?? '', /bash scripts\/setup\.sh/);
  const put = (p: string) => {
    writeFileSync(p, '#!/bin/sh\n');
    chmodSync(p, 0o755);
    return p;
  };
  const viaPath = put(join(onPath, 'mb-load'));
  t.is(findMbLoad({ root, path: onPath }), viaPath);
  const tools = put(join(root, '.tools/bin/mb-load'));
  t.is(findMbLoad({ root, path: onPath }), tools, 'the checkout’s build wins over PATH');
  chmodSync(tools, 0o644);
  t.is(findMbLoad({ root, path: onPath }), viaPath, 'a file that cannot run is not the binary');
});

/** The quick scenario's shape (line numbers below count from here), its workload lines edited. */
const TEMPLATE = `kind: Scenario
name: ol
topology: TOPOLOGY
client:
  node: node1
services:
  - name: echo
    port: 80
    targetPort: 8080
    replicas: 1
    nodes: [node2]
workloads:
  - name: http1-200qps
    protocol: http1
    qps: 200
    connections: 4
    duration: 20s
    warmup: 3s
    responseBytes: 128
    chain: [echo]
dataplanes: [baseline]
`;
function scenario(edit: (s: string) => string): string {
  const dir = mkdtempSync(join(tmpdir(), 'mb-ol-scn-'));
  const file = join(dir, 'ol.yaml');
  writeFileSync(file, edit(TEMPLATE.replace('TOPOLOGY', join(process.cwd(), 'topologies/two-node.yaml'))));
  return file;
}
const problems = (file: string): string[] => {
  const e = (() => {
    try {
      loadScenario(file);
    } catch (err) {
      return err as MeshbenchError;
    }
  })();
  if (!e) throw new Error(`${file} loaded`);
  if (e.code !== 'E_INPUT') throw e;
  return e.details;
};

test('scenario: engine and arrival load; no engine stays fortio with nothing added', (t) => {
  const s = loadScenario(scenario((x) => x.replace('    qps: 200', '    qps: 100\n    engine: openloop\n    arrival: poisson')));
  t.like(s.workloads[0], { engine: 'openloop', arrival: 'poisson', qps: 100 });
  const plain = loadScenario(scenario((x) => x));
  t.false('engine' in plain.workloads[0], 'an existing scenario parses exactly as before');
  t.false('arrival' in plain.workloads[0]);
});

test('scenario: openloop without a fixed rate, over gRPC without a method, or arrival without openloop is E_INPUT at its line', (t) => {
  // TEMPLATE: line 15 is qps, line 14 protocol, 13 the workload; an inserted line after qps is 16.
  const max = problems(scenario((x) => x.replace('    qps: 200', '    qps: max\n    engine: openloop')));
  t.is(max.length, 1);
  t.regex(max[0], /ol\.yaml:15: workloads\.0\.qps: engine openloop sends on a fixed schedule: qps must be a rate/);
  const zero = problems(scenario((x) => x.replace('    qps: 200', '    qps: 0\n    engine: openloop')));
  t.regex(zero.join('\n'), /ol\.yaml:15: workloads\.0\.qps: /);
  const missing = problems(scenario((x) => x.replace('    qps: 200', '    engine: openloop')));
  t.regex(missing.join('\n'), /ol\.yaml:13: workloads\.0\.qps: /);
  const grpc = problems(
    scenario((x) =>
      x
        .replace('    protocol: http1', '    protocol: grpc')
        .replace('    qps: 200', '    qps: 100\n    engine: openloop')
        .replace('    targetPort: 8080', '    targetPort: 8080\n    protocol: grpc')
        .replace('    responseBytes: 128\n', ''),
    ),
  );
  t.is(grpc.length, 1, grpc.join('\n'));
  t.regex(grpc[0], /ol\.yaml:\d+: workloads\.0\.method: engine openloop over grpc calls one method: add method/);
  const arrival = problems(scenario((x) => x.replace('    qps: 200', '    qps: 200\n    arrival: poisson')));
  t.regex(arrival.join('\n'), /ol\.yaml:16: workloads\.0\.arrival: arrival is for engine openloop/);
});

test('report: an open-loop case shows response and service time side by side and names the load model; fortio rows keep theirs', async (t) => {
  const base = JSON.parse(readFileSync('test/fixtures/runs/quick-baseline.json', 'utf8')) as RunRecord;
  const fortioOnly = (await renderReport([structuredClone(base)])).html;
  t.false(fortioOnly.includes('service p50'), 'a fortio-only report has no service-time columns');
  t.true(fortioOnly.includes(base.cases[0].load.model), 'and shows its load model as recorded');

  const rec = structuredClone(base);
  const f = openLoopFigures(parseMbLoadJson(FIXTURE));
  const ol = structuredClone(rec.cases[0]);
  Object.assign(ol, { index: 1, workload: 'openloop-100qps', latencyUs: f.latencyUs, serviceTimeUs: f.serviceTimeUs });
  ol.load = { ...ol.load, requested: { ...ol.load.requested, qps: 100, engine: 'openloop', arrival: 'uniform' }, actual: f.actual, model: openLoopModel(w()) };
  ol.validity = { ...ol.validity!, ok: true, reasons: [] };
  rec.cases.push(ol);
  const html = (await renderReport([rec])).html;
  for (const h of ['service p50 µs', 'service p99 µs', 'service max µs']) t.true(html.includes(h), h);
  t.true(html.includes('open loop, uniform arrivals, latency from intended send time'));
  t.true(html.includes('fixed rate with catch-up (closed loop per connection), latency from actual send'));
  // The open-loop row: response max 201,000.0, then service p50/p99/max 140.0, 1,200.0, 200,500.0.
  const row = html.split('<tr>').find((r) => r.includes('openloop-100qps') && r.includes('open loop'));
  t.truthy(row, 'the open-loop row is in the latency table');
  t.regex(row!, /201,000\.0<\/td><td class="num">140\.0<\/td><td class="num">1,200\.0<\/td><td class="num">200,500\.0<\/td>/);
  t.regex(
    html.split('<tr>').find((r) => r.includes('http1-200qps') && r.includes('fixed rate with catch-up'))!,
    /<td class="num">—<\/td><td class="num">—<\/td><td class="num">—<\/td>/,
  );
});
