// HAProxy (Debian's 2.6) as the sidecar engine. One process per pod, in the pod's namespace,
// started as root only to bind and read its keys, then running as the proxy uid that the capture
// rules exclude (`uid`/`gid` in global).
//  - outbound listener: the app's connections arrive REDIRECTed; HAProxy's `dst` is the original
//    destination (SO_ORIGINAL_DST), so routing is by Service VIP:port → an endpoint, over pooled
//    mTLS (`http-reuse always`) presenting the pod's certificate and verifying the peer.
//  - inbound listener: terminates mTLS (client certificate required, signed by the run's root),
//    authorizes the peer's SPIFFE identity and the request, forwards to the app over loopback.
// HAProxy 2.6 has no fetch for URI SANs. Peers are checked two ways instead: at handshake the
// client verifies the server with `verifyhost`, which checks the certificate's CN (our workload
// certificates carry the SPIFFE ID there too, and no DNS SAN); the server authorizes a client by
// finding the exact DER encoding of the allowed URI SAN in the verified certificate (`ssl_c_der`).
import { connect } from 'node:net';
import { uriSanDerHex } from '../mesh-ca/index.js';
import { exec } from '../../util/exec.js';
import type { LabProcess, ProcessGroup } from '../../util/procs.js';
import { findTool } from '../../util/tools.js';
import type { ProxyCounters, ProxyEngine, SidecarSpec } from './types.js';

/** Same TLS for every mesh in the lab (DATAPLANES.md): TLS 1.3, AES-128-GCM, OpenSSL via HAProxy. */
export const TLS_SETTINGS = { version: 'TLSv1.3', cipher: 'TLS_AES_128_GCM_SHA256' };

const sanHex = (spiffeId: string) => uriSanDerHex(spiffeId).toUpperCase();
/** One config word. Single quotes: HAProxy takes their content literally (no escapes, no $VARS). */
const q = (s: string) => {
  if (s.includes("'")) throw new Error(`cannot put a single quote in a HAProxy config word: ${s}`);
  return /^[A-Za-z0-9_.:/-]+$/.test(s) ? s : `'${s}'`;
};

function identityAcl(name: string, ids: string[]): string {
  return `  acl ${name} ssl_c_der,hex -m sub ${ids.map(sanHex).join(' ')}`;
}

export function renderSidecar(s: SidecarSpec): string {
  const L: string[] = [];
  const push = (...x: string[]) => L.push(...x);
  push(
    `# meshbench sidecar for pod ${s.pod}: HAProxy in the role of a per-pod mesh proxy`,
    'global',
    `  uid ${s.uid}`,
    `  gid ${s.gid}`,
    `  nbthread ${s.threads}`,
    `  stats socket ${s.adminSocket} mode 600 level admin`,
    `  ssl-default-bind-options ssl-min-ver ${TLS_SETTINGS.version}`,
    `  ssl-default-bind-ciphersuites ${TLS_SETTINGS.cipher}`,
    `  ssl-default-server-options ssl-min-ver ${TLS_SETTINGS.version}`,
    `  ssl-default-server-ciphersuites ${TLS_SETTINGS.cipher}`,
    '',
    'defaults',
    '  mode http',
    '  timeout connect 5s',
    '  timeout client 60s',
    '  timeout server 60s',
    '  timeout http-keep-alive 60s',
    '  http-reuse always',
    '',
    'frontend outbound',
    `  bind 0.0.0.0:${s.outboundPort}`,
  );
  if (s.egress.enforced) {
    const ok = s.egress.allow.map((a) => (a.port === 'any' ? `{ dst ${a.ip} }` : `{ dst ${a.ip} } { dst_port ${a.port} }`));
    // One allow line per destination; anything else is refused before a byte is read.
    for (const cond of ok) push(`  tcp-request connection accept if ${cond}`);
    push('  tcp-request connection reject');
  }
  const byKey = new Map(s.services.map((x) => [x.key, x]));
  const use: string[] = [];
  for (const r of s.routes) {
    const svc = byKey.get(r.service);
    if (!svc) continue;
    const at = `{ dst ${svc.vip} } { dst_port ${svc.port} }`;
    for (const h of r.headerRules) use.push(`  use_backend out_${h.to} if ${at} ${h.headers.map(([k, v]) => `{ req.hdr(${q(k)}) -m str ${q(v)} }`).join(' ')}`);
    // Weighted split: one draw of rand(100) per request against cumulative thresholds.
    push(`  http-request set-var(txn.split) rand(100) if ${at}`);
    let acc = 0;
    r.split.forEach((d, i) => {
      acc += d.weight;
      const last = i === r.split.length - 1;
      use.push(`  use_backend out_${d.to} if ${at} ${last ? '' : `{ var(txn.split) -m int lt ${acc} }`}`.trimEnd());
    });
  }
  if (s.origProtoHeader) push('  http-request set-header l5d-orig-proto HTTP/1.1 unless { req.ver 2.0 }');
  push(...use);
  for (const svc of s.services) push(`  use_backend out_${svc.key} if { dst ${svc.vip} } { dst_port ${svc.port} }`);
  // Traffic to anything that is not a Service goes to its original destination (Istio's
  // PassthroughCluster under the default ALLOW_ANY outbound policy).
  push('  default_backend passthrough', '', 'backend passthrough', '  server original 0.0.0.0:0', '');

  for (const svc of s.services) {
    const h2 = s.upstream === 'h2' || svc.protocol === 'grpc';
    push(`backend out_${svc.key}`, '  balance roundrobin');
    for (const ep of svc.endpoints)
      push(
        `  server ${ep.pod} ${ep.ip}:${ep.port} ssl crt ${s.identity.bundleFile} ca-file ${s.rootCaFile} verify required verifyhost ${ep.spiffeId} alpn ${h2 ? 'h2' : 'http/1.1'}${h2 ? ' proto h2' : ''}`,
      );
    push('');
  }

  push('frontend inbound', `  bind 0.0.0.0:${s.inboundPort} ssl crt ${s.identity.bundleFile} ca-file ${s.rootCaFile} verify required alpn h2,http/1.1`);
  if (s.authz.enforced) {
    // L4: the verified peer identity must be allowed on the destination port, else the session
    // is closed before any request is read.
    s.authz.ports.forEach((p, i) => {
      const port = p.port === 'any' ? '' : ` { dst_port ${p.port} }`;
      if (p.identities === 'any') push(`  tcp-request session accept if${port || ' TRUE'}`);
      else if (p.identities.length) {
        push(identityAcl(`peer_${i}`, p.identities));
        push(`  tcp-request session accept if${port} peer_${i}`);
      }
    });
    push('  tcp-request session reject');
    // L7: on ports with HTTP rules a request must match one rule, else 403.
    s.authz.ports.forEach((p, i) => {
      if (!p.l7?.length) return;
      const port = p.port === 'any' ? '' : ` { dst_port ${p.port} }`;
      const peer = p.identities === 'any' ? '' : ` peer_${i}`;
      for (const r of p.l7) {
        const conds = [
          r.method ? `{ method ${q(r.method)} }` : '',
          r.pathRegex ? `{ pathq -m reg ${q(r.pathRegex)} }` : '',
          ...(r.headers ?? []).map(([k, v]) => `{ req.hdr(${q(k)}) -m str ${q(v)} }`),
        ].filter(Boolean);
        push(`  http-request allow if${port}${peer} ${conds.join(' ')}`.trimEnd());
      }
      push(`  http-request deny deny_status 403 if${port || ' TRUE'}${peer}`);
    });
  }
  for (const p of s.inbound) push(`  use_backend app_${p.port} if { dst_port ${p.port} }`);
  push('  default_backend app_original', '');
  const src = s.appSource ? `  source ${s.appSource}` : '';
  for (const p of s.inbound) push(`backend app_${p.port}`, ...(src ? [src] : []), `  server app 127.0.0.1:${p.port}${p.protocol === 'grpc' ? ' proto h2' : ''}`, '');
  push('backend app_original', ...(src ? [src] : []), '  server app 127.0.0.1', '');
  return L.join('\n');
}

/** `show stat` over the admin socket: requests per frontend and backend. */
export function statsCommand(socket: string, command: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const c = connect(socket);
    let out = '';
    c.setEncoding('utf8');
    c.on('connect', () => c.end(`${command}\n`));
    c.on('data', (d) => (out += d));
    c.on('end', () => resolve(out));
    c.on('error', reject);
    c.setTimeout(3000, () => c.destroy(new Error(`no answer from ${socket}`)));
  });
}

export function parseShowStat(csv: string): ProxyCounters {
  const lines = csv.split('\n').filter(Boolean);
  const head = lines[0].replace(/^# /, '').split(',');
  const col = (n: string) => head.indexOf(n);
  const out: ProxyCounters = { frontends: {}, backends: {} };
  for (const l of lines.slice(1)) {
    const f = l.split(',');
    const name = f[col('pxname')];
    const req = Number(f[col('req_tot')] || 0);
    if (f[col('svname')] === 'FRONTEND') out.frontends[name] = req;
    else if (f[col('svname')] === 'BACKEND') out.backends[name] = req;
  }
  return out;
}

export const haproxy: ProxyEngine = {
  name: 'haproxy',
  async version() {
    const p = (await findTool('haproxy')) ?? 'haproxy';
    const r = await exec(p, ['-v'], { allowFail: true });
    return r.stdout.match(/HAProxy version (\S+)/)?.[1] ?? 'unknown';
  },
  renderSidecar,
  start(procs: ProcessGroup, spec: SidecarSpec, configFile: string, logFile: string, role: string): LabProcess {
    return procs.start({ name: `proxy-${spec.pod}`, role, cmd: 'haproxy', args: ['-db', '-f', configFile], netns: spec.netns, logFile });
  },
  async counters(socket: string) {
    return parseShowStat(await statsCommand(socket, 'show stat'));
  },
};
