// `meshbench run` with the open-loop engine (mb-load): the quick scenario's shape, baseline only,
// one workload at 100 qps for 2 s with engine openloop. The record's case states the open-loop
// model and carries response and service time; the report names the model. Skipped (with the
// reason) until .tools/bin/mb-load is built (rootTestWhenBuilt), so it never fails for that.
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cleanAround, cli, quickScenarioCopy, rootTestWhenBuilt } from '../helpers.js';
import type { RunRecord } from '../../harness/results/types.js';

const run = rootTestWhenBuilt(['mb-load']);

cleanAround();

run('meshbench run with engine openloop: open-loop model, response and service time, ok, and the report names the model', async (t: any) => {
  const dir = mkdtempSync(join(tmpdir(), 'mb-openloop-'));
  const file = quickScenarioCopy(dir, 100, (s) =>
    s
      .replace('name: quick', 'name: quick-openloop')
      .replace('name: http1-200qps', 'name: http1-100qps-openloop')
      .replace('    qps: 100', '    qps: 100\n    engine: openloop'),
  );
  const r = await cli([
    'run',
    file,
    '--dataplanes',
    'baseline',
    '--duration',
    '2',
    '--warmup',
    '1',
    '--results',
    join(dir, 'results'),
    '--reports',
    join(dir, 'reports'),
    '--json',
  ]);
  t.is(r.code, 0, r.stderr);
  const summary = JSON.parse(r.stdout);
  const rec: RunRecord = JSON.parse(readFileSync(summary.runJson, 'utf8'));
  t.is(rec.status, 'complete', rec.error);
  t.is(rec.cases.length, 1);
  const c = rec.cases[0];
  t.is(c.status, 'ok', JSON.stringify(c.validity?.reasons));
  t.regex(c.load.model, /^open-loop: 100 qps, uniform arrivals/);
  t.is(c.load.requested.engine, 'openloop');
  t.is(c.load.requested.arrival, 'uniform');
  t.is(c.provenance.load?.engine, 'mb-load');
  t.regex(String(c.provenance.load?.version), /^\d+\.\d+\.\d+/);
  t.truthy(rec.environment.tools['mb-load']);
  // Every request intended in the 2 s window is sent and counted.
  t.is(c.load.actual.requests, 200);
  t.is(c.load.actual.errors, 0);
  const L = c.latencyUs!;
  const S = c.serviceTimeUs!;
  t.truthy(L && S, 'latencyUs (response time) and serviceTimeUs');
  t.regex(L.source, /intended send time/);
  t.true(L.count > 0 && L.count === S.count && L.count === L.histogram.count);
  t.true(L.p50 > 0 && L.p50 <= L.p99 && L.p99 <= L.max);
  t.true(S.p50 > 0 && S.p50 <= S.p99);
  t.true(L.max >= S.max - 1, 'a response time is never below its service time (1 µs bucket slack)');
  t.true(c.load.generator!.cpuSeconds > 0);
  // The load role's cgroup saw mb-load, as it sees fortio.
  t.true(c.resources!.byRole.load.cpuSeconds > 0);
  const html = readFileSync(summary.report, 'utf8');
  t.true(html.includes('open loop, uniform arrivals, latency from intended send time'));
  t.true(html.includes('service p99 µs'));
});
