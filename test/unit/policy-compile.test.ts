// Endpoint policy compilation: the per-pod plans of policy/model.ts (compileIngress /
// compileEgress) and the eBPF policy-map entries built from them (ebpf/identity.ts
// endpointPolicy), on the ebpf-policy fixture scenario (cnp-production.yaml) plus small inline
// policies. The entries are also read back the way bpf/lxc.c reads the map (policy_lookup: exact
// peer and port, any peer, any port, any peer and port) and held against the model's verdicts.
import test from 'ava';
import { loadScenario } from '../../harness/scenario/load.js';
import { PolicySchema, type Policy, type PolicyInput } from '../../harness/scenario/policy-schema.js';
import { buildCluster, type Cluster, type PodSpec } from '../../harness/topology/graph.js';
import { dataplaneChecks } from '../../harness/dataplanes/registry.js';
import { readCiliumPolicies } from '../../harness/dataplanes/mesh/policy/cnp.js';
import { compileEgress, compileIngress, egressVerdict, ingressVerdict, type Verdict } from '../../harness/dataplanes/mesh/policy/model.js';
import {
  allocateIdentities,
  endpointPolicy,
  RESERVED,
  type EndpointPolicy,
  type Identities,
  type PolicyEntry,
} from '../../harness/dataplanes/ebpf/identity.js';

const scenario = loadScenario('test/fixtures/scenarios/ebpf-policy.yaml', { dataplanes: dataplaneChecks, readPolicyFile: readCiliumPolicies });
const cluster: Cluster = buildCluster(scenario, 'mbpcu');
const ids: Identities = allocateIdentities(cluster);
const FIXTURE = scenario.policies;
const TCP = 6;

const pod = (name: string): PodSpec => {
  const p = cluster.pods.find((x) => x.name === name) ?? (cluster.client.name === name ? cluster.client : undefined);
  if (!p) throw new Error(`no pod ${name}`);
  return p;
};
const id = (name: string) => ids.byPod.get(pod(name).name)!;
const pol = (p: PolicyInput): Policy => PolicySchema.parse(p);
const sortEntries = (e: PolicyEntry[]) => [...e].sort((a, b) => Number(a.egress) - Number(b.egress) || a.port - b.port || a.peer - b.peer);

/** bpf/lxc.c judge() + policy_lookup() over endpointPolicy's entries, for one TCP connection. */
function bpfVerdict(ep: EndpointPolicy, egress: boolean, peer: number, port: number): Pick<Verdict, 'allowed' | 'reason'> & { l7?: boolean } {
  if (!(egress ? ep.egressEnforced : ep.ingressEnforced)) return { allowed: true, reason: 'no-policy' };
  const find = (p: number, dport: number, proto: number) =>
    ep.entries.find((e) => e.egress === egress && e.peer === p && e.port === dport && e.proto === proto);
  const e = find(peer, port, TCP) ?? find(0, port, TCP) ?? find(peer, 0, 0) ?? find(0, 0, 0);
  if (!e || e.deny) return { allowed: false, reason: 'denied-l4' };
  if (e.authRequired) return { allowed: false, reason: 'auth-required' };
  return { allowed: true, reason: 'allowed', l7: !!e.l7 };
}

/** Every (peer, port) of the cluster, plus an unknown peer (world) and a port no rule names: BPF entries and model verdicts agree. */
function agreeWithModel(t: import('ava').ExecutionContext, policies: Policy[], ports: number[], lab = { cluster, ids }) {
  const { cluster: c, ids: idsOf } = lab;
  const peers: (PodSpec | undefined)[] = [...c.pods, undefined];
  let checked = 0;
  for (const self of c.pods) {
    const ep = endpointPolicy(policies, self, c, idsOf);
    for (const peer of peers)
      for (const port of [...ports, 1234]) {
        const peerId = peer ? idsOf.byPod.get(peer.name)! : RESERVED.world;
        for (const egress of [false, true]) {
          const m = (egress ? egressVerdict : ingressVerdict)(policies, self, peer, port, undefined, { authenticated: false });
          const b = bpfVerdict(ep, egress, peerId, port);
          const what = `${self.name} ${egress ? '→' : '←'} ${peer?.name ?? 'world'}:${port}`;
          t.is(b.reason, m.reason, what);
          if (m.allowed && m.reason === 'allowed') t.is(b.l7, !!m.l7, `${what} l7`);
          checked++;
        }
      }
  }
  return checked;
}

test('no policy selects a pod: not enforced, no entries, every peer and port allowed', (t) => {
  for (const p of cluster.pods) {
    t.deepEqual(compileIngress([], p, cluster), { enforced: false, ports: [] });
    t.deepEqual(compileEgress([], p, cluster), { enforced: false, ports: [] });
    t.deepEqual(endpointPolicy([], p, cluster, ids), { ingressEnforced: false, egressEnforced: false, entries: [] });
  }
  // In the fixture, database is selected by nothing: same as no policy at all.
  t.deepEqual(endpointPolicy(FIXTURE, pod('database-0'), cluster, ids), { ingressEnforced: false, egressEnforced: false, entries: [] });
  t.true(agreeWithModel(t, [], [8080]) > 0);
});

test('a selecting policy turns the pod default-deny for that direction only; other namespaces and labels are untouched', (t) => {
  const policies = [
    pol({ name: 'lockdown', namespace: 'production', selector: { app: 'echo' }, ingress: [] }),
    pol({ name: 'elsewhere', namespace: 'staging', selector: { app: 'cache' }, ingress: [] }),
  ];
  for (const name of ['echo-0', 'echo-1', 'echo-2']) {
    const ep = endpointPolicy(policies, pod(name), cluster, ids);
    t.deepEqual(ep, { ingressEnforced: true, egressEnforced: false, entries: [] }, name);
    t.deepEqual(bpfVerdict(ep, false, id('frontend'), 8080), { allowed: false, reason: 'denied-l4' });
    t.deepEqual(bpfVerdict(ep, true, id('cache-0'), 6379), { allowed: true, reason: 'no-policy' });
  }
  t.deepEqual(compileIngress(policies, pod('cache-0'), cluster), { enforced: false, ports: [] }, 'a policy of another namespace selects nothing here');
  t.true(agreeWithModel(t, policies, [8080, 6379]) > 0);
});

test('L4 ports: each port lists its peer identities, and a deny entry for any other peer stops the any-port fallback', (t) => {
  // backend-l4: 8080 and 9090 from api-gateway in; 5432 to database and 6379 to cache out.
  const be = pod('backend-service-0');
  const plan = compileIngress(FIXTURE, be, cluster);
  t.true(plan.enforced);
  t.deepEqual(
    plan.ports.map((p) => ({ port: p.port, l7: p.l7, auth: p.authRequired, from: p.sources === 'any' ? 'any' : p.sources.flatMap((s) => s.pods) })),
    [
      { port: 8080, l7: undefined, auth: false, from: ['api-gateway-0'] },
      { port: 9090, l7: undefined, auth: false, from: ['api-gateway-0'] },
    ],
  );
  const ep = endpointPolicy(FIXTURE, be, cluster, ids);
  t.like(ep, { ingressEnforced: true, egressEnforced: true });
  const gw = id('api-gateway-0');
  t.deepEqual(sortEntries(ep.entries.filter((e) => !e.egress)), [
    { port: 8080, proto: TCP, egress: false, peer: 0, deny: true },
    { port: 8080, proto: TCP, egress: false, peer: gw, authRequired: undefined, l7: undefined },
    { port: 9090, proto: TCP, egress: false, peer: 0, deny: true },
    { port: 9090, proto: TCP, egress: false, peer: gw, authRequired: undefined, l7: undefined },
  ]);
  t.like(bpfVerdict(ep, false, gw, 8080), { allowed: true });
  t.like(bpfVerdict(ep, false, id('frontend'), 8080), { allowed: false, reason: 'denied-l4' });
  t.like(bpfVerdict(ep, false, gw, 8081), { allowed: false, reason: 'denied-l4' });
});

test('L7 rules mark their port l7 (the proxy decides per request); an L4 rule on the same port lets its peers through the proxy unfiltered', (t) => {
  const api = pod('public-api-0');
  const plan = compileIngress(FIXTURE, api, cluster);
  t.is(plan.ports.length, 1);
  t.is(plan.ports[0].port, 8080);
  t.deepEqual(
    plan.ports[0].l7?.map((m) => m.method),
    ['GET', 'GET', 'POST'],
  );
  const ep = endpointPolicy(FIXTURE, api, cluster, ids);
  t.deepEqual(sortEntries(ep.entries), [
    { port: 8080, proto: TCP, egress: false, peer: 0, deny: true },
    { port: 8080, proto: TCP, egress: false, peer: id('frontend'), authRequired: undefined, l7: true },
  ]);
  const mixed = [
    ...FIXTURE,
    pol({ name: 'gw-l4', namespace: 'production', selector: { app: 'public-api' }, ingress: [{ from: [{ app: 'api-gateway' }], ports: [8080] }] }),
  ];
  const ports = compileIngress(mixed, api, cluster).ports;
  t.deepEqual(ports.find((p) => p.sources !== 'any' && p.sources[0].pods.includes('api-gateway-0'))?.l7, [{}], 'every request, but through the proxy');
  t.true(endpointPolicy(mixed, api, cluster, ids).entries.some((e) => e.peer === id('api-gateway-0') && e.port === 8080 && e.l7));
  t.true(agreeWithModel(t, mixed, [8080]) > 0);
});

// The fixture with two more namespaces: stash (labelled app: cache, as production's cache) in
// staging, and tools in default. (Service names are unique across namespaces, as the loader says.)
const wide = (() => {
  const cache = scenario.services.find((x) => x.name === 'cache')!;
  const more = [
    { ...cache, name: 'stash', namespace: 'staging', selector: { app: 'cache' } },
    { ...cache, name: 'tools', namespace: 'default' },
  ];
  const c = buildCluster({ ...scenario, services: [...scenario.services, ...more] }, 'mbpcw');
  return { cluster: c, ids: allocateIdentities(c) };
})();

test('namespaces: a policy selects pods of its own namespace; peers default to it; `namespaces` picks others; no peers = any peer', (t) => {
  const { cluster: c, ids: wids } = wide;
  const at = (name: string, ns: string) => c.pods.find((p) => p.name === name && p.namespace === ns)!;
  const wid = (name: string, ns: string) => wids.byPod.get(at(name, ns).name)!;
  const policies = [
    pol({
      name: 'cache-in',
      namespace: 'production',
      selector: { app: 'cache' },
      ingress: [{ from: [{}], ports: [6379] }, { from: [{}], namespaces: ['default'], ports: [7000] }, { ports: [7001] }],
    }),
  ];
  const prodCache = at('cache-0', 'production');
  const stagingCache = at('stash-0', 'staging');
  t.is(stagingCache.labels.app, 'cache');
  t.truthy(stagingCache && at('tools-0', 'default'), 'the wider cluster has pods outside production');
  t.deepEqual(compileIngress(policies, stagingCache, c), { enforced: false, ports: [] }, 'same labels, other namespace: not selected');
  const plan = compileIngress(policies, prodCache, c);
  const nsOf = (port: number) =>
    plan.ports.filter((p) => p.port === port).map((p) => (p.sources === 'any' ? 'any' : [...new Set(p.sources.map((s) => s.namespace))]));
  t.deepEqual(nsOf(6379), [['production']], "from: [{}] = every pod of the policy's namespace");
  t.deepEqual(nsOf(7000), [['default']], 'namespaces: [default] = the pods of default only');
  t.deepEqual(nsOf(7001), ['any']);
  const ep = endpointPolicy(policies, prodCache, c, wids);
  t.like(bpfVerdict(ep, false, wid('frontend', 'production'), 6379), { allowed: true });
  t.like(bpfVerdict(ep, false, wid('stash-0', 'staging'), 6379), { allowed: false }, 'a pod of staging is not a peer of production');
  t.like(bpfVerdict(ep, false, wid('tools-0', 'default'), 7000), { allowed: true });
  t.like(bpfVerdict(ep, false, wid('frontend', 'production'), 7000), { allowed: false });
  t.like(bpfVerdict(ep, false, RESERVED.world, 7001), { allowed: true });
  t.like(bpfVerdict(ep, false, RESERVED.world, 6379), { allowed: false });
  t.true(agreeWithModel(t, policies, [6379, 7000, 7001], wide) > 0);
});

test('egress: destinations per port, entries marked egress, auth required where a rule asks', (t) => {
  const be = pod('backend-service-0');
  const plan = compileEgress(FIXTURE, be, cluster);
  t.deepEqual(
    plan.ports.map((p) => ({ port: p.port, to: p.destinations === 'any' ? 'any' : p.destinations.flatMap((s) => s.pods) })),
    [
      { port: 5432, to: ['database-0'] },
      { port: 6379, to: ['cache-0'] },
    ],
  );
  const ep = endpointPolicy(FIXTURE, be, cluster, ids);
  t.deepEqual(
    sortEntries(ep.entries.filter((e) => e.egress && !e.deny)).map((e) => [e.port, e.peer]),
    [
      [5432, id('database-0')],
      [6379, id('cache-0')],
    ],
  );
  t.like(bpfVerdict(ep, true, id('cache-0'), 5432), { allowed: false, reason: 'denied-l4' }, 'the port is open, to the database only');
  // payment-mutual-auth: order-service → payment-service needs mutual authentication.
  const pay = endpointPolicy(FIXTURE, pod('payment-service-0'), cluster, ids);
  t.true(pay.entries.some((e) => !e.egress && e.peer === id('order-service-0') && e.port === 8080 && e.authRequired));
  t.like(bpfVerdict(pay, false, id('order-service-0'), 8080), { allowed: false, reason: 'auth-required' });
});

test("'any' port: a rule without ports is port 0 / protocol 0 in the map, and is merged into every port that has entries of its own", (t) => {
  const policies = [
    pol({
      name: 'order-in',
      namespace: 'production',
      selector: { app: 'order-service' },
      ingress: [{ from: [{ app: 'frontend' }] }, { from: [{ app: 'api-gateway' }], ports: [9000] }],
    }),
  ];
  const plan = compileIngress(policies, pod('order-service-0'), cluster);
  t.deepEqual(
    plan.ports.map((p) => [p.port, p.sources === 'any' ? 'any' : p.sources.flatMap((s) => s.pods)]),
    [
      [9000, ['frontend', 'api-gateway-0']],
      ['any', ['frontend']],
    ],
  );
  const ep = endpointPolicy(policies, pod('order-service-0'), cluster, ids);
  const plain = { authRequired: undefined, l7: undefined };
  t.deepEqual(
    sortEntries(ep.entries),
    sortEntries([
      { port: 0, proto: 0, egress: false, peer: id('frontend'), ...plain },
      { port: 9000, proto: TCP, egress: false, peer: 0, deny: true },
      { port: 9000, proto: TCP, egress: false, peer: id('frontend'), ...plain },
      { port: 9000, proto: TCP, egress: false, peer: id('api-gateway-0'), ...plain },
    ]),
  );
  t.like(bpfVerdict(ep, false, id('frontend'), 8080), { allowed: true }, 'any port');
  t.like(bpfVerdict(ep, false, id('frontend'), 9000), { allowed: true }, 'the portless rule holds on 9000 too');
  t.like(bpfVerdict(ep, false, id('api-gateway-0'), 9000), { allowed: true });
  t.like(bpfVerdict(ep, false, id('api-gateway-0'), 8080), { allowed: false }, 'api-gateway only on 9000');
  t.like(bpfVerdict(ep, false, id('echo-0'), 9000), { allowed: false }, "9000's deny entry stops the fallback to port 0");
  t.true(agreeWithModel(t, policies, [8080, 9000]) > 0);
});

test('the fixture policies: BPF entries and model verdicts agree for every pod, peer, port and direction', (t) => {
  t.true(agreeWithModel(t, FIXTURE, [8080, 9090, 5432, 6379]) > 1000);
});
