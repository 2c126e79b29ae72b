// Case validity (harness/run/validity.ts): a case is a result (ok) only when errors, achieved
// rate and the lab's processes are within bounds. The figures below are the reproductions of
// issue 12: a killed client sidecar (1564 of 2000 requests failed) and a killed server sidecar
// (88 qps of 200, 4 errors) were both recorded as ok.
import test from 'ava';
import { DEFAULT_VALIDITY, judgeCase, notOkSummary, processesDown, validityLimits } from '../../harness/run/validity.js';
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
  t.deepEqual(validityLimits({}), { maxErrorRate: 0.001, minRateRatio: 0.95 });
  t.deepEqual(validityLimits({ validity: { maxErrorRate: 0.05 } }), { maxErrorRate: 0.05, minRateRatio: 0.95 });
  const lenient = validityLimits({ validity: { maxErrorRate: 0.01, minRateRatio: 0.4 } });
  const r = judgeCase({ requestedQps: 200, actual: { qps: 88, requests: 1000, errors: 4 }, latencyCount: 996, processesDown: [] }, lenient);
  t.is(r.status, 'ok', r.validity.reasons.join('; '));
  t.deepEqual(r.validity.limits, lenient);
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
