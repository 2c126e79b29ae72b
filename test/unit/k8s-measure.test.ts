// harness/k8s/measure.ts against what a cluster really gives: the load container's log (fortio's
// stdout and stderr in one stream, laid out as fortio 1.68.2 writes it with `-json - -access-log-file
// /dev/stderr`), the kubelet's /metrics/resource text (its [STABLE] format), and pod conditions.
import test from 'ava';
import { readFileSync } from 'node:fs';
import { latencySummary, parseAccessLog, parseFortioJson } from '../../harness/load/fortio.js';
import { type ContainerSample, fortioLatency, parseFortioLog, parseResourceMetrics, podReadyMs, roleOf, windowResources } from '../../harness/k8s/measure.js';

const accessLines = readFileSync('test/fixtures/fortio-http1.access.jsonl', 'utf8').split('\n').filter(Boolean);
// The access-log fixture is a trimmed 300 of the run's 2000 requests: the summary says 300 (all 200s) to match.
const summaryJson = readFileSync('test/fixtures/fortio-http1.json', 'utf8')
  .replace('"Count": 2000,', `"Count": ${accessLines.length},`)
  .replace('"200": 2000', `"200": ${accessLines.length}`);
const errorLine = '{"latency":0.000374,"timestamp":1795326639128714564,"thread":1,"iter":250,"ok":false,"details":"503"}';
// fortio's own log is JSON lines too (fortio.org/log when stderr is not a terminal).
const warnLine =
  '{"ts":1795326639.128801,"level":"warn","r":23,"file":"http_client.go","line":1151,"msg":"Non ok http code","code":503,"status":"HTTP/1.1 503","thread":1,"run":0}';

/** The pod's log: fortio's banner, the access log with a stray warning, its text summary, then the -json summary. */
function podLog(access: string[], opts: { summary?: boolean } = {}): string {
  const mid = Math.floor(access.length / 2);
  return [
    '{"ts":1795326634.447100,"level":"info","r":1,"file":"logger.go","line":298,"msg":"Log level is now 3 Warning (was 2 Info)"}',
    'Fortio 1.68.2 running at 200 queries per second, 2->2 procs, for 10s: http://198.18.64.1:80/echo?size=128',
    'Starting at 200 qps with 4 thread(s) [gomax 2] for 10s : 500 calls each (total 2000) with access logger mode json to /dev/stderr',
    ...access.slice(0, mid),
    warnLine,
    ...access.slice(mid),
    'Ended after 10.001329675s : 2000 calls. qps=199.97',
    'Aggregated Function Time : count 2000 avg 0.00035129345 +/- 0.0002198 min 9.1101e-05 max 0.003663096 sum 0.702586906',
    '# range, mid point, percentile, count',
    '>= 9.1101e-05 <= 0.0001 , 9.55505e-05 , 0.05, 1',
    '# target 50% 0.000301',
    'Sockets used: 4 (for perfect keepalive, would be 4)',
    'Code 200 : 2000 (100.0 %)',
    'All done 2000 calls (plus 4 warmup) 0.351 ms avg, 200.0 qps',
    ...(opts.summary === false ? [] : [summaryJson.trimEnd(), `Successfully wrote ${Buffer.byteLength(summaryJson)} bytes of Json data to stdout`]),
    '',
  ].join('\n');
}

test('fortio log: the JSON summary is found among the access log and text output', (t) => {
  const p = parseFortioLog(podLog(accessLines));
  t.is(p.summaryText, summaryJson.trimEnd());
  t.deepEqual(p.summary, parseFortioJson(summaryJson));
  t.is(p.summary.count, accessLines.length);
  t.is(p.summary.version, '1.68.2');
  // The warning line and the banner's log line are not requests.
  t.is(p.errors, 0);
  t.is(p.latenciesUs.length, accessLines.length);
});

test('fortio log: a failed request in the access log counts as an error, not a latency', (t) => {
  const lines = [...accessLines.slice(0, 100), errorLine, ...accessLines.slice(100)];
  const p = parseFortioLog(podLog(lines));
  const lab = parseAccessLog(lines.join('\n'));
  t.is(p.errors, 1);
  t.is(lab.errors, 1);
  t.is(p.latenciesUs.length, accessLines.length);
  t.deepEqual(p.latenciesUs, lab.latenciesUs);
});

test('fortio log: latencies are sorted, from the access log at 1 µs, as the lab computes them', (t) => {
  const lines = [...accessLines, errorLine];
  const f = fortioLatency(podLog(lines));
  const lab = parseAccessLog(lines.join('\n'));
  const summary = parseFortioJson(summaryJson);
  t.deepEqual(f.latency, latencySummary(lab.latenciesUs, summary));
  // Independently: nearest rank over the fixture's successful requests.
  const us = accessLines.map((l) => Math.round((JSON.parse(l) as { latency: number }).latency * 1e6)).sort((a, b) => a - b);
  const rank = (p: number) => us[Math.ceil((p / 100) * us.length) - 1];
  t.is(f.latency?.count, 300);
  t.is(f.latency?.p50, rank(50));
  t.is(f.latency?.p99, rank(99));
  t.is(f.latency?.min, us[0]);
  t.is(f.latency?.max, us[us.length - 1]);
  for (let i = 1; i < f.latenciesUs.length; i++) t.true(f.latenciesUs[i - 1]! <= f.latenciesUs[i]!);
  // fortio's own histogram percentiles ride along as the cross-check.
  t.is(f.latency?.fortio?.p50, Math.round(summary.percentilesUs.p50 * 10) / 10);
  t.is(f.errors, 1);
});

test('fortio log: fewer requests in the access log than fortio counted (the kubelet rotated the log) is an error, not a figure from survivors', (t) => {
  t.throws(() => fortioLatency(podLog([])), { message: /holds 0 of fortio's 300 requests: the kubelet rotated its log/ });
  t.throws(() => fortioLatency(podLog(accessLines.slice(10))), { message: /holds 290 of fortio's 300 requests/ });
});

test('fortio log: a log without the JSON summary throws', (t) => {
  t.throws(() => parseFortioLog(podLog(accessLines, { summary: false })), { message: /no fortio JSON summary/ });
  t.throws(() => fortioLatency(podLog(accessLines, { summary: false })), { message: /no fortio JSON summary/ });
  // Cut off before the summary's closing brace (the container was killed while writing it).
  const cut = podLog(accessLines).split('\n');
  t.throws(() => parseFortioLog(cut.slice(0, cut.lastIndexOf('}')).join('\n')), { message: /no fortio JSON summary/ });
});

// The kubelet's /metrics/resource as `kubectl get --raw /api/v1/nodes/<node>/proxy/metrics/resource`
// prints it: [STABLE] HELP text, millisecond timestamps, values in Go's float format.
const METRICS = `# HELP container_cpu_usage_seconds_total [STABLE] Cumulative cpu time consumed by the container in core-seconds
# TYPE container_cpu_usage_seconds_total counter
container_cpu_usage_seconds_total{container="cilium-agent",namespace="kube-system",pod="cilium-7xk2p"} 812.553021946 1795326644865
container_cpu_usage_seconds_total{container="coredns",namespace="kube-system",pod="coredns-55968cc89d-bhhbx"} 0.195744 1795326646512
container_cpu_usage_seconds_total{container="echo",namespace="mb-s001",pod="echo-6b7f9d8c5d-q2x8z"} 4.210339 1795326641002
container_cpu_usage_seconds_total{container="istio-proxy",namespace="mb-s001",pod="echo-6b7f9d8c5d-q2x8z"} 12.6 1795326641002
container_cpu_usage_seconds_total{container="odd\\"name",namespace="mb-s001",pod="odd-0"} 0.5 1795326641002
# HELP container_memory_working_set_bytes [STABLE] Current working set of the container in bytes
# TYPE container_memory_working_set_bytes gauge
container_memory_working_set_bytes{container="cilium-agent",namespace="kube-system",pod="cilium-7xk2p"} 2.1309440e+08 1795326644865
container_memory_working_set_bytes{container="coredns",namespace="kube-system",pod="coredns-55968cc89d-bhhbx"} 1.675264e+07 1795326646512
container_memory_working_set_bytes{container="echo",namespace="mb-s001",pod="echo-6b7f9d8c5d-q2x8z"} 1.1046912e+07 1795326641002
container_memory_working_set_bytes{container="istio-proxy",namespace="mb-s001",pod="echo-6b7f9d8c5d-q2x8z"} 4.8254976e+07 1795326641002
container_memory_working_set_bytes{container="mount-cgroup",namespace="kube-system",pod="cilium-7xk2p"} 1.2288e+05 1795326644865
# HELP container_start_time_seconds [STABLE] Start time of the container since unix epoch in seconds
# TYPE container_start_time_seconds gauge
container_start_time_seconds{container="echo",namespace="mb-s001",pod="echo-6b7f9d8c5d-q2x8z"} 1.7953265719754386e+09
# HELP container_swap_usage_bytes [ALPHA] Current amount of the container swap usage in bytes. Reported only on non-windows systems
# TYPE container_swap_usage_bytes gauge
container_swap_usage_bytes{container="echo",namespace="mb-s001",pod="echo-6b7f9d8c5d-q2x8z"} 0 1795326641002
# HELP node_cpu_usage_seconds_total [STABLE] Cumulative cpu time consumed by the node in core-seconds
# TYPE node_cpu_usage_seconds_total counter
node_cpu_usage_seconds_total 20193.77712 1795326645117
# HELP node_memory_working_set_bytes [STABLE] Current working set of the node in bytes
# TYPE node_memory_working_set_bytes gauge
node_memory_working_set_bytes 2.163331072e+09 1795326645117
# HELP pod_cpu_usage_seconds_total [STABLE] Cumulative cpu time consumed by the pod in core-seconds
# TYPE pod_cpu_usage_seconds_total counter
pod_cpu_usage_seconds_total{namespace="mb-s001",pod="echo-6b7f9d8c5d-q2x8z"} 16.810339 1795326641002
# HELP pod_memory_working_set_bytes [STABLE] Current working set of the pod in bytes
# TYPE pod_memory_working_set_bytes gauge
pod_memory_working_set_bytes{namespace="mb-s001",pod="echo-6b7f9d8c5d-q2x8z"} 5.9301888e+07 1795326641002
# HELP resource_scrape_error [STABLE] 1 if there was an error while getting container metrics, 0 otherwise
# TYPE resource_scrape_error gauge
resource_scrape_error 0
`;

test('resource metrics: per container CPU seconds and working set; node, pod and other series ignored', (t) => {
  const s = parseResourceMetrics(METRICS);
  const get = (ns: string, pod: string, c: string) => s.find((x) => x.namespace === ns && x.pod === pod && x.container === c);
  t.is(s.length, 6);
  t.deepEqual(get('mb-s001', 'echo-6b7f9d8c5d-q2x8z', 'istio-proxy'), {
    namespace: 'mb-s001',
    pod: 'echo-6b7f9d8c5d-q2x8z',
    container: 'istio-proxy',
    cpuSeconds: 12.6,
    workingSetBytes: 48254976,
  });
  t.deepEqual(get('kube-system', 'coredns-55968cc89d-bhhbx', 'coredns'), {
    namespace: 'kube-system',
    pod: 'coredns-55968cc89d-bhhbx',
    container: 'coredns',
    cpuSeconds: 0.195744,
    workingSetBytes: 16752640,
  });
  t.is(get('mb-s001', 'echo-6b7f9d8c5d-q2x8z', 'echo')?.cpuSeconds, 4.210339);
  t.is(get('kube-system', 'cilium-7xk2p', 'cilium-agent')?.workingSetBytes, 213094400);
  // Only a working set (an init container that has exited keeps none of its CPU series here).
  const init = get('kube-system', 'cilium-7xk2p', 'mount-cgroup');
  t.is(init?.workingSetBytes, 122880);
  t.is(init?.cpuSeconds, undefined);
  // No series without a container label (pod_*, node_*) and nothing from start time or swap.
  t.false(s.some((x) => !x.container || x.namespace === undefined));
  t.false(s.some((x) => x.cpuSeconds === 1.7953265719754386e9 || x.workingSetBytes === 0));
  // An escaped quote in a label value does not end the value.
  const odd = s.find((x) => x.pod === 'odd-0');
  t.is(odd?.namespace, 'mb-s001');
  t.is(odd?.container.replace(/\\"/g, '"'), 'odd"name');
  t.is(odd?.cpuSeconds, 0.5);
});

test('resource metrics: empty or foreign text gives no samples', (t) => {
  t.deepEqual(parseResourceMetrics(''), []);
  t.deepEqual(parseResourceMetrics('# HELP x y\nnode_cpu_usage_seconds_total 1 2\n'), []);
  // cAdvisor's series (/metrics/cadvisor, scraped by mistake): cgroups without a pod's labels.
  t.deepEqual(parseResourceMetrics('container_cpu_usage_seconds_total{cpu="total",id="/"} 20193.7 1795326645117\n'), []);
});

const runNs = ['mb-s001'];
const c = (namespace: string, pod: string, container: string) => ({ namespace, pod, container });

test('roles: app, sidecar proxies, waypoint, load, node proxies and agent; other pods are not the case', (t) => {
  t.is(roleOf(c('mb-s001', 'echo-6b7f9d8c5d-q2x8z', 'echo'), runNs), 'app');
  t.is(roleOf(c('mb-s001', 'echo-6b7f9d8c5d-q2x8z', 'istio-proxy'), runNs), 'proxy');
  t.is(roleOf(c('mb-s001', 'echo-6b7f9d8c5d-q2x8z', 'linkerd-proxy'), runNs), 'proxy');
  t.is(roleOf(c('mb-s001', 'waypoint-5c8d7f6b9-k2j4m', 'istio-proxy'), runNs), 'waypoint');
  t.is(roleOf(c('mb-s001', 'client-load-7hx2q', 'load'), runNs), 'load');
  t.is(roleOf(c('mb-s001', 'client-warmup-9zq4r', 'warmup'), runNs), 'load');
  t.is(roleOf(c('istio-system', 'ztunnel-4kq9x', 'istio-proxy'), runNs), 'node-proxy');
  t.is(roleOf(c('kube-system', 'cilium-7xk2p', 'cilium-agent'), runNs), 'agent');
  t.is(roleOf(c('kube-system', 'cilium-envoy-q8w2n', 'cilium-envoy'), runNs), 'l7-proxy');
  // Not the case's: the mesh's control planes, other cluster pods, other runs' namespaces.
  t.is(roleOf(c('istio-system', 'istiod-7d4c9b8f6-x2x8q', 'discovery'), runNs), undefined);
  t.is(roleOf(c('kube-system', 'cilium-operator-5d8c9b7f6-abcde', 'cilium-operator'), runNs), undefined);
  t.is(roleOf(c('kube-system', 'cilium-7xk2p', 'mount-cgroup'), runNs), undefined);
  t.is(roleOf(c('kube-system', 'coredns-55968cc89d-bhhbx', 'coredns'), runNs), undefined);
  t.is(roleOf(c('kube-system', 'ztunnel-4kq9x', 'istio-proxy'), runNs), undefined);
  t.is(roleOf(c('linkerd', 'linkerd-destination-6b7f9d8c5d-q2x8z', 'linkerd-proxy'), runNs), undefined);
  t.is(roleOf(c('mb-s002', 'echo-6b7f9d8c5d-q2x8z', 'echo'), runNs), undefined);
  t.is(roleOf(c('default', 'waypoint-5c8d7f6b9-k2j4m', 'istio-proxy'), runNs), undefined);
});

// The lab runs Cilium's node Envoy's stand-in as role `l7-proxy` (harness/dataplanes/ebpf/family.ts)
// and the claims judge that role (harness/analysis/claims.ts, node-envoy sizing).
test('roles: cilium-envoy has the lab role of the node Envoy (l7-proxy)', (t) => {
  t.is(roleOf(c('kube-system', 'cilium-envoy-q8w2n', 'cilium-envoy'), runNs), 'l7-proxy');
});

const s = (ns: string, pod: string, container: string, cpuSeconds?: number, workingSetBytes?: number): ContainerSample => ({
  namespace: ns,
  pod,
  container,
  ...(cpuSeconds === undefined ? {} : { cpuSeconds }),
  ...(workingSetBytes === undefined ? {} : { workingSetBytes }),
});
const MiB = 2 ** 20;

test('window resources: CPU = end − start per container, restarts count from zero, roles summed', (t) => {
  const before = [
    s('mb-s001', 'echo-a', 'echo', 1.0, 10 * MiB),
    s('mb-s001', 'echo-a', 'istio-proxy', 0.5, 40 * MiB),
    s('mb-s001', 'client-b', 'istio-proxy', 2.0, 41 * MiB),
    s('mb-s001', 'echo-c', 'istio-proxy', 10.0, 45 * MiB), // restarts during the window
    s('istio-system', 'ztunnel-4kq9x', 'istio-proxy', 100.0, 20 * MiB),
    s('kube-system', 'coredns-55968cc89d-bhhbx', 'coredns', 5.0, 16 * MiB),
    s('mb-s002', 'echo-a', 'echo', 1.0, 10 * MiB),
    s('mb-s001', 'gone-d', 'echo', 3.0, 10 * MiB), // deleted before the end: no longer measured
  ];
  const after = [
    s('mb-s001', 'echo-a', 'echo', 3.5, 12 * MiB),
    s('mb-s001', 'echo-a', 'istio-proxy', 2.0, 48 * MiB),
    s('mb-s001', 'client-b', 'istio-proxy', 3.1, 44 * MiB),
    s('mb-s001', 'echo-c', 'istio-proxy', 0.75, 30 * MiB),
    s('mb-s001', 'client-load-7hx2q', 'load', 0.3, 25 * MiB), // started inside the window
    s('istio-system', 'ztunnel-4kq9x', 'istio-proxy', 104.2, 22 * MiB),
    s('kube-system', 'coredns-55968cc89d-bhhbx', 'coredns', 9.0, 16 * MiB),
    s('mb-s002', 'echo-a', 'echo', 9.0, 10 * MiB),
  ];
  const r = windowResources(before, after, runNs, 10);
  t.is(r.windowS, 10);
  t.deepEqual(Object.keys(r.byRole).sort(), ['app', 'load', 'node-proxy', 'proxy']);
  t.deepEqual(r.byRole.app, { processes: 1, rssBytes: 12 * MiB, pssBytes: 12 * MiB, rssPeakBytes: 12 * MiB, cpuSeconds: 2.5 });
  // 1.5 + 1.1 + 0.75 (restarted: its counter went from 10 to 0.75)
  t.is(r.byRole.proxy?.cpuSeconds, 3.35);
  t.is(r.byRole.proxy?.processes, 3);
  t.is(r.byRole.proxy?.rssBytes, (48 + 44 + 30) * MiB);
  t.is(r.byRole.proxy?.pssBytes, (48 + 44 + 30) * MiB);
  t.is(r.byRole.load?.cpuSeconds, 0.3);
  t.is(r.byRole['node-proxy']?.cpuSeconds, 4.2);
  t.is(r.processes.length, 6);
  t.false(r.processes.some((p) => p.name.startsWith('kube-system/') || p.name.startsWith('mb-s002/') || p.name.includes('gone-d')));
  const restarted = r.processes.find((p) => p.name === 'mb-s001/echo-c/istio-proxy');
  t.is(restarted?.cpuSeconds, 0.75);
  t.is(restarted?.role, 'proxy');
  t.is(restarted?.rssBytes, 30 * MiB);
  t.true(r.processes.every((p) => p.cpuSeconds >= 0 && p.pid === 0));
  t.regex(r.method, /working set/);
  t.regex(r.method, /no PSS/);
  t.deepEqual(r.kernel, { bpfMapBytes: 0, bpfRunTimeNs: 0, softirqSeconds: 0 });
});

test('window resources: a container with only a working set has 0 CPU; nothing of the case → no roles', (t) => {
  const r = windowResources([], [s('mb-s001', 'echo-a', 'echo', undefined, 8 * MiB)], runNs, 5);
  t.deepEqual(r.byRole.app, { processes: 1, rssBytes: 8 * MiB, pssBytes: 8 * MiB, rssPeakBytes: 8 * MiB, cpuSeconds: 0 });
  const none = windowResources([], [s('kube-system', 'coredns-55968cc89d-bhhbx', 'coredns', 9, MiB)], runNs, 5);
  t.deepEqual(none.byRole, {});
  t.deepEqual(none.processes, []);
});

test('window resources from two real-format scrapes', (t) => {
  const later = METRICS.replace(' 12.6 ', ' 14.85 ').replace(' 4.210339 ', ' 5.010339 ');
  const r = windowResources(parseResourceMetrics(METRICS), parseResourceMetrics(later), runNs, 3);
  t.is(r.byRole.proxy?.cpuSeconds, 2.25);
  t.is(r.byRole.proxy?.pssBytes, 48254976);
  t.is(r.byRole.app?.cpuSeconds, 0.8);
  t.is(r.byRole.agent?.cpuSeconds, 0);
  t.is(r.byRole.agent?.rssBytes, 213094400);
});

test('pod start-up: PodScheduled → Ready in ms; pods not Ready are left out', (t) => {
  const pod = (name: string, conditions?: { type: string; status: string; lastTransitionTime?: string }[]) => ({
    metadata: { name },
    ...(conditions ? { status: { conditions } } : {}),
  });
  const ready = pod('echo-6b7f9d8c5d-q2x8z', [
    { type: 'PodReadyToStartContainers', status: 'True', lastTransitionTime: '2026-11-29T18:00:01Z' },
    { type: 'Initialized', status: 'True', lastTransitionTime: '2026-11-29T18:00:02Z' },
    { type: 'Ready', status: 'True', lastTransitionTime: '2026-11-29T18:00:04Z' },
    { type: 'ContainersReady', status: 'True', lastTransitionTime: '2026-11-29T18:00:04Z' },
    { type: 'PodScheduled', status: 'True', lastTransitionTime: '2026-11-29T18:00:00Z' },
  ]);
  const notReady = pod('echo-6b7f9d8c5d-x9k2p', [
    { type: 'Ready', status: 'False', lastTransitionTime: '2026-11-29T18:00:09Z' },
    { type: 'ContainersReady', status: 'True', lastTransitionTime: '2026-11-29T18:00:08Z' },
    { type: 'PodScheduled', status: 'True', lastTransitionTime: '2026-11-29T18:00:00Z' },
  ]);
  const unscheduled = pod('echo-6b7f9d8c5d-m4n5b', [
    { type: 'PodScheduled', status: 'False', lastTransitionTime: '2026-11-29T18:00:00Z' },
    { type: 'Ready', status: 'True', lastTransitionTime: '2026-11-29T18:00:03Z' },
  ]);
  t.deepEqual(podReadyMs([ready, notReady, unscheduled, pod('pending-0'), pod('pending-1', [])]), { 'echo-6b7f9d8c5d-q2x8z': 4000 });
  t.deepEqual(
    podReadyMs([
      pod('waypoint-5c8d7f6b9-k2j4m', [
        { type: 'PodScheduled', status: 'True', lastTransitionTime: '2026-11-29T23:59:59Z' },
        { type: 'Ready', status: 'True', lastTransitionTime: '2026-11-30T00:00:01Z' },
      ]),
    ]),
    { 'waypoint-5c8d7f6b9-k2j4m': 2000 },
  );
  t.deepEqual(podReadyMs([]), {});
});
