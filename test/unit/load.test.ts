import test from 'ava';
import { readFileSync } from 'node:fs';
import { loadArgs, parseFortioJson, parseAccessLog, latencySummary, percentile, targetUrl, loadModel } from '../../harness/load/fortio.js';
import type { ResolvedWorkload } from '../../harness/scenario/expand.js';
import { WorkloadSchema } from '../../harness/scenario/schema.js';

const w = (o: Partial<ResolvedWorkload> = {}): ResolvedWorkload => ({
  name: 'w',
  protocol: 'http1',
  qps: 200,
  connections: 4,
  duration: '10s',
  warmup: '2s',
  payloadBytes: 0,
  responseBytes: 0,
  chain: ['echo'],
  durationS: 10,
  warmupS: 2,
  ...o,
});
const target = { host: '198.18.64.1', port: 80 };

test('load arguments: 10 µs resolution, the percentiles of the record, per-request access log', (t) => {
  const a = loadArgs(w({ responseBytes: 128 }), target, 10, { json: 'x.json', accessLog: 'x.jsonl' });
  t.deepEqual(a.slice(0, 7), ['load', '-qps', '200', '-c', '4', '-t', '10s']);
  t.is(a[a.indexOf('-r') + 1], '0.00001');
  t.is(a[a.indexOf('-p') + 1], '50,90,99,99.9');
  t.is(a[a.indexOf('-access-log-file') + 1], 'x.jsonl');
  t.is(a[a.length - 1], 'http://198.18.64.1:80/echo?size=128');
  t.false(a.includes('-h2'));
});

test('protocols and max qps map to fortio flags', (t) => {
  const g = loadArgs(w({ protocol: 'grpc', qps: 'max', payloadBytes: 1024 }), target, 5);
  t.is(g[g.indexOf('-qps') + 1], '0');
  t.true(g.includes('-grpc') && g.includes('-ping'));
  t.is(g[g.indexOf('-payload-size') + 1], '1024');
  t.is(g[g.length - 1], '198.18.64.1:80');
  t.true(loadArgs(w({ protocol: 'http2' }), target, 5).includes('-h2'));
  t.is(targetUrl(w(), target), 'http://198.18.64.1:80/echo');
  t.is(
    targetUrl(w({ responseBytes: 128, serverDelay: '2ms' }), target),
    'http://198.18.64.1:80/echo?size=128&delay=2000us',
    'serverDelay: the echo server waits',
  );
  t.regex(loadModel(w({ qps: 'max' })), /closed loop/);
  t.regex(loadModel(w()), /constant rate: 200 qps/);
});

test('fortio JSON (HTTP, recorded on this lab) parses into counts, codes and µs percentiles', (t) => {
  const s = parseFortioJson(readFileSync('test/fixtures/fortio-http1.json', 'utf8'));
  t.is(s.version, '1.68.2');
  t.is(s.count, 2000);
  t.is(s.errors, 0);
  t.deepEqual(s.retCodes, { '200': 2000 });
  t.true(s.percentilesUs.p50 > 50 && s.percentilesUs.p50 < 5000, String(s.percentilesUs.p50));
  t.true(s.percentilesUs.p99 >= s.percentilesUs.p50);
});

test('fortio JSON (gRPC) counts SERVING as success', (t) => {
  const s = parseFortioJson(readFileSync('test/fixtures/fortio-grpc.json', 'utf8'));
  t.is(s.count, 100);
  t.is(s.errors, 0);
  t.deepEqual(s.retCodes, { SERVING: 100 });
});

test('non-success codes count as errors', (t) => {
  const j = JSON.parse(readFileSync('test/fixtures/fortio-http1.json', 'utf8'));
  j.RetCodes = { '200': 1990, '503': 10 };
  t.is(parseFortioJson(JSON.stringify(j)).errors, 10);
});

test('nearest-rank percentiles', (t) => {
  const a = Float64Array.from({ length: 100 }, (_, i) => i + 1);
  t.is(percentile(a, 50), 50);
  t.is(percentile(a, 99), 99);
  t.is(percentile(a, 99.9), 100);
  t.is(percentile(a, 100), 100);
  t.is(percentile(Float64Array.of(7), 50), 7);
  t.true(Number.isNaN(percentile(new Float64Array(0), 50)));
});

test('access log: latencies in µs, failures counted apart, histogram buckets add up', (t) => {
  const text = [
    '{"latency":0.000174,"timestamp":1,"thread":3,"iter":0,"ok":true,"details":"200"}',
    '{"latency":0.000116,"timestamp":2,"thread":1,"iter":0,"ok":true,"details":"200"}',
    '{"latency":0.003,"timestamp":3,"thread":1,"iter":1,"ok":false,"details":"503"}',
    '{"latency":0.000119,"timestamp":4,"thread":1,"iter":2,"ok":true,"details":"200"}',
    '',
  ].join('\n');
  const { latenciesUs, errors } = parseAccessLog(text);
  t.is(errors, 1);
  t.deepEqual([...latenciesUs], [116, 119, 174]);
  const l = latencySummary(latenciesUs);
  t.is(l.p50, 119);
  t.is(l.max, 174);
  t.is(l.min, 116);
  t.deepEqual(l.histogram.buckets, [
    [110, 2],
    [170, 1],
  ]);
  t.is(l.histogram.resolutionUs, 10);
});

test('recorded access log agrees with fortio on the count and roughly on the median', (t) => {
  const { latenciesUs } = parseAccessLog(readFileSync('test/fixtures/fortio-http1.access.jsonl', 'utf8'));
  t.is(latenciesUs.length, 300);
  const l = latencySummary(latenciesUs);
  t.is(
    l.histogram.buckets.reduce((a, b) => a + b[1], 0),
    300,
  );
  t.true(l.p50 <= l.p90 && l.p90 <= l.p99 && l.p99 <= l.p999 && l.p999 <= l.max);
});

test('serverDelay: a duration up to 10s for HTTP workloads; refused for gRPC and beyond 10s', (t) => {
  const base = { protocol: 'http1', qps: 100, duration: '5s', chain: ['echo'] };
  t.true(WorkloadSchema.safeParse({ ...base, serverDelay: '2ms' }).success);
  const grpc = WorkloadSchema.safeParse({ ...base, protocol: 'grpc', serverDelay: '2ms' });
  t.false(grpc.success);
  t.regex(JSON.stringify(grpc.error?.issues), /serverDelay is for http1 and http2/);
  t.false(WorkloadSchema.safeParse({ ...base, serverDelay: '11s' }).success);
});
