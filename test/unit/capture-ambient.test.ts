// The Istio Ambient in-pod capture model against (1) the upstream goldens under
// test/fixtures/capture/ambient-inpod*.golden (istio/istio cni/pkg/iptables/testdata, byte for
// byte), (2) the documented Istio Ambient (istio-cni) facts, encoded below as expected data per table and
// chain, in order, and (3) the lab's uid variant: the proxy exclusion on locally generated traffic
// is `-m owner --uid-owner`, everything else is upstream's.
import test from 'ava';
import { golden } from '../helpers.js';
import {
  AMBIENT_CONNMARK,
  AMBIENT_MARK,
  AMBIENT_MARKS,
  AMBIENT_PORTS,
  AMBIENT_ROUTING,
  ambientInpodRules,
  ambientTables,
  describeCapture,
  diffAmbientAgainstSave,
  rulesByChain,
} from '../../harness/dataplanes/mesh/capture/index.js';
import { type describeAmbientCapture, payloadTables } from '../../harness/dataplanes/mesh/capture/ambient.js';

/** table → chain → rules, in order. */
type Expected = Record<string, Record<string, string[]>>;

function byTable(payload: string): Expected {
  const out: Expected = {};
  for (const [t, tr] of ambientTables(payload)) out[t] = Object.fromEntries(rulesByChain(tr.rules));
  return out;
}

// ---- Istio Ambient (istio-cni), the documented facts, as data (upstream default: DNS capture on) ------------------
// mark 0x539/0xfff (1337) identifies ztunnel's sockets; nat ISTIO_PRERT: not to 127.0.0.1, not to
// 15008, not marked → REDIRECT 15006; nat ISTIO_OUTPUT: unmarked tcp not to 127.0.0.1 → REDIRECT
// 15001; connmark 0x111 keeps replies local (mangle set/restore, ip rule fwmark → table 100).
const M = '0x539/0xfff';
const C = '0x111/0xfff';
const EXPECTED: Expected = {
  mangle: {
    PREROUTING: ['-A PREROUTING -j ISTIO_PRERT'],
    OUTPUT: ['-A OUTPUT -j ISTIO_OUTPUT'],
    ISTIO_PRERT: [`-A ISTIO_PRERT -m mark --mark ${M} -j CONNMARK --set-xmark ${C}`],
    ISTIO_OUTPUT: [`-A ISTIO_OUTPUT -m connmark --mark ${C} -j CONNMARK --restore-mark --nfmask 0xffffffff --ctmask 0xffffffff`],
  },
  nat: {
    OUTPUT: ['-A OUTPUT -j ISTIO_OUTPUT'],
    PREROUTING: ['-A PREROUTING -j ISTIO_PRERT'],
    ISTIO_PRERT: [
      '-A ISTIO_PRERT -s 169.254.7.127 -p tcp -m tcp -j ACCEPT',
      `-A ISTIO_PRERT ! -d 127.0.0.1/32 -p tcp ! --dport 15008 -m mark ! --mark ${M} -j REDIRECT --to-ports 15006`,
    ],
    ISTIO_OUTPUT: [
      '-A ISTIO_OUTPUT -d 169.254.7.127 -p tcp -m tcp -j ACCEPT',
      `-A ISTIO_OUTPUT ! -o lo -p udp -m mark ! --mark ${M} -m udp --dport 53 -j REDIRECT --to-port 15053`,
      `-A ISTIO_OUTPUT ! -d 127.0.0.1/32 -p tcp --dport 53 -m mark ! --mark ${M} -j REDIRECT --to-ports 15053`,
      `-A ISTIO_OUTPUT -p tcp -m mark --mark ${C} -j ACCEPT`,
      '-A ISTIO_OUTPUT ! -d 127.0.0.1/32 -o lo -j ACCEPT',
      `-A ISTIO_OUTPUT ! -d 127.0.0.1/32 -p tcp -m mark ! --mark ${M} -j REDIRECT --to-ports 15001`,
    ],
  },
  raw: {
    PREROUTING: ['-A PREROUTING -j ISTIO_PRERT'],
    OUTPUT: ['-A OUTPUT -j ISTIO_OUTPUT'],
    ISTIO_OUTPUT: [`-A ISTIO_OUTPUT -p udp -m mark --mark ${M} -m udp --dport 53 -j CT --zone 1`],
    ISTIO_PRERT: [`-A ISTIO_PRERT -p udp -m mark ! --mark ${M} -m udp --sport 53 -j CT --zone 1`],
  },
};
const ROUTING = ['route replace local 0.0.0.0/0 dev lo scope host table 100', 'rule add fwmark 0x111/0xfff pref 32764 lookup 100'];

/** The lab's uid-1337 variant: exactly these four rules differ from upstream, in place. */
const UID_SWAPS: [string, string, string][] = [
  ['nat', EXPECTED.nat.ISTIO_OUTPUT[1], '-A ISTIO_OUTPUT ! -o lo -p udp -m owner ! --uid-owner 1337 -m udp --dport 53 -j REDIRECT --to-port 15053'],
  ['nat', EXPECTED.nat.ISTIO_OUTPUT[2], '-A ISTIO_OUTPUT ! -d 127.0.0.1/32 -p tcp --dport 53 -m owner ! --uid-owner 1337 -j REDIRECT --to-ports 15053'],
  ['nat', EXPECTED.nat.ISTIO_OUTPUT[5], '-A ISTIO_OUTPUT ! -d 127.0.0.1/32 -p tcp -m owner ! --uid-owner 1337 -j REDIRECT --to-ports 15001'],
  ['raw', EXPECTED.raw.ISTIO_OUTPUT[0], '-A ISTIO_OUTPUT -p udp -m owner --uid-owner 1337 -m udp --dport 53 -j CT --zone 1'],
];

test('ambient: constants are the upstream ones (cni/pkg/config/config.go)', (t) => {
  t.is(AMBIENT_MARKS.inpodMark, 1337);
  t.is(AMBIENT_MARK, '0x539/0xfff');
  t.is(AMBIENT_CONNMARK, '0x111/0xfff');
  t.deepEqual({ ...AMBIENT_PORTS }, { outbound: 15001, inboundPlain: 15006, inboundTunnel: 15008, dns: 15053 });
  t.deepEqual({ ...AMBIENT_ROUTING }, { table: 100, rulePriority: 32764 });
});

test('ambient: default payload is upstream default.golden byte for byte (tables, -N order, rule order across chains)', (t) => {
  t.is(ambientInpodRules().iptables, golden('ambient-inpod.golden'));
  t.is(ambientInpodRules({ exclude: { mark: true } }).iptables, golden('ambient-inpod.golden'));
  t.deepEqual(payloadTables(ambientInpodRules().iptables), ['mangle', 'nat', 'raw']);
});

test('ambient: dnsCapture false is upstream dns_pod_disabled_and_on_globally.golden byte for byte', (t) => {
  const p = ambientInpodRules({ dnsCapture: false }).iptables;
  t.is(p, golden('ambient-inpod-nodns.golden'));
  t.false(p.includes('* raw'));
  t.false(p.includes('15053'));
});

test('ambient: rules per table and chain, in order, are exactly the documented facts', (t) => {
  const r = ambientInpodRules();
  t.deepEqual(byTable(r.iptables), EXPECTED);
  t.deepEqual(r.ipRoute, ROUTING);
  // The facts one by one, as documented.
  const nat = byTable(r.iptables).nat;
  t.regex(nat.ISTIO_PRERT.at(-1)!, /! -d 127\.0\.0\.1\/32 -p tcp ! --dport 15008 -m mark ! --mark 0x539\/0xfff -j REDIRECT --to-ports 15006$/);
  t.regex(nat.ISTIO_OUTPUT.at(-1)!, /! -d 127\.0\.0\.1\/32 -p tcp -m mark ! --mark 0x539\/0xfff -j REDIRECT --to-ports 15001$/);
  t.is(parseInt(AMBIENT_MARK.split('/')[0], 16), 1337);
});

test('ambient: chains declared per table in order of first use (raw: ISTIO_OUTPUT first)', (t) => {
  const tables = ambientTables(ambientInpodRules().iptables);
  t.deepEqual(tables.get('mangle')!.chains, ['ISTIO_PRERT', 'ISTIO_OUTPUT']);
  t.deepEqual(tables.get('nat')!.chains, ['ISTIO_PRERT', 'ISTIO_OUTPUT']);
  t.deepEqual(tables.get('raw')!.chains, ['ISTIO_OUTPUT', 'ISTIO_PRERT']);
});

test('ambient uid variant: OUTPUT exclusion by --uid-owner in place of the mark, PREROUTING and connmark rules unchanged', (t) => {
  const up = ambientInpodRules().iptables;
  const lab = ambientInpodRules({ exclude: { uid: 1337 } });
  t.is(lab.iptables, golden('ambient-inpod-uid1337.golden'));
  t.deepEqual(lab.ipRoute, ROUTING, 'routing is the same');

  // Same number of rules, same order: the upstream payload with the four rules swapped in place.
  let want = up;
  for (const [, from, to] of UID_SWAPS) {
    t.true(want.includes(from), from);
    want = want.replace(from, to);
  }
  t.is(lab.iptables, want);

  const got = byTable(lab.iptables);
  // Locally generated traffic (OUTPUT hooks): the proxy's mark is never consulted …
  for (const tbl of ['nat', 'raw']) {
    for (const r of [...got[tbl].OUTPUT, ...got[tbl].ISTIO_OUTPUT]) t.false(r.includes(AMBIENT_MARK), `${tbl}: ${r}`);
  }
  // … and the 15001 REDIRECT excludes by owner.
  t.is(got.nat.ISTIO_OUTPUT.at(-1), '-A ISTIO_OUTPUT ! -d 127.0.0.1/32 -p tcp -m owner ! --uid-owner 1337 -j REDIRECT --to-ports 15001');
  t.is(got.nat.ISTIO_OUTPUT.filter((r) => r.includes('--uid-owner 1337')).length, 3);
  t.deepEqual(got.raw.ISTIO_OUTPUT, [UID_SWAPS[3][2]]);
  // PREROUTING (arriving packets) keeps upstream's mark logic; the 0x111 connmark path is unchanged.
  t.deepEqual(got.nat.ISTIO_PRERT, EXPECTED.nat.ISTIO_PRERT);
  t.deepEqual(got.raw.ISTIO_PRERT, EXPECTED.raw.ISTIO_PRERT);
  t.deepEqual(got.mangle, EXPECTED.mangle);
  t.true(got.nat.ISTIO_OUTPUT.includes(`-A ISTIO_OUTPUT -p tcp -m mark --mark ${C} -j ACCEPT`));

  // Another uid moves only the owner matches.
  const other = ambientInpodRules({ exclude: { uid: 2000 } }).iptables;
  t.is(other, lab.iptables.replaceAll('--uid-owner 1337', '--uid-owner 2000'));
  // Without DNS capture only the 15001 rule changes.
  const nodns = ambientInpodRules({ exclude: { uid: 1337 }, dnsCapture: false }).iptables;
  t.is(nodns, golden('ambient-inpod-nodns.golden').replace(UID_SWAPS[2][1], UID_SWAPS[2][2]));
});

test('ambient: options move ports; bad values are refused', (t) => {
  const p = byTable(ambientInpodRules({ outboundPort: 16001, inboundPlainPort: 16006, inboundTunnelPort: 16008 }).iptables);
  t.is(p.nat.ISTIO_OUTPUT.at(-1), `-A ISTIO_OUTPUT ! -d 127.0.0.1/32 -p tcp -m mark ! --mark ${M} -j REDIRECT --to-ports 16001`);
  t.is(p.nat.ISTIO_PRERT.at(-1), `-A ISTIO_PRERT ! -d 127.0.0.1/32 -p tcp ! --dport 16008 -m mark ! --mark ${M} -j REDIRECT --to-ports 16006`);
  t.throws(() => ambientInpodRules({ outboundPort: 70000 }), { instanceOf: RangeError });
  t.throws(() => ambientInpodRules({ exclude: { uid: -1 } }), { instanceOf: RangeError });
  t.throws(() => ambientInpodRules({ exclude: { uid: 1.5 } }), { instanceOf: RangeError });
  t.throws(() => ambientInpodRules({ exclude: { mark: false } as never }), { instanceOf: RangeError });
});

// What iptables-save (1.8.9, nf_tables) printed for the default payload in a scratch namespace:
// tables in the kernel's order, chains sorted, -m tcp and /32 added, --to-port listed as --to-ports.
const SAVE = `# Generated by iptables-save v1.8.9 (nf_tables)
*mangle
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:ISTIO_OUTPUT - [0:0]
:ISTIO_PRERT - [0:0]
-A PREROUTING -j ISTIO_PRERT
-A OUTPUT -j ISTIO_OUTPUT
-A ISTIO_OUTPUT -m connmark --mark 0x111/0xfff -j CONNMARK --restore-mark --nfmask 0xffffffff --ctmask 0xffffffff
-A ISTIO_PRERT -m mark --mark 0x539/0xfff -j CONNMARK --set-xmark 0x111/0xfff
COMMIT
*raw
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:ISTIO_OUTPUT - [0:0]
:ISTIO_PRERT - [0:0]
-A PREROUTING -j ISTIO_PRERT
-A OUTPUT -j ISTIO_OUTPUT
-A ISTIO_OUTPUT -p udp -m mark --mark 0x539/0xfff -m udp --dport 53 -j CT --zone 1
-A ISTIO_PRERT -p udp -m mark ! --mark 0x539/0xfff -m udp --sport 53 -j CT --zone 1
COMMIT
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:ISTIO_OUTPUT - [0:0]
:ISTIO_PRERT - [0:0]
-A PREROUTING -j ISTIO_PRERT
-A OUTPUT -j ISTIO_OUTPUT
-A ISTIO_OUTPUT -d 169.254.7.127/32 -p tcp -m tcp -j ACCEPT
-A ISTIO_OUTPUT ! -o lo -p udp -m mark ! --mark 0x539/0xfff -m udp --dport 53 -j REDIRECT --to-ports 15053
-A ISTIO_OUTPUT ! -d 127.0.0.1/32 -p tcp -m tcp --dport 53 -m mark ! --mark 0x539/0xfff -j REDIRECT --to-ports 15053
-A ISTIO_OUTPUT -p tcp -m mark --mark 0x111/0xfff -j ACCEPT
-A ISTIO_OUTPUT ! -d 127.0.0.1/32 -o lo -j ACCEPT
-A ISTIO_OUTPUT ! -d 127.0.0.1/32 -p tcp -m mark ! --mark 0x539/0xfff -j REDIRECT --to-ports 15001
-A ISTIO_PRERT -s 169.254.7.127/32 -p tcp -m tcp -j ACCEPT
-A ISTIO_PRERT ! -d 127.0.0.1/32 -p tcp -m tcp ! --dport 15008 -m mark ! --mark 0x539/0xfff -j REDIRECT --to-ports 15006
COMMIT
`;

test('diffAmbientAgainstSave: the kernel listing of the default payload matches; the uid variant does not', (t) => {
  t.deepEqual(diffAmbientAgainstSave(ambientInpodRules().iptables, SAVE), []);
  const d = diffAmbientAgainstSave(ambientInpodRules({ exclude: { uid: 1337 } }).iptables, SAVE);
  t.is(d.length, 4, d.join('\n'));
  t.true(
    d.every((x) => /^(nat|raw): ISTIO_OUTPUT rule \d+: want /.test(x)),
    d.join('\n'),
  );
  // A table missing from the listing is reported under its name.
  const noRaw = SAVE.slice(0, SAVE.indexOf('*raw')) + SAVE.slice(SAVE.indexOf('*nat'));
  t.true(diffAmbientAgainstSave(ambientInpodRules().iptables, noRaw).some((x) => x.startsWith('raw: chain ISTIO_OUTPUT missing')));
});

test('ambient: every dropped or reordered rule is caught (against the facts, the golden and the kernel listing)', (t) => {
  const payload = ambientInpodRules().iptables;
  const lines = payload.split('\n');
  const ruleIdx = lines.map((l, i) => (/^-A /.test(l) ? i : -1)).filter((i) => i >= 0);
  const tableOf = (i: number) =>
    lines
      .slice(0, i)
      .filter((l) => l.startsWith('* '))
      .at(-1)!;
  const ms: { what: string; payload: string }[] = ruleIdx.map((i) => ({
    what: `drop ${tableOf(i)} ${lines[i]}`,
    payload: lines.filter((_, j) => j !== i).join('\n'),
  }));
  const byChain = new Map<string, number[]>();
  for (const i of ruleIdx) {
    const k = `${tableOf(i)} ${lines[i].split(' ')[1]}`;
    byChain.set(k, [...(byChain.get(k) ?? []), i]);
  }
  for (const idx of byChain.values())
    for (let k = 0; k + 1 < idx.length; k++) {
      const m = [...lines];
      [m[idx[k]], m[idx[k + 1]]] = [m[idx[k + 1]], m[idx[k]]];
      ms.push({ what: `swap ${lines[idx[k]]} / ${lines[idx[k + 1]]}`, payload: m.join('\n') });
    }
  t.is(ms.length, 18 + 1 + 5, 'one drop per rule; neighbouring swaps: nat ISTIO_PRERT 1, nat ISTIO_OUTPUT 5');
  for (const m of ms) {
    t.notDeepEqual(byTable(m.payload), EXPECTED, m.what);
    t.not(m.payload, golden('ambient-inpod.golden'), m.what);
    t.not(diffAmbientAgainstSave(payload, m.payload).length, 0, `diffAmbientAgainstSave: ${m.what}`);
  }
});

// ---- Run record ----------------------------------------------------------------------------------

test("describeCapture('ambient'): tables, hooks, ports, mark exclusion, routing", async (t) => {
  const d = await describeCapture('ambient', { iptablesVersion: 'iptables v1.8.9 (nf_tables)' });
  t.is(d.mechanism, 'iptables REDIRECT (nf_tables backend)');
  t.regex(d.model, /^Istio Ambient in-pod capture/);
  t.regex(d.upstreamInvocation, /CreateInpodRules/);
  t.is(d.rules, 18);
  t.deepEqual(d.chains, ['mangle/ISTIO_PRERT', 'mangle/ISTIO_OUTPUT', 'nat/ISTIO_PRERT', 'nat/ISTIO_OUTPUT', 'raw/ISTIO_OUTPUT', 'raw/ISTIO_PRERT']);
  t.deepEqual(d.hooks, [
    '-t mangle -A PREROUTING -j ISTIO_PRERT',
    '-t mangle -A OUTPUT -j ISTIO_OUTPUT',
    '-t nat -A OUTPUT -j ISTIO_OUTPUT',
    '-t nat -A PREROUTING -j ISTIO_PRERT',
    '-t raw -A PREROUTING -j ISTIO_PRERT',
    '-t raw -A OUTPUT -j ISTIO_OUTPUT',
  ]);
  t.deepEqual(d.ports, { outbound: 15001, inbound: 15006, tunnel: 15008, dns: 15053 });
  t.is(d.excluded.mark, '0x539/0xfff');
  t.is(d.excluded.uid, undefined);
  t.deepEqual(d.excluded.inboundPorts, ['15008']);
  const a = d as Awaited<ReturnType<typeof describeAmbientCapture>>;
  t.deepEqual(a.tables, ['mangle', 'nat', 'raw']);
  t.deepEqual(a.routing, ROUTING);
  t.deepEqual(a.deviations, []);
  t.true(d.leftOut.some((x) => x.startsWith('IPv6')));
  t.true(d.leftOut.some((x) => /TPROXY/.test(x)));
});

test("describeCapture('ambient' with uid exclusion): the deviation is on the record", async (t) => {
  const d = await describeCapture({ kind: 'ambient', opts: { exclude: { uid: 1337 }, dnsCapture: false } }, { iptablesVersion: 'iptables v1.8.7 (legacy)' });
  t.is(d.mechanism, 'iptables REDIRECT (legacy backend)');
  t.is(d.excluded.uid, 1337);
  t.is(d.excluded.mark, undefined);
  t.regex(d.model, /excluded by uid 1337 instead of mark 0x539/);
  t.is(d.rules, 12);
  t.deepEqual(d.ports, { outbound: 15001, inbound: 15006, tunnel: 15008 });
  const a = d as Awaited<ReturnType<typeof describeAmbientCapture>>;
  t.is(a.deviations.length, 2);
  t.regex(a.deviations[0], /--uid-owner 1337\) instead of mark 0x539\/0xfff in nat ISTIO_OUTPUT \(the 15001 REDIRECT\): /);
  t.regex(a.deviations[1], /PREROUTING rules keep upstream's mark/);
  for (const dv of a.deviations) t.true(d.excluded.notes.includes(dv));
  t.true(d.leftOut.some((x) => x.startsWith('DNS capture')));
});
