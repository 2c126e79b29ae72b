// Latency and memory attribution from ablation variants (harness/analysis/attribution.ts) and the
// explanation beside claim verdicts. Invented cases with round figures (checkable by hand).
import test from 'ava';
import { readFileSync } from 'node:fs';
import { attribution, explainLine, largestStep } from '../../harness/analysis/attribution.js';
import { claimDataplane, judgeTable } from '../../harness/analysis/claims.js';
import { readClaimsTables } from '../../harness/scenario/load.js';
import type { CaseResult, ClaimsTable, RunRecord } from '../../harness/results/types.js';

const MiB = 2 ** 20;

/** An invented ok case: p50/p99 in ms, dataplane memory (role `proxy`) in MiB. */
function mk(dp: string, repeat: number, p50: number, memMiB = 0, provenance: CaseResult['provenance'] = {}): CaseResult {
  return {
    index: 0,
    dataplane: dp,
    workload: 'w',
    repeat,
    status: 'ok',
    load: {} as CaseResult['load'],
    latencyUs: { p50: p50 * 1000, p90: 0, p95: 0, p99: p50 * 2000, p999: 0, max: 0, min: 0, mean: 0, count: 1 } as CaseResult['latencyUs'],
    resources: {
      windowS: 10,
      normalized: { pods: 2, nodes: 2, perPod: {}, perNode: {} },
      byRole: memMiB ? { proxy: { processes: 2, rssBytes: memMiB * MiB, pssBytes: memMiB * MiB, rssPeakBytes: memMiB * MiB, cpuSeconds: 1 } } : {},
      processes: [],
      kernel: { bpfMapBytes: 0, bpfRunTimeNs: 0, softirqSeconds: 0 },
      method: 'invented',
    },
    provenance,
    topology: { nodes: 2, pods: 2, services: 1 },
    startedAt: '2026-01-01T00:00:00Z',
  } as CaseResult;
}

const proxy = { proxy: { engine: 'haproxy', version: '2.6', standInFor: 'Envoy (istio-proxy sidecar)' } };
const wgGo = { wireguard: { engine: 'wireguard-go', version: 'v0.0.2022' } };

/** Three repeats of: baseline 1.0 ms, capture-only 1.2, mTLS off 1.7, full sidecar 2.0 (± a little noise). */
function sidecarRun(noise = [0, 0.01, -0.01]): CaseResult[] {
  return noise.flatMap((e, r) => [
    mk('baseline', r, 1.0 + e),
    mk('istio-sidecar[mode=capture-only]', r, 1.2 + e, 10, proxy),
    mk('istio-sidecar[mtls=off]', r, 1.7 + e, 30, proxy),
    mk('istio-sidecar', r, 2.0 + e, 34, proxy),
  ]);
}

test('a full ladder splits the sidecar into capture, proxy and TLS that add up to the total', (t) => {
  const w = attribution(sidecarRun()).find((x) => x.dataplane === 'istio-sidecar')!;
  t.deepEqual(
    w.steps.map((s) => [s.components.join('+'), s.from, s.to, +s.added.estimate.toFixed(3)]),
    [
      ['capture', 'baseline', 'istio-sidecar[mode=capture-only]', 0.2],
      ['proxy', 'istio-sidecar[mode=capture-only]', 'istio-sidecar[mtls=off]', 0.5],
      ['tls', 'istio-sidecar[mtls=off]', 'istio-sidecar', 0.3],
    ],
  );
  t.is(+w.total.estimate.toFixed(3), 1.0);
  t.true(w.agrees);
  t.is(w.total.n, 3);
  t.is(largestStep(w)!.components[0], 'proxy');
  t.is(w.steps[1]!.caveat?.kind, 'stand-in');
  t.true(w.steps.every((s) => s.basis === 'inferred from paired ablation cases'));
});

test('memory is attributed by the same ladder (TLS state = mTLS on − off)', (t) => {
  const w = attribution(sidecarRun(), 'memory').find((x) => x.dataplane === 'istio-sidecar')!;
  t.deepEqual(
    w.steps.map((s) => +s.added.estimate.toFixed(1)),
    [10, 20, 4],
  );
  t.is(w.unit, 'MiB');
});

test('a missing rung merges its component into the next step', (t) => {
  const cases = sidecarRun().filter((c) => c.dataplane !== 'istio-sidecar[mode=capture-only]');
  const w = attribution(cases).find((x) => x.dataplane === 'istio-sidecar')!;
  t.deepEqual(
    w.steps.map((s) => s.components.join('+')),
    ['capture+proxy', 'tls'],
  );
});

test('components that do not add up to the total are reported as such', (t) => {
  // Per repeat the steps add up exactly; their medians need not: 7 repeats where mTLS off adds 1 ms
  // in four and TLS 1 ms in four others (one overlap), so each step's median is 1 ms, the sum 2 ms,
  // while the total is 1 ms in six repeats of seven (interval [1, 1]).
  const s1 = [1, 1, 1, 1, 0, 0, 0];
  const s2 = [0, 0, 0, 1, 1, 1, 1];
  const cases = s1.flatMap((a, r) => [mk('baseline', r, 1), mk('istio-sidecar[mtls=off]', r, 1 + a), mk('istio-sidecar', r, 1 + a + s2[r]!)]);
  const w = attribution(cases).find((x) => x.dataplane === 'istio-sidecar')!;
  t.false(w.agrees, `sum ${w.sum} vs total ${JSON.stringify(w.total)}`);
  t.regex(w.note, /outside the total's interval/);
});

test('ebpf: the tunnel is the step from encryption=none to WireGuard, and names wireguard-go as a host limit', (t) => {
  const cases = [0, 1, 2].flatMap((r) => [
    mk('baseline', r, 1.0),
    mk('ebpf[encryption=none]', r, 1.05),
    mk('ebpf[encryption=wireguard]', r, 2.35, 0, wgGo),
    mk('ebpf-l7', r, 2.9, 0, { ...wgGo, 'l7-proxy': { engine: 'haproxy', version: '2.6', standInFor: 'Envoy (Cilium node proxy)' } }),
  ]);
  const ws = attribution(cases);
  const wg = ws.find((x) => x.dataplane === 'ebpf[encryption=wireguard]')!;
  t.deepEqual(
    wg.steps.map((s) => [s.components.join('+'), +s.added.estimate.toFixed(2)]),
    [
      ['bpf', 0.05],
      ['tunnel', 1.3],
    ],
  );
  t.is(wg.steps[1]!.caveat?.kind, 'host limitation');
  const l7 = ws.find((x) => x.dataplane === 'ebpf-l7')!;
  t.deepEqual(
    l7.steps.map((s) => s.components.join('+')),
    ['bpf', 'tunnel', 'l7-proxy'],
  );
  const line = explainLine(ws, 'ebpf[encryption=wireguard]')!;
  t.regex(line, /largest component encryption tunnel \(WireGuard\), \+1\.30 ms of the \+1\.35 ms/);
  t.regex(line, /host limitation: wireguard-go/);
});

test('claims judge Cilium on the variant with the product settings, and explain what is not reproduced', (t) => {
  const cases = [0, 1, 2].flatMap((r) => [mk('baseline', r, 1.0), mk('ebpf[encryption=none]', r, 1.05), mk('ebpf', r, 2.35, 0, wgGo)]);
  t.is(claimDataplane('cilium', cases), 'ebpf[encryption=none]');
  t.is(claimDataplane('ebpf', cases.slice(0, 1).concat(cases.filter((c) => c.dataplane === 'ebpf'))), 'ebpf');
  t.is(claimDataplane('istio-sidecar', cases), 'istio-sidecar', 'not measured: the kind');
  const table = (readClaimsTables() as ClaimsTable[]).find((x) => x.id === 'mesh-comparison-grpc')!;
  const v = judgeTable(table, cases);
  const l4 = v.rows.find((r) => r.metric === 'p50_latency_overhead' && r.cells[0]!.column === 'cilium l4')!;
  t.is(l4.cells[0]!.dataplane, 'ebpf[encryption=none]');
  t.true(v.notes.some((n) => /ebpf is judged as ebpf\[encryption=none\].*ebpf measured in the same run is an ablation variant/.test(n)));
  // The same run judged with WireGuard on (no none variant): 1.35 ms against ~0.1 is not reproduced,
  // and the line beside it names the tunnel.
  const wgOnly = cases.filter((c) => c.dataplane !== 'ebpf[encryption=none]');
  const row = judgeTable(table, wgOnly).rows.find((r) => r.metric === 'p50_latency_overhead' && r.cells[0]!.column === 'cilium l4')!;
  t.not(row.verdict, 'reproduced');
  t.deepEqual(row.explanation?.length, 1);
  t.regex(row.explanation![0]!, /^ebpf: no ablation rung in this run splits it; all of it is BPF datapath .* \+ encryption tunnel \(WireGuard\)/);
});

test('each waterfall carries what is measured per part: CPU time per request (roles, BPF programs), memory (roles, maps)', (t) => {
  const withLoad = (c: CaseResult, bpfNs: number) => {
    c.load = { actual: { qps: 100, requests: 1000, errors: 0, durationS: 10, retCodes: {} } } as CaseResult['load'];
    c.resources!.kernel.bpfRunTimeNs = bpfNs;
    c.resources!.byRole.wireguard = { processes: 2, rssBytes: MiB, pssBytes: MiB, rssPeakBytes: MiB, cpuSeconds: 0.4 };
    return c;
  };
  // 100 rps × 10 s = 1000 requests: 0.4 CPU s of wireguard-go is 400 µs per request, 5 ms of BPF 5 µs.
  const cases = [0, 1, 2].flatMap((r) => [mk('baseline', r, 1.0), withLoad(mk('ebpf', r, 2.0, 0, wgGo), 5e6)]);
  const w = attribution(cases).find((x) => x.dataplane === 'ebpf')!;
  t.deepEqual(
    w.measured.map((c) => [c.part, +c.value.estimate.toFixed(1), c.unit]),
    [
      ['wireguard', 400, 'µs per request'],
      ['bpf', 5, 'µs per request'],
    ],
  );
  t.deepEqual(
    attribution(cases, 'memory')
      .find((x) => x.dataplane === 'ebpf')!
      .measured.map((c) => [c.part, c.value.estimate, c.unit]),
    [['wireguard', 1, 'MiB']],
    'memory waterfalls carry memory by part (no maps in these cases)',
  );
});

// A recorded run (bench/waterfall.ts on this host, trimmed by test/fixtures/runs/trim-record.ts):
// quick.yaml's shape, 13 dataplanes and variants × 3 interleaved repeats, 8 s windows.
const RECORDED = JSON.parse(readFileSync('test/fixtures/runs/attribution-quick.json', 'utf8')) as RunRecord;

test('recorded run: istio-sidecar splits into capture, proxy and TLS that agree with the total within its interval', (t) => {
  const w = attribution(RECORDED.cases).find((x) => x.dataplane === 'istio-sidecar')!;
  t.deepEqual(
    w.steps.map((s) => [s.components.join('+'), s.from, s.to]),
    [
      ['capture', 'baseline', 'istio-sidecar[mode=capture-only]'],
      ['proxy', 'istio-sidecar[mode=capture-only]', 'istio-sidecar[mtls=off]'],
      ['tls', 'istio-sidecar[mtls=off]', 'istio-sidecar'],
    ],
  );
  t.is(w.total.n, 3);
  t.true(w.agrees, `${w.sum} ms against ${JSON.stringify(w.total)}`);
  t.true(w.total.low <= w.sum && w.sum <= w.total.high);
  t.log(w.steps.map((s) => `${s.label}: ${s.added.estimate.toFixed(3)} [${s.added.low.toFixed(3)}, ${s.added.high.toFixed(3)}] ms`).join('; '));
  t.log(`total ${w.total.estimate.toFixed(3)} [${w.total.low.toFixed(3)}, ${w.total.high.toFixed(3)}] ms, components ${w.sum.toFixed(3)} ms`);
  const tls = attribution(RECORDED.cases, 'memory')
    .find((x) => x.dataplane === 'istio-sidecar')!
    .steps.find((s) => s.components.includes('tls'))!;
  t.true(tls.added.low > 0, 'mTLS holds memory (TLS state) in every repeat');
});

test('recorded run: every dataplane on a ladder has a waterfall whose components agree with its total', (t) => {
  const ws = attribution(RECORDED.cases);
  const names = ws.map((w) => w.dataplane).sort();
  t.deepEqual(names, [...new Set(RECORDED.cases.map((c) => c.dataplane))].filter((d) => d !== 'baseline').sort(), 'every dataplane but the baseline');
  for (const w of ws) t.true(w.agrees, `${w.dataplane}: ${w.note}`);
  const tunnel = ws.find((w) => w.dataplane === 'ebpf')!.steps.find((s) => s.components.includes('tunnel'))!;
  t.is(tunnel.from, 'ebpf[encryption=none]');
  t.is(tunnel.caveat?.kind, 'host limitation');
  t.true(tunnel.added.low > 0, 'wireguard-go adds latency in every repeat');
});

// A recorded run of seed-003 in its quick form with 3 repeats (this host, trimmed): the chain over
// gRPC through each dataplane and its ablation variants.
const SEED_003 = JSON.parse(readFileSync('test/fixtures/runs/seed-003-variants.json', 'utf8')) as RunRecord;

test('recorded seed-003: every row that is not reproduced names, per dataplane, the component behind it', (t) => {
  const table = (readClaimsTables() as ClaimsTable[]).find((x) => x.id === 'three-service-chain')!;
  const v = judgeTable(table, SEED_003.cases);
  const cilium = v.rows[0]!.cells.find((c) => c.column === 'cilium')!;
  t.is(cilium.dataplane, 'ebpf-l7[encryption=none]', "judged on Cilium's own default");
  const explained = v.rows.filter((r) => r.verdict === 'contradicted' || r.verdict === 'same direction, different size');
  t.true(explained.length > 0, 'the run has rows to explain');
  for (const r of explained) {
    const latencyOrMemory = /latency|memory|cpu/.test(r.metric);
    if (!latencyOrMemory) continue;
    t.is(r.explanation?.length, r.cells.length, `${r.metric}: one line per dataplane`);
    for (const [i, c] of r.cells.entries()) t.regex(r.explanation![i]!, new RegExp(`^${c.dataplane!.replace(/[[\]]/g, '\\$&')}: largest component `), r.metric);
    t.log(`${r.metric} (${r.verdict}): ${r.explanation!.join(' | ')}`);
  }
  for (const r of v.rows.filter((x) => x.verdict === 'contradicted')) t.truthy(r.explanation?.length, `${r.metric} is contradicted and explained`);
});

test('CPU is attributed by the same ladders (dataplane cores)', (t) => {
  const w = attribution(sidecarRun(), 'cpu').find((x) => x.dataplane === 'istio-sidecar')!;
  t.is(w.unit, 'cores');
  // mk() gives every dataplane case one proxy role with 1 CPU s over 10 s: 0.1 core at each rung.
  t.deepEqual(
    w.steps.map((s) => +s.added.estimate.toFixed(3)),
    [0.1, 0, 0],
  );
});

test('with l7=off rungs the sidecar proxy splits into its TCP relay and HTTP; the ladder with more rungs wins', (t) => {
  const cases = [...sidecarRun(), ...[0, 1, 2].map((r) => mk('istio-sidecar[mtls=off,l7=off]', r, 1.4, 20, proxy))];
  const w = attribution(cases).find((x) => x.dataplane === 'istio-sidecar')!;
  t.deepEqual(
    w.steps.map((s) => [s.components.join('+'), s.to, +s.added.estimate.toFixed(2)]),
    [
      ['capture', 'istio-sidecar[mode=capture-only]', 0.2],
      ['tcp-proxy', 'istio-sidecar[mtls=off,l7=off]', 0.2],
      ['http', 'istio-sidecar[mtls=off]', 0.3],
      ['tls', 'istio-sidecar', 0.3],
    ],
  );
});
