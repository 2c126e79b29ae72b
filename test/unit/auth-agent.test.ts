// The eBPF dataplane's mutual-authentication agent (harness/dataplanes/ebpf/auth-agent.ts): two
// agents in-process on 127.0.0.1 with a real mesh CA, injected auth-map writers and clocks, and a
// fake flow log. No root, no network namespaces, no bpftool.
import test from 'ava';
import type { ExecutionContext } from 'ava';
import { spawn } from 'node:child_process';
import { appendFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import { createMeshCA, type MeshCA, type WorkloadIdentity } from '../../harness/dataplanes/mesh/ca.js';
import {
  startAuthAgent,
  uriSans,
  type AuthAgent,
  type AuthAgentConfig,
  type AuthMapWrite,
  type HandshakeRecord,
} from '../../harness/dataplanes/ebpf/auth-agent.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const AGENT_TS = path.join(ROOT, 'harness', 'dataplanes', 'ebpf', 'auth-agent.ts');

// node1 hosts productpage (identity 256), node2 hosts reviews (identity 257).
const PP_IP = '198.19.1.3';
const RV_IP = '198.19.2.3';
const NODE2_ID = 2; // node2 as node1's ipcache numbers it

interface Fixture {
  dir: string;
  ca: MeshCA;
  other: MeshCA;
  pp: WorkloadIdentity;
  rv: WorkloadIdentity;
  /** Same SPIFFE ID as pp, issued by another run's CA. */
  ppOther: WorkloadIdentity;
  shortA: WorkloadIdentity;
  shortB: WorkloadIdentity;
}

let fixture: Promise<Fixture> | undefined;
let fixtureDir: string | undefined;
test.after.always(async () => {
  if (fixtureDir) await rm(fixtureDir, { recursive: true, force: true });
});
function getFixture(): Promise<Fixture> {
  fixture ??= (async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'meshbench-auth-agent-'));
    fixtureDir = dir;
    const ca = await createMeshCA({ dir: path.join(dir, 'ca'), keyType: 'ecdsa-p256' });
    const other = await createMeshCA({ dir: path.join(dir, 'other-ca'), keyType: 'ecdsa-p256' });
    const [pp, rv, ppOther, shortA, shortB] = await Promise.all([
      ca.issue('default', 'productpage'),
      ca.issue('default', 'reviews'),
      other.issue('default', 'productpage'),
      ca.issue('default', 'short-a', { ttlSeconds: 300 }),
      ca.issue('default', 'short-b', { ttlSeconds: 120 }),
    ]);
    return { dir, ca, other, pp, rv, ppOther, shortA, shortB };
  })();
  return fixture;
}

const ident = (w: WorkloadIdentity) => ({ spiffeId: w.spiffeId, certFile: w.certFile, keyFile: w.keyFile });

/** One test's pair of agents: node2 (server side) and node1 (the one that sees the drop). */
interface Pair {
  node1: AuthAgent;
  node2: AuthAgent;
  flows: string;
  writes1: AuthMapWrite[];
  writes2: AuthMapWrite[];
  log1: HandshakeRecord[];
  warn2: string[];
  clock: { mono: bigint };
}

async function startPair(
  t: ExecutionContext,
  opts: {
    node1Identities?: AuthAgentConfig['identities'];
    node2Identities?: AuthAgentConfig['identities'];
    expirySeconds?: number;
    refresh?: boolean;
  } = {},
): Promise<Pair> {
  const f = await getFixture();
  const dir = await mkdtemp(path.join(f.dir, 'case-'));
  const flows = path.join(dir, 'node1.jsonl');
  const identities = { '256': ident(f.pp), '257': ident(f.rv), '300': ident(f.shortA), '301': ident(f.shortB) };
  const endpoints = { [PP_IP]: { identity: 256, node: 'node1' }, [RV_IP]: { identity: 257, node: 'node2' } };
  const base = {
    authMap: '/sys/fs/bpf/nonexistent/mb_auth',
    rootCaFile: f.ca.rootCertFile,
    endpoints,
    expirySeconds: opts.expirySeconds ?? 600,
    pollMs: 60_000, // the tests drive the tail with poll()
    handshakeTimeoutMs: 3000,
    refresh: opts.refresh,
  };
  const clock = { mono: 5_000_000_000n };
  const fakeClock = { monotonicNs: () => clock.mono, wallNs: () => BigInt(Date.now()) * 1_000_000n };
  const writes1: AuthMapWrite[] = [];
  const writes2: AuthMapWrite[] = [];
  const log1: HandshakeRecord[] = [];
  const warn2: string[] = [];
  const node2 = await startAuthAgent(
    {
      ...base,
      node: 'node2',
      listen: { ip: '127.0.0.1', port: 0 },
      flowsFile: path.join(dir, 'node2.jsonl'),
      identities: opts.node2Identities ?? identities,
      nodes: { node1: { agentIp: '127.0.0.1', nodeId: 1 }, node2: { agentIp: '127.0.0.1', nodeId: 0 } },
    },
    { writeAuth: async (w) => void writes2.push(w), clock: fakeClock, log: () => {}, warn: (m) => void warn2.push(m) },
  );
  t.teardown(() => node2.close());
  const node1 = await startAuthAgent(
    {
      ...base,
      node: 'node1',
      listen: { ip: '127.0.0.1', port: 0 },
      flowsFile: flows,
      identities: opts.node1Identities ?? identities,
      nodes: { node1: { agentIp: '127.0.0.1', nodeId: 0 }, node2: { agentIp: '127.0.0.1', nodeId: NODE2_ID, agentPort: node2.address.port } },
    },
    { writeAuth: async (w) => void writes1.push(w), clock: fakeClock, log: (r) => void log1.push(r), warn: () => {} },
  );
  t.teardown(() => node1.close());
  return { node1, node2, flows, writes1, writes2, log1, warn2, clock };
}

function flowLine(o: { verdict?: string; direction: 'INGRESS' | 'EGRESS'; src: [string, number]; dst: [string, number]; timeNs?: number }): string {
  const drop = (o.verdict ?? 'DROPPED') === 'DROPPED';
  return (
    JSON.stringify({
      timeNs: o.timeNs ?? Date.now() * 1e6,
      node: 'node1',
      verdict: o.verdict ?? 'DROPPED',
      ...(drop ? { dropReason: 'AUTH_REQUIRED', dropReasonCode: 189 } : {}),
      direction: o.direction,
      observationPoint: o.direction === 'INGRESS' ? 'from-network' : 'from-endpoint',
      protocol: 'TCP',
      source: { ip: o.src[0], port: 40000, identity: o.src[1] },
      destination: { ip: o.dst[0], port: 9080, identity: o.dst[1] },
      ifindex: 4,
    }) + '\n'
  );
}

/** The auth_key bytes of bpf/meshbench.h, written out independently of maps.ts. */
function keyHex(local: number, remote: number, remoteNodeId: number, authType: number): string {
  const b = Buffer.alloc(12);
  b.writeUInt32LE(local, 0);
  b.writeUInt32LE(remote, 4);
  b.writeUInt16LE(remoteNodeId, 8);
  b.writeUInt8(authType, 10);
  return [...b].map((x) => x.toString(16).padStart(2, '0')).join(' ');
}
function valueHex(expirationNs: bigint): string {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(expirationNs);
  return [...b].map((x) => x.toString(16).padStart(2, '0')).join(' ');
}

test('an AUTH_REQUIRED ingress drop leads to one handshake and one auth map entry with the right bytes', async (t) => {
  const p = await startPair(t);
  const drop = flowLine({ direction: 'INGRESS', src: [RV_IP, 257], dst: [PP_IP, 256] });
  // A forwarded flow (ignored), then the drop written in two pieces (the tail must wait for the
  // end of the line), then the same drop again (one handshake for the pair).
  await writeFile(p.flows, flowLine({ verdict: 'FORWARDED', direction: 'EGRESS', src: [PP_IP, 256], dst: [RV_IP, 257] }) + drop.slice(0, 50));
  await p.node1.poll();
  t.is(p.writes1.length, 0);
  await appendFile(p.flows, drop.slice(50) + drop);
  await p.node1.poll();

  t.is(p.writes1.length, 1, JSON.stringify(p.log1));
  const w = p.writes1[0];
  t.is(w.map, '/sys/fs/bpf/nonexistent/mb_auth');
  t.like(w, { local: 256, remote: 257, remoteNodeId: NODE2_ID, authType: 1 });
  t.is(w.keyHex, keyHex(256, 257, NODE2_ID, 1));
  t.is(w.keyHex, '00 01 00 00 01 01 00 00 02 00 01 00');
  // monotonic now (5 s) + 600 s: the certificates (24 h) do not shorten it.
  t.is(w.expirationNs, 605_000_000_000n);
  t.is(w.valueHex, valueHex(605_000_000_000n));
  t.deepEqual(p.node1.entries(), new Map([[`256:257:${NODE2_ID}`, 605_000_000_000n]]));
  t.is(p.writes2.length, 0, 'only the side that saw the drop writes');

  t.is(p.log1.length, 1);
  t.like(p.log1[0], { node: 'node1', local: 256, remote: 257, remoteNode: 'node2', remoteNodeId: NODE2_ID, ok: true, trigger: 'drop', expiresInS: 600 });
  t.is(p.log1[0].error, undefined);
  // ms spans the TLS handshake and the map write: a real handshake takes time, within the 5 s timeout.
  const { ms, handshakeMs } = p.log1[0];
  t.true(handshakeMs !== undefined && handshakeMs > 0 && handshakeMs <= ms && ms < 5000, `handshakeMs ${handshakeMs}, ms ${ms}`);

  // More drops while the entry is valid (logged no later than the entry): nothing new.
  await appendFile(p.flows, drop);
  await p.node1.poll();
  t.is(p.writes1.length, 1);

  // After expiry, drops authenticate again. An EGRESS drop on node1 (productpage → reviews) is
  // the same pair seen from productpage's side: local 256, remote 257 on node2.
  p.clock.mono = 606_000_000_000n;
  await appendFile(p.flows, flowLine({ direction: 'EGRESS', src: [PP_IP, 256], dst: [RV_IP, 257] }));
  await p.node1.poll();
  t.is(p.writes1.length, 2);
  t.is(p.writes1[1].keyHex, keyHex(256, 257, NODE2_ID, 1));
  t.is(p.writes1[1].expirationNs, 1_206_000_000_000n);
});

test('a drop logged well after the entry was written means the entry is gone: authenticate again', async (t) => {
  const p = await startPair(t);
  await writeFile(p.flows, flowLine({ direction: 'INGRESS', src: [RV_IP, 257], dst: [PP_IP, 256] }));
  await p.node1.poll();
  t.is(p.writes1.length, 1);
  await appendFile(p.flows, flowLine({ direction: 'INGRESS', src: [RV_IP, 257], dst: [PP_IP, 256], timeNs: (Date.now() + 5000) * 1e6 }));
  await p.node1.poll();
  t.is(p.writes1.length, 2);
});

test('a server presenting the wrong identity fails the handshake and writes nothing', async (t) => {
  const f = await getFixture();
  // node2 answers SNI id-257 with productpage's certificate (valid chain, wrong SPIFFE ID).
  const p = await startPair(t, { node2Identities: { '256': ident(f.pp), '257': { ...ident(f.pp), spiffeId: f.rv.spiffeId } } });
  await writeFile(p.flows, flowLine({ direction: 'INGRESS', src: [RV_IP, 257], dst: [PP_IP, 256] }));
  await p.node1.poll();
  t.is(p.writes1.length, 0);
  t.is(p.node1.entries().size, 0);
  t.is(p.log1.length, 1);
  t.false(p.log1[0].ok);
  t.regex(p.log1[0].error ?? '', /server certificate is .*default\/sa\/productpage.*not identity 257/);
});

test('a client certificate from another CA is refused (same SPIFFE ID, other root)', async (t) => {
  const f = await getFixture();
  const p = await startPair(t, { node1Identities: { '256': ident(f.ppOther), '257': ident(f.rv) } });
  await writeFile(p.flows, flowLine({ direction: 'INGRESS', src: [RV_IP, 257], dst: [PP_IP, 256] }));
  await p.node1.poll();
  t.is(p.writes1.length, 0);
  t.is(p.log1.length, 1);
  t.false(p.log1[0].ok);
  t.truthy(p.log1[0].error);
  t.true(
    p.warn2.some((m) => /refused/.test(m)),
    p.warn2.join('\n'),
  );

  // The same, by hand: the handshake never yields the server's "ok" line.
  const answer = await rawClient(p.node2.address.port, 'id-257', f.ppOther, f.ca.rootCertPem, 'id-256\n');
  t.false(answer.startsWith('ok'), answer);
});

/** Connect as a client with `who`'s certificate, send `line`, return what the server answered (or the error). */
function rawClient(port: number, sni: string, who: WorkloadIdentity, rootPem: string, line: string): Promise<string> {
  return new Promise((resolve) => {
    let got = '';
    const s = tls.connect({
      host: '127.0.0.1',
      port,
      servername: sni,
      cert: who.certPem,
      key: who.keyPem,
      ca: rootPem,
      minVersion: 'TLSv1.3',
      checkServerIdentity: () => undefined,
    });
    s.setEncoding('utf8');
    s.on('secureConnect', () => s.write(line));
    s.on('data', (d: string) => (got += d));
    s.on('error', (e) => resolve(`error: ${e.message}`));
    s.on('close', () => resolve(got || 'closed without an answer'));
    setTimeout(() => s.destroy(), 3000).unref();
  });
}

test('the server checks the claimed identity against the client certificate and serves only configured identities', async (t) => {
  const f = await getFixture();
  const p = await startPair(t);
  const port = p.node2.address.port;
  t.regex(await rawClient(port, 'id-257', f.pp, f.ca.rootCertPem, 'id-256\n'), /^ok id-257\n$/);
  t.regex(await rawClient(port, 'id-257', f.pp, f.ca.rootCertPem, 'id-257\n'), /^denied: client claims identity 257/);
  t.regex(await rawClient(port, 'id-999', f.pp, f.ca.rootCertPem, 'id-256\n'), /^error: /);
  t.regex(await rawClient(port, 'reviews', f.pp, f.ca.rootCertPem, 'id-256\n'), /^error: /);
});

test('the entry lives no longer than the shorter certificate', async (t) => {
  const p = await startPair(t, { expirySeconds: 3600 });
  const rec = await p.node1.authenticate(300, 301, 'node2'); // 300 s and 120 s certificates
  t.true(rec.ok, rec.error);
  t.is(p.writes1.length, 1);
  const lifeS = Number(p.writes1[0].expirationNs - 5_000_000_000n) / 1e9;
  t.true(lifeS > 100 && lifeS <= 120, String(lifeS));
  t.true(rec.expiresInS! > 100 && rec.expiresInS! <= 120);
  t.is(p.writes1[0].keyHex, keyHex(300, 301, NODE2_ID, 1));
});

test('with refresh, an authenticated pair is authenticated again at 2/3 of its lifetime', async (t) => {
  const p = await startPair(t, { expirySeconds: 1.5, refresh: true });
  const rec = await p.node1.authenticate(256, 257, 'node2');
  t.true(rec.ok, rec.error);
  t.is(rec.expiresInS, 1.5);
  await new Promise((r) => setTimeout(r, 1400));
  t.is(p.writes1.length, 2, JSON.stringify(p.log1));
  t.is(p.log1[1].trigger, 'refresh');
  t.true(p.log1[1].ok);
});

test('drops from unknown endpoints and other drop reasons are ignored', async (t) => {
  const p = await startPair(t);
  const other = JSON.parse(flowLine({ direction: 'INGRESS', src: [RV_IP, 257], dst: [PP_IP, 256] }));
  await writeFile(
    p.flows,
    JSON.stringify({ ...other, dropReason: 'POLICY_DENIED', dropReasonCode: 133 }) +
      '\n' +
      'not json AUTH_REQUIRED\n' +
      flowLine({ direction: 'INGRESS', src: ['198.19.9.9', 257], dst: [PP_IP, 256] }),
  );
  await p.node1.poll();
  t.is(p.log1.length, 0);
  t.is(p.writes1.length, 0);
});

test('standalone process: serves handshakes and exits promptly on SIGTERM', async (t) => {
  const f = await getFixture();
  const dir = await mkdtemp(path.join(f.dir, 'proc-'));
  const cfg: AuthAgentConfig = {
    node: 'node2',
    listen: { ip: '127.0.0.1', port: 0 },
    authMap: '/sys/fs/bpf/nonexistent/mb_auth',
    flowsFile: path.join(dir, 'node2.jsonl'),
    rootCaFile: f.ca.rootCertFile,
    identities: { '256': ident(f.pp), '257': ident(f.rv) },
    endpoints: { [PP_IP]: { identity: 256, node: 'node1' }, [RV_IP]: { identity: 257, node: 'node2' } },
    nodes: { node1: { agentIp: '127.0.0.1', nodeId: 1 }, node2: { agentIp: '127.0.0.1', nodeId: 0 } },
    expirySeconds: 600,
  };
  const cfgFile = path.join(dir, 'auth-agent.json');
  await writeFile(cfgFile, JSON.stringify(cfg));
  const child = spawn(process.execPath, ['--import', 'tsx', AGENT_TS, cfgFile], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  t.teardown(() => void child.kill('SIGKILL'));
  let stderr = '';
  child.stderr.setEncoding('utf8');
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`agent did not start: ${stderr}`)), 20_000);
    child.stderr.on('data', (d: string) => {
      stderr += d;
      const m = /listening on 127\.0\.0\.1:(\d+)/.exec(stderr);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    });
    child.on('exit', (code) => reject(new Error(`agent exited ${code}: ${stderr}`)));
  });
  t.regex(await rawClient(port, 'id-257', f.pp, f.ca.rootCertPem, 'id-256\n'), /^ok id-257/);

  const t0 = Date.now();
  child.kill('SIGTERM');
  const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
  t.is(code, 0, stderr);
  t.true(Date.now() - t0 < 2000);
});

test('standalone process: a bad config exits 2', async (t) => {
  const f = await getFixture();
  const cfgFile = path.join(f.dir, 'bad-auth-agent.json');
  await writeFile(cfgFile, JSON.stringify({ node: 'node1', listen: { ip: '127.0.0.1' } }));
  const child = spawn(process.execPath, ['--import', 'tsx', AGENT_TS, cfgFile], { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
  t.is(code, 2);
  t.regex(stderr, /listen: \{ip, port\} is required/);
});

test('uriSans reads Node subjectaltname strings', (t) => {
  t.deepEqual(uriSans('URI:spiffe://cluster.local/ns/default/sa/a'), ['spiffe://cluster.local/ns/default/sa/a']);
  t.deepEqual(uriSans('DNS:a.example, URI:spiffe://td/x, URI:"spiffe://td/a,b"'), ['spiffe://td/x', 'spiffe://td/a,b']);
  t.deepEqual(uriSans(undefined), []);
});
