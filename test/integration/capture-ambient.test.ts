// The Istio Ambient in-pod capture in a real kernel: installed with iptables-restore and ip -batch
// inside a scratch pod namespace (mbcamb-p0), listed back by iptables-save / ip rule / ip route,
// then exercised with TCP connections made inside that namespace only. As in capture.test.ts, the
// namespace has lo and a veth pair whose both ends stay in it; 198.18.200.9 plays a Service VIP,
// reachable on-link through eth0 with a static neighbour entry, so a SYN that is not redirected
// leaves eth0, arrives at eth0p with a foreign MAC and is dropped: nothing leaves the namespace.
//
// What local traffic cannot show: the nat PREROUTING rule (inbound plaintext → 15006). A connection
// made inside the namespace gets its NAT binding in nat OUTPUT, and nat is not consulted again
// when its packets come back in through lo. Its rule is checked in the listing and its counter
// must stay at zero. The mangle PREROUTING connmark rule *is* exercised: a marked socket's packets
// to the pod's own address loop through lo's PREROUTING.
//
// Marked and transparent sockets (SO_MARK 1337, IP_TRANSPARENT) need a language with setsockopt;
// those cases run /usr/bin/python3 and are skipped, with the reason, when it is missing.
import test from 'ava';
import { existsSync } from 'node:fs';
import { rootTest, labNetns } from '../helpers.js';
import { scratchPod, type Listener } from '../scratch-pod.js';
import { exec } from '../../harness/util/exec.js';
import { sweep } from '../../harness/topology/cleanup.js';
import {
  ambientInpodRules,
  ambientTables,
  applyAmbientCapture,
  canonicalRule,
  describeCapture,
  diffAmbientAgainstSave,
  parseCounters,
  rulesByChain,
  verifyAmbientCapture,
} from '../../harness/dataplanes/mesh/capture/index.js';

const PREFIX = 'mbcamb';
const NS = `${PREFIX}-p0`;
const POD_IP = '198.18.200.1';
const VIP = '198.18.200.9';
/** A client address that is not the pod's: what a proxy delivering transparently would use. */
const SPOOFED = '198.18.200.50';
const NODE = process.execPath;
const PY = '/usr/bin/python3';
const HAVE_PY = existsSync(PY);
const CONNECT_TIMEOUT_MS = 1500;
const PROXY_UID = 1337;

const { podUp, listen, stop, eth0TxPackets } = scratchPod(PREFIX, NS, POD_IP, VIP);

const NODE_CLIENT = `
const net = require('net');
const [host, port] = process.argv.slice(1);
const s = net.connect({ host, port: Number(port) });
let buf = '';
const done = (r) => { console.log(JSON.stringify(r)); process.exit(0); };
const timer = setTimeout(() => done({ error: 'timeout' }), ${CONNECT_TIMEOUT_MS});
s.on('data', (d) => (buf += d));
s.on('end', () => { clearTimeout(timer); done({ landed: Number(buf.trim()) }); });
s.on('error', (e) => { clearTimeout(timer); done({ error: e.code }); });`;

// The same client with SO_MARK (36) and, given a source address, IP_TRANSPARENT (19) + bind.
const PY_CLIENT = `
import json, socket, sys
host, port, mark, src = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
if mark:
    s.setsockopt(socket.SOL_SOCKET, 36, mark)
if src:
    s.setsockopt(socket.SOL_IP, 19, 1)
    s.bind((src, 0))
s.settimeout(${CONNECT_TIMEOUT_MS / 1000})
try:
    s.connect((host, port))
    buf = b''
    while True:
        d = s.recv(100)
        if not d:
            break
        buf += d
    print(json.dumps({'landed': int(buf.decode().strip())}))
except socket.timeout:
    print(json.dumps({'error': 'timeout'}))
except OSError as e:
    print(json.dumps({'error': 'errno %s' % e.errno}))
`;

interface Case {
  what: string;
  uid: number;
  host: string;
  port: number;
  /** SO_MARK on the client socket (python client). */
  mark?: number;
  /** Bind this non-local source with IP_TRANSPARENT (python client, CAP_NET_ADMIN kept). */
  spoof?: string;
  /** Port the connection must land on, or null: must not connect (left on eth0, unanswered). */
  lands: number | null;
  /** The address the listener must see the connection from. */
  remote?: string;
}

/** One TCP connection from inside the pod as uid (setpriv; gid = uid; no supplementary groups). */
async function connect(c: Case): Promise<{ landed?: number; error?: string }> {
  const py = c.mark !== undefined || c.spoof !== undefined;
  const client = py
    ? [PY, '-I', '-c', PY_CLIENT, c.host, String(c.port), String(c.mark ?? 0), c.spoof ?? '']
    : [NODE, '-e', NODE_CLIENT, c.host, String(c.port)];
  const caps = c.spoof && c.uid !== 0 ? ['--inh-caps=+net_admin', '--ambient-caps=+net_admin'] : [];
  const r = await exec('setpriv', [`--reuid=${c.uid}`, `--regid=${c.uid}`, '--clear-groups', ...caps, ...client], { netns: NS, timeoutMs: 10_000 });
  return JSON.parse(r.stdout.trim().split('\n').pop()!);
}

async function runCases(t: import('ava').ExecutionContext, l: Listener, cases: Case[]): Promise<void> {
  for (const c of cases) {
    const before = { seen: l.seen.length, tx: await eth0TxPackets() };
    const r = await connect(c);
    const tx = (await eth0TxPackets()) - before.tx;
    if (c.lands === null) {
      t.deepEqual(r, { error: 'timeout' }, `${c.what}: not captured, so nothing answers`);
      t.is(l.seen.length, before.seen, `${c.what}: no listener accepted it`);
      t.true(tx >= 1, `${c.what}: it left through eth0 (tx +${tx})`);
    } else {
      t.deepEqual(r, { landed: c.lands }, `${c.what}: lands on :${c.lands}`);
      t.is(l.seen.length, before.seen + 1, c.what);
      t.is(l.seen.at(-1)!.port, c.lands, c.what);
      if (c.remote) t.is(l.seen.at(-1)!.remote, c.remote, `${c.what}: seen from ${c.remote}`);
      t.is(tx, 0, `${c.what}: nothing left through eth0`);
    }
  }
}

/** Packet counters of every table, keyed by "table: canonical rule". */
async function counters(): Promise<Map<string, number>> {
  const save = (await exec('iptables-save', ['-c'], { netns: NS })).stdout;
  const out = new Map<string, number>();
  for (const table of ambientTables(save).keys()) for (const c of parseCounters(save, table)) out.set(`${table}: ${canonicalRule(c.rule)}`, c.packets);
  return out;
}

/** iptables-save of every table, counters and comments removed. */
async function listing(): Promise<string> {
  const r = await exec('iptables-save', [], { netns: NS });
  return r.stdout
    .split('\n')
    .filter((l) => l && !l.startsWith('#'))
    .map((l) => l.replace(/\s*\[\d+:\d+\]$/, '').replace(/^\[\d+:\d+\]\s+/, ''))
    .join('\n');
}

async function routing(): Promise<{ rules: string[]; table100: string[] }> {
  const lines = async (args: string[]) =>
    (await exec('ip', args, { netns: NS })).stdout
      .split('\n')
      .map((l) => l.trimEnd())
      .filter(Boolean);
  return { rules: await lines(['rule', 'show']), table100: await lines(['route', 'show', 'table', '100']) };
}

rootTest('ambient in-pod capture, node proxy excluded by uid: installed as generated, app → 15001, uid 1337 not redirected', async (t) => {
  t.timeout(120_000);
  const rules = ambientInpodRules({ exclude: { uid: PROXY_UID } });
  let l: Listener | undefined;
  try {
    await podUp();
    t.deepEqual(await applyAmbientCapture(NS, rules), { applied: true, rules: 18, routes: 2, bytes: Buffer.byteLength(rules.iptables) });
    t.deepEqual(
      await applyAmbientCapture(NS, rules),
      { applied: false, rules: 18, routes: 0, bytes: Buffer.byteLength(rules.iptables) },
      'same rules again: nothing to do',
    );
    await t.throwsAsync(applyAmbientCapture(NS, ambientInpodRules()), { message: /already has capture chains mangle\/ISTIO_PRERT/ });

    // The listing: every table, chain and rule in order, in iptables-save's spelling.
    const save = await listing();
    t.deepEqual(await verifyAmbientCapture(NS, rules), []);
    t.deepEqual(diffAmbientAgainstSave(rules.iptables, save), []);
    const got = Object.fromEntries([...ambientTables(save)].map(([tb, tr]) => [tb, Object.fromEntries(rulesByChain(tr.rules))]));
    t.deepEqual(got.nat, {
      PREROUTING: ['-A PREROUTING -j ISTIO_PRERT'],
      OUTPUT: ['-A OUTPUT -j ISTIO_OUTPUT'],
      ISTIO_OUTPUT: [
        '-A ISTIO_OUTPUT -d 169.254.7.127/32 -p tcp -m tcp -j ACCEPT',
        '-A ISTIO_OUTPUT ! -o lo -p udp -m owner ! --uid-owner 1337 -m udp --dport 53 -j REDIRECT --to-ports 15053',
        '-A ISTIO_OUTPUT ! -d 127.0.0.1/32 -p tcp -m tcp --dport 53 -m owner ! --uid-owner 1337 -j REDIRECT --to-ports 15053',
        '-A ISTIO_OUTPUT -p tcp -m mark --mark 0x111/0xfff -j ACCEPT',
        '-A ISTIO_OUTPUT ! -d 127.0.0.1/32 -o lo -j ACCEPT',
        '-A ISTIO_OUTPUT ! -d 127.0.0.1/32 -p tcp -m owner ! --uid-owner 1337 -j REDIRECT --to-ports 15001',
      ],
      ISTIO_PRERT: [
        '-A ISTIO_PRERT -s 169.254.7.127/32 -p tcp -m tcp -j ACCEPT',
        '-A ISTIO_PRERT ! -d 127.0.0.1/32 -p tcp -m tcp ! --dport 15008 -m mark ! --mark 0x539/0xfff -j REDIRECT --to-ports 15006',
      ],
    });
    t.deepEqual(got.mangle, {
      PREROUTING: ['-A PREROUTING -j ISTIO_PRERT'],
      OUTPUT: ['-A OUTPUT -j ISTIO_OUTPUT'],
      ISTIO_OUTPUT: ['-A ISTIO_OUTPUT -m connmark --mark 0x111/0xfff -j CONNMARK --restore-mark --nfmask 0xffffffff --ctmask 0xffffffff'],
      ISTIO_PRERT: ['-A ISTIO_PRERT -m mark --mark 0x539/0xfff -j CONNMARK --set-xmark 0x111/0xfff'],
    });
    t.deepEqual(got.raw, {
      PREROUTING: ['-A PREROUTING -j ISTIO_PRERT'],
      OUTPUT: ['-A OUTPUT -j ISTIO_OUTPUT'],
      ISTIO_OUTPUT: ['-A ISTIO_OUTPUT -p udp -m owner --uid-owner 1337 -m udp --dport 53 -j CT --zone 1'],
      ISTIO_PRERT: ['-A ISTIO_PRERT -p udp -m mark ! --mark 0x539/0xfff -m udp --sport 53 -j CT --zone 1'],
    });
    const rt = await routing();
    t.true(rt.rules.includes('32764:\tfrom all fwmark 0x111/0xfff lookup 100'), rt.rules.join('\n'));
    t.deepEqual(rt.table100, ['local default dev lo scope host']);

    l = await listen([15001, 15006, 15008, 15053, 8080]);
    const cases: Case[] = [
      { what: 'app (uid 1000) → VIP:80', uid: 1000, host: VIP, port: 80, lands: 15001 },
      { what: 'node proxy (uid 1337) → VIP:80', uid: PROXY_UID, host: VIP, port: 80, lands: null },
      { what: 'app → VIP:53 over TCP (DNS capture)', uid: 1000, host: VIP, port: 53, lands: 15053 },
      { what: 'node proxy → VIP:53', uid: PROXY_UID, host: VIP, port: 53, lands: null },
      { what: 'app → VIP:15008 (15008 is exempt inbound only)', uid: 1000, host: VIP, port: 15008, lands: 15001 },
      { what: 'app → own pod IP:8080 (-o lo)', uid: 1000, host: POD_IP, port: 8080, lands: 8080 },
      { what: 'node proxy → own pod IP:8080', uid: PROXY_UID, host: POD_IP, port: 8080, lands: 8080, remote: POD_IP },
      { what: 'app → 127.0.0.1:8080', uid: 1000, host: '127.0.0.1', port: 8080, lands: 8080 },
    ];
    // What the uid exclusion cannot do: without mark 0x539 the connmark is never set, so the app's
    // reply to a transparent (spoofed-source) delivery follows the main table out of eth0.
    if (HAVE_PY)
      cases.push({ what: `node proxy, transparent from ${SPOOFED} → own pod IP:8080`, uid: PROXY_UID, host: POD_IP, port: 8080, spoof: SPOOFED, lands: null });
    else t.log(`${PY} missing: transparent-delivery case skipped`);
    await runCases(t, l, cases);

    // Which rule took each connection (nat sees the first packet of a connection only).
    const n = await counters();
    const k = (table: string, r: string) => n.get(`${table}: ${canonicalRule(r)}`);
    t.is(k('nat', '-A OUTPUT -j ISTIO_OUTPUT'), cases.length);
    t.is(k('nat', '-A ISTIO_OUTPUT ! -d 127.0.0.1/32 -p tcp -m owner ! --uid-owner 1337 -j REDIRECT --to-ports 15001'), 2);
    t.is(k('nat', '-A ISTIO_OUTPUT ! -d 127.0.0.1/32 -p tcp --dport 53 -m owner ! --uid-owner 1337 -j REDIRECT --to-ports 15053'), 1);
    t.is(k('nat', '-A ISTIO_OUTPUT ! -d 127.0.0.1/32 -o lo -j ACCEPT'), HAVE_PY ? 3 : 2);
    t.is(k('nat', '-A ISTIO_OUTPUT -p tcp -m mark --mark 0x111/0xfff -j ACCEPT'), 0);
    t.is(k('nat', '-A ISTIO_OUTPUT -d 169.254.7.127 -p tcp -m tcp -j ACCEPT'), 0);
    t.is(k('nat', '-A PREROUTING -j ISTIO_PRERT'), 0, 'local connections never consult nat PREROUTING');
    t.is(k('mangle', '-A ISTIO_PRERT -m mark --mark 0x539/0xfff -j CONNMARK --set-xmark 0x111/0xfff'), 0, 'no packet carried mark 0x539');
    t.is(k('mangle', '-A ISTIO_OUTPUT -m connmark --mark 0x111/0xfff -j CONNMARK --restore-mark --nfmask 0xffffffff --ctmask 0xffffffff'), 0);

    const d = await describeCapture({ kind: 'ambient', opts: { exclude: { uid: PROXY_UID } } });
    t.regex(d.mechanism, /^iptables REDIRECT \((nf_tables|legacy) backend\)$/);
    t.is(d.excluded.uid, PROXY_UID);
  } finally {
    stop(l);
    await sweep(PREFIX);
  }
  t.deepEqual(
    (await labNetns()).filter((x) => x.startsWith(`${PREFIX}-`)),
    [],
  );
});

/** rootTest that also needs python3 (SO_MARK / IP_TRANSPARENT sockets); skipped, with the reason in its title, without it. */
const pyRootTest: typeof rootTest = HAVE_PY
  ? rootTest
  : (((title: string, ...rest: unknown[]) => (test.skip as any)(`${title} (skipped: needs ${PY} for SO_MARK / IP_TRANSPARENT sockets)`, ...rest)) as any);

pyRootTest('ambient in-pod capture, upstream mark exclusion: mark 0x539 not redirected, connmark 0x111 keeps transparent replies local', async (t) => {
  t.timeout(120_000);
  const rules = ambientInpodRules();
  let l: Listener | undefined;
  try {
    await podUp();
    t.true((await applyAmbientCapture(NS, rules)).applied);
    t.deepEqual(diffAmbientAgainstSave(rules.iptables, await listing()), []);

    l = await listen([15001, 15006, 15008, 15053, 8080]);
    await runCases(t, l, [
      { what: 'socket marked 1337 → VIP:80', uid: 0, mark: 1337, host: VIP, port: 80, lands: null },
      { what: 'unmarked socket (root) → VIP:80', uid: 0, mark: 0, host: VIP, port: 80, lands: 15001 },
      { what: 'uid 1337 without the mark → VIP:80 (the mark, not the uid, is what upstream excludes)', uid: PROXY_UID, host: VIP, port: 80, lands: 15001 },
      { what: 'socket marked 1337 → VIP:53', uid: 0, mark: 1337, host: VIP, port: 53, lands: null },
      {
        what: `marked, transparent from ${SPOOFED} → own pod IP:8080 (ztunnel's inbound delivery)`,
        uid: 0,
        mark: 1337,
        spoof: SPOOFED,
        host: POD_IP,
        port: 8080,
        lands: 8080,
        remote: SPOOFED,
      },
    ]);

    const n = await counters();
    const k = (table: string, r: string) => n.get(`${table}: ${canonicalRule(r)}`) ?? -1;
    t.is(k('nat', '-A ISTIO_OUTPUT ! -d 127.0.0.1/32 -p tcp -m mark ! --mark 0x539/0xfff -j REDIRECT --to-ports 15001'), 2);
    t.is(k('nat', '-A ISTIO_OUTPUT ! -d 127.0.0.1/32 -o lo -j ACCEPT'), 1);
    // Only the SYN still carries 0x539 in PREROUTING: from then on mangle OUTPUT restores 0x111 over it.
    t.is(
      k('mangle', '-A ISTIO_PRERT -m mark --mark 0x539/0xfff -j CONNMARK --set-xmark 0x111/0xfff'),
      1,
      'the marked connection was connmarked as its SYN looped through lo',
    );
    t.true(
      k('mangle', '-A ISTIO_OUTPUT -m connmark --mark 0x111/0xfff -j CONNMARK --restore-mark --nfmask 0xffffffff --ctmask 0xffffffff') >= 1,
      "the app's reply got mark 0x111 back",
    );
    t.is(k('nat', '-A PREROUTING -j ISTIO_PRERT'), 0);
  } finally {
    stop(l);
    await sweep(PREFIX);
  }
  t.deepEqual(
    (await labNetns()).filter((x) => x.startsWith(`${PREFIX}-`)),
    [],
  );
});
