// The capture payloads in a real kernel: installed with iptables-restore inside a scratch pod
// namespace (mbcapt-p0), listed back by iptables-save, then exercised with TCP connections made
// inside that namespace only. The namespace has lo and a veth pair whose both ends stay in it;
// 198.18.200.9 plays a Service VIP, reachable on-link through eth0 with a static neighbour entry,
// so a SYN that is not redirected leaves eth0, arrives at eth0p with a foreign MAC and is dropped:
// nothing ever leaves the namespace.
//
// What local traffic cannot show: the PREROUTING (inbound) rules. A connection made inside the
// namespace gets its NAT binding in nat OUTPUT; when its packets come back in through lo's
// PREROUTING the binding exists and the nat table is not consulted again. The inbound chains are
// checked in the listing (rule by rule, in order) and their counters must stay at zero.
import { rootTest, labNetns } from '../helpers.js';
import { scratchPod, type Listener } from '../scratch-pod.js';
import { exec } from '../../harness/util/exec.js';
import { sweep } from '../../harness/topology/cleanup.js';
import {
  applyCapture,
  canonicalRule,
  captureChains,
  describeCapture,
  diffAgainstSave,
  istioSidecarRules,
  linkerdProxyInitRules,
  parseCounters,
  parseTable,
  rulesByChain,
  verifyCapture,
} from '../../harness/dataplanes/mesh/capture/index.js';

const PREFIX = 'mbcapt';
const NS = `${PREFIX}-p0`;
const POD_IP = '198.18.200.1';
const VIP = '198.18.200.9';
const NODE = process.execPath;
const CONNECT_TIMEOUT_MS = 1500;

const { podUp, listen, stop, eth0TxPackets } = scratchPod(PREFIX, NS, POD_IP, VIP);

const CLIENT = `
const net = require('net');
const [host, port, src] = process.argv.slice(1);
const s = net.connect({ host, port: Number(port), localAddress: src || undefined });
let buf = '';
const done = (r) => { console.log(JSON.stringify(r)); process.exit(0); };
const timer = setTimeout(() => done({ error: 'timeout' }), ${CONNECT_TIMEOUT_MS});
s.on('data', (d) => (buf += d));
s.on('end', () => { clearTimeout(timer); done({ landed: Number(buf.trim()) }); });
s.on('error', (e) => { clearTimeout(timer); done({ error: e.code }); });`;

interface Attempt {
  landed?: number;
  error?: string;
}

/** One TCP connection from inside the pod as uid:gid (setpriv; no supplementary groups). */
async function connect(uid: number, gid: number, host: string, port: number, src?: string): Promise<Attempt> {
  const r = await exec('setpriv', [`--reuid=${uid}`, `--regid=${gid}`, '--clear-groups', NODE, '-e', CLIENT, host, String(port), src ?? ''], {
    netns: NS,
    timeoutMs: 10_000,
  });
  return JSON.parse(r.stdout.trim().split('\n').pop()!);
}

/** nat packet counters of the pod, keyed by canonical rule. */
async function counters(): Promise<Map<string, number>> {
  const r = await exec('iptables-save', ['-c', '-t', 'nat'], { netns: NS });
  return new Map(parseCounters(r.stdout).map((c) => [canonicalRule(c.rule), c.packets]));
}

/** iptables-save -t nat with counters and the generated-by comments removed. */
async function natListing(): Promise<string> {
  const r = await exec('iptables-save', ['-t', 'nat'], { netns: NS });
  return r.stdout
    .split('\n')
    .filter((l) => l && !l.startsWith('#'))
    .map((l) => l.replace(/\s*\[\d+:\d+\]$/, '').replace(/^\[\d+:\d+\]\s+/, ''))
    .join('\n');
}

interface Case {
  what: string;
  uid: number;
  gid: number;
  host: string;
  port: number;
  src?: string;
  /** Port the connection must land on, or null: must not connect (left on eth0, unredirected). */
  lands: number | null;
}

async function runCases(t: import('ava').ExecutionContext, l: Listener, cases: Case[]): Promise<void> {
  for (const c of cases) {
    const before = { seen: l.seen.length, tx: await eth0TxPackets() };
    const r = await connect(c.uid, c.gid, c.host, c.port, c.src);
    const tx = (await eth0TxPackets()) - before.tx;
    if (c.lands === null) {
      t.deepEqual(r, { error: 'timeout' }, `${c.what}: not captured, so nothing answers`);
      t.is(l.seen.length, before.seen, `${c.what}: no listener saw it`);
      t.true(tx >= 1, `${c.what}: the SYN left through eth0 towards ${c.host} (tx +${tx})`);
    } else {
      t.deepEqual(r, { landed: c.lands }, `${c.what}: lands on :${c.lands}`);
      t.is(l.seen.length, before.seen + 1, c.what);
      t.is(l.seen.at(-1)!.port, c.lands, c.what);
      t.is(tx, 0, `${c.what}: nothing left through eth0`);
    }
  }
}

rootTest('istio sidecar capture: installed as generated, REDIRECT to 15001/15006, proxy uid/gid and loopback exclusions hold', async (t) => {
  t.timeout(120_000);
  const payload = istioSidecarRules();
  let l: Listener | undefined;
  try {
    await podUp();
    t.deepEqual(await applyCapture(NS, payload), { applied: true, rules: 18, bytes: Buffer.byteLength(payload) });
    t.false((await applyCapture(NS, payload)).applied, 'same rules again: nothing to do');
    await t.throwsAsync(applyCapture(NS, istioSidecarRules({ proxyUid: 1500 })), { message: /already has capture chains ISTIO_INBOUND/ });

    // The listing: every chain, every rule in order, in iptables-save's spelling.
    const listing = await natListing();
    t.deepEqual(await verifyCapture(NS, payload), []);
    t.deepEqual(diffAgainstSave(payload, listing), []);
    for (const ch of captureChains(payload)) t.regex(listing, new RegExp(`^:${ch} -$`, 'm'));
    // Per chain and in order (the order chains are printed in is the kernel's, not ours).
    t.deepEqual(Object.fromEntries(rulesByChain(parseTable(listing).rules)), {
      PREROUTING: ['-A PREROUTING -p tcp -j ISTIO_INBOUND'],
      OUTPUT: ['-A OUTPUT -j ISTIO_OUTPUT'],
      ISTIO_INBOUND: [
        '-A ISTIO_INBOUND -p tcp -m tcp --dport 15008 -j RETURN',
        '-A ISTIO_INBOUND -p tcp -m tcp --dport 15090 -j RETURN',
        '-A ISTIO_INBOUND -p tcp -m tcp --dport 15021 -j RETURN',
        '-A ISTIO_INBOUND -p tcp -m tcp --dport 15020 -j RETURN',
        '-A ISTIO_INBOUND -p tcp -j ISTIO_IN_REDIRECT',
      ],
      ISTIO_IN_REDIRECT: ['-A ISTIO_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006'],
      ISTIO_OUTPUT: [
        '-A ISTIO_OUTPUT -s 127.0.0.6/32 -o lo -j RETURN',
        '-A ISTIO_OUTPUT ! -d 127.0.0.1/32 -o lo -p tcp -m tcp ! --dport 15008 -m owner --uid-owner 1337 -j ISTIO_IN_REDIRECT',
        '-A ISTIO_OUTPUT -o lo -m owner ! --uid-owner 1337 -j RETURN',
        '-A ISTIO_OUTPUT -m owner --uid-owner 1337 -j RETURN',
        '-A ISTIO_OUTPUT ! -d 127.0.0.1/32 -o lo -p tcp -m tcp ! --dport 15008 -m owner --gid-owner 1337 -j ISTIO_IN_REDIRECT',
        '-A ISTIO_OUTPUT -o lo -m owner ! --gid-owner 1337 -j RETURN',
        '-A ISTIO_OUTPUT -m owner --gid-owner 1337 -j RETURN',
        '-A ISTIO_OUTPUT -d 127.0.0.1/32 -j RETURN',
        '-A ISTIO_OUTPUT -j ISTIO_REDIRECT',
      ],
      ISTIO_REDIRECT: ['-A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports 15001'],
    });

    l = await listen([15001, 15006, 15008, 8080]);
    await runCases(t, l, [
      { what: 'app (uid 1000) → VIP:80', uid: 1000, gid: 1000, host: VIP, port: 80, lands: 15001 },
      { what: 'proxy (uid 1337) → VIP:80', uid: 1337, gid: 1337, host: VIP, port: 80, lands: null },
      { what: 'gid 1337 only (uid 1000) → VIP:80', uid: 1000, gid: 1337, host: VIP, port: 80, lands: null },
      { what: 'proxy → own pod IP:8080 (loopback, not 127.0.0.1)', uid: 1337, gid: 1337, host: POD_IP, port: 8080, lands: 15006 },
      { what: 'app → own pod IP:8080', uid: 1000, gid: 1000, host: POD_IP, port: 8080, lands: 8080 },
      { what: 'proxy from 127.0.0.6 → own pod IP:8080 (inbound passthrough)', uid: 1337, gid: 1337, host: POD_IP, port: 8080, src: '127.0.0.6', lands: 8080 },
      { what: 'proxy → own pod IP:15008 (tunnel port)', uid: 1337, gid: 1337, host: POD_IP, port: 15008, lands: 15008 },
      { what: 'app → 127.0.0.1:8080', uid: 1000, gid: 1000, host: '127.0.0.1', port: 8080, lands: 8080 },
      { what: 'proxy → 127.0.0.1:8080', uid: 1337, gid: 1337, host: '127.0.0.1', port: 8080, lands: 8080 },
    ]);

    // Which rule took each connection (nat sees the first packet of a connection only).
    const n = await counters();
    const k = (r: string) => n.get(canonicalRule(r));
    t.is(k('-A OUTPUT -j ISTIO_OUTPUT'), 9);
    t.is(k('-A ISTIO_OUTPUT -o lo -s 127.0.0.6/32 -j RETURN'), 1);
    t.is(k('-A ISTIO_OUTPUT -o lo ! -d 127.0.0.1/32 -p tcp ! --dport 15008 -m owner --uid-owner 1337 -j ISTIO_IN_REDIRECT'), 1);
    t.is(k('-A ISTIO_OUTPUT -o lo -m owner ! --uid-owner 1337 -j RETURN'), 2);
    t.is(k('-A ISTIO_OUTPUT -m owner --uid-owner 1337 -j RETURN'), 3);
    t.is(k('-A ISTIO_OUTPUT -o lo ! -d 127.0.0.1/32 -p tcp ! --dport 15008 -m owner --gid-owner 1337 -j ISTIO_IN_REDIRECT'), 0);
    t.is(k('-A ISTIO_OUTPUT -o lo -m owner ! --gid-owner 1337 -j RETURN'), 0);
    t.is(k('-A ISTIO_OUTPUT -m owner --gid-owner 1337 -j RETURN'), 1);
    t.is(k('-A ISTIO_OUTPUT -d 127.0.0.1/32 -j RETURN'), 0);
    t.is(k('-A ISTIO_OUTPUT -j ISTIO_REDIRECT'), 1);
    t.is(k('-A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports 15001'), 1);
    t.is(k('-A ISTIO_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006'), 1);
    t.is(k('-A PREROUTING -p tcp -j ISTIO_INBOUND'), 0, 'local connections never consult nat PREROUTING');

    const d = await describeCapture('istio-sidecar');
    t.regex(d.mechanism, /^iptables REDIRECT \((nf_tables|legacy) backend\)$/);
  } finally {
    stop(l);
    await sweep(PREFIX);
  }
  t.deepEqual(
    (await labNetns()).filter((n) => n.startsWith(`${PREFIX}-`)),
    [],
  );
});

rootTest('linkerd proxy-init capture: installed as generated, REDIRECT to 4140, uid 2102, lo and skip ports excluded', async (t) => {
  t.timeout(120_000);
  const payload = linkerdProxyInitRules();
  let l: Listener | undefined;
  try {
    await podUp();
    t.true((await applyCapture(NS, payload)).applied);
    const listing = await natListing();
    t.deepEqual(diffAgainstSave(payload, listing), []);
    // Exactly the payload's lines: the payload is written in iptables-save's own spelling.
    const saved = parseTable(listing);
    t.deepEqual([...saved.chains].sort(), ['PROXY_INIT_OUTPUT', 'PROXY_INIT_REDIRECT']);
    t.deepEqual(Object.fromEntries(rulesByChain(saved.rules)), Object.fromEntries(rulesByChain(parseTable(payload).rules)));

    l = await listen([4140, 4143, 8080]);
    await runCases(t, l, [
      { what: 'app (uid 1000) → VIP:80', uid: 1000, gid: 1000, host: VIP, port: 80, lands: 4140 },
      { what: 'proxy (uid 2102) → VIP:80', uid: 2102, gid: 2102, host: VIP, port: 80, lands: null },
      { what: 'app → VIP:4567 (outbound skip port)', uid: 1000, gid: 1000, host: VIP, port: 4567, lands: null },
      { what: 'app → own pod IP:8080 (-o lo)', uid: 1000, gid: 1000, host: POD_IP, port: 8080, lands: 8080 },
      { what: 'proxy → own pod IP:8080', uid: 2102, gid: 2102, host: POD_IP, port: 8080, lands: 8080 },
      { what: 'app → 127.0.0.1:8080', uid: 1000, gid: 1000, host: '127.0.0.1', port: 8080, lands: 8080 },
    ]);

    const n = await counters();
    const byComment = (what: string) => [...n].find(([key]) => key.includes(`proxy-init/${what}`))?.[1];
    t.is(byComment('install-proxy-init-output'), 6);
    t.is(byComment('ignore-proxy-user-id'), 2);
    t.is(byComment('ignore-loopback'), 2);
    t.is(byComment('ignore-port-4567,4568'), 1);
    t.is(byComment('redirect-all-outgoing-to-proxy-port'), 1);
    t.is(byComment('install-proxy-init-prerouting'), 0, 'local connections never consult nat PREROUTING');
  } finally {
    stop(l);
    await sweep(PREFIX);
  }
  t.deepEqual(
    (await labNetns()).filter((n) => n.startsWith(`${PREFIX}-`)),
    [],
  );
});
