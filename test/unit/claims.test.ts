// Claims tables judged against run cases (harness/analysis/claims.ts). The cases here are
// invented, with round figures, so each mapping's arithmetic can be checked by hand: which lab
// figure stands for which published one, in which unit, and which verdict follows.
import test from 'ava';
import { claimVerdicts, judgeTable, verdictCounts } from '../../harness/analysis/claims.js';
import { dataplaneSplit } from '../../harness/analysis/figures.js';
import { readClaimsTables } from '../../harness/scenario/load.js';
import type { CaseResult, ClaimsTable, RunRecord } from '../../harness/results/types.js';

const tables = readClaimsTables() as ClaimsTable[];
const table = (id: string) => tables.find((t) => t.id === id)!;

interface Spec {
  dp: string;
  repeat?: number;
  p50?: number;
  p95?: number;
  p99?: number;
  roles?: Record<string, { pss: number; cpu: number }>;
  mapBytes?: number;
  bpfNs?: number;
  ready?: number[];
  pods?: number;
  nodes?: number;
  status?: CaseResult['status'];
}

const MiB = 2 ** 20;
let index = 0;

/** An invented case: latencies in µs, role memory in MiB, CPU seconds over a 10 s window, pod ready times in ms. */
function mk(s: Spec): CaseResult {
  const byRole = Object.fromEntries(
    Object.entries({ app: { pss: 20, cpu: 1 }, load: { pss: 10, cpu: 1 }, ...(s.roles ?? {}) }).map(([role, r]) => [
      role,
      { processes: 1, rssBytes: r.pss * MiB, pssBytes: r.pss * MiB, rssPeakBytes: r.pss * MiB, cpuSeconds: r.cpu },
    ]),
  );
  const pods = s.pods ?? 2;
  const nodes = s.nodes ?? 2;
  return {
    index: index++,
    dataplane: s.dp,
    workload: 'w',
    repeat: s.repeat ?? 0,
    status: s.status ?? 'ok',
    load: {} as CaseResult['load'],
    latencyUs:
      s.p50 === undefined
        ? undefined
        : ({
            p50: s.p50,
            p90: s.p50,
            p95: s.p95 ?? s.p50,
            p99: s.p99 ?? s.p50,
            p999: 0,
            max: 0,
            min: 0,
            mean: 0,
            count: 1,
            histogram: { resolutionUs: 10, buckets: [], count: 0 },
            source: 'invented',
          } as CaseResult['latencyUs']),
    resources: {
      windowS: 10,
      normalized: { pods, nodes, perPod: {}, perNode: {} },
      byRole,
      processes: [],
      kernel: { bpfMapBytes: s.mapBytes ?? 0, bpfRunTimeNs: s.bpfNs ?? 0, softirqSeconds: 0 },
      method: 'invented',
    },
    startup: s.ready
      ? { podReadyMs: Object.fromEntries(s.ready.map((ms, i) => [`pod-${i}`, ms])), topologyUpMs: 0, dataplaneDeployMs: 0, firstRequestMs: 0 }
      : undefined,
    provenance: {},
    topology: { nodes, pods, services: 1 },
    startedAt: '2026-01-01T00:00:00Z',
  };
}

const row = (t: ReturnType<typeof judgeTable>, metric: string, column: string) => {
  const r = t.rows.find((x) => x.metric === metric && x.cells.some((c) => c.column === column));
  if (!r) throw new Error(`no row ${metric} / ${column} in ${t.rows.map((x) => `${x.metric}/${x.cells.map((c) => c.column)}`).join('; ')}`);
  return r;
};

test('dataplane split: sidecars per pod, every other dataplane role and BPF maps per node, CPU with BPF run time', (t) => {
  const s = dataplaneSplit(
    mk({ dp: 'x', roles: { proxy: { pss: 40, cpu: 2 }, agent: { pss: 6, cpu: 0.5 } }, mapBytes: 4 * MiB, bpfNs: 5e8, pods: 4, nodes: 2 }),
  )!;
  t.is(s.perPodBytes, 10 * MiB);
  t.is(s.perNodeBytes, 5 * MiB);
  t.is(s.totalBytes, 50 * MiB);
  t.is(s.cpuCores, 0.3, '(2 + 0.5 + 0.5 s BPF) over 10 s');
  t.is(dataplaneSplit(mk({ dp: 'x', status: 'failed' })), undefined, 'failed cases carry no figure');
});

test('mesh comparison: overhead over baseline in ms, per-pod memory in MB, CPU per pod in millicores, start-up read in whole seconds', (t) => {
  const cases = [0, 1, 2].flatMap((r) => [
    mk({ dp: 'baseline', repeat: r, p50: 1000 + r, p99: 2000, ready: [50, 60] }),
    mk({ dp: 'ebpf', repeat: r, p50: 1100 + r, p99: 2300, roles: { agent: { pss: 3, cpu: 0 } }, ready: [50, 60] }),
    mk({ dp: 'istio-sidecar', repeat: r, p50: 2000 + r, p99: 5000, roles: { proxy: { pss: (2 * 60e6) / MiB, cpu: 0.4 } }, ready: [2550, 2560] }),
  ]);
  const v = judgeTable(table('mesh-comparison-grpc'), cases);
  const istioP50 = row(v, 'p50_latency_overhead', 'istio-sidecar');
  t.is(istioP50.verdict, 'reproduced', istioP50.why);
  t.is(istioP50.cells[0]!.measured, '1.00 ms (n = 3)', 'the paired differences are all exactly 1000 µs');
  t.is(istioP50.cells[0]!.document, '~1 ms');
  const ebpfP50 = row(v, 'p50_latency_overhead', 'cilium l4');
  t.is(ebpfP50.verdict, 'reproduced', '0.1 ms against ~0.1 ms');
  t.is(row(v, 'p99_latency_overhead', 'istio-sidecar').verdict, 'reproduced', '3 ms against ~3 ms');
  const mem = row(v, 'memory_overhead_per_pod', 'istio-sidecar');
  t.is(mem.cells[0]!.measured, '60.0 MB (n = 3)', '120 MB of sidecars over 2 pods, MB = 10^6 bytes');
  t.is(mem.verdict, 'reproduced');
  const cpu = row(v, 'cpu_overhead_per_pod', 'istio-sidecar');
  t.is(cpu.cells[0]!.measured, '20.0 millicores (n = 3)', '0.4 s over 10 s over 2 pods');
  t.is(row(v, 'cpu_overhead_per_pod', 'cilium l4').verdict, 'not measurable here', 'words ("nearly none") are not a figure');
  const start = row(v, 'pod_startup_delay', 'istio-sidecar');
  t.is(start.cells[0]!.measured, '2.50 s (n = 3)');
  t.is(start.verdict, 'reproduced');
  t.is(row(v, 'pod_startup_delay', 'cilium').verdict, 'reproduced', '0 ms added is "0 s"');
  t.is(row(v, 'p50_latency_overhead', 'cilium l7').verdict, 'not measurable here', 'ebpf-l7 was not run');
  t.regex(row(v, 'p50_latency_overhead', 'cilium l7').why, /ebpf-l7 was not measured/);
  const headline = v.rows.find((r) => r.metric.startsWith('headline') && r.cells[0]!.column === 'istio-sidecar')!;
  t.is(headline.verdict, 'reproduced', `istio's 1 ms over ebpf's 0.1 ms is 10×: ${headline.why}`);
  t.true(
    v.notes.every((n) => !n.startsWith('One repeat')),
    'three repeats: no one-repeat note',
  );
});

test('three-service chain: the ratio of the columns is judged, not the absolute figures', (t) => {
  const cases = [
    mk({ dp: 'istio-sidecar', p50: 3800, roles: { proxy: { pss: 100, cpu: 4 } }, nodes: 2 }),
    mk({ dp: 'ebpf-l7', p50: 1900, roles: { 'l7-proxy': { pss: 10, cpu: 1 } }, nodes: 2 }),
  ];
  const v = judgeTable(table('three-service-chain'), cases);
  const p50 = row(v, 'p50_latency', 'istio-sidecar');
  t.is(p50.verdict, 'reproduced', p50.why);
  t.deepEqual(
    p50.cells.map((c) => [c.column, c.dataplane, c.measured]),
    [
      ['istio-sidecar', 'istio-sidecar', '3.80 ms (n = 1)'],
      ['cilium', 'ebpf-l7', '1.90 ms (n = 1)'],
    ],
  );
  const cpu = row(v, 'proxy_cpu_per_node', 'istio-sidecar');
  t.is(cpu.verdict, 'reproduced', '0.2 vs 0.05 cores per node: 4×, the document ~4×');
  const mem = row(v, 'proxy_memory_per_node', 'istio-sidecar');
  t.is(mem.verdict, 'same direction, different size', '10× against ~4.5×');
  t.regex(v.notes.join(' '), /One repeat per dataplane/);
  const slower = judgeTable(table('three-service-chain'), [mk({ dp: 'istio-sidecar', p50: 1000 }), mk({ dp: 'ebpf-l7', p50: 2000 })]);
  t.is(row(slower, 'p50_latency', 'istio-sidecar').verdict, 'contradicted');
});

test('cluster memory: the document-size total is an extrapolation, apart from the figures measured here', (t) => {
  // 100 pods on 4 nodes: sidecars 10 MB each; ebpf 50 MB per node.
  const cases = [
    mk({ dp: 'istio-sidecar', roles: { proxy: { pss: (100 * 10e6) / MiB, cpu: 1 } }, pods: 100, nodes: 4 }),
    mk({ dp: 'ebpf', roles: { agent: { pss: (4 * 50e6) / MiB, cpu: 1 } }, pods: 100, nodes: 4 }),
  ];
  const v = judgeTable(table('cluster-memory-overhead'), cases);
  const istio = row(v, 'total_memory_overhead at 100 nodes / 1000 pods', 'istio-sidecar');
  t.true(istio.extrapolated);
  t.is(istio.cells[0]!.measured, '10.0 GB (n = 1)', '10 MB × 1000 pods');
  t.is(istio.verdict, 'same direction, different size', '10 GB against ~100 GB');
  const cilium = row(v, 'total_memory_overhead at 100 nodes / 1000 pods', 'cilium');
  t.is(cilium.cells[0]!.measured, '5.00 GB (n = 1)', '50 MB × 100 nodes');
  t.is(cilium.verdict, 'reproduced');
  t.is(row(v, 'total_memory_overhead at 100 nodes / 1000 pods', 'linkerd').verdict, 'not measurable here');
  t.deepEqual(v.measuredHere!.rows[0], ['istio-sidecar (istio-sidecar)', '4 / 100', '954 (n = 1)', '9.54 (n = 1)', '0.00 (n = 1)']);
  t.regex(v.notes.join(' '), /extrapolations, not measurements/);
});

test('orderings: proxy path by p50 and p99; visibility as its two claims on P95', (t) => {
  const path = judgeTable(table('proxy-path-latency'), [
    mk({ dp: 'ebpf', p50: 300, p99: 900 }),
    mk({ dp: 'ebpf-l7', p50: 600, p99: 800 }),
    mk({ dp: 'istio-sidecar', p50: 1000, p99: 3000 }),
  ]);
  t.deepEqual(
    path.rows.map((r) => r.verdict),
    ['reproduced', 'contradicted'],
  );
  t.deepEqual(
    path.rows[0]!.cells.map((c) => c.dataplane),
    ['ebpf', 'ebpf-l7', 'istio-sidecar'],
  );
  const vis = judgeTable(table('http-visibility-p95'), [
    mk({ dp: 'baseline', p50: 400, p95: 800 }),
    mk({ dp: 'ebpf', p50: 400, p95: 750 }),
    mk({ dp: 'ebpf-l7', p50: 800, p95: 1500 }),
  ]);
  t.deepEqual(
    vis.rows.map((r) => [r.metric, r.verdict]),
    [
      ['proxy visibility costs more than eBPF visibility (P95)', 'reproduced'],
      ['eBPF visibility close to baseline (added P95)', 'reproduced'],
    ],
  );
  t.is(vis.rows[1]!.cells[0]!.document, "within ±0.2 ms (±25 % of baseline's P95)");
  const far = judgeTable(table('http-visibility-p95'), [
    mk({ dp: 'baseline', p95: 800, p50: 1 }),
    mk({ dp: 'ebpf', p95: 1400, p50: 1 }),
    mk({ dp: 'ebpf-l7', p95: 1500, p50: 1 }),
  ]);
  t.is(far.rows[1]!.verdict, 'same direction, different size', '0.6 ms added is beyond ±0.2 ms');
});

test('sizing guidelines are never judged as measurements; unknown tables say the lab has no mapping', (t) => {
  const v = judgeTable(table('sidecar-resource-sizing'), [mk({ dp: 'ebpf-l7', roles: { agent: { pss: 6, cpu: 0.1 }, 'l7-proxy': { pss: 20, cpu: 1 } } })]);
  t.true(v.rows.length > 0 && v.rows.every((r) => r.verdict === 'not measurable here'));
  t.regex(v.rows[0]!.why, /sizing guideline.*within that request/);
  const none = judgeTable({ id: 'not-a-table', title: 'x', rows: [{ metric: 'm', value: 1 }] }, []);
  t.deepEqual(none.rows, []);
  t.regex(none.notes[0]!, /no mapping/);
});

test('claim verdicts of a run: every table the reference names, counted, deterministic', (t) => {
  const run = {
    reference: {
      table: 'mesh-comparison-grpc',
      also: ['sidecar-cost-per-pod-001'],
      claimsFile: 'reference/claims.yaml',
      tables: [table('mesh-comparison-grpc'), table('sidecar-cost-per-pod-001')],
    },
    cases: [mk({ dp: 'baseline', p50: 1000, ready: [10] }), mk({ dp: 'istio-sidecar', p50: 2000, roles: { proxy: { pss: 100, cpu: 1 } }, ready: [3000] })],
  } as unknown as RunRecord;
  const a = claimVerdicts(run);
  t.deepEqual(
    a.map((x) => x.id),
    ['mesh-comparison-grpc', 'sidecar-cost-per-pod-001'],
  );
  t.deepEqual(claimVerdicts(run), a);
  const counts = Object.fromEntries(verdictCounts(a));
  t.is(
    Object.values(counts).reduce((x, y) => x + y, 0),
    a.reduce((n, x) => n + x.rows.length, 0),
  );
  t.deepEqual(claimVerdicts({ cases: [] } as unknown as RunRecord), []);
});

test('degraded and failed cases are left out of every verdict, and the notes say which and why', (t) => {
  const good = [0, 1, 2].flatMap((r) => [mk({ dp: 'baseline', repeat: r, p50: 1000 }), mk({ dp: 'istio-sidecar', repeat: r, p50: 2000 })]);
  // A killed sidecar: latency over the few survivors, far off; it must not move the verdict.
  const bad = mk({ dp: 'istio-sidecar', repeat: 3, p50: 90_000, status: 'degraded' });
  bad.validity = { ok: false, reasons: ['1564 of 2000 requests failed'], processesDown: [], limits: { maxErrorRate: 0.001, minRateRatio: 0.95 } };
  const badBase = mk({ dp: 'baseline', repeat: 3, p50: 1000 });
  const a = judgeTable(table('mesh-comparison-grpc'), good);
  const b = judgeTable(table('mesh-comparison-grpc'), [...good, badBase, bad]);
  const p50 = (v: ReturnType<typeof judgeTable>) => row(v, 'p50_latency_overhead', 'istio-sidecar');
  t.is(p50(b).cells[0]!.measured, p50(a).cells[0]!.measured);
  t.is(p50(b).verdict, p50(a).verdict);
  t.false(p50(b).evidence.includes('r3 ') || /istio-sidecar · w · r3/.test(p50(b).evidence), p50(b).evidence);
  t.true(
    b.notes.some((n) => n.startsWith('Left out of every verdict') && n.includes('istio-sidecar · w · r3 (degraded: 1564 of 2000 requests failed)')),
    b.notes.join('\n'),
  );
  // Only degraded cases for a dataplane: nothing to judge.
  const only = judgeTable(table('mesh-comparison-grpc'), [mk({ dp: 'baseline', p50: 1000 }), bad]);
  t.is(p50(only).verdict, 'not measurable here');
});

test('proxy cost per 1000 rps: role CPU ÷ (achieved rps × traversals ÷ 1000), memory per instance; every proxy role listed with its engine', (t) => {
  const withPath = (c: CaseResult, qps: number, traversals: Record<string, number>, processes: Record<string, number>): CaseResult => {
    for (const [role, n] of Object.entries(processes)) c.resources!.byRole[role]!.processes = n;
    return {
      ...c,
      load: { actual: { qps } } as CaseResult['load'],
      path: { userSpaceHops: 2, traversalsByRole: traversals, loopbackLegs: 0, redirect: '', encryption: '', serviceRouting: '' },
    };
  };
  const cases = [0, 1, 2].flatMap((r) => [
    // 2 sidecars × 60 MB; 0.8 CPU-s over 10 s at 200 rps through 2 sidecars: 0.08 vCPU ÷ 0.4 = 0.2 vCPU per 1000 rps.
    withPath(mk({ dp: 'istio-sidecar', repeat: r, roles: { proxy: { pss: 120e6 / MiB, cpu: 0.8 } } }), 200, { proxy: 2 }, { proxy: 2 }),
    // ztunnel: 0.5 CPU-s over 10 s at 200 rps, 2 traversals: 0.05 ÷ 0.4 = 0.125 vCPU, beyond 0.06.
    withPath(mk({ dp: 'ambient', repeat: r, roles: { 'node-proxy': { pss: 24e6 / MiB, cpu: 0.5 } } }), 200, { 'node-proxy': 2 }, { 'node-proxy': 2 }),
    withPath(mk({ dp: 'ebpf-l7', repeat: r, roles: { 'l7-proxy': { pss: 16, cpu: 0.1 } } }), 200, { 'l7-proxy': 1 }, { 'l7-proxy': 1 }),
  ]);
  const v = judgeTable(table('proxy-cost-per-1000rps'), cases);
  const cpu = row(v, 'sidecar: vCPU per 1000 rps', 'sidecar');
  t.is(cpu.verdict, 'reproduced', cpu.why);
  t.is(cpu.cells[0]!.measured, '0.20 vCPU (n = 3)');
  t.is(row(v, 'sidecar: memory per instance', 'sidecar').verdict, 'reproduced');
  const zt = row(v, 'ztunnel: vCPU per 1000 rps', 'ztunnel');
  t.is(zt.verdict, 'same direction, different size', zt.why);
  t.is(zt.cells[0]!.measured, '0.13 vCPU (n = 3)');
  t.is(row(v, 'waypoint: vCPU per 1000 rps', 'waypoint').verdict, 'not measurable here');
  t.deepEqual(
    v.measuredHere!.rows.map((r) => r.slice(0, 4)),
    [
      ['ambient', 'node-proxy', '2', '0.13 vCPU (n = 3)'],
      ['ebpf-l7', 'l7-proxy', '1', '0.05 vCPU (n = 3)'],
      ['istio-sidecar', 'proxy', '2', '0.20 vCPU (n = 3)'],
    ],
  );
  // A case without traversals (an older record) gives no figure rather than a wrong one.
  const old = mk({ dp: 'istio-sidecar', roles: { proxy: { pss: 60, cpu: 1 } } });
  t.is(row(judgeTable(table('proxy-cost-per-1000rps'), [old]), 'sidecar: vCPU per 1000 rps', 'sidecar').verdict, 'not measurable here');
});
