// Case validity (harness/run/validity.ts): a case is a result (ok) only when errors, achieved
// rate and the lab's processes are within bounds. The figures below are the reproductions of
// issue 12: a killed client sidecar (1564 of 2000 requests failed) and a killed server sidecar
// (88 qps of 200, 4 errors) were both recorded as ok.
import test from 'ava';
import { cpuCount, DEFAULT_VALIDITY, fortioGeneratorCpu, judgeCase, notOkSummary, processesDown, validityLimits } from '../../harness/run/validity.js';
import type { CaseResult, ProcessDown } from '../../harness/results/types.js';
import type { LabProcess } from '../../harness/util/procs.js';

const proxyDown: ProcessDown = { name: 'proxy-client', role: 'proxy', pid: 4242, exitCode: 128, signal: 'SIGKILL', when: 'during-window' };

test('client sidecar killed mid-run: failed, with the process and the error rate as reasons', (t) => {
  const r = judgeCase({ requestedQps: 200, actual: { qps: 199.9, requests: 2000, errors: 1564 }, latencyCount: 436, processesDown: [proxyDown] });
  t.is(r.status, 'failed');
  t.false(r.validity.ok);
  t.is(r.validity.errorRate, 0.782);
  t.deepEqual(r.validity.processesDown, [proxyDown]);
  t.regex(r.validity.reasons.join('\n'), /process proxy-client \(role proxy, pid 4242\) killed by SIGKILL during the measured window/);
  t.regex(r.validity.reasons.join('\n'), /1564 of 2000 requests failed \(78\.2 %, more than the 0\.1 % allowed\)/);
});

test('server sidecar: 88 qps of 200 and 4 errors is degraded even with every process up', (t) => {
  const r = judgeCase({ requestedQps: 200, actual: { qps: 88, requests: 352, errors: 4 }, latencyCount: 348, processesDown: [] });
  t.is(r.status, 'degraded');
  t.is(r.validity.rateRatio, 0.44);
  t.regex(r.validity.reasons.join('\n'), /achieved 88 qps of 200 requested \(44 %, less than the 95 % required\)/);
  t.regex(r.validity.reasons.join('\n'), /4 of 352 requests failed/);
  // with its sidecar down it is failed
  t.is(
    judgeCase({ requestedQps: 200, actual: { qps: 88, requests: 352, errors: 4 }, latencyCount: 348, processesDown: [{ ...proxyDown, name: 'proxy-echo-0' }] })
      .status,
    'failed',
  );
});

test('within bounds is ok; the bounds are inclusive; closed loop has no rate to reach', (t) => {
  const ok = judgeCase({ requestedQps: 200, actual: { qps: 190, requests: 2000, errors: 2 }, latencyCount: 1998, processesDown: [] });
  t.is(ok.status, 'ok', ok.validity.reasons.join('; '));
  t.deepEqual(ok.validity.reasons, []);
  t.is(ok.validity.errorRate, 0.001);
  t.is(ok.validity.rateRatio, 0.95);
  t.is(judgeCase({ requestedQps: 200, actual: { qps: 189.9, requests: 2000, errors: 0 }, latencyCount: 2000, processesDown: [] }).status, 'degraded');
  t.is(judgeCase({ requestedQps: 200, actual: { qps: 200, requests: 2000, errors: 3 }, latencyCount: 1997, processesDown: [] }).status, 'degraded');
  const closed = judgeCase({ requestedQps: 'max', actual: { qps: 5, requests: 50, errors: 0 }, latencyCount: 50, processesDown: [] });
  t.is(closed.status, 'ok');
  t.is(closed.validity.rateRatio, undefined);
});

test('no measurement, no successful request, or an error: failed', (t) => {
  t.is(judgeCase({ requestedQps: 200, processesDown: [] }).status, 'failed');
  t.deepEqual(judgeCase({ requestedQps: 200, processesDown: [] }).validity.reasons, ['no request was measured']);
  const none = judgeCase({ requestedQps: 'max', actual: { qps: 100, requests: 100, errors: 100 }, latencyCount: 0, processesDown: [] });
  t.is(none.status, 'failed');
  t.regex(none.validity.reasons.join('\n'), /no request succeeded/);
  const err = judgeCase({ requestedQps: 200, error: 'fortio load exited with code 1', processesDown: [proxyDown] });
  t.is(err.status, 'failed');
  t.deepEqual(err.validity.reasons.slice(0, 1), ['error: fortio load exited with code 1']);
  t.is(err.validity.reasons.length, 2, 'the error and the process down, nothing about a measurement that never was');
});

test("the scenario's validity bounds, each falling back to the default", (t) => {
  t.deepEqual(validityLimits(undefined), DEFAULT_VALIDITY);
  t.deepEqual(validityLimits({}), { maxErrorRate: 0.001, minRateRatio: 0.95, maxGeneratorCpu: 0.9 });
  t.deepEqual(validityLimits({ validity: { maxErrorRate: 0.05 } }), { maxErrorRate: 0.05, minRateRatio: 0.95, maxGeneratorCpu: 0.9 });
  const lenient = validityLimits({ validity: { maxErrorRate: 0.01, minRateRatio: 0.4 } });
  const r = judgeCase({ requestedQps: 200, actual: { qps: 88, requests: 1000, errors: 4 }, latencyCount: 996, processesDown: [] }, lenient);
  t.is(r.status, 'ok', r.validity.reasons.join('; '));
  // The record's limits are the two they always were: a case the generator rule passes reads as before it.
  t.deepEqual(r.validity.limits, { maxErrorRate: 0.01, minRateRatio: 0.4 });
  t.false('generatorCpu' in r.validity);
});

// Load generator saturation (issue 16): a generator that is itself out of CPU queues requests on
// its side, and that queueing is measured as the dataplane's latency. Before the rule, a case whose
// generator was busy 100 % of its one CPU was ok.
const busy = { cpuSeconds: 1.9, windowS: 2, cpus: 1, source: 'mb-load: its own CPU time' };

test('load generator saturated: CPU at or above maxGeneratorCpu of the CPUs it may use degrades the case', (t) => {
  const measured = { requestedQps: 2000, actual: { qps: 2000, requests: 4000, errors: 0 }, latencyCount: 4000, processesDown: [] };
  const r = judgeCase({ ...measured, generator: busy });
  t.is(r.status, 'degraded');
  t.false(r.validity.ok);
  t.deepEqual(r.validity.reasons, ['load generator saturated: 1.9 CPU-seconds in 2 s on 1 CPU (95 %, at or above the 90 % allowed)']);
  t.deepEqual(r.validity.generatorCpu, { ...busy, utilisation: 0.95, maxGeneratorCpu: 0.9 });
  // Judged against the CPUs it may use: the same seconds on 4 CPUs are 24 %.
  t.is(judgeCase({ ...measured, generator: { ...busy, cpus: 4 } }).status, 'ok');
  // The bound is inclusive, and the scenario's own bound counts.
  t.is(judgeCase({ ...measured, generator: { ...busy, cpuSeconds: 1.8 } }).status, 'degraded', '90 % exactly');
  t.is(judgeCase({ ...measured, generator: { ...busy, cpuSeconds: 1.79 } }).status, 'ok');
  t.is(judgeCase({ ...measured, generator: busy }, validityLimits({ validity: { maxGeneratorCpu: 1 } })).status, 'ok');
  t.is(judgeCase({ ...measured, generator: { ...busy, cpuSeconds: 0.5 } }, validityLimits({ validity: { maxGeneratorCpu: 0.25 } })).status, 'degraded');
  // A saturated generator does not hide worse: with a process down the case is failed, with both reasons.
  const down = judgeCase({ ...measured, generator: busy, processesDown: [proxyDown] });
  t.is(down.status, 'failed');
  t.is(down.validity.reasons.length, 2);
  // A closed loop runs its generator flat out by design: not judged.
  t.is(judgeCase({ ...measured, requestedQps: 'max', generator: busy }).status, 'ok');
  // No figure, no judgement (a host without the load role's cgroup).
  t.is(judgeCase(measured).status, 'ok');
});

test('open-loop Poisson arrivals: the rate bound allows 3 standard deviations of the random request count', (t) => {
  // 100 qps for 2 s: 200 requests expected, sd ≈ 14; 180 (90 %) is well within chance.
  const m = { requestedQps: 100, actual: { qps: 90, requests: 180, errors: 0 }, latencyCount: 180, processesDown: [] };
  t.is(judgeCase(m).status, 'degraded', 'a uniform schedule has no such excuse');
  t.is(judgeCase({ ...m, poissonWindowS: 2 }).status, 'ok');
  const low = judgeCase({ ...m, actual: { qps: 70, requests: 140, errors: 0 }, poissonWindowS: 2 });
  t.is(low.status, 'degraded');
  t.regex(low.validity.reasons[0], /less than the 95 % required less 3 standard deviations of a Poisson count, 73\.79 %/);
});

test("fortio's generator CPU comes from the load role's cgroup, on its pinned CPUs or else every core", (t) => {
  const resources = {
    windowS: 10,
    byRole: { load: { processes: 1, rssBytes: 1, pssBytes: 1, rssPeakBytes: 1, cpuSeconds: 9.5 } },
    processes: [],
    kernel: { bpfMapBytes: 0, bpfRunTimeNs: 0, softirqSeconds: 0 },
    method: 'cgroup',
  };
  const pinned = fortioGeneratorCpu(resources, '0', 8)!;
  t.like(pinned, { cpuSeconds: 9.5, windowS: 10, cpus: 1 });
  t.regex(pinned.source, /pinned CPUs \(0\)/);
  t.is(
    judgeCase({ requestedQps: 1000, actual: { qps: 1000, requests: 10000, errors: 0 }, latencyCount: 10000, processesDown: [], generator: pinned }).status,
    'degraded',
  );
  const unpinned = fortioGeneratorCpu(resources, undefined, 8)!;
  t.is(unpinned.cpus, 8);
  t.is(
    judgeCase({ requestedQps: 1000, actual: { qps: 1000, requests: 10000, errors: 0 }, latencyCount: 10000, processesDown: [], generator: unpinned }).status,
    'ok',
  );
  t.is(fortioGeneratorCpu({ ...resources, byRole: {} }, '0', 8), undefined, 'no load role recorded: no figure');
  t.is(fortioGeneratorCpu(undefined, '0', 8), undefined);
  t.deepEqual(['0', '1-3', '0,2-3', '0-1,1-2', 'x', undefined].map(cpuCount), [1, 3, 3, 3, undefined, undefined]);
});

test('processes down: any role but the load generator, before or during the window', (t) => {
  const p = (name: string, role: string, extra: Partial<LabProcess>) =>
    ({ name, role, pid: 1, child: undefined as never, exited: Promise.resolve(0), ...extra }) as LabProcess;
  const procs = [
    p('load-warmup', 'load', { exitCode: 0, exitedAt: 5 }),
    p('load', 'load', { exitCode: 0, exitedAt: 20 }),
    p('app-echo-0', 'app', {}),
    p('proxy-client', 'proxy', { exitCode: 128, exitSignal: 'SIGKILL', exitedAt: 15 }),
    p('node-proxy-node1', 'node-proxy', { exitCode: 1, exitedAt: 2 }),
  ];
  t.deepEqual(processesDown(procs, 10), [
    { name: 'proxy-client', role: 'proxy', pid: 1, exitCode: 128, signal: 'SIGKILL', when: 'during-window' },
    { name: 'node-proxy-node1', role: 'node-proxy', pid: 1, exitCode: 1, when: 'before-window' },
  ]);
  t.deepEqual(processesDown(procs.slice(0, 3), 10), [], 'the load generator ending is normal');
});

test('notOkSummary names each case that is not a result with its reasons', (t) => {
  const c = (status: CaseResult['status'], reasons: string[], error?: string) =>
    ({
      index: 1,
      dataplane: 'istio-sidecar',
      workload: 'w',
      repeat: 0,
      status,
      error,
      validity: { ok: status === 'ok', reasons, processesDown: [], limits: DEFAULT_VALIDITY },
    }) as unknown as CaseResult;
  t.deepEqual(notOkSummary([c('ok', []), c('degraded', ['a', 'b']), c('failed', [], 'boom')]), [
    'case 1 (istio-sidecar w r0) degraded: a; b',
    'case 1 (istio-sidecar w r0) failed: boom',
  ]);
});
