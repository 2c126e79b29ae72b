// The eBPF family's per-node mutual-authentication agent, modelled on Cilium's auth manager: on an
// AUTH_REQUIRED drop in the node's flow log it runs a TLS 1.3 handshake with the agent on the remote
// identity's node, presenting both identities' SPIFFE certificates, and on success writes the auth map
// entry (with an expiration) that lets the next packet through. One JSON line per handshake on stdout.
// Over 500 lines: a standalone process (its own entry point). Handshake, entry and log details: docs/.
// Run: node dist/harness/dataplanes/ebpf/auth-agent.js <config.json> (config: AuthAgentConfig).
import { X509Certificate } from 'node:crypto';
import { readFileSync, realpathSync, statSync } from 'node:fs';
import { type FileHandle, open } from 'node:fs/promises';
import { StringDecoder } from 'node:string_decoder';
import tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import { exec } from '../../util/exec.js';
import { TLS_SETTINGS } from '../engine/haproxy.js';
import { AUTH_TYPE_SPIRE, enc } from './maps.js';

export interface AuthAgentConfig {
  /** This node's name (as in `endpoints[].node` and `nodes`). */
  node: string;
  /** Where this agent's server listens. Every agent uses the same port (nodes[].agentPort overrides). */
  listen: { ip: string; port: number };
  /** Pinned bpffs path of this node's mb_auth map. */
  authMap: string;
  /** This node's flow log (JSON lines from mb-flowd), tailed from its start. */
  flowsFile: string;
  /** The run's CA root (PEM): the only trust anchor, for both directions. */
  rootCaFile: string;
  /** Identity number → its SPIFFE ID and certificate/key files (PEM). */
  identities: Record<string, { spiffeId: string; certFile: string; keyFile: string }>;
  /** Pod IP → its identity and node. */
  endpoints: Record<string, { identity: number; node: string }>;
  /** Node name → where its agent listens and its node id as seen from THIS node (0 for itself, else as in the ipcache). */
  nodes: Record<string, { agentIp: string; nodeId: number; agentPort?: number }>;
  /** Upper bound of an entry's lifetime; the certificates' remaining lifetime bounds it too. */
  expirySeconds: number;
  /** Flow log poll interval, default 50 ms. */
  pollMs?: number;
  /** Give up a handshake after this long, default 5000 ms. */
  handshakeTimeoutMs?: number;
  /** After a failed handshake, ignore further drops of the pair for this long, default 250 ms. */
  retryMs?: number;
  /** Re-authenticate authenticated pairs at 2/3 of their entry's lifetime, default false (Cilium: on demand only). */
  refresh?: boolean;
}

/** One auth map entry as written. `keyHex`/`valueHex` are the bytes as bpftool takes them ("01 00 …"). */
export interface AuthMapWrite {
  map: string;
  local: number;
  remote: number;
  remoteNodeId: number;
  authType: number;
  /** CLOCK_MONOTONIC ns (bpf_ktime_get_ns). */
  expirationNs: bigint;
  keyHex: string;
  valueHex: string;
}

export interface HandshakeRecord {
  node: string;
  local: number;
  remote: number;
  remoteNode: string;
  remoteNodeId: number;
  ok: boolean;
  /** From the decision to authenticate to the entry written (or the failure). */
  ms: number;
  /** TLS connect to the server's "ok" line. */
  handshakeMs?: number;
  /** Lifetime given to the entry. */
  expiresInS?: number;
  trigger: 'drop' | 'refresh' | 'manual';
  error?: string;
}

export interface AuthAgentDeps {
  /** Writes one entry into the auth map; default `bpftool map update pinned …`. */
  writeAuth?: (w: AuthMapWrite) => Promise<void>;
  clock?: {
    /** CLOCK_MONOTONIC ns, the clock of bpf_ktime_get_ns(); default process.hrtime.bigint(). */
    monotonicNs(): bigint;
    /** Wall clock ns; default from performance.timeOrigin + performance.now(). */
    wallNs(): bigint;
  };
  /** One handshake record (with its wall-clock time); default: a JSON line on stdout. */
  log?: (rec: HandshakeRecord, timeNs: bigint) => void;
  /** Diagnostics; default stderr. */
  warn?: (msg: string) => void;
}

export interface AuthAgent {
  /** Where the server actually listens (port 0 in the config picks a free one). */
  address: { ip: string; port: number };
  /** Authenticate one pair now (what a drop triggers). Resolves with the record, never rejects. */
  authenticate(local: number, remote: number, remoteNode: string): Promise<HandshakeRecord>;
  /** Read what is new in the flow log now, and wait for the handshakes it started. */
  poll(): Promise<void>;
  /** Pairs with an entry written: `${local}:${remote}:${remoteNodeId}` → expiration (monotonic ns). */
  entries(): Map<string, bigint>;
  /** Stop tailing, close the server and any connection, cancel timers. Written entries stay. */
  close(): Promise<void>;
}

const SNI_PREFIX = 'id-';
const TLS_OPTS = {
  minVersion: TLS_SETTINGS.version as tls.SecureVersion,
  maxVersion: TLS_SETTINGS.version as tls.SecureVersion,
  ciphersuites: TLS_SETTINGS.cipher,
};
/** A drop logged this long after an entry was written means the datapath did not find the entry. */
const STALE_DROP_SLACK_NS = 1_000_000_000n;
const MAX_LINE = 64 * 1024;

const defaultClock = {
  monotonicNs: () => process.hrtime.bigint(),
  wallNs: () => BigInt(Math.round((performance.timeOrigin + performance.now()) * 1e6)),
};

export async function defaultWriteAuth(w: AuthMapWrite): Promise<void> {
  await exec('bpftool', ['map', 'update', 'pinned', w.map, 'key', 'hex', ...w.keyHex.split(' '), 'value', 'hex', ...w.valueHex.split(' ')], {
    timeoutMs: 10_000,
  });
}

/** The URI SANs of a certificate, from Node's `subjectaltname` string ("URI:a, DNS:b"; values with special characters are JSON-quoted). */
export function uriSans(subjectAltName: string | undefined): string[] {
  if (!subjectAltName) return [];
  const out: string[] = [];
  const re = /(?:^|, )([A-Za-z ]+):("(?:[^"\\]|\\.)*"|[^,]*)/g;
  for (let m: RegExpExecArray | null; (m = re.exec(subjectAltName)); ) {
    if (m[1] !== 'URI') continue;
    let v = m[2];
    if (v.startsWith('"')) {
      try {
        v = JSON.parse(v) as string;
      } catch {
        continue;
      }
    }
    out.push(v);
  }
  return out;
}

/** Light validation of a config read from a file; throws with every problem found. */
export function checkAuthAgentConfig(c: unknown): AuthAgentConfig {
  const p: string[] = [];
  const o = c as AuthAgentConfig;
  const isObj = (v: unknown) => typeof v === 'object' && v !== null && !Array.isArray(v);
  if (!isObj(o)) throw new Error('auth-agent config: not a JSON object');
  if (typeof o.node !== 'string' || !o.node) p.push('node: a node name is required');
  if (!isObj(o.listen) || typeof o.listen.ip !== 'string' || !Number.isInteger(o.listen.port) || o.listen.port < 0 || o.listen.port > 65535)
    p.push('listen: {ip, port} is required');
  for (const k of ['authMap', 'flowsFile', 'rootCaFile'] as const) if (typeof o[k] !== 'string' || !o[k]) p.push(`${k}: a path is required`);
  if (!isObj(o.identities)) p.push('identities: an object is required');
  else
    for (const [id, v] of Object.entries(o.identities)) {
      if (!/^[0-9]+$/.test(id)) p.push(`identities.${id}: keys are identity numbers`);
      if (!isObj(v) || typeof v.spiffeId !== 'string' || typeof v.certFile !== 'string' || typeof v.keyFile !== 'string')
        p.push(`identities.${id}: {spiffeId, certFile, keyFile} is required`);
    }
  if (!isObj(o.endpoints)) p.push('endpoints: an object is required');
  else
    for (const [ip, v] of Object.entries(o.endpoints))
      if (!isObj(v) || !Number.isInteger(v.identity) || typeof v.node !== 'string') p.push(`endpoints.${ip}: {identity, node} is required`);
  if (!isObj(o.nodes)) p.push('nodes: an object is required');
  else
    for (const [n, v] of Object.entries(o.nodes))
      if (!isObj(v) || typeof v.agentIp !== 'string' || !Number.isInteger(v.nodeId) || v.nodeId < 0 || v.nodeId > 0xffff)
        p.push(`nodes.${n}: {agentIp, nodeId (0..65535)} is required`);
  if (typeof o.expirySeconds !== 'number' || !(o.expirySeconds > 0)) p.push('expirySeconds: a positive number is required');
  for (const k of ['pollMs', 'handshakeTimeoutMs', 'retryMs'] as const)
    if (o[k] !== undefined && (typeof o[k] !== 'number' || !((o[k] as number) >= 0))) p.push(`${k}: a number ≥ 0`);
  if (p.length) throw new Error(`auth-agent config: ${p.join('; ')}`);
  return o;
}

interface Pair {
  local: number;
  remote: number;
  remoteNode: string;
  remoteNodeId: number;
  inFlight?: Promise<HandshakeRecord>;
  expirationNs?: bigint;
  writtenWallNs?: bigint;
  failedAtNs?: bigint;
  timer?: NodeJS.Timeout;
}

interface Flow {
  timeNs?: number;
  verdict?: string;
  dropReason?: string;
  direction?: string;
  source?: { ip?: string; identity?: number };
  destination?: { ip?: string; identity?: number };
}

const pairKey = (local: number, remote: number, remoteNodeId: number) => `${local}:${remote}:${remoteNodeId}`;
/** One line (a failed command's output is folded in), at most 500 characters. */
const errMsg = (e: unknown) =>
  (e instanceof Error ? e.message : String(e))
    .trim()
    .replace(/\s*\n\s*/g, ' | ')
    .slice(0, 500);
const notAfterMs = (c: X509Certificate) => Date.parse(c.validTo);

export async function startAuthAgent(config: AuthAgentConfig, deps: AuthAgentDeps = {}): Promise<AuthAgent> {
  const writeAuth = deps.writeAuth ?? defaultWriteAuth;
  const clock = deps.clock ?? defaultClock;
  const warn = deps.warn ?? ((m: string) => process.stderr.write(`auth-agent ${config.node}: ${m}\n`));
  const log =
    deps.log ??
    ((rec: HandshakeRecord, timeNs: bigint) => {
      // timeNs exceeds 2^53: written as an exact integer, like mb-flowd's.
      process.stdout.write(`{"timeNs":${timeNs},${JSON.stringify(rec).slice(1)}\n`);
    });
  const pollMs = config.pollMs ?? 50;
  const timeoutMs = config.handshakeTimeoutMs ?? 5000;
  const retryNs = BigInt(Math.round((config.retryMs ?? 250) * 1e6));
  const rootCa = readFileSync(config.rootCaFile);
  const spiffeToIdentity = new Map<string, number>();
  for (const [id, v] of Object.entries(config.identities)) spiffeToIdentity.set(v.spiffeId, Number(id));

  let closed = false;
  const sockets = new Set<tls.TLSSocket>();
  const pairs = new Map<string, Pair>();
  const warned = new Set<string>();
  const warnOnce = (key: string, msg: string) => {
    if (warned.has(key)) return;
    warned.add(key);
    warn(msg);
  };

  // ---- server: prove the identity named in the SNI, require a client of the run's CA ----

  const contexts = new Map<number, { mtimeMs: number; ctx: tls.SecureContext }>();
  function contextFor(id: number): tls.SecureContext {
    const ident = config.identities[String(id)];
    if (!ident) throw new Error(`no certificate for identity ${id}`);
    const mtimeMs = Math.max(statSync(ident.certFile).mtimeMs, statSync(ident.keyFile).mtimeMs);
    const hit = contexts.get(id);
    if (hit && hit.mtimeMs === mtimeMs) return hit.ctx;
    const ctx = tls.createSecureContext({ ...TLS_OPTS, cert: readFileSync(ident.certFile), key: readFileSync(ident.keyFile), ca: rootCa });
    contexts.set(id, { mtimeMs, ctx });
    return ctx;
  }

  const server = tls.createServer({
    ...TLS_OPTS,
    ca: rootCa,
    requestCert: true,
    rejectUnauthorized: true,
    handshakeTimeout: timeoutMs,
    SNICallback(servername, cb) {
      const m = new RegExp(`^${SNI_PREFIX}([0-9]+)$`).exec(servername);
      if (!m) return cb(new Error(`SNI ${JSON.stringify(servername)} names no identity`), undefined);
      try {
        cb(null, contextFor(Number(m[1])));
      } catch (e) {
        cb(e as Error, undefined);
      }
    },
  });
  server.on('tlsClientError', (e, s) => warn(`inbound handshake from ${s.remoteAddress}:${s.remotePort} refused: ${errMsg(e)}`));
  server.on('secureConnection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
    s.setTimeout(timeoutMs, () => s.destroy());
    const from = `${s.remoteAddress}:${s.remotePort}`;
    let answered = false;
    const deny = (why: string) => {
      if (answered) return;
      answered = true;
      warn(`inbound handshake from ${from} denied: ${why}`);
      s.end(`denied: ${why}\n`);
    };
    const peer = s.getPeerX509Certificate();
    if (!s.authorized || !peer) return deny(`client certificate not verified (${s.authorizationError ?? 'none sent'})`);
    const claimed = uriSans(peer.subjectAltName).filter((u) => spiffeToIdentity.has(u));
    if (claimed.length !== 1) return deny(`client URI SAN ${JSON.stringify(uriSans(peer.subjectAltName))} is not one configured identity's SPIFFE ID`);
    const served = /^id-([0-9]+)$/.exec(s.servername || '')?.[1];
    let buf = '';
    s.setEncoding('utf8');
    s.on('data', (d: string) => {
      if (answered) return;
      buf += d;
      const nl = buf.indexOf('\n');
      if (nl < 0) {
        if (buf.length > 256) deny('no first line');
        return;
      }
      const line = buf.slice(0, nl).trim();
      const m = /^id-([0-9]+)$/.exec(line);
      if (!m) return deny(`first line ${JSON.stringify(line.slice(0, 40))} names no identity`);
      const want = config.identities[m[1]]?.spiffeId;
      if (want === undefined || want !== claimed[0]) return deny(`client claims identity ${m[1]} but its certificate is ${claimed[0]}`);
      answered = true;
      s.end(`ok ${SNI_PREFIX}${served}\n`);
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.listen.port, config.listen.ip, () => {
      server.off('error', reject);
      resolve();
    });
  });
  server.on('error', (e) => warn(`server: ${errMsg(e)}`));
  const addr = server.address();
  const address = { ip: config.listen.ip, port: typeof addr === 'object' && addr ? addr.port : config.listen.port };

  // ---- client: one handshake for one pair ----

  function handshake(local: number, remote: number, remoteNode: string): Promise<{ peerNotAfterMs: number; localNotAfterMs: number }> {
    const li = config.identities[String(local)];
    const ri = config.identities[String(remote)];
    const node = config.nodes[remoteNode];
    if (!li) return Promise.reject(new Error(`no certificate for local identity ${local}`));
    if (!ri) return Promise.reject(new Error(`no SPIFFE ID for remote identity ${remote}`));
    if (!node) return Promise.reject(new Error(`unknown node ${remoteNode}`));
    let cert: Buffer, key: Buffer;
    try {
      cert = readFileSync(li.certFile);
      key = readFileSync(li.keyFile);
    } catch (e) {
      return Promise.reject(e);
    }
    const localNotAfterMs = notAfterMs(new X509Certificate(cert));
    return new Promise((resolve, reject) => {
      let done = false;
      const finish = (e?: Error, peerNotAfterMs?: number) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        s.destroy();
        if (e) reject(e);
        else resolve({ peerNotAfterMs: peerNotAfterMs!, localNotAfterMs });
      };
      const s = tls.connect({
        ...TLS_OPTS,
        host: node.agentIp,
        port: node.agentPort ?? config.listen.port,
        servername: `${SNI_PREFIX}${remote}`,
        cert,
        key,
        ca: rootCa,
        rejectUnauthorized: true,
        checkServerIdentity(_host, peer) {
          const uris = uriSans(peer.subjectaltname);
          if (uris.length === 1 && uris[0] === ri.spiffeId) return undefined;
          return new Error(`server certificate is ${JSON.stringify(uris)}, not identity ${remote} (${ri.spiffeId})`);
        },
      });
      sockets.add(s);
      const timer = setTimeout(() => finish(new Error(`no answer from ${node.agentIp} within ${timeoutMs} ms`)), timeoutMs);
      s.on('close', () => {
        sockets.delete(s);
        finish(new Error(closed ? 'agent stopping' : 'server closed the connection before accepting'));
      });
      s.on('error', (e) => finish(e));
      s.once('secureConnect', () => {
        const peer = s.getPeerX509Certificate();
        if (!s.authorized || !peer) return finish(new Error(`server not verified: ${s.authorizationError}`));
        s.write(`${SNI_PREFIX}${local}\n`);
        let buf = '';
        s.setEncoding('utf8');
        s.on('data', (d: string) => {
          buf += d;
          const nl = buf.indexOf('\n');
          if (nl < 0) return;
          const line = buf.slice(0, nl).trim();
          if (line.startsWith('ok')) finish(undefined, notAfterMs(peer));
          else finish(new Error(`server refused: ${line.slice(0, 200)}`));
        });
      });
    });
  }

  function pairFor(local: number, remote: number, remoteNode: string): Pair | undefined {
    const node = config.nodes[remoteNode];
    if (!node) return undefined;
    const k = pairKey(local, remote, node.nodeId);
    let p = pairs.get(k);
    if (!p) pairs.set(k, (p = { local, remote, remoteNode, remoteNodeId: node.nodeId }));
    return p;
  }

  async function run(p: Pair, trigger: HandshakeRecord['trigger']): Promise<HandshakeRecord> {
    const t0 = performance.now();
    const rec: HandshakeRecord = {
      node: config.node,
      local: p.local,
      remote: p.remote,
      remoteNode: p.remoteNode,
      remoteNodeId: p.remoteNodeId,
      ok: false,
      ms: 0,
      trigger,
    };
    try {
      const h = await handshake(p.local, p.remote, p.remoteNode);
      rec.handshakeMs = +(performance.now() - t0).toFixed(3);
      const wallMs = Number(clock.wallNs() / 1_000_000n);
      const leftS = (Math.min(h.localNotAfterMs, h.peerNotAfterMs) - wallMs) / 1000;
      const lifeS = Math.min(config.expirySeconds, leftS);
      if (!(lifeS > 0)) throw new Error(`certificates expired (${leftS.toFixed(0)} s left)`);
      if (closed) throw new Error('agent stopping');
      const expirationNs = clock.monotonicNs() + BigInt(Math.floor(lifeS * 1e9));
      await writeAuth({
        map: config.authMap,
        local: p.local,
        remote: p.remote,
        remoteNodeId: p.remoteNodeId,
        authType: AUTH_TYPE_SPIRE,
        expirationNs,
        keyHex: enc.authKey(p.local, p.remote, p.remoteNodeId, AUTH_TYPE_SPIRE).hex(),
        valueHex: enc.authInfo(expirationNs).hex(),
      });
      p.expirationNs = expirationNs;
      p.writtenWallNs = clock.wallNs();
      p.failedAtNs = undefined;
      rec.ok = true;
      rec.expiresInS = +lifeS.toFixed(3);
      if (config.refresh && !closed) {
        clearTimeout(p.timer);
        p.timer = setTimeout(() => void start(p, 'refresh'), Math.max(1000, (lifeS * 1000 * 2) / 3));
        p.timer.unref();
      }
    } catch (e) {
      p.failedAtNs = clock.monotonicNs();
      rec.error = errMsg(e);
    }
    rec.ms = +(performance.now() - t0).toFixed(3);
    log(rec, clock.wallNs());
    return rec;
  }

  function start(p: Pair, trigger: HandshakeRecord['trigger']): Promise<HandshakeRecord> {
    if (p.inFlight) return p.inFlight;
    const f = run(p, trigger).finally(() => {
      if (p.inFlight === f) p.inFlight = undefined;
    });
    p.inFlight = f;
    return f;
  }

  /** A drop for this pair: authenticate unless in flight, authenticated (and the drop is not later than the entry), or just failed. */
  function onDrop(p: Pair, dropTimeNs: number | undefined): Promise<HandshakeRecord> | undefined {
    if (p.inFlight) return undefined;
    const now = clock.monotonicNs();
    if (p.expirationNs !== undefined && p.expirationNs > now) {
      const stale = dropTimeNs !== undefined && p.writtenWallNs !== undefined && BigInt(Math.round(dropTimeNs)) > p.writtenWallNs + STALE_DROP_SLACK_NS;
      if (!stale) return undefined;
    }
    if (p.failedAtNs !== undefined && now - p.failedAtNs < retryNs) return undefined;
    return start(p, 'drop');
  }

  function onFlow(f: Flow): Promise<HandshakeRecord> | undefined {
    if (f.verdict !== 'DROPPED' || f.dropReason !== 'AUTH_REQUIRED') return undefined;
    const ingress = f.direction === 'INGRESS';
    if (!ingress && f.direction !== 'EGRESS') return undefined;
    const [mine, theirs] = ingress ? [f.destination, f.source] : [f.source, f.destination];
    if (!mine || !theirs || !Number.isInteger(mine.identity) || !Number.isInteger(theirs.identity) || typeof theirs.ip !== 'string') return undefined;
    const ep = config.endpoints[theirs.ip];
    if (!ep) {
      warnOnce(`ep:${theirs.ip}`, `AUTH_REQUIRED drop for ${theirs.ip}: not a known endpoint`);
      return undefined;
    }
    const p = pairFor(mine.identity!, theirs.identity!, ep.node);
    if (!p) {
      warnOnce(`node:${ep.node}`, `AUTH_REQUIRED drop for ${theirs.ip}: node ${ep.node} has no agent in the config`);
      return undefined;
    }
    return onDrop(p, f.timeNs);
  }

  // ---- the flow log tail ----

  let offset = 0;
  let ino: number | undefined;
  let rest = '';
  let decoder = new StringDecoder('utf8');
  let reading: Promise<Promise<HandshakeRecord>[]> | undefined;

  async function readNew(): Promise<Promise<HandshakeRecord>[]> {
    const started: Promise<HandshakeRecord>[] = [];
    let fh: FileHandle;
    try {
      fh = await open(config.flowsFile, 'r');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') warnOnce('open', `cannot read ${config.flowsFile}: ${errMsg(e)}`);
      return started;
    }
    try {
      const st = await fh.stat();
      if (st.ino !== ino || st.size < offset) {
        // First read, or the log was replaced or truncated: start over.
        ino = st.ino;
        offset = 0;
        rest = '';
        decoder = new StringDecoder('utf8');
      }
      const buf = Buffer.alloc(1 << 20);
      while (!closed) {
        const { bytesRead } = await fh.read(buf, 0, buf.length, offset);
        if (bytesRead === 0) break;
        offset += bytesRead;
        const lines = (rest + decoder.write(buf.subarray(0, bytesRead))).split('\n');
        rest = lines.pop()!;
        if (rest.length > MAX_LINE) rest = '';
        for (const line of lines) {
          if (!line.includes('AUTH_REQUIRED')) continue;
          let f: Flow;
          try {
            f = JSON.parse(line) as Flow;
          } catch {
            warnOnce('json', `unparsable flow line: ${line.slice(0, 120)}`);
            continue;
          }
          const h = onFlow(f);
          if (h) started.push(h);
        }
      }
    } finally {
      await fh.close();
    }
    return started;
  }

  function readOnce(): Promise<Promise<HandshakeRecord>[]> {
    if (!reading)
      reading = readNew()
        .catch((e) => {
          warn(`reading ${config.flowsFile}: ${errMsg(e)}`);
          return [];
        })
        .finally(() => (reading = undefined));
    return reading;
  }

  let pollTimer: NodeJS.Timeout | undefined;
  const tick = () => {
    if (closed) return;
    void readOnce().finally(() => {
      if (!closed) pollTimer = setTimeout(tick, pollMs);
    });
  };
  tick();

  return {
    address,
    authenticate(local, remote, remoteNode) {
      const p = pairFor(local, remote, remoteNode);
      if (!p) {
        const rec: HandshakeRecord = {
          node: config.node,
          local,
          remote,
          remoteNode,
          remoteNodeId: -1,
          ok: false,
          ms: 0,
          trigger: 'manual',
          error: `unknown node ${remoteNode}`,
        };
        log(rec, clock.wallNs());
        return Promise.resolve(rec);
      }
      return start(p, 'manual');
    },
    async poll() {
      // A read may be under way (started by the timer): wait for it, then read once more.
      await reading;
      const started = await readOnce();
      await Promise.all(started);
    },
    entries() {
      const m = new Map<string, bigint>();
      for (const [k, p] of pairs) if (p.expirationNs !== undefined) m.set(k, p.expirationNs);
      return m;
    },
    async close() {
      if (closed) return;
      closed = true;
      clearTimeout(pollTimer);
      for (const p of pairs.values()) clearTimeout(p.timer);
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

// ---- standalone process ----

async function main(argv: string[]): Promise<void> {
  const file = argv[2];
  if (!file || argv.length > 3) {
    process.stderr.write('usage: auth-agent.js <config.json>\n');
    process.exit(2);
  }
  let config: AuthAgentConfig;
  try {
    config = checkAuthAgentConfig(JSON.parse(readFileSync(file, 'utf8')));
  } catch (e) {
    process.stderr.write(`auth-agent: ${file}: ${errMsg(e)}\n`);
    process.exit(2);
  }
  const agent = await startAuthAgent(config);
  process.stderr.write(`auth-agent ${config.node}: listening on ${agent.address.ip}:${agent.address.port}, tailing ${config.flowsFile}\n`);
  const stop = (sig: string) => {
    process.stderr.write(`auth-agent ${config.node}: ${sig}, stopping (written entries stay)\n`);
    // Exit promptly whatever close() does; it only releases sockets and timers.
    setTimeout(() => process.exit(0), 500).unref();
    void agent.close().finally(() => process.exit(0));
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
}

function isMain(): boolean {
  if (!process.argv[1]) return false;
  try {
    return realpathSync(process.argv[1]) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isMain()) {
  main(process.argv).catch((e) => {
    process.stderr.write(`auth-agent: ${errMsg(e)}\n`);
    process.exit(1);
  });
}
