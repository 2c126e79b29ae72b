import test from 'ava';
import { loadScenario } from '../../harness/scenario/load.js';
import { buildCluster, describeCluster, addr, podBlockBits } from '../../harness/topology/graph.js';
import { kubeProxyRules, chainNames } from '../../harness/dataplanes/mesh/kube-proxy.js';
import { LAB_OBJECT_RE } from '../../harness/util/host.js';

const inLabRange = (ip: string) => {
  const [a, b] = ip.split('.').map(Number);
  return a === 198 && (b === 18 || b === 19);
};

test('quick: client on node1, echo backend on node2, VIP in the lab range', (t) => {
  const c = buildCluster(loadScenario('scenarios/quick.yaml'), 'mbtest');
  t.is(c.client.node, 'node1');
  t.is(c.services[0].backends[0].node, 'node2');
  t.is(c.services[0].vip, '198.18.64.1');
  t.regex(describeCluster(c), /svc default\/echo 198\.18\.64\.1:80 → 198\.19\.2\.2:8080/);
});

test('100 × 10: every name carries the prefix, links fit in 15 characters, addresses stay in 198.18.0.0/15 and are unique', (t) => {
  const s = loadScenario('scenarios/quick.yaml');
  s.topology = { ...s.topology, nodes: 100, podsPerNode: 10 };
  const c = buildCluster(s, 'mbtest');
  t.is(c.nodes.length, 100);
  t.is(c.pods.length, 100 * 10 + 2);
  const netns = [c.fabricNetns, ...c.nodes.map((n) => n.netns), ...c.pods.map((p) => p.netns)];
  t.is(new Set(netns).size, netns.length);
  for (const n of netns) t.regex(n, LAB_OBJECT_RE);
  const links = [c.bridge, ...c.pods.flatMap((p) => [p.hostIf, p.podIf]), 'mbtest-u100', 'mbtest-ul'];
  for (const l of links) {
    t.regex(l, LAB_OBJECT_RE);
    t.true(l.length <= 15, l);
  }
  const ips = [...c.nodes.map((n) => n.underlayIp), ...c.pods.map((p) => p.ip), ...c.services.map((s) => s.vip)];
  t.is(new Set(ips).size, ips.length);
  for (const ip of [...ips, ...c.nodes.map((n) => n.gatewayIp)]) t.true(inLabRange(ip), ip);
});

test('replicas spread round-robin over the placement; selectors pick up matching pods of other services', (t) => {
  const s = loadScenario('test/fixtures/scenarios/ok-inline.yaml');
  const c = buildCluster(s, 'mbtest');
  t.deepEqual(
    c.services[0].backends.map((b) => b.node),
    ['node1', 'node2', 'node3'],
  );
  t.deepEqual(
    c.services[1].backends.map((b) => b.node),
    ['node3'],
  );

  s.services = [
    { ...s.services[0], name: 'web', replicas: 1, selector: { app: 'web' }, labels: { version: 'v1' } },
    { ...s.services[0], name: 'web-v2', replicas: 1, selector: { app: 'web', version: 'v2' }, labels: { version: 'v2' } },
  ];
  const c2 = buildCluster(s, 'mbtest');
  t.deepEqual(c2.services[0].backends.map((b) => b.name).sort(), ['web-0', 'web-v2-0']);
  t.deepEqual(
    c2.services[1].backends.map((b) => b.name),
    ['web-v2-0'],
  );
});

test('VIPs count up through the service range', (t) => {
  t.is(addr.vip(1), '198.18.64.1');
  t.is(addr.vip(256), '198.18.65.0');
});

test('kube-proxy rules: prefixed chains, random choice with 1/n probabilities, DNAT to every endpoint, hairpin masquerade', (t) => {
  const s = loadScenario('test/fixtures/scenarios/ok-inline.yaml');
  const c = buildCluster(s, 'mbtest');
  const rules = kubeProxyRules(c);
  const n = chainNames('mbtest');
  t.regex(rules, /^\*nat\n/);
  t.regex(rules, /COMMIT\n$/);
  t.true(rules.includes(`-A PREROUTING -m comment --comment "meshbench service portals" -j MBTEST-SERVICES`));
  const web = c.services[0];
  t.true(rules.includes(`-A MBTEST-SERVICES -d ${web.vip}/32 -p tcp -m comment --comment "default/web:80 cluster IP" -m tcp --dport 80 -j ${n.svc(web)}`));
  const picks = rules.split('\n').filter((l) => l.startsWith(`-A ${n.svc(web)} `));
  t.is(picks.length, 3);
  t.regex(picks[0], /--probability 0\.3333333333 /);
  t.regex(picks[1], /--probability 0\.5000000000 /);
  t.notRegex(picks[2], /statistic/);
  for (const b of web.backends) {
    t.true(rules.includes(`-j DNAT --to-destination ${b.ip}:8080`));
    t.true(rules.includes(`-A ${n.sep(web, b.ip)} -s ${b.ip}/32 -m comment --comment "default/web:80" -j MBTEST-MARK-MASQ`));
  }
  // Every chain declared once, every chain name within iptables' 28 characters.
  const declared = rules
    .split('\n')
    .filter((l) => l.startsWith(':'))
    .map((l) => l.slice(1).split(' ')[0]);
  t.is(new Set(declared).size, declared.length);
  for (const ch of declared) t.true(ch.length <= 28 && ch.startsWith('MBTEST-'), ch);
});

test('one-replica services without placement spread over the nodes', (t) => {
  const s = loadScenario('scenarios/quick.yaml');
  s.topology = { ...s.topology, nodes: 5 };
  s.services = Array.from({ length: 500 }, (_, i) => ({
    name: `svc-${i}`,
    namespace: 'default',
    port: 80,
    targetPort: 8080,
    protocol: 'http' as const,
    replicas: 1,
  }));
  const c = buildCluster(s, 'mbtest');
  for (const n of c.nodes) t.true(n.pods.length >= 100 && n.pods.length <= 101, `${n.name}: ${n.pods.length}`);
});

test('pod blocks: /24 per node up to 250 pods, a larger block when one node holds more, an error when the range runs out', (t) => {
  t.is(podBlockBits(250, 250), 24);
  t.is(podBlockBits(251, 2), 23);
  t.is(podBlockBits(1000, 2), 22);
  t.throws(() => podBlockBits(500, 200), {
    message: /200 node\(s\) with up to 500 pods each do not fit the pod range 198\.19\.0\.0\/16 \(a \/23 per node leaves room for 127 nodes\)/,
  });
  const s = loadScenario('scenarios/quick.yaml');
  s.topology = { ...s.topology, nodes: ['node1', 'node2'], podsPerNode: 240 }; // node2: 240 idle + 64 backends
  s.services = [{ name: 'many', namespace: 'default', port: 80, targetPort: 8080, protocol: 'http', replicas: 64, nodes: ['node2'] }];
  s.workloads = [{ ...s.workloads[0], chain: ['many'] }];
  const c = buildCluster(s, 'mbtst1');
  t.is(c.podBlockBits, 23);
  t.deepEqual(
    c.nodes.map((n) => [n.podCidr, n.gatewayIp]),
    [
      ['198.19.2.0/23', '198.19.2.1'],
      ['198.19.4.0/23', '198.19.4.1'],
    ],
  );
  const ips = c.pods.map((p) => p.ip);
  t.is(new Set(ips).size, ips.length);
  const n2 = c.nodes[1].pods;
  t.is(n2.at(-1)!.ip, `198.19.${4 + ((n2.length + 1) >> 8)}.${(n2.length + 1) & 255}`);
  t.is(addr.infraPod(23, 2, 0), '198.19.5.254', 'infrastructure pods at the block end');
  t.is(addr.infraPod(24, 2, 1), '198.19.2.253');
});
