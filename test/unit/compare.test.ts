import test from 'ava';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cli } from '../helpers.js';
import { MeshbenchError } from '../../harness/errors.js';
import { median } from '../../harness/analysis/stats.js';
import { metricInfo, metricNames, metricOf, metricsPresent } from '../../harness/analysis/metrics.js';
import { compareRuns, loadRunForCompare, parseThreshold, type CompareOptions } from '../../harness/analysis/compare.js';
import { fortioFileName, fortioResult } from '../../harness/analysis/fortio-export.js';
import { parseFortioJson } from '../../harness/load/fortio.js';
import type { CaseResult, RunRecord } from '../../harness/results/types.js';

// compare-a/b.json: baseline and istio-sidecar, workload http1-100qps, 5 interleaved repeats each
// (test/fixtures/runs/make-compare.ts). In B istio-sidecar is slower (p99 ≈ +50 %) and its proxy
// CPU ≈ +27 %; baseline is drawn again from the same distribution.
const A = 'test/fixtures/runs/compare-a.json';
const B = 'test/fixtures/runs/compare-b.json';
const ra = loadRunForCompare(A);
const rb = loadRunForCompare(B);
const row = (c: ReturnType<typeof compareRuns>, dp: string, metric: string) => c.rows.find((r) => r.dataplane === dp && r.metric === metric)!;
const cmp = (o: CompareOptions = {}) => compareRuns(ra, rb, o);

/** A temporary copy of a run record, changed by `edit`. */
function tmpRun(t: { teardown: (f: () => void) => void }, from: RunRecord, edit: (r: RunRecord) => void): string {
  const dir = mkdtempSync(join(tmpdir(), 'mb-compare-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const r = structuredClone(from);
  edit(r);
  const f = join(dir, 'run.json');
  writeFileSync(f, JSON.stringify(r));
  return f;
}

test('metrics: names, units, directions, per-role and normalized figures, unknown names', (t) => {
  const sidecar = ra.record.cases.find((c) => c.dataplane === 'istio-sidecar')!;
  const base = ra.record.cases.find((c) => c.dataplane === 'baseline')!;
  t.is(metricOf(sidecar, 'p99'), sidecar.latencyUs!.p99);
  t.is(metricOf(sidecar, 'qps'), sidecar.load.actual.qps);
  t.is(metricOf(sidecar, 'cpu:proxy'), sidecar.resources!.byRole.proxy!.cpuSeconds);
  t.is(metricOf(sidecar, 'cpuPerPod:proxy'), sidecar.resources!.normalized!.perPod.proxy!.cpuSeconds);
  t.is(metricOf(sidecar, 'pssPerNode:app'), sidecar.resources!.normalized!.perNode.app!.pssBytes);
  t.is(metricOf(sidecar, 'startup:podReadyMs'), 584.5);
  t.is(metricOf(base, 'cpu:proxy'), undefined, 'baseline has no proxy role');
  t.is(metricOf({ ...base, latencyUs: undefined } as CaseResult, 'p50'), undefined);
  t.deepEqual(
    [metricInfo('p99').better, metricInfo('qps').better, metricInfo('rss:proxy').unit, metricInfo('cpu:proxy').unit, metricInfo('p50').unit],
    ['lower', 'higher', 'bytes', 's', 'us'],
  );
  t.true(metricNames().includes('cpuPerNode:<role>'));
  const err = t.throws(() => metricOf(base, 'p42'), { instanceOf: MeshbenchError });
  t.is(err!.code, 'E_INPUT');
  t.regex(err!.message, /unknown metric "p42" \(valid: p50, p90, p95, p99, p999, .*cpu:<role>/);
  t.throws(() => metricInfo('cpu:'), { message: /unknown metric/ });
  t.throws(() => metricInfo('bogus:proxy'), { message: /unknown metric/ });
  t.true(metricsPresent(ra.record.cases).includes('rssPerPod:proxy'));
});

test('compare: medians, change, interval and verdicts per case and metric', (t) => {
  const c = cmp();
  t.deepEqual(c.options.metrics, ['p50', 'p90', 'p99', 'qps', 'errors']);
  t.is(c.rows.length, 2 * 5);
  const p99 = row(c, 'istio-sidecar', 'p99');
  const valsA = ra.record.cases.filter((x) => x.dataplane === 'istio-sidecar').map((x) => x.latencyUs!.p99);
  const valsB = rb.record.cases.filter((x) => x.dataplane === 'istio-sidecar').map((x) => x.latencyUs!.p99);
  t.is(p99.a.n, 5);
  t.is(p99.a.median, median(valsA));
  t.is(p99.b.median, median(valsB));
  t.is(p99.change, median(valsB) - median(valsA));
  t.is(p99.changePct, (100 * p99.change) / median(valsA));
  t.true(p99.ci.low <= p99.change && p99.change <= p99.ci.high);
  t.true(p99.ci.low > 0, 'the interval excludes no change');
  t.is(p99.p, 12 / 252, 'exact permutation test, every B above every A');
  t.is(p99.verdict, 'worse');
  t.is(row(c, 'istio-sidecar', 'p50').verdict, 'worse');
  for (const m of ['p50', 'p90', 'p99']) t.is(row(c, 'baseline', m).verdict, 'no significant change', m);
  t.is(row(c, 'baseline', 'errors').p, 1);
  t.is(c.exitCode, 0, 'nothing fails without --fail-on');
  t.deepEqual(cmp(), c, 'deterministic');
  // qps: higher is better, so a drop is "worse". (A's qps are all equal: the coarse median test
  // cannot separate 5 ties from 5 lower values, the rank test can.)
  const slower = compareRuns(
    ra,
    {
      file: 'b',
      record: {
        ...rb.record,
        cases: rb.record.cases.map((x) => ({ ...x, load: { ...x.load, actual: { ...x.load.actual, qps: x.load.actual.qps - 10 - x.repeat } } })),
      },
    },
    { test: 'rank' },
  );
  t.is(row(slower, 'baseline', 'qps').verdict, 'worse');
  t.true(row(slower, 'baseline', 'qps').change < 0);
});

test('compare --fail-on: exit 1 only when worse, significant and beyond the threshold', (t) => {
  const fail = cmp({ failOn: ['p99'], threshold: '10%' });
  t.is(fail.exitCode, 1);
  t.deepEqual(
    fail.regressions.map((r) => `${r.dataplane} ${r.metric}`),
    ['istio-sidecar p99'],
  );
  t.is(cmp({ failOn: ['p99'], threshold: '80%' }).exitCode, 0, 'below the threshold');
  t.is(cmp({ failOn: ['p99'], threshold: '200us' }).exitCode, 1);
  t.is(cmp({ failOn: ['p99'], threshold: 'p99=2ms' }).exitCode, 0, 'p99 rose by about 1.3 ms');
  t.is(cmp({ failOn: ['p99'], threshold: '10%', alpha: 0.01 }).exitCode, 0, 'not significant at 0.01 with 5 vs 5 (median test)');
  t.is(cmp({ failOn: ['p99'], threshold: '10%', alpha: 0.01, test: 'rank' }).exitCode, 1, 'the rank test reaches p = 2/252');
  t.is(row(cmp({ test: 'rank' }), 'istio-sidecar', 'p99').p, 2 / 252);
  t.is(cmp({ failOn: ['qps', 'errors'], threshold: '0%' }).exitCode, 0, 'unchanged metrics never fail');
  t.is(cmp({ failOn: ['cpu:proxy'], threshold: '20%' }).exitCode, 1, 'fail-on metrics are compared even when not listed');
  // Swapped: B faster than A is "better" and never a regression.
  const swapped = compareRuns(rb, ra, { failOn: ['p99'], threshold: '0%' });
  t.is(row(swapped, 'istio-sidecar', 'p99').verdict, 'better');
  t.is(swapped.exitCode, 0);
});

test('compare: too few repeats to reach significance are marked and warned about', (t) => {
  const three = { file: 'three', record: { ...ra.record, cases: ra.record.cases.filter((c) => c.repeat < 3) } };
  const c = compareRuns(three, rb, { failOn: ['p99'], threshold: '10%' });
  const r = row(c, 'istio-sidecar', 'p99');
  t.is(r.a.n, 3);
  t.true(r.test.minP >= 0.05);
  t.regex(r.note!, /smallest attainable p/);
  t.is(r.verdict, 'no significant change');
  t.is(c.exitCode, 0);
  t.true(c.warnings.some((w) => /--fail-on cannot trigger/.test(w)));
});

test('thresholds: forms, units and bad input', (t) => {
  t.is(parseThreshold('10%').default.kind, 'relative');
  const us200 = parseThreshold('200us').default;
  t.like(us200, { text: '200us', kind: 'absolute', dim: 'time' });
  t.true(Math.abs(us200.value - 200e-6) < 1e-15);
  const per = parseThreshold('p99=0.5ms,qps=5%,2%');
  t.is(per.default.value, 2);
  t.is(per.perMetric.get('p99')!.value, 0.5e-3);
  t.is(parseThreshold('2MiB').default.value, 2 * 1024 * 1024);
  t.throws(() => parseThreshold('ten'), { message: /cannot read "ten"/ });
  t.throws(() => parseThreshold('5furlongs'), { message: /unknown unit "furlongs"/ });
  t.throws(() => parseThreshold('5%,6%'), { message: /more than one default/ });
  t.throws(() => parseThreshold('p42=5%'), { message: /unknown metric "p42"/ });
  t.throws(() => cmp({ failOn: ['qps'], threshold: '200us' }), { message: /does not fit --fail-on metric qps/ });
  t.throws(() => cmp({ metrics: ['cpu:proxx'] }), { message: /role "proxx" is in neither run \(roles: app, load, proxy\)/ });
});

test('CLI: aligned table, exit 1 on a regression, JSON for machines', async (t) => {
  const r = await cli(['compare', A, B, '--fail-on', 'p99', '--threshold', '10%']);
  t.is(r.code, 1, r.stderr);
  const lines = r.stdout.split('\n');
  const head = lines.find((l) => l.startsWith('dataplane'))!;
  t.truthy(head);
  const col = head.indexOf('verdict');
  for (const l of lines.filter((x) => /^(baseline|istio-sidecar) /.test(x))) t.regex(l.slice(col), /^(better|worse|no significant change)/, l);
  t.regex(r.stdout, /istio-sidecar\s+http1-100qps\s+p99 .*worse\s+REGRESSION \(beyond 10%\)/);
  t.regex(r.stdout, /1 regression\(s\) in --fail-on metrics \(exit 1\)/);

  const ok = await cli(['compare', A, B, '--fail-on', 'p99', '--threshold', '80%']);
  t.is(ok.code, 0, ok.stderr);
  t.regex(ok.stdout, /No regression/);

  const j = await cli(['compare', A, B, '--json', '--metric', 'p50,cpuPerPod:proxy']);
  t.is(j.code, 0, j.stderr);
  const parsed = JSON.parse(j.stdout);
  t.is(parsed.schema, 'meshbench/compare/v1');
  t.deepEqual(
    parsed.rows.map((x: { dataplane: string; metric: string }) => `${x.dataplane} ${x.metric}`),
    ['baseline p50', 'istio-sidecar p50', 'istio-sidecar cpuPerPod:proxy'],
  );
  const again = await cli(['compare', A, B, '--json', '--metric', 'p50,cpuPerPod:proxy']);
  t.is(again.stdout, j.stdout, 'same output for the same input');

  const help = await cli(['compare', '--help']);
  t.is(help.code, 0);
  t.regex(help.stdout, /Usage: meshbench compare \[options\] <a\/run.json> <b\/run.json>/);
  t.regex(help.stdout, /--fail-on/);
  t.regex(help.stdout, /Exit status: 0 no regression/);
});

test('CLI: bad input exits 2 with a message naming the file or the metric', async (t) => {
  const missing = await cli(['compare', A, 'test/fixtures/runs/nope.json']);
  t.is(missing.code, 2);
  t.regex(missing.stderr, /test\/fixtures\/runs\/nope\.json:1: file not found/);

  const notRun = await cli(['compare', A, 'test/fixtures/fortio-http1.json']);
  t.is(notRun.code, 2);
  t.regex(notRun.stderr, /fortio-http1\.json:1: not a meshbench run record/);

  const unknown = await cli(['compare', A, B, '--metric', 'p50,p42']);
  t.is(unknown.code, 2);
  t.regex(unknown.stderr, /unknown metric "p42" \(valid: p50, p90/);

  const other = tmpRun(t, rb.record, (r) => {
    for (const c of r.cases) c.workload = 'grpc-500qps';
  });
  const none = await cli(['compare', A, other]);
  t.is(none.code, 2);
  t.regex(none.stderr, /no common cases between test\/fixtures\/runs\/compare-a\.json and .*run\.json/);
  t.regex(none.stderr, /compare-a\.json: baseline\/http1-100qps, istio-sidecar\/http1-100qps/);
  t.regex(none.stderr, /run\.json: baseline\/grpc-500qps/);

  t.is((await cli(['compare', A, B, '--threshold', 'lots'])).code, 2);
  t.is((await cli(['compare', A, B, '--alpha', '2'])).code, 2);
  t.is((await cli(['compare', A])).code, 2);
});

test('fortio export: one fortio JSON per case of each run; Count and percentiles round-trip', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'mb-fortio-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const r = await cli(['compare', A, B, '--export-fortio', dir]);
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, /fortio JSON: 20 file\(s\)/);
  const files = readdirSync(dir).sort();
  t.is(files.length, 20);
  t.true(files.includes('20261201T100000Z-aaaa-000-baseline-http1-100qps-r0.json'));
  t.true(files.includes('20261202T100000Z-bbbb-009-istio-sidecar-http1-100qps-r4.json'));

  const fortioFixture = JSON.parse(readFileSync('test/fixtures/fortio-http1.json', 'utf8'));
  for (const run of [ra.record, rb.record]) {
    for (const c of run.cases) {
      const text = readFileSync(join(dir, fortioFileName(run, c)), 'utf8');
      const j = JSON.parse(text);
      // The same keys fortio writes, and the same shapes.
      for (const k of [
        'RunType',
        'Labels',
        'StartTime',
        'RequestedQPS',
        'RequestedDuration',
        'ActualQPS',
        'ActualDuration',
        'NumThreads',
        'Version',
        'DurationHistogram',
        'RetCodes',
        'URL',
      ]) {
        t.is(typeof j[k], typeof fortioFixture[k], k);
      }
      const h = j.DurationHistogram;
      t.deepEqual(Object.keys(h).sort(), Object.keys(fortioFixture.DurationHistogram).sort());
      t.deepEqual(Object.keys(h.Data[0]).sort(), ['Count', 'End', 'Percent', 'Start']);
      t.is(h.Count, c.latencyUs!.count);
      t.is(
        h.Data.reduce((s: number, d: { Count: number }) => s + d.Count, 0),
        h.Count,
      );
      t.is(h.Data.at(-1).Percent, 100);
      t.is(h.Data[0].Start, h.Min);
      t.is(h.Data.at(-1).End, h.Max);
      t.true(h.Data.every((d: { Start: number; End: number }) => d.Start <= d.End));
      t.is(j.ActualDuration, Math.round(c.load.actual.durationS * 1e9));
      // Read back with the parser the lab uses for fortio's own output.
      const back = parseFortioJson(text);
      t.is(back.count, c.latencyUs!.count);
      for (const k of ['p50', 'p90', 'p99', 'p999', 'max'] as const)
        t.true(Math.abs(back.percentilesUs[k] - c.latencyUs![k]) < 1e-6, `${k}: ${back.percentilesUs[k]} vs ${c.latencyUs![k]}`);
      t.is(back.errors, 0);
      t.is(back.actualQps, c.load.actual.qps);
      t.is(j.Meshbench.runId, run.runId);
    }
  }
  t.is(fortioResult(ra.record, { ...ra.record.cases[0]!, latencyUs: undefined }), undefined, 'no latency, no file');
});
