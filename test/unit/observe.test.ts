import test from 'ava';
import { filterFlows, formatFlow, readFlows } from '../../harness/cli/observe.js';

// A flow log recorded from the eBPF acceptance run (two nodes, cnp-production.yaml).
const CASE = 'test/fixtures/flows/001-ebpf-products-r0';

test('observe: flows of every node in time order, named from the identity table', (t) => {
  const flows = readFlows(CASE);
  t.is(flows.length, 4);
  t.deepEqual(
    flows.map((f) => f.node),
    ['node1', 'node2', 'node2', 'node2'],
  );
  t.is(flows[0].sourcePod, 'api-gateway-0');
  t.is(flows[0].destinationNamespace, 'production');
});

test('observe: --verdict, --pod and --namespace filters, and the Hubble-like line', (t) => {
  const flows = readFlows(CASE);
  const drops = filterFlows(flows, { verdict: 'dropped' });
  t.deepEqual(
    drops.map((f) => f.dropReason),
    ['POLICY_DENIED', 'AUTH_REQUIRED'],
  );
  t.is(filterFlows(flows, { pod: 'production/payment-service-0' }).length, 1);
  t.is(filterFlows(flows, { pod: 'other/payment-service-0' }).length, 0);
  t.is(filterFlows(flows, { namespace: 'production' }).length, 4);
  t.is(filterFlows(flows, { namespace: 'idle' }).length, 0);
  t.regex(
    formatFlow(drops[0]),
    /: production\/frontend:37168 \(ID:261\) -> production\/backend-service-0:8080 \(ID:257\) DROPPED \(POLICY_DENIED\) INGRESS TCP node2$/,
  );
});

test('observe: a path without flow logs is bad input naming what to do', (t) => {
  const e = t.throws(() => readFlows('test/fixtures/runs'));
  t.regex(e!.message, /no flow log here/);
  t.throws(() => readFlows('test/fixtures/nope'), { message: /no such file or directory/ });
});

test("observe: the L7 proxy's records show the request; HAProxy's '-' for absent values is dropped", (t) => {
  const l7 = readFlows('test/fixtures/flows/002-ebpf-l7-products-r0').filter((f) => f.type === 'L7');
  t.true(l7.length > 0);
  t.true(l7.every((f) => f.dropReason !== '-' && f.l7!.route !== '-'));
  const denied = l7.find((f) => f.verdict === 'DROPPED')!;
  t.is(denied.dropReason, 'POLICY_DENIED');
  t.regex(formatFlow(denied), / DROPPED \(POLICY_DENIED\) INGRESS HTTP \w+ \S+ 403 node2$/);
});
