// The capture models against (1) the rule lists the projects document (istio-iptables, linkerd2-proxy-init), encoded below as
// expected data per chain and in order, and (2) golden payloads under test/fixtures/capture/
// taken or derived from the upstream tools' own goldens and tests. Every comparison is ordered, and
// a mutation test proves that dropping or reordering any single rule is caught.
import test from 'ava';
import { golden } from '../helpers.js';
import {
  BUILTIN_CHAINS,
  canonicalRule,
  captureChains,
  captureRules,
  describeCapture,
  diffAgainstSave,
  iptablesBackend,
  istioSidecarRules,
  linkerdProxyInitRules,
  multiportDestinations,
  parseCounters,
  parseTable,
  rulesByChain,
  tokenize,
} from '../../harness/dataplanes/mesh/capture/index.js';

// ---- Istio sidecar (classic), the documented rules, as data -------------------------------------------
// nat: PREROUTING -p tcp -j ISTIO_INBOUND; ISTIO_INBOUND RETURNs 15008, 15090, 15021, 15020, else
// ISTIO_IN_REDIRECT = REDIRECT --to-ports 15006. OUTPUT -j ISTIO_OUTPUT: RETURN -o lo -s
// 127.0.0.6/32; loopback from uid 1337 to a non-127.0.0.1 address → ISTIO_IN_REDIRECT; RETURN
// other lo traffic not from 1337; RETURN --uid-owner 1337 (and gid 1337); RETURN -d 127.0.0.1/32;
// else ISTIO_REDIRECT = REDIRECT --to-ports 15001.
const ISTIO_EXPECTED: Record<string, string[]> = {
  PREROUTING: ['-A PREROUTING -p tcp -j ISTIO_INBOUND'],
  OUTPUT: ['-A OUTPUT -j ISTIO_OUTPUT'],
  ISTIO_INBOUND: [
    '-A ISTIO_INBOUND -p tcp --dport 15008 -j RETURN',
    '-A ISTIO_INBOUND -p tcp --dport 15090 -j RETURN',
    '-A ISTIO_INBOUND -p tcp --dport 15021 -j RETURN',
    '-A ISTIO_INBOUND -p tcp --dport 15020 -j RETURN',
    '-A ISTIO_INBOUND -p tcp -j ISTIO_IN_REDIRECT',
  ],
  ISTIO_IN_REDIRECT: ['-A ISTIO_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006'],
  ISTIO_REDIRECT: ['-A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports 15001'],
  ISTIO_OUTPUT: [
    '-A ISTIO_OUTPUT -o lo -s 127.0.0.6/32 -j RETURN',
    '-A ISTIO_OUTPUT -o lo ! -d 127.0.0.1/32 -p tcp ! --dport 15008 -m owner --uid-owner 1337 -j ISTIO_IN_REDIRECT',
    '-A ISTIO_OUTPUT -o lo -m owner ! --uid-owner 1337 -j RETURN',
    '-A ISTIO_OUTPUT -m owner --uid-owner 1337 -j RETURN',
    '-A ISTIO_OUTPUT -o lo ! -d 127.0.0.1/32 -p tcp ! --dport 15008 -m owner --gid-owner 1337 -j ISTIO_IN_REDIRECT',
    '-A ISTIO_OUTPUT -o lo -m owner ! --gid-owner 1337 -j RETURN',
    '-A ISTIO_OUTPUT -m owner --gid-owner 1337 -j RETURN',
    '-A ISTIO_OUTPUT -d 127.0.0.1/32 -j RETURN',
    '-A ISTIO_OUTPUT -j ISTIO_REDIRECT',
  ],
};
const ISTIO_CHAINS = ['ISTIO_INBOUND', 'ISTIO_REDIRECT', 'ISTIO_IN_REDIRECT', 'ISTIO_OUTPUT'];

// ---- Linkerd, the documented rules, as data -------------------------------------------------------------
// PROXY_INIT_REDIRECT (RETURN 4190,4191,4567,4568; else REDIRECT --to-port 4143) from PREROUTING;
// PROXY_INIT_OUTPUT (RETURN --uid-owner 2102; RETURN -o lo; RETURN 4567,4568; else
// REDIRECT --to-port 4140) from OUTPUT. Comments are proxy-init's own (pkg/iptables/iptables.go).
const c = (what: string) => `-m comment --comment "proxy-init/${what}"`;
const LINKERD_EXPECTED: Record<string, string[]> = {
  PREROUTING: [`-A PREROUTING ${c('install-proxy-init-prerouting')} -j PROXY_INIT_REDIRECT`],
  OUTPUT: [`-A OUTPUT ${c('install-proxy-init-output')} -j PROXY_INIT_OUTPUT`],
  PROXY_INIT_REDIRECT: [
    `-A PROXY_INIT_REDIRECT -p tcp -m multiport --dports 4190,4191,4567,4568 ${c('ignore-port-4190,4191,4567,4568')} -j RETURN`,
    `-A PROXY_INIT_REDIRECT -p tcp ${c('redirect-all-incoming-to-proxy-port')} -j REDIRECT --to-ports 4143`,
  ],
  PROXY_INIT_OUTPUT: [
    `-A PROXY_INIT_OUTPUT -m owner --uid-owner 2102 ${c('ignore-proxy-user-id')} -j RETURN`,
    `-A PROXY_INIT_OUTPUT -o lo ${c('ignore-loopback')} -j RETURN`,
    `-A PROXY_INIT_OUTPUT -p tcp -m multiport --dports 4567,4568 ${c('ignore-port-4567,4568')} -j RETURN`,
    `-A PROXY_INIT_OUTPUT -p tcp ${c('redirect-all-outgoing-to-proxy-port')} -j REDIRECT --to-ports 4140`,
  ],
};
const LINKERD_CHAINS = ['PROXY_INIT_REDIRECT', 'PROXY_INIT_OUTPUT'];

/** Problems between a payload and the expected per-chain rule lists (ordered, exact). */
function checkAgainst(expected: Record<string, string[]>, chains: string[], payload: string): string[] {
  const problems: string[] = [];
  const t = parseTable(payload);
  if (JSON.stringify(t.chains) !== JSON.stringify(chains)) problems.push(`chains ${t.chains.join(',')} != ${chains.join(',')}`);
  const by = rulesByChain(t.rules);
  for (const ch of new Set([...Object.keys(expected), ...by.keys()])) {
    const want = expected[ch] ?? [];
    const have = by.get(ch) ?? [];
    if (JSON.stringify(have) !== JSON.stringify(want)) problems.push(`${ch}: have\n  ${have.join('\n  ')}\nwant\n  ${want.join('\n  ')}`);
  }
  return problems;
}

/** Every payload with exactly one rule dropped, and with one pair of neighbouring rules in a chain swapped. */
function mutations(payload: string): { what: string; payload: string }[] {
  const lines = payload.split('\n');
  const ruleIdx = lines.map((l, i) => (/^-A /.test(l) ? i : -1)).filter((i) => i >= 0);
  const out: { what: string; payload: string }[] = [];
  for (const i of ruleIdx) out.push({ what: `drop ${lines[i]}`, payload: lines.filter((_, j) => j !== i).join('\n') });
  const byChain = new Map<string, number[]>();
  for (const i of ruleIdx) {
    const ch = lines[i].split(' ')[1];
    byChain.set(ch, [...(byChain.get(ch) ?? []), i]);
  }
  for (const idx of byChain.values())
    for (let k = 0; k + 1 < idx.length; k++) {
      const m = [...lines];
      [m[idx[k]], m[idx[k + 1]]] = [m[idx[k + 1]], m[idx[k]]];
      out.push({ what: `swap ${lines[idx[k]]} / ${lines[idx[k + 1]]}`, payload: m.join('\n') });
    }
  return out;
}

// ---- Istio -------------------------------------------------------------------------------------------

test('istio: rules per chain, in order, are exactly the documented list', (t) => {
  t.deepEqual(checkAgainst(ISTIO_EXPECTED, ISTIO_CHAINS, istioSidecarRules()), []);
  t.deepEqual(captureChains(istioSidecarRules()), ISTIO_CHAINS);
});

test('istio: default payload equals the golden derived from upstream (whole payload, rule order across chains)', (t) => {
  t.is(istioSidecarRules(), golden('istio-sidecar.golden'));
});

test('istio: bare `-p 15001 -z 15006 -u 1337 -m REDIRECT` reproduces upstream empty.golden byte for byte', (t) => {
  t.is(istioSidecarRules({ captureInbound: false, captureOutbound: false }), golden('istio-empty.golden'));
});

test('istio: -b "*" without -d reproduces upstream inbound-ports-wildcard.golden byte for byte', (t) => {
  t.is(istioSidecarRules({ captureOutbound: false, excludeInboundPorts: [] }), golden('istio-inbound-ports-wildcard.golden'));
});

test('istio: the documented-list check catches every dropped or reordered rule', (t) => {
  const ms = mutations(istioSidecarRules());
  t.is(ms.length, captureRules(istioSidecarRules()).length + 4 + 8, 'one drop per rule, one swap per neighbouring pair (ISTIO_INBOUND 4, ISTIO_OUTPUT 8)');
  for (const m of ms) {
    t.not(checkAgainst(ISTIO_EXPECTED, ISTIO_CHAINS, m.payload).length, 0, m.what);
    t.not(m.payload, golden('istio-sidecar.golden'), m.what);
    t.not(diffAgainstSave(istioSidecarRules(), m.payload).length, 0, `diffAgainstSave: ${m.what}`);
  }
});

test('istio: options move ports, ids and exclusions', (t) => {
  const p = istioSidecarRules({ proxyUid: 1500, proxyGid: 1600, outboundPort: 16001, inboundPort: 16006, excludeInboundPorts: [9000] });
  const by = rulesByChain(parseTable(p).rules);
  t.deepEqual(by.get('ISTIO_INBOUND'), [
    '-A ISTIO_INBOUND -p tcp --dport 15008 -j RETURN',
    '-A ISTIO_INBOUND -p tcp --dport 9000 -j RETURN',
    '-A ISTIO_INBOUND -p tcp -j ISTIO_IN_REDIRECT',
  ]);
  t.deepEqual(by.get('ISTIO_REDIRECT'), ['-A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports 16001']);
  t.deepEqual(by.get('ISTIO_IN_REDIRECT'), ['-A ISTIO_IN_REDIRECT -p tcp -j REDIRECT --to-ports 16006']);
  t.true(by.get('ISTIO_OUTPUT')!.includes('-A ISTIO_OUTPUT -m owner --uid-owner 1500 -j RETURN'));
  t.true(by.get('ISTIO_OUTPUT')!.includes('-A ISTIO_OUTPUT -m owner --gid-owner 1600 -j RETURN'));
  t.false(p.includes('1337'));
  // -g defaults to -u, as istio-iptables does.
  t.true(istioSidecarRules({ proxyUid: 1500 }).includes('-A ISTIO_OUTPUT -m owner --gid-owner 1500 -j RETURN'));
  t.throws(() => istioSidecarRules({ outboundPort: 70000 }), { instanceOf: RangeError });
  t.throws(() => istioSidecarRules({ proxyUid: -1 }), { instanceOf: RangeError });
});

// ---- Linkerd -----------------------------------------------------------------------------------------

test('linkerd: rules per chain, in order, are exactly the documented list', (t) => {
  t.deepEqual(checkAgainst(LINKERD_EXPECTED, LINKERD_CHAINS, linkerdProxyInitRules()), []);
  t.deepEqual(captureChains(linkerdProxyInitRules()), LINKERD_CHAINS);
});

test('linkerd: default payload equals the golden derived from proxy-init (command order)', (t) => {
  t.is(linkerdProxyInitRules(), golden('linkerd-proxy-init.golden'));
});

test('linkerd: the documented-list check catches every dropped or reordered rule', (t) => {
  const ms = mutations(linkerdProxyInitRules());
  t.is(ms.length, 8 + 1 + 3);
  for (const m of ms) {
    t.not(checkAgainst(LINKERD_EXPECTED, LINKERD_CHAINS, m.payload).length, 0, m.what);
    t.not(m.payload, golden('linkerd-proxy-init.golden'), m.what);
  }
});

// pkg/iptables/iptables_test.go (TestAddIncomingTrafficRules / TestAddOutgoingTrafficRules, "no
// existing rules"): the commands proxy-init runs, as argv. Our rules must be the same rules.
test('linkerd: same rules as proxy-init unit tests expect (argv spelling vs iptables-save spelling)', (t) => {
  const upstreamOut = [
    '-A PROXY_INIT_OUTPUT -o lo -j RETURN -m comment --comment proxy-init/ignore-loopback',
    '-A PROXY_INIT_OUTPUT -p tcp -j REDIRECT --to-port 1234 -m comment --comment proxy-init/redirect-all-outgoing-to-proxy-port',
    '-A OUTPUT -j PROXY_INIT_OUTPUT -m comment --comment proxy-init/install-proxy-init-output',
  ];
  const upstreamIn = [
    '-A PROXY_INIT_REDIRECT -p tcp --match multiport --dports 1234 -j RETURN -m comment --comment proxy-init/ignore-port-1234',
    // (the test leaves Mode unset, so no REDIRECT rule; the CLI always sets redirect-all)
    '-A PREROUTING -j PROXY_INIT_REDIRECT -m comment --comment proxy-init/install-proxy-init-prerouting',
  ];
  const ours = captureRules(linkerdProxyInitRules({ proxyUid: 0, outboundPort: 1234, inboundPortsToIgnore: ['1234'], outboundPortsToIgnore: [] }));
  const keys = ours.map(canonicalRule);
  t.deepEqual(
    keys.filter((k) => /^(PROXY_INIT_OUTPUT|OUTPUT):/.test(k)),
    upstreamOut.map(canonicalRule),
  );
  t.deepEqual(
    keys.filter((k) => /^(PROXY_INIT_REDIRECT|PREROUTING):/.test(k) && !k.includes('redirect-all-incoming')),
    upstreamIn.map(canonicalRule),
  );
  // The sample iptables-save listing in the same test file, written exactly as we write rules.
  const sample = [
    '-A PREROUTING -m comment --comment "proxy-init/install-proxy-init-prerouting" -j PROXY_INIT_REDIRECT',
    '-A OUTPUT -m comment --comment "proxy-init/install-proxy-init-output" -j PROXY_INIT_OUTPUT',
    '-A PROXY_INIT_OUTPUT -o lo -m comment --comment "proxy-init/ignore-loopback" -j RETURN',
    '-A PROXY_INIT_OUTPUT -p tcp -m comment --comment "proxy-init/redirect-all-outgoing-to-proxy-port" -j REDIRECT --to-ports 1234',
    '-A PROXY_INIT_REDIRECT -p tcp -m multiport --dports 1234 -m comment --comment "proxy-init/ignore-port-1234" -j RETURN',
  ];
  for (const s of sample) t.true(ours.includes(s), s);
});

test('linkerd: multiport packing follows makeMultiportDestinations (15 references, a range counts 2)', (t) => {
  t.deepEqual(multiportDestinations([]), []);
  t.deepEqual(multiportDestinations(['22', '25-27', '33']), [['22', '25:27', '33']]);
  t.deepEqual(multiportDestinations(['22-22', '25-27', '33']), [['22', '25:27', '33']]);
  t.deepEqual(multiportDestinations(['22-23', '25-27', '33-34', '35-35', '37-38', '50-54', '56-57', '60-63']), [
    ['22:23', '25:27', '33:34', '35', '37:38', '50:54', '56:57', '60:63'],
  ]);
  t.deepEqual(multiportDestinations(['22-23', '25-27', '33-34', '35-35', '37-38', '50-54', '56', '58', '60', '63', '70-72']), [
    ['22:23', '25:27', '33:34', '35', '37:38', '50:54', '56', '58', '60', '63'],
    ['70:72'],
  ]);
  // proxy-init logs and skips these; the lab refuses them.
  t.throws(() => multiportDestinations(['not-a-number']), { instanceOf: RangeError });
  t.throws(() => multiportDestinations(['30-20']), { instanceOf: RangeError });
  const many = linkerdProxyInitRules({ inboundPortsToIgnore: Array.from({ length: 16 }, (_, i) => 5000 + i) });
  t.is(captureRules(many).filter((r) => r.includes('PROXY_INIT_REDIRECT -p tcp -m multiport')).length, 2);
});

test('linkerd: gid, subnets and listed ports follow proxy-init', (t) => {
  const by = rulesByChain(captureRules(linkerdProxyInitRules({ proxyGid: 2103, subnetsToIgnore: ['10.0.0.0/8'], portsToRedirect: [8080] })));
  t.deepEqual(by.get('PROXY_INIT_OUTPUT')!.slice(0, 2), [
    `-A PROXY_INIT_OUTPUT -m owner --uid-owner 2102 ${c('ignore-proxy-user-id')} -j RETURN`,
    `-A PROXY_INIT_OUTPUT -m owner --gid-owner 2103 ${c('ignore-proxy-group-id')} -j RETURN`,
  ]);
  t.deepEqual(by.get('PROXY_INIT_REDIRECT')!.slice(1), [
    `-A PROXY_INIT_REDIRECT -s 10.0.0.0/8 ${c('ignore-subnet-10.0.0.0/8')} -j RETURN`,
    `-A PROXY_INIT_REDIRECT -p tcp -m tcp --dport 8080 ${c('redirect-port-8080-to-proxy-port')} -j REDIRECT --to-ports 4143`,
  ]);
  t.false(linkerdProxyInitRules().includes('--gid-owner'), 'chart default proxy.gid -1: no gid rule');
});

// ---- Rule text -------------------------------------------------------------------------------------

test('canonicalRule: payload spelling and iptables-save spelling of one rule agree; different rules do not', (t) => {
  const pairs: [string, string][] = [
    [
      '-A ISTIO_OUTPUT -o lo ! -d 127.0.0.1/32 -p tcp ! --dport 15008 -m owner --uid-owner 1337 -j ISTIO_IN_REDIRECT',
      '-A ISTIO_OUTPUT ! -d 127.0.0.1/32 -o lo -p tcp -m tcp ! --dport 15008 -m owner --uid-owner 1337 -j ISTIO_IN_REDIRECT',
    ],
    ['-A ISTIO_INBOUND -p tcp --dport 15008 -j RETURN', '-A ISTIO_INBOUND -p tcp -m tcp --dport 15008 -j RETURN'],
    ['-A ISTIO_OUTPUT -o lo -s 127.0.0.6/32 -j RETURN', '-A ISTIO_OUTPUT -s 127.0.0.6/32 -o lo -j RETURN'],
    [
      '-A PROXY_INIT_OUTPUT -p tcp -j REDIRECT --to-port 4140 -m comment --comment proxy-init/redirect-all-outgoing-to-proxy-port',
      '-A PROXY_INIT_OUTPUT -p tcp -m comment --comment "proxy-init/redirect-all-outgoing-to-proxy-port" -j REDIRECT --to-ports 4140',
    ],
    ['-A X -p all -j RETURN -s 10.0.0.0/8', '-A X -s 10.0.0.0/8 -j RETURN'],
  ];
  for (const [a, b] of pairs) t.is(canonicalRule(a), canonicalRule(b), a);
  t.not(
    canonicalRule('-A ISTIO_OUTPUT -o lo -m owner ! --uid-owner 1337 -j RETURN'),
    canonicalRule('-A ISTIO_OUTPUT -o lo -m owner --uid-owner 1337 -j RETURN'),
  );
  t.not(canonicalRule('-A ISTIO_OUTPUT -o lo ! -d 127.0.0.1/32 -j RETURN'), canonicalRule('-A ISTIO_OUTPUT -o lo -d 127.0.0.1/32 -j RETURN'));
  t.not(canonicalRule('-A ISTIO_OUTPUT -j RETURN'), canonicalRule('-A ISTIO_INBOUND -j RETURN'));
  t.deepEqual(tokenize('-A X -m comment --comment "a b \\" c" -j RETURN'), ['-A', 'X', '-m', 'comment', '--comment', 'a b " c', '-j', 'RETURN']);
});

test('diffAgainstSave: an iptables-save listing of the payload (other rules around it, counters) matches', (t) => {
  const save = [
    '# Generated by iptables-save v1.8.9 (nf_tables)',
    '*filter',
    ':INPUT ACCEPT [0:0]',
    '-A INPUT -j ACCEPT',
    'COMMIT',
    '*nat',
    ':PREROUTING ACCEPT [3:180]',
    ':INPUT ACCEPT [0:0]',
    ':OUTPUT ACCEPT [0:0]',
    ':POSTROUTING ACCEPT [0:0]',
    ':PROXY_INIT_OUTPUT - [0:0]',
    ':PROXY_INIT_REDIRECT - [0:0]',
    '[0:0] -A PREROUTING -s 198.18.0.0/15 -j RETURN',
    '[5:300] -A PREROUTING -m comment --comment "proxy-init/install-proxy-init-prerouting" -j PROXY_INIT_REDIRECT',
    '[1:60] -A OUTPUT -m comment --comment "proxy-init/install-proxy-init-output" -j PROXY_INIT_OUTPUT',
    ...LINKERD_EXPECTED.PROXY_INIT_OUTPUT.map((r) => `[0:0] ${r}`),
    ...LINKERD_EXPECTED.PROXY_INIT_REDIRECT.map((r) => `[0:0] ${r}`),
    'COMMIT',
  ].join('\n');
  t.deepEqual(diffAgainstSave(linkerdProxyInitRules(), save), []);
  t.deepEqual(parseTable(save).chains, ['PROXY_INIT_OUTPUT', 'PROXY_INIT_REDIRECT']);
  t.is(parseCounters(save).find((r) => r.rule.startsWith('-A PREROUTING -m comment'))!.packets, 5);
  t.not(diffAgainstSave(istioSidecarRules(), save).length, 0);
  t.true(BUILTIN_CHAINS.has('OUTPUT'));
});

// ---- Run record ------------------------------------------------------------------------------------

test('describeCapture: mechanism from the iptables backend, ports and excluded ids per model', async (t) => {
  const nft = await describeCapture('istio-sidecar', { iptablesVersion: 'iptables v1.8.9 (nf_tables)' });
  t.is(nft.mechanism, 'iptables REDIRECT (nf_tables backend)');
  t.deepEqual(nft.ports, { outbound: 15001, inbound: 15006, tunnel: 15008 });
  t.is(nft.excluded.uid, 1337);
  t.is(nft.excluded.gid, 1337);
  t.deepEqual(nft.excluded.inboundPorts, ['15008', '15090', '15021', '15020']);
  t.deepEqual(nft.chains, ISTIO_CHAINS);
  t.deepEqual(nft.hooks, [...ISTIO_EXPECTED.PREROUTING, ...ISTIO_EXPECTED.OUTPUT]);
  t.is(nft.rules, 18);
  t.regex(nft.upstreamInvocation, /-m REDIRECT -i '\*' -x '' -b '\*' -d 15090,15021,15020$/);
  t.is(nft.family, 'IPv4');

  const legacy = await describeCapture({ kind: 'linkerd' }, { iptablesVersion: 'iptables v1.8.7 (legacy)' });
  t.is(legacy.mechanism, 'iptables REDIRECT (legacy backend)');
  t.deepEqual(legacy.ports, { outbound: 4140, inbound: 4143, admin: 4191, control: 4190 });
  t.is(legacy.excluded.uid, 2102);
  t.is(legacy.excluded.gid, undefined);
  t.deepEqual(legacy.excluded.inboundPorts, ['4190', '4191', '4567', '4568']);
  t.deepEqual(legacy.excluded.outboundPorts, ['4567', '4568']);
  t.is(legacy.rules, 8);

  t.is((await describeCapture('istio', { iptablesVersion: 'iptables v1.8.9 (nf_tables)' })).model, nft.model, "'istio' names the same model");
  t.is(iptablesBackend('iptables v1.6.1'), 'legacy');
});
