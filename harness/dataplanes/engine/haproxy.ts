// HAProxy (Debian's 2.6), the lab's one proxy engine: the only place HAProxy configs are rendered,
// processes started and admin sockets read, for every role it plays (sidecar, node proxy,
// waypoint, eBPF node L7 proxy).
// Sidecar: one process per pod in the pod's namespace, running as the uid the capture rules
// exclude. Outbound routes by original destination (SO_ORIGINAL_DST) to endpoints over pooled
// mTLS; inbound terminates mTLS, authorizes the peer's SPIFFE ID and the request, forwards over
// loopback. HAProxy 2.6 has no URI SAN fetch: a client checks the server with `verifyhost` (the CN,
// which repeats the SPIFFE ID), a server finds the allowed URI SAN's DER bytes in `ssl_c_der`.
// Over 500 lines on purpose: every role's renderer lives here, the only module that writes HAProxy configs.
import { connect } from 'node:net';
import { join } from 'node:path';
import { MeshbenchError } from '../../errors.js';
import { uriSanDerHex } from '../mesh/ca.js';
import { exec } from '../../util/exec.js';
import type { LabProcess, ProcessGroup } from '../../util/procs.js';
import { findTool } from '../../util/tools.js';
import type { L7ProxySpec, NodeProxySpec, OutboundRoute, OutboundService, ProxyCounters, ProxyEngine, SidecarSpec, WaypointSpec } from './types.js';

/** Every role's connect/client/server timeouts (the `defaults` sections). */
const TIMEOUTS = ['  timeout connect 5s', '  timeout client 60s', '  timeout server 60s'];

/** Same TLS for every mesh in the lab: TLS 1.3, AES-128-GCM, OpenSSL via HAProxy. */
export const TLS_SETTINGS = { version: 'TLSv1.3', cipher: 'TLS_AES_128_GCM_SHA256' };

const sanHex = (spiffeId: string) => uriSanDerHex(spiffeId).toUpperCase();
/** One config word. Single quotes: HAProxy takes their content literally (no escapes, no $VARS). */
const q = (s: string) => {
  const bad = /['\r\n]/.exec(s);
  if (bad) throw new ConfigWordError(s, bad[0] === "'" ? 'a single quote' : 'a line break');
  return /^[A-Za-z0-9_.:/-]+$/.test(s) ? s : `'${s}'`;
};

/** A string HAProxy cannot hold in one config word: bad input (the scenario's L7 rules and routes are its only source). */
export class ConfigWordError extends MeshbenchError {
  constructor(
    readonly word: string,
    readonly what: string,
  ) {
    super('E_INPUT', `cannot put ${what} in a HAProxy config word: ${JSON.stringify(word)}`, {
      hint: 'keep quotes and line breaks out of L7 rules (methods, paths, headers) and routes',
    });
  }
}

function identityAcl(name: string, ids: string[]): string {
  return `  acl ${name} ssl_c_der,hex -m sub ${ids.map(sanHex).join(' ')}`;
}

export function renderSidecar(s: SidecarSpec): string {
  if (s.passThrough) return renderPassThrough(s);
  if (s.l7 === false) return renderL4Sidecar(s);
  const tls = s.transport !== 'plain';
  const L: string[] = [];
  const push = (...x: string[]) => L.push(...x);
  push(
    `# meshbench sidecar for pod ${s.pod}: HAProxy in the role of a per-pod mesh proxy${tls ? '' : ' (mtls=off: plain HTTP between proxies)'}`,
    ...globalSection(s.threads, s.adminSocket, [`  uid ${s.uid}`, `  gid ${s.gid}`], tls),
    'defaults',
    '  mode http',
    ...TIMEOUTS,
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
    push(...routeLines(r, at), `  http-request deny deny_status 404 if ${at} ${ROUTE_UNSET}`);
    use.push(...routeUse(r, 'out_'));
  }
  if (s.origProtoHeader) push('  http-request set-header l5d-orig-proto HTTP/1.1 unless { req.ver 2.0 }');
  push(...new Set(use));
  for (const svc of s.services) push(`  use_backend out_${svc.key} if { dst ${svc.vip} } { dst_port ${svc.port} }`);
  // Traffic to anything that is not a Service goes to its original destination (Istio's
  // PassthroughCluster under the default ALLOW_ANY outbound policy).
  push('  default_backend passthrough', '', 'backend passthrough', '  server original 0.0.0.0:0', '');

  for (const svc of s.services) {
    const h2 = s.upstream === 'h2' || svc.protocol === 'grpc';
    push(`backend out_${svc.key}`, '  balance roundrobin');
    for (const ep of svc.endpoints)
      push(
        tls
          ? `  server ${ep.pod} ${ep.ip}:${ep.port} ssl crt ${s.identity.bundleFile} ca-file ${s.rootCaFile} verify required verifyhost ${ep.spiffeId} alpn ${h2 ? 'h2' : 'http/1.1'}${h2 ? ' proto h2' : ''}`
          : `  server ${ep.pod} ${ep.ip}:${ep.port}${h2 ? ' proto h2' : ''}`,
      );
    push('');
  }

  // Plain: HAProxy's HTTP/1 listener recognises the HTTP/2 preface itself (h2c prior knowledge).
  const inTls = tls ? ` ssl crt ${s.identity.bundleFile} ca-file ${s.rootCaFile} verify required alpn h2,http/1.1` : '';
  push('frontend inbound', `  bind 0.0.0.0:${s.inboundPort}${inTls}`);
  // The verified peer identity (plain: the peer's pod address) must be allowed on the destination
  // port, else the session is closed before any request is read; on ports with HTTP rules a
  // request must match one, else 403.
  authzLines(s.authz, L, true);
  for (const p of s.inbound) push(`  use_backend app_${p.port} if { dst_port ${p.port} }`);
  push('  default_backend app_original', '');
  const src = s.appSource ? `  source ${s.appSource}` : '';
  for (const p of s.inbound)
    push(`backend app_${p.port}`, ...(src ? [src] : []), `  server app 127.0.0.1:${p.port}${p.protocol === 'grpc' ? ' proto h2' : ''}`, '');
  push('backend app_original', ...(src ? [src] : []), '  server app 127.0.0.1', '');
  return L.join('\n');
}

const globalSection = (threads: number, socket: string, extra: string[] = [], tls = true) => [
  'global',
  ...extra,
  `  nbthread ${threads}`,
  `  stats socket ${socket} mode 600 level admin`,
  ...(tls
    ? [
        `  ssl-default-bind-options ssl-min-ver ${TLS_SETTINGS.version}`,
        `  ssl-default-bind-ciphersuites ${TLS_SETTINGS.cipher}`,
        `  ssl-default-server-options ssl-min-ver ${TLS_SETTINGS.version}`,
        `  ssl-default-server-ciphersuites ${TLS_SETTINGS.cipher}`,
      ]
    : []),
  '',
];

/** A per-pod proxy in `mode tcp` up to its outbound listener: global section, defaults, the bind the capture leads to. */
function tcpSidecarHead(s: SidecarSpec, tls: boolean): string[] {
  return [
    ...globalSection(s.threads, s.adminSocket, [`  uid ${s.uid}`, `  gid ${s.gid}`], tls),
    'defaults',
    '  mode tcp',
    ...TIMEOUTS,
    '',
    'frontend outbound',
    `  bind 0.0.0.0:${s.outboundPort}`,
  ];
}

/**
 * The l7=off ablation's sidecar: the mesh sidecar's listeners, Services, mTLS (or plain with
 * mtls=off) and session authorization, in `mode tcp`. Outbound picks the Service by original
 * destination and balances its endpoints per connection (no pooling: one upstream connection per
 * client connection); inbound authorizes the peer at the session and forwards bytes to the app.
 * No ALPN on either side: nothing selects on it in TCP mode, and h2/gRPC bytes pass unchanged.
 */
function renderL4Sidecar(s: SidecarSpec): string {
  const tls = s.transport !== 'plain';
  const L: string[] = [
    `# meshbench sidecar for pod ${s.pod}: HAProxy in the role of a per-pod mesh proxy, l7=off: mode tcp${tls ? '' : ', mtls=off: plain TCP between proxies'}`,
    ...tcpSidecarHead(s, tls),
  ];
  if (s.egress.enforced) {
    for (const a of s.egress.allow) L.push(`  tcp-request connection accept if { dst ${a.ip} }${a.port === 'any' ? '' : ` { dst_port ${a.port} }`}`);
    L.push('  tcp-request connection reject');
  }
  for (const svc of s.services) L.push(`  use_backend out_${svc.key} if { dst ${svc.vip} } { dst_port ${svc.port} }`);
  L.push('  default_backend passthrough', '', 'backend passthrough', '  server original 0.0.0.0:0', '');
  for (const svc of s.services) {
    L.push(`backend out_${svc.key}`, '  balance roundrobin');
    for (const ep of svc.endpoints)
      L.push(
        `  server ${ep.pod} ${ep.ip}:${ep.port}${tls ? ` ssl crt ${s.identity.bundleFile} ca-file ${s.rootCaFile} verify required verifyhost ${ep.spiffeId}` : ''}`,
      );
    L.push('');
  }
  L.push('frontend inbound', `  bind 0.0.0.0:${s.inboundPort}${tls ? ` ssl crt ${s.identity.bundleFile} ca-file ${s.rootCaFile} verify required` : ''}`);
  // Session rules only: a port's L7 rules admit their peers at L4 (as `ebpf` reads them).
  authzLines(s.authz, L, false);
  for (const p of s.inbound) L.push(`  use_backend app_${p.port} if { dst_port ${p.port} }`);
  L.push('  default_backend app_original', '');
  const src = s.appSource ? [`  source ${s.appSource}`] : [];
  for (const p of s.inbound) L.push(`backend app_${p.port}`, ...src, `  server app 127.0.0.1:${p.port}`, '');
  L.push('backend app_original', ...src, '  server app 127.0.0.1', '');
  return L.join('\n');
}

/**
 * The capture-only ablation's per-pod process: the same listeners the capture rules lead to, in
 * `mode tcp`, forwarding bytes and nothing else (no TLS, no HTTP parsing, no authorization, no
 * routing: Services are load-balanced by the node's kube-proxy rules as in baseline).
 */
function renderPassThrough(s: SidecarSpec): string {
  const src = s.appSource ? [`  source ${s.appSource}`] : [];
  return [
    `# meshbench capture-only pass-through for pod ${s.pod}: HAProxy in mode tcp, no mesh function`,
    ...tcpSidecarHead(s, false),
    '  default_backend passthrough',
    '',
    // The original destination (SO_ORIGINAL_DST of the redirected connection), as the uid the capture excludes.
    'backend passthrough',
    '  server original 0.0.0.0:0',
    '',
    'frontend inbound',
    `  bind 0.0.0.0:${s.inboundPort}`,
    '  default_backend app_original',
    '',
    // No port: the original destination port, i.e. the app's.
    'backend app_original',
    ...src,
    '  server app 127.0.0.1',
    '',
  ].join('\n');
}

/**
 * A node proxy in the ztunnel role: one process in the node's namespace serving every local pod,
 * with each pod's listeners bound inside that pod's namespace (`bind … namespace`) and its
 * outgoing connections made from there (`server … namespace`), so they leave with the pod's
 * address. L4 only (mode tcp, no HTTP parsing). Outbound: original destination → Service →
 * endpoint → mTLS to the endpoint's tunnel port presenting the *source* pod's identity, the
 * original destination carried in a PROXY protocol v2 header. Tunnel inbound: terminate mTLS,
 * authorize the peer identity, map the original destination to the app port, deliver.
 */
export function renderNodeProxy(s: NodeProxySpec): NodeProxyConfig {
  // mtls=off: the same tunnels (PROXY v2 to :15008) without TLS; peers checked by address.
  const plain = s.transport === 'plain';
  if (plain && s.waypoints?.length) throw new Error('plaintext tunnels through a waypoint are not modelled (its ALPN names the app port)');
  const L: string[] = [
    `# meshbench node proxy for ${s.node}: HAProxy in the role of a per-node L4 proxy (ztunnel)${plain ? ', mtls=off: plaintext tunnels' : ''}`,
    ...globalSection(s.threads, s.adminSocket, [], !plain),
  ];
  L.push('defaults', '  mode tcp', ...TIMEOUTS, '');
  const maps = nodeProxyMaps(s);
  const map = (name: keyof typeof maps) => join(s.mapDir, `${name}.map`);
  s.pods.forEach((p) => {
    // Named after the pod's namespace: unique, and what a reader or a test looks up.
    const id = p.netns;
    const ns = `namespace ${p.netns}`;
    L.push(`# pod ${p.pod} (${p.ip}) as ${p.identity.spiffeId}`, `frontend out_${id}`, `  bind 0.0.0.0:${s.outboundPort} ${ns}`);
    if (p.egress.enforced) {
      for (const a of p.egress.allow) L.push(`  tcp-request connection accept if { dst ${a.ip} }${a.port === 'any' ? '' : ` { dst_port ${a.port} }`}`);
      L.push('  tcp-request connection reject');
    }
    // Service → endpoint from the node's tables (map files), not per-pod config: a waypoint if the
    // Service has one, else a random endpoint; a mesh workload addressed by its own IP is
    // tunnelled to as it is. The chosen endpoint becomes the connection's destination, so the
    // PROXY v2 header names the endpoint and its app port.
    const found = (v: string) => `{ var(txn.${v}) -m found }`;
    L.push(
      '  tcp-request content set-var-fmt(txn.svc) "%[dst]:%[dst_port]"',
      `  tcp-request content set-var(txn.wp) var(txn.svc),map_str(${map('waypoints')})`,
      `  tcp-request content set-var(txn.n) var(txn.svc),map_str_int(${map('services')}) unless ${found('wp')}`,
      `  tcp-request content set-var-fmt(txn.key) "%[var(txn.svc)]/%[rand,mod(txn.n)]" if ${found('n')}`,
      `  tcp-request content set-var(txn.ep) var(txn.key),map_str_ip(${map('endpoints')}) if ${found('n')}`,
      `  tcp-request content set-var(txn.port) var(txn.key),map_str_int(${map('endpoint-ports')}) if ${found('n')}`,
      `  tcp-request content set-var(txn.ep) dst if !${found('wp')} !${found('ep')} { dst,map_ip(${map('identities')}) -m found }`,
      `  tcp-request content set-var(txn.id) var(txn.ep),map_ip(${map('identities')}) if ${found('ep')}`,
      `  tcp-request content set-dst var(txn.ep) if ${found('ep')}`,
      `  tcp-request content set-dst-port var(txn.port) if ${found('port')}`,
    );
    if (s.waypoints?.length) L.push(`  use_backend w_${id}_%[var(txn.wp)] if ${found('wp')}`);
    L.push(`  use_backend t_${id} if ${found('id')}`, `  default_backend pass_${id}`, '');
    const tls = `ssl crt ${p.identity.bundleFile} ca-file ${s.rootCaFile} verify required`;
    // Presenting this pod's identity, from this pod's namespace, to whichever endpoint was chosen;
    // the peer certificate is checked against its SPIFFE ID sent as SNI (HAProxy verifies the
    // server name it sends).
    L.push(`backend t_${id}`, `  server endpoint 0.0.0.0:${s.tunnelPort} ${ns}${plain ? '' : ` ${tls} sni var(txn.id)`} send-proxy-v2`, '');
    (s.waypoints ?? []).forEach((wp, k) =>
      L.push(`backend w_${id}_${k}`, `  server waypoint ${wp.ip}:${wp.port} ${ns} ${tls} verifyhost ${wp.spiffeId} send-proxy-v2`, ''),
    );
    L.push(`backend pass_${id}`, `  server original 0.0.0.0:0 ${ns}`, '');

    // Node proxies send the original destination in a PROXY v2 header (no reuse: one tunnel per
    // client connection). Waypoints keep pooled connections instead and name the app port in ALPN.
    const wpIps = (s.waypoints ?? []).map((w) => w.ip);
    const appPorts = [...new Set(p.inbound.map((x) => x.targetPort))];
    const alpn = appPorts.length ? ` alpn ${appPorts.map(alpnFor).join(',')}` : '';
    L.push(
      `frontend tun_${id}`,
      `  bind 0.0.0.0:${s.tunnelPort} ${ns}${plain ? '' : ` ssl crt ${p.identity.bundleFile} ca-file ${s.rootCaFile} verify required${alpn}`}`,
    );
    L.push(`  tcp-request connection expect-proxy layer4${wpIps.length ? ` unless { src ${wpIps.join(' ')} }` : ''}`);
    // A tunnel's destination is the original one from the PROXY header: the pod's own address
    // and app port, or a Service VIP that maps to it. Policies name app ports, so each app port
    // gets an ACL matching both (ACLs declared twice are OR-ed).
    for (const port of [...new Set(p.inbound.map((x) => x.targetPort))]) {
      L.push(`  acl to_${port} dst_port ${port}`, ...(plain ? [] : [`  acl to_${port} ssl_fc_alpn ${alpnFor(port)}`]));
      for (const x of p.inbound.filter((y) => y.targetPort === port && y.vip)) L.push(`  acl to_${port} dst ${x.vip}`);
    }
    const ports = new Set(p.inbound.map((x) => x.targetPort));
    authzLines(p.authz, L, false, (port) => (port === 'any' ? '' : ports.has(port) ? ` to_${port}` : ` { dst_port ${port} }`));
    for (const x of p.inbound) {
      if (!plain) L.push(`  use_backend app_${id}_${x.targetPort} if { ssl_fc_alpn ${alpnFor(x.targetPort)} }`);
      if (x.vip) L.push(`  use_backend app_${id}_${x.targetPort} if { dst ${x.vip} } { dst_port ${x.port} }`);
      L.push(`  use_backend app_${id}_${x.targetPort} if { dst ${p.ip} } { dst_port ${x.targetPort} }`);
    }
    L.push(`  default_backend app_${id}_original`, '');
    // Plaintext arriving from outside the mesh (REDIRECTed to 15006): no identity, so a pod
    // under an enforced policy refuses it; otherwise it goes to the app unchanged.
    L.push(`frontend in_${id}`, `  bind 0.0.0.0:${s.inboundPlainPort} ${ns}`);
    if (p.authz.enforced && !p.authz.ports.some((x) => x.identities === 'any')) L.push('  tcp-request connection reject');
    L.push(`  default_backend app_${id}_original`, '');
    const src = s.keepSourceIp ? ' source 0.0.0.0 usesrc clientip' : '';
    for (const port of [...new Set(p.inbound.map((x) => x.targetPort))]) L.push(`backend app_${id}_${port}`, `  server app ${p.ip}:${port} ${ns}${src}`, '');
    L.push(`backend app_${id}_original`, `  server app 0.0.0.0:0 ${ns}${src}`, '');
  });
  return { config: L.join('\n'), maps: Object.fromEntries(Object.entries(maps).map(([k, v]) => [map(k as keyof typeof maps), v])) };
}

export interface NodeProxyConfig {
  config: string;
  /** Map files the config reads, by path. */
  maps: Record<string, string>;
}

/**
 * The node's tables, shared by all its pods (ztunnel keeps one copy of the mesh's Services and
 * workloads too): Service VIP:port → waypoint index or endpoint count; VIP:port/i → the i-th
 * endpoint's address and app port; workload address → SPIFFE ID.
 */
function nodeProxyMaps(s: NodeProxySpec) {
  const text = (rows: [string, string | number][]) => rows.map(([k, v]) => `${k} ${v}\n`).join('');
  const at = (x: OutboundService) => `${x.vip}:${x.port}`;
  const wp = (x: OutboundService) => (s.waypoints ?? []).findIndex((w) => w.services.includes(x.key));
  const direct = s.services.filter((x) => wp(x) < 0 && x.endpoints.length);
  const eps = direct.flatMap((x) => x.endpoints.map((e, i) => [`${at(x)}/${i}`, e] as const));
  return {
    waypoints: text(s.services.filter((x) => wp(x) >= 0).map((x) => [at(x), wp(x)])),
    services: text(direct.map((x) => [at(x), x.endpoints.length])),
    endpoints: text(eps.map(([k, e]) => [k, e.ip])),
    'endpoint-ports': text(eps.map(([k, e]) => [k, e.port])),
    identities: text(s.workloads.map((w) => [w.ip, w.spiffeId])),
  };
}

/**
 * The ALPN token a waypoint offers to name the app port at the destination (HBONE puts it in the
 * CONNECT authority). Not SNI: HAProxy 2.6 verifies the server certificate against the SNI
 * whenever one is sent, which would replace the SPIFFE check of `verifyhost`.
 */
const alpnFor = (port: number) => `port-${port}`;

const byPort = (port: number | 'any') => (port === 'any' ? '' : ` { dst_port ${port} }`);

/**
 * Identity (session) rules and, in HTTP mode, request rules for one inbound listener. `where`
 * turns a policy port into the condition that selects its traffic (the destination port for a
 * proxy in front of one pod; the Service VIP and port for a waypoint); '' means all traffic.
 * Session accept ends the session rules, so one listener can hold several services' rules and
 * end with a single reject.
 */
function authzLines(
  a: SidecarSpec['authz'],
  L: string[],
  http: boolean | 'only',
  where: (port: number | 'any') => string | undefined = byPort,
  tag = '',
  finalReject = true,
): void {
  if (!a.enforced) return;
  if (http !== 'only')
    a.ports.forEach((p, i) => {
      const w = where(p.port);
      if (w === undefined) return;
      const name = `peer${tag}_${i}`;
      // Without identities (plaintext peers) the allowed pods are known by their addresses.
      const who = p.addresses ?? p.identities;
      if (who === 'any') L.push(`  tcp-request session accept if${w || ' TRUE'}`);
      else if (who.length) L.push(p.addresses ? `  acl ${name} src ${who.join(' ')}` : identityAcl(name, who), `  tcp-request session accept if${w} ${name}`);
    });
  if (finalReject && http !== 'only') L.push('  tcp-request session reject');
  if (!http) return;
  a.ports.forEach((p, i) => {
    const w = where(p.port);
    if (!p.l7?.length || w === undefined) return;
    const peer = (p.addresses ?? p.identities) === 'any' ? '' : ` peer${tag}_${i}`;
    for (const r of p.l7) L.push(`  http-request allow if${w}${peer} ${l7Conds(r).join(' ')}`.trimEnd());
    L.push(`  http-request deny deny_status 403 if${w || ' TRUE'}${peer}`);
  });
}

/**
 * A waypoint (Envoy in Istio Ambient) for one namespace: receives tunnels from source node proxies
 * (mTLS + PROXY v2 with the original destination), applies each Service's L7 policy against the
 * source identity and its routes, then tunnels on to the chosen endpoint's node proxy presenting
 * the waypoint's own identity.
 */
export function renderWaypoint(s: WaypointSpec): string {
  const L: string[] = [
    `# meshbench waypoint for namespace ${s.namespace}: HAProxy in the role of a waypoint (Envoy)`,
    ...globalSection(s.threads, s.adminSocket),
  ];
  L.push('defaults', '  mode http', ...TIMEOUTS, '  http-reuse always', '');
  L.push(
    'frontend waypoint',
    `  bind 0.0.0.0:${s.port} accept-proxy ssl crt ${s.identity.bundleFile} ca-file ${s.rootCaFile} verify required alpn h2,http/1.1`,
  );
  const at = (svc: OutboundService) => ` { dst ${svc.vip} } { dst_port ${svc.port} }`;
  s.services.forEach((x, i) => {
    const w = at(x.service);
    if (!x.authz.enforced) L.push(`  tcp-request session accept if${w}`);
    else authzLines(x.authz, L, false, (port) => (port === 'any' || port === x.targetPort ? w : undefined), `_s${i}`, false);
  });
  L.push('  tcp-request session reject');
  // Request rules use the identity ACLs declared with the session rules above.
  s.services.forEach((x, i) =>
    authzLines(x.authz, L, 'only', (port) => (port === 'any' || port === x.targetPort ? at(x.service) : undefined), `_s${i}`, false),
  );
  const byKey = new Map(s.services.map((x) => [x.service.key, x.service]));
  const use: string[] = [];
  for (const r of s.routes) {
    const svc = byKey.get(r.service);
    if (!svc) continue;
    L.push(...routeLines(r, at(svc).trim()), `  http-request deny deny_status 404 if${at(svc)} ${ROUTE_UNSET}`);
    use.push(...routeUse(r, 'wo_'));
  }
  L.push(...new Set(use));
  for (const x of s.services) L.push(`  use_backend wo_${x.service.key} if${at(x.service)}`);
  L.push('');
  for (const svc of s.targets) {
    L.push(`backend wo_${svc.key}`, '  balance roundrobin');
    for (const ep of svc.endpoints)
      L.push(
        `  server ${ep.pod} ${ep.ip}:${s.tunnelPort} ssl crt ${s.identity.bundleFile} ca-file ${s.rootCaFile} verify required verifyhost ${ep.spiffeId} alpn ${alpnFor(ep.port)}${svc.protocol === 'grpc' ? ' proto h2' : ''}`,
      );
    L.push('');
  }
  return L.join('\n');
}

const ROUTE_UNSET = '!{ var(txn.route) -m found }';

/**
 * A route as request rules with the model's semantics (routeRuleFor in policy/model.ts): rules in
 * order, each matching on all its headers (exact) and its path prefix (`pathq -m beg`: the request
 * target with its query, as the model's path and Envoy's :path); the first match sets `var` to one of its destinations, drawn
 * by weight (one rand over the rule's total against cumulative thresholds). Callers route on
 * `var` and answer 404 when it is unset for the routed Service.
 */
function routeLines(r: OutboundRoute, at: string, v = 'txn.route'): string[] {
  const L: string[] = [];
  const unset = `!{ var(${v}) -m found }`;
  for (const rule of r.rules) {
    const cond = [
      at,
      ...rule.headers.map(([k, val]) => `{ req.hdr(${q(k)}) -m str ${q(val)} }`),
      ...(rule.pathPrefix ? [`{ pathq -m beg ${q(rule.pathPrefix)} }`] : []),
      unset,
    ].join(' ');
    const total = rule.to.reduce((a, d) => a + d.weight, 0);
    if (rule.to.length > 1) L.push(`  http-request set-var(txn.split) rand(${total}) if ${cond}`);
    let acc = 0;
    rule.to.forEach((d, i) => {
      acc += d.weight;
      L.push(`  http-request set-var(${v}) str(${d.to}) if ${cond}${i < rule.to.length - 1 ? ` { var(txn.split) -m int lt ${acc} }` : ''}`);
    });
  }
  return L;
}

/** One static backend choice per route destination (a missing backend fails at config check, not per request). */
const routeUse = (r: OutboundRoute, prefix: string) =>
  [...new Set(r.rules.flatMap((x) => x.to.map((d) => d.to)))].map((to) => `  use_backend ${prefix}${to} if { var(txn.route) -m str ${to} }`);

/** Conditions of one L7 allow rule (method, anchored path regex, exact headers). */
function l7Conds(r: { method?: string; pathRegex?: string; headers?: [string, string][] }): string[] {
  return [
    r.method ? `{ method ${q(r.method)} }` : '',
    r.pathRegex ? `{ pathq -m reg ${q(r.pathRegex)} }` : '',
    ...(r.headers ?? []).map(([k, v]) => `{ req.hdr(${q(k)}) -m str ${q(v)} }`),
  ].filter(Boolean);
}

/**
 * The eBPF dataplane's node L7 proxy (the role of Cilium's per-node Envoy). Connections reach it by
 * TPROXY (the tc programs mark them, the node's rule delivers them to these transparent listeners)
 * with their original source and destination. Ingress redirects: the source identity is looked up
 * by address, the request judged against the destination pod's L7 rules (403 otherwise), and
 * delivered into the pod's namespace. Routed Services: a route picks the Service, the node's tables
 * an endpoint, and the upstream connection is made from the client pod's own namespace, so it
 * carries the client's address and identity through the datapath's policy like any connection.
 * Every request is logged as a JSON flow record (Hubble's L7 flows).
 */
export function renderL7Proxy(s: L7ProxySpec): NodeProxyConfig {
  const map = (name: string) => join(s.mapDir, `${name}.map`);
  const L: string[] = [
    `# meshbench L7 proxy for ${s.node}: HAProxy in the role of the node's Envoy (Cilium)`,
    ...globalSection(s.threads, s.adminSocket, ['  log stdout format raw daemon']),
  ];
  // Numeric log fields have defaults (a request refused before any rule ran still makes valid JSON); no record for connections without a request.
  L.push('defaults', '  mode http', '  log global', '  option dontlognull', ...TIMEOUTS, '  timeout http-keep-alive 60s', '  http-reuse always', '');
  const record = (direction: string) =>
    `  log-format '{"timeNs":%[date(0,us)]000,"node":"${s.node}","type":"L7","verdict":"%[var(txn.verdict)]","dropReason":"%[var(txn.reason)]","direction":"${direction}","observationPoint":"l7-proxy","protocol":"HTTP",` +
    `"source":{"ip":"%ci","port":%cp,"identity":%[var(txn.sid,2)]},"destination":{"ip":"%[var(txn.dst)]","port":%[var(txn.dport,0)],"identity":%[var(txn.did,0)]},` +
    `"l7":{"method":"%HM","path":%{+Q}HPO,"status":%ST,"upstream":"%si:%sp","route":"%[var(txn.target)]"}}'`;
  const ids = map('identities');
  const start = [
    '  http-request set-var(txn.verdict) str(FORWARDED)',
    `  http-request set-var(txn.sid) src,map_ip_int(${ids},2)`,
    '  http-request set-var(txn.dst) dst',
    '  http-request set-var(txn.dport) dst_port',
    `  http-request set-var(txn.did) dst,map_ip_int(${ids},0)`,
  ];
  const refuse = (status: number, reason: string, cond = '') => [
    `  http-request set-var(txn.verdict) str(DROPPED)${cond}`,
    `  http-request set-var(txn.reason) str(${reason})${cond}`,
    `  http-request deny deny_status ${status}${cond}`,
  ];
  const maps: Record<string, string> = { [ids]: s.identities.map((x) => `${x.ip} ${x.identity}\n`).join('') };

  if (s.ingress.length) {
    L.push('frontend l7_ingress', ...[...new Set(Object.values(s.proxyPorts))].map((p) => `  bind 0.0.0.0:${p} transparent`), record('INGRESS'), ...start);
    for (const x of s.ingress) {
      const at = `{ dst ${x.ip} } { dst_port ${x.port} }`;
      for (const g of x.rules) {
        const peer = g.identities === 'any' ? '' : ` { var(txn.sid) -m int ${g.identities.join(' ')} }`;
        for (const r of g.l7) L.push(`  http-request allow if ${at}${peer} ${l7Conds(r).join(' ')}`.trimEnd());
      }
    }
    L.push(...refuse(403, 'POLICY_DENIED'));
    for (const x of s.ingress) L.push(`  use_backend app_${x.netns}_${x.port} if { dst ${x.ip} } { dst_port ${x.port} }`);
    L.push('');
    // Into the pod's namespace, to its own address: the app sees the pod's address as the client
    // (Cilium's Envoy keeps the client's, with IP_TRANSPARENT).
    for (const x of s.ingress)
      L.push(`backend app_${x.netns}_${x.port}`, `  server app ${x.ip}:${x.port} namespace ${x.netns}${x.protocol === 'grpc' ? ' proto h2' : ''}`, '');
  }

  if (s.lb) {
    const { lb } = s;
    const byKey = new Map(lb.services.map((x) => [x.key, x]));
    const found = '{ var(txn.target) -m found }';
    L.push('frontend l7_lb', `  bind 0.0.0.0:${lb.port} transparent`, record('EGRESS'), ...start);
    for (const r of lb.routes) {
      const svc = byKey.get(r.service);
      if (!svc) continue;
      L.push(...routeLines(r, `{ dst ${svc.vip} } { dst_port ${svc.port} }`, 'txn.target'));
    }
    L.push(...refuse(404, 'NO_ROUTE', ` unless ${found}`));
    const grpc = lb.services.filter((x) => x.protocol === 'grpc').map((x) => x.key);
    L.push(
      `  http-request set-var(txn.n) var(txn.target),map_str_int(${map('services')})`,
      '  http-request set-var-fmt(txn.key) "%[var(txn.target)]/%[rand,mod(txn.n)]" if { var(txn.n) -m int gt 0 }',
      `  http-request set-var(txn.ep) var(txn.key),map_str_ip(${map('endpoints')}) if { var(txn.key) -m found }`,
      `  http-request set-var(txn.port) var(txn.key),map_str_int(${map('endpoint-ports')}) if { var(txn.key) -m found }`,
      // A route to a Service without endpoints must not fall through to the original VIP: that would come straight back here.
      ...refuse(503, 'NO_ENDPOINT', ' unless { var(txn.ep) -m found }'),
      '  http-request set-dst var(txn.ep) if { var(txn.ep) -m found }',
      '  http-request set-dst-port var(txn.port) if { var(txn.port) -m found }',
      '  http-request set-var(txn.dst) dst',
      '  http-request set-var(txn.dport) dst_port',
      `  http-request set-var(txn.did) dst,map_ip_int(${ids},0)`,
      ...(grpc.length ? [`  http-request set-var(txn.h2) str(_h2) if { var(txn.target) -m str ${grpc.join(' ')} }`] : []),
      `  use_backend via_%[src,map_ip(${map('clients')})]%[var(txn.h2)]`,
      '',
    );
    for (const cl of lb.clients) {
      L.push(`backend via_${cl.netns}`, `  server up 0.0.0.0:0 namespace ${cl.netns}`, '');
      if (grpc.length) L.push(`backend via_${cl.netns}_h2`, `  server up 0.0.0.0:0 namespace ${cl.netns} proto h2`, '');
    }
    const eps = lb.services.filter((x) => x.endpoints.length).flatMap((x) => x.endpoints.map((e, i) => [`${x.key}/${i}`, e] as const));
    maps[map('services')] = lb.services
      .filter((x) => x.endpoints.length)
      .map((x) => `${x.key} ${x.endpoints.length}\n`)
      .join('');
    maps[map('endpoints')] = eps.map(([k, e]) => `${k} ${e.ip}\n`).join('');
    maps[map('endpoint-ports')] = eps.map(([k, e]) => `${k} ${e.port}\n`).join('');
    maps[map('clients')] = lb.clients.map((x) => `${x.ip} ${x.netns}\n`).join('');
  }
  return { config: L.join('\n') + '\n', maps };
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
  const out: ProxyCounters = { frontends: {}, backends: {}, frontendSessions: {}, backendSessions: {} };
  for (const l of lines.slice(1)) {
    const f = l.split(',');
    const name = f[col('pxname')];
    const req = Number(f[col('req_tot')] || 0);
    const sess = Number(f[col('stot')] || 0);
    if (f[col('svname')] === 'FRONTEND') {
      out.frontends[name] = req;
      out.frontendSessions[name] = sess;
    } else if (f[col('svname')] === 'BACKEND') {
      out.backends[name] = req;
      out.backendSessions[name] = sess;
    }
  }
  return out;
}

export interface HaproxyProcess {
  name: string;
  role: string;
  /** Namespace the process starts in. */
  netns: string;
  configFile: string;
  logFile: string;
  /** Drop root before exec (setpriv): run as this uid/gid keeping only these capabilities. */
  as?: { uid: number; caps: string[] };
}

/** Start one HAProxy of the lab (foreground, so the process group owns it). */
export function spawnHaproxy(procs: ProcessGroup, p: HaproxyProcess): LabProcess {
  const args = ['-db', '-f', p.configFile];
  if (!p.as) return procs.start({ name: p.name, role: p.role, cmd: 'haproxy', args, netns: p.netns, logFile: p.logFile });
  const caps = p.as.caps.map((x) => `+${x}`).join(',');
  return procs.start({
    name: p.name,
    role: p.role,
    cmd: 'setpriv',
    args: [`--reuid=${p.as.uid}`, `--regid=${p.as.uid}`, '--clear-groups', `--inh-caps=${caps}`, `--ambient-caps=${caps}`, 'haproxy', ...args],
    netns: p.netns,
    logFile: p.logFile,
  });
}

export interface HaproxyBuild {
  path: string;
  /** "2.6.12-1+deb12u1", or the first line of `haproxy -vv` when it has no version. */
  version: string;
  /** Build options from "Feature list": NS, TPROXY … (without the sign); empty when the list is missing. */
  features: string[];
  /** True when `haproxy -vv` printed a feature list at all. */
  listed: boolean;
}

/** What `haproxy -vv` says about this build; undefined when haproxy is not installed. */
export async function haproxyBuild(timeoutMs = 5000): Promise<HaproxyBuild | undefined> {
  const path = await findTool('haproxy');
  if (!path) return undefined;
  const r = await exec(path, ['-vv'], { allowFail: true, timeoutMs });
  const out = `${r.stdout}\n${r.stderr}`;
  const line =
    out
      .split('\n')
      .map((l) => l.trim())
      .find(Boolean) ?? '';
  const list = out.match(/^Feature list\s*:\s*(.*)$/m)?.[1];
  return {
    path,
    version: line
      .replace(/^HAProxy version /, '')
      .replace(/\s*-?\s*https?:\/\/\S+/g, '')
      .replace(/\s+/g, ' ')
      .slice(0, 80)
      .trim(),
    features: (list?.split(/\s+/) ?? []).filter((f) => f.startsWith('+')).map((f) => f.slice(1)),
    listed: list !== undefined,
  };
}

/** What each build flag the lab asks for gives a proxy. */
export const HAPROXY_FLAG_USE: Record<string, string> = { NS: 'binds and servers inside other namespaces', TPROXY: 'transparent listeners' };

export const haproxy: ProxyEngine = {
  name: 'haproxy',
  async version() {
    const p = (await findTool('haproxy')) ?? 'haproxy';
    const r = await exec(p, ['-v'], { allowFail: true });
    return r.stdout.match(/HAProxy version (\S+)/)?.[1] ?? 'unknown';
  },
  renderSidecar,
  start(procs: ProcessGroup, spec: SidecarSpec, configFile: string, logFile: string, role: string): LabProcess {
    return spawnHaproxy(procs, { name: `proxy-${spec.pod}`, role, netns: spec.netns, configFile, logFile });
  },
  async counters(socket: string) {
    return parseShowStat(await statsCommand(socket, 'show stat'));
  },
};
