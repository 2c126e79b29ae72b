// The flow log summarized into a service dependency map (harness/probes/flows.ts), and the map
// drawn from it (harness/report/flowmap.ts).
//
// Fixtures: 001-ebpf-products-r0 is a flow log recorded from the eBPF acceptance run (two nodes,
// cnp-production.yaml). 002-ebpf-l7-products-r0 is hand-written in the shape mb-flowd and the
// node L7 proxy write (harness/dataplanes/engine/haproxy.ts log-format), for tests only: a
// connection redirected to the proxy with its L7 requests (forwarded and denied), a connection
// dropped at the destination's ingress and retransmitted, an AUTH_REQUIRED drop followed by the
// retransmit going through, two replicas of one Service, the reserved identities host and world,
// and a proxy notice line that is not a record.
import test from 'ava';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { readCaseFlows, readFlowDir, summarizeCaseFlows, summarizeFlows, workloadOfPod, type Flow } from '../../harness/probes/flows.js';
import { readFlows } from '../../harness/cli/observe.js';
import { edgeState, layoutColumns, renderFlowMap } from '../../harness/report/flowmap.js';
import type { FlowEdge, FlowSummary } from '../../harness/results/types.js';

const RECORDED = 'test/fixtures/flows/001-ebpf-products-r0';
const L7 = 'test/fixtures/flows/002-ebpf-l7-products-r0';

const edge = (s: FlowSummary, from: string, to: string): FlowEdge => {
  const e = s.edges.find((x) => x.from === from && x.to === to);
  if (!e) throw new Error(`no edge ${from} -> ${to} in ${JSON.stringify(s.edges.map((x) => `${x.from} -> ${x.to}`))}`);
  return e;
};

test('workloads: a pod name without its replica index', (t) => {
  t.is(workloadOfPod('api-gateway-0'), 'api-gateway');
  t.is(workloadOfPod('api-service-v1-12'), 'api-service-v1');
  t.is(workloadOfPod('frontend'), 'frontend');
  t.is(workloadOfPod('v2'), 'v2');
});

test('recorded log: one edge per workload pair and port; the connection seen on both nodes counts once', (t) => {
  const s = summarizeCaseFlows(RECORDED)!;
  t.deepEqual(s.records, { l3: 4, l7: 0, unreadable: 0 });
  t.deepEqual(s.nodes, ['node1', 'node2']);
  t.deepEqual(
    s.workloads.map((w) => [w.id, w.pods, w.identities]),
    [
      ['production/api-gateway', 1, [256]],
      ['production/backend-service', 1, [257]],
      ['production/frontend', 1, [261]],
      ['production/order-service', 1, [262]],
      ['production/payment-service', 1, [263]],
    ],
  );
  t.deepEqual(s.edges, [
    { from: 'production/api-gateway', to: 'production/backend-service', port: 8080, protocol: 'TCP', connections: 1, forwarded: 1, redirected: 0, dropped: {} },
    {
      from: 'production/frontend',
      to: 'production/backend-service',
      port: 8080,
      protocol: 'TCP',
      connections: 1,
      forwarded: 0,
      redirected: 0,
      dropped: { POLICY_DENIED: 1 },
    },
    {
      from: 'production/order-service',
      to: 'production/payment-service',
      port: 8080,
      protocol: 'TCP',
      connections: 1,
      forwarded: 0,
      redirected: 0,
      dropped: { AUTH_REQUIRED: 1 },
    },
  ]);
  t.deepEqual(s.edges.map(edgeState), ['ok', 'bad', 'bad']);
  // Compact: no flow, address or port of a client in the record.
  const json = JSON.stringify(s);
  t.false(json.includes('37162'));
  t.false(json.includes('198.19.'));
});

test('L7 log: redirected connections carry their requests; drops by reason; retransmits and replicas grouped', (t) => {
  const s = summarizeCaseFlows(L7)!;
  t.deepEqual(s.records, { l3: 12, l7: 5, unreadable: 0 }, 'the proxy notice line is not a record');
  t.deepEqual(
    s.edges.map((e) => `${e.from} -> ${e.to}:${e.port}`),
    [
      'host -> production/frontend:8080',
      'order-processing/order-service -> order-processing/inventory-service:50051',
      'production/api-gateway -> production/public-api:8080',
      'production/frontend -> production/public-api:8080',
      'world -> production/frontend:8080',
    ],
  );
  // Two connections to two replicas of public-api, both through the proxy; 2 requests forwarded, 1 refused (403).
  t.deepEqual(edge(s, 'production/frontend', 'production/public-api'), {
    from: 'production/frontend',
    to: 'production/public-api',
    port: 8080,
    protocol: 'TCP',
    connections: 2,
    forwarded: 2,
    redirected: 2,
    dropped: {},
    l7: { forwarded: 2, denied: 1 },
  });
  t.is(s.workloads.find((w) => w.id === 'production/public-api')!.pods, 2);
  // Dropped at the destination's ingress twice (a retransmitted SYN): one connection, ended dropped.
  const denied = edge(s, 'production/api-gateway', 'production/public-api');
  t.is(denied.connections, 1);
  t.is(denied.forwarded, 0);
  t.deepEqual(denied.dropped, { POLICY_DENIED: 1 });
  t.is(denied.l7, undefined);
  // AUTH_REQUIRED first, then the retransmit redirected to the proxy: forwarded, the drop kept apart.
  const auth = edge(s, 'order-processing/order-service', 'order-processing/inventory-service');
  t.is(auth.forwarded, 1);
  t.is(auth.redirected, 1);
  t.deepEqual(auth.dropped, {});
  t.deepEqual(auth.droppedThenForwarded, { AUTH_REQUIRED: 1 });
  t.deepEqual(auth.l7, { forwarded: 1, denied: 1 });
  // Reserved identities by name, not by address.
  t.deepEqual(edge(s, 'world', 'production/frontend').dropped, { POLICY_DENIED: 1 });
  t.is(edge(s, 'host', 'production/frontend').forwarded, 1);
  t.deepEqual(
    s.workloads.filter((w) => w.kind === 'reserved').map((w) => [w.id, w.identities]),
    [
      ['host', [1]],
      ['world', [2]],
    ],
  );
  t.deepEqual(s.edges.map(edgeState), ['ok', 'bad', 'bad', 'bad', 'bad']);
});

test('edge states: forwarded only is green, dropped then forwarded amber, L7 denials red', (t) => {
  const base: FlowEdge = { from: 'a', to: 'b', port: 80, protocol: 'TCP', connections: 1, forwarded: 1, redirected: 0, dropped: {} };
  t.is(edgeState(base), 'ok');
  t.is(edgeState({ ...base, droppedThenForwarded: { AUTH_REQUIRED: 1 } }), 'warn');
  t.is(edgeState({ ...base, dropped: { POLICY_DENIED: 1 } }), 'bad');
  t.is(edgeState({ ...base, redirected: 1, l7: { forwarded: 3, denied: 0 } }), 'ok');
  t.is(edgeState({ ...base, redirected: 1, l7: { forwarded: 3, denied: 1 } }), 'bad');
  t.is(edgeState({ ...base, l7: { forwarded: 0, denied: 0, dropped: { NO_ROUTE: 2 } } }), 'bad');
});

test('summary does not depend on the order records come in, and unknown addresses stand by IP', (t) => {
  const { flows } = readFlowDir(join(L7, 'flows'));
  const a = summarizeFlows(flows);
  const b = summarizeFlows([...flows].reverse());
  t.deepEqual(b, a);
  const stray: Flow = {
    timeNs: 1,
    node: 'node1',
    verdict: 'REDIRECTED',
    direction: 'EGRESS',
    observationPoint: 'from-endpoint',
    protocol: 'TCP',
    source: { ip: '198.19.1.2', port: 41000, identity: 261 },
    destination: { ip: '198.18.128.7', port: 80, identity: 0 },
    proxyPort: 15000,
    sourcePod: 'frontend',
    sourceNamespace: 'production',
  };
  const s = summarizeFlows([stray]);
  t.deepEqual(
    s.workloads.map((w) => [w.id, w.kind]),
    [
      ['198.18.128.7', 'address'],
      ['production/frontend', 'workload'],
    ],
  );
  t.deepEqual(s.edges, [
    { from: 'production/frontend', to: '198.18.128.7', port: 80, protocol: 'TCP', connections: 1, forwarded: 1, redirected: 1, dropped: {} },
  ]);
});

test('a record cut short is counted, not fatal, for the summary; observe skips it with a warning naming file:line', (t) => {
  const dir = mkdtempSync(join(os.tmpdir(), 'meshbench-flows-'));
  const flows = join(dir, 'case', 'flows');
  mkdirSync(flows, { recursive: true });
  for (const f of ['identities.json', 'node1.jsonl', 'node2.jsonl']) copyFileSync(join(RECORDED, 'flows', f), join(flows, f));
  writeFileSync(join(flows, 'node2.jsonl'), readFileSync(join(flows, 'node2.jsonl'), 'utf8') + '{"timeNs":17953343220');
  const s = summarizeCaseFlows(join(dir, 'case'))!;
  t.deepEqual(s.records, { l3: 4, l7: 0, unreadable: 1 });
  t.is(s.edges.length, 3);
  const warnings: string[] = [];
  t.is(readFlows(join(dir, 'case'), (m) => warnings.push(m)).length, 4);
  t.is(warnings.length, 1);
  t.regex(warnings[0], /node2\.jsonl:4: not a JSON flow record, skipped/);
  // No flows/ directory: no summary (a dataplane without a flow log).
  t.is(readCaseFlows(dir), undefined);
  t.is(summarizeCaseFlows(dir), undefined);
});

test("the L7 proxies' dropped-record counts (node stats files) are summed into the summary; a stats file that is not JSON is counted unreadable", (t) => {
  const dir = mkdtempSync(join(os.tmpdir(), 'meshbench-flows-'));
  const flows = join(dir, 'case', 'flows');
  mkdirSync(flows, { recursive: true });
  for (const f of ['identities.json', 'node1.jsonl', 'node2.jsonl']) copyFileSync(join(RECORDED, 'flows', f), join(flows, f));
  t.is(summarizeCaseFlows(join(dir, 'case'))!.records.l7Dropped, undefined, 'no stats file: nothing said');
  writeFileSync(join(flows, 'node1-l7-stats.json'), JSON.stringify({ node: 'node1', droppedLogs: 7, source: 'x' }) + '\n');
  writeFileSync(join(flows, 'node2-l7-stats.json'), JSON.stringify({ node: 'node2', droppedLogs: 0, source: 'x' }) + '\n');
  t.deepEqual(summarizeCaseFlows(join(dir, 'case'))!.records, { l3: 4, l7: 0, unreadable: 0, l7Dropped: 7 });
  writeFileSync(join(flows, 'node2-l7-stats.json'), 'not json');
  t.deepEqual(summarizeCaseFlows(join(dir, 'case'))!.records, { l3: 4, l7: 0, unreadable: 1, l7Dropped: 7 });
});

test('observe still reads L7 records and names both ends', (t) => {
  const flows = readFlows(L7);
  t.is(flows.length, 17);
  const l7 = flows.filter((f) => f.type === 'L7');
  t.is(l7.length, 5);
  t.deepEqual(
    l7.filter((f) => f.verdict === 'DROPPED').map((f) => f.l7!.status),
    [403, 403],
  );
  t.is(l7[0]!.destinationPod, 'public-api-0');
});

test('map layout: callers left of what they call; a source sits just before its first callee', (t) => {
  const s = summarizeCaseFlows(L7)!;
  const { columns } = layoutColumns(s);
  const col = (id: string) => columns.findIndex((c) => c.includes(id));
  t.is(col('world'), 0);
  t.is(col('host'), 0);
  t.is(col('production/frontend'), 1);
  t.is(col('production/public-api'), 2);
  t.is(col('production/api-gateway'), 1, 'not in column 0, from where its arrow would cross frontend');
  t.is(col('order-processing/order-service'), 0);
  t.is(col('order-processing/inventory-service'), 1);
  // A cycle still gets a layout, every workload once.
  const cyc: FlowSummary = {
    ...s,
    workloads: [],
    edges: [
      { from: 'x/a', to: 'x/b', port: 1, protocol: 'TCP', connections: 1, forwarded: 1, redirected: 0, dropped: {} },
      { from: 'x/b', to: 'x/a', port: 1, protocol: 'TCP', connections: 1, forwarded: 1, redirected: 0, dropped: {} },
      { from: 'x/b', to: 'x/b', port: 2, protocol: 'TCP', connections: 1, forwarded: 1, redirected: 0, dropped: {} },
    ],
  };
  t.deepEqual(layoutColumns(cyc).columns, [['x/a'], ['x/b']]);
  t.regex(renderFlowMap(cyc, 'c'), /<svg [^>]*class="flowmap"/);
});

test('map SVG: boxes, coloured arrows, drop labels, L7 marks; byte-identical for the same summary', (t) => {
  const s = summarizeCaseFlows(L7)!;
  const svg = renderFlowMap(s, 'mb-flowmap-0');
  t.is(renderFlowMap(structuredClone(s), 'mb-flowmap-0'), svg);
  t.regex(svg, /^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg" class="flowmap" width="[\d.]+" height="[\d.]+"/);
  t.true(svg.endsWith('</svg>'));
  for (const name of ['frontend', 'public-api', 'api-gateway', 'order-service', 'inventory-service', 'world', 'host'])
    t.true(svg.includes(`>${name}</text>`), name);
  t.true(svg.includes('production · 2 pods'));
  t.is((svg.match(/<path class="edge /g) ?? []).length, s.edges.length);
  t.is((svg.match(/class="edge edge-bad/g) ?? []).length, 4);
  t.is((svg.match(/class="edge edge-ok/g) ?? []).length, 1);
  t.is((svg.match(/ edge-l7"/g) ?? []).length, 2, 'two edges through the proxy, dashed');
  t.is((svg.match(/<g class="l7-proxy">/g) ?? []).length, 2);
  t.true(svg.includes('dropped POLICY_DENIED ×1'));
  t.true(svg.includes('AUTH_REQUIRED ×1, then forwarded'));
  t.true(svg.includes('L7 requests: 2 forwarded, 1 denied'));
  // Markers are prefixed, so two maps in one page do not share ids; nothing refers outside the SVG.
  t.deepEqual(
    [...svg.matchAll(/\bid="([^"]+)"/g)].map((m) => m[1]),
    ['mb-flowmap-0-arrow-ok', 'mb-flowmap-0-arrow-bad', 'mb-flowmap-0-arrow-warn'],
  );
  t.notRegex(svg, /url\((?!#mb-flowmap-0-)/);
  t.notRegex(svg, /href=|<script|<image|<foreignObject/i);
  t.notRegex(svg, /NaN|Infinity|undefined/);
  t.notRegex(renderFlowMap(s, 'mb-flowmap-1'), /mb-flowmap-0/);
});

test('map SVG escapes names from the flow log', (t) => {
  const s: FlowSummary = {
    method: '',
    records: { l3: 1, l7: 0, unreadable: 0 },
    nodes: ['n'],
    workloads: [{ id: 'ns/<b>x</b>', kind: 'workload', name: '<b>x</b>', namespace: 'ns&"', pods: 1, identities: [] }],
    edges: [
      { from: 'world', to: 'ns/<b>x</b>', port: 80, protocol: 'TCP', connections: 1, forwarded: 0, redirected: 0, dropped: { '<script>alert(1)</script>': 1 } },
    ],
  };
  const svg = renderFlowMap(s, 'e');
  t.false(svg.includes('<b>'));
  t.false(svg.includes('<script>'));
  t.true(svg.includes('&lt;b&gt;x&lt;/b&gt;'));
  t.true(svg.includes('ns&amp;&quot;'));
});
