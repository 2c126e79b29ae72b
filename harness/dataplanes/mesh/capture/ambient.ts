// Istio Ambient traffic capture inside a pod's namespace: the istio-cni in-pod rules for ztunnel,
// reproduced rule for rule (tables, chains, order, match options), plus the policy route that keeps
// replies to the node proxy's local deliveries inside the pod. Lab deviation: the node proxy is
// excluded by uid (`exclude: { uid }`), not by mark 0x539. Upstream sources and the rule-by-rule
// walk-through: docs/ (ambient family page).
import { runError } from '../../../errors.js';
import { exec } from '../../../util/exec.js';
import type { CaptureDescription, IptablesBackend } from './types.js';
import { BUILTIN_CHAINS, diffAgainstSave, parseTable, type TableRules } from './rules.js';

/** Marks and masks from cni/pkg/config/config.go. */
export const AMBIENT_MARKS = {
  /** InpodMark: SO_MARK on every socket ztunnel opens inside a pod (1337). */
  inpodMark: 0x539,
  inpodMask: 0xfff,
  /** InpodTProxyMark: connmark (and restored packet mark) of connections ztunnel delivers locally. */
  inpodTproxyMark: 0x111,
  inpodTproxyMask: 0xfff,
  /** InpodRestoreMask: --nfmask/--ctmask of the restore. */
  restoreMask: 0xffffffff,
} as const;

/** `0x539/0xfff`, as the rules spell it. */
export const AMBIENT_MARK = `0x${AMBIENT_MARKS.inpodMark.toString(16)}/0x${AMBIENT_MARKS.inpodMask.toString(16)}`;
/** `0x111/0xfff`, as the rules and the ip rule spell it. */
export const AMBIENT_CONNMARK = `0x${AMBIENT_MARKS.inpodTproxyMark.toString(16)}/0x${AMBIENT_MARKS.inpodTproxyMask.toString(16)}`;

/** ztunnel's in-pod listener ports (cni/pkg/config/config.go). */
export const AMBIENT_PORTS = {
  /** ZtunnelOutboundPort: outbound capture. */
  outbound: 15001,
  /** ZtunnelInboundPlaintextPort: inbound plaintext capture. */
  inboundPlain: 15006,
  /** ZtunnelInboundPort: HBONE; never redirected, reached directly. */
  inboundTunnel: 15008,
  /** DNSCapturePort: ztunnel's DNS proxy (REDIRECT target of port 53 when DNS capture is on). */
  dns: 15053,
} as const;

/** The policy routing inside the pod (RouteTableInbound, and the rule's priority). */
export const AMBIENT_ROUTING = { table: 100, rulePriority: 32764 } as const;

/** HOST_PROBE_SNAT_IP default: the host SNATs kubelet probes to it; the pod rules let it through. */
export const AMBIENT_HOST_PROBE_SNAT_IP = '169.254.7.127';

export const AMBIENT_CHAINS = { prerouting: 'ISTIO_PRERT', output: 'ISTIO_OUTPUT' } as const;

export const AMBIENT_LOOPBACK = '127.0.0.1/32';

/** Who the capture leaves alone: upstream's socket mark, or (lab deviation) a socket owner uid. */
export type AmbientExclude = { mark: true } | { uid: number };

export interface AmbientInpodOptions {
  /** Outbound capture port. Default 15001 (upstream constant). */
  outboundPort?: number;
  /** Inbound plaintext capture port. Default 15006 (upstream constant). */
  inboundPlainPort?: number;
  /** HBONE port, excluded from inbound capture. Default 15008 (upstream constant). */
  inboundTunnelPort?: number;
  /**
   * How the node proxy's own traffic is recognised in OUTPUT. Default `{ mark: true }` (upstream:
   * mark 0x539/0xfff). `{ uid }`: `-m owner --uid-owner` instead, in OUTPUT only (see header).
   */
  exclude?: AmbientExclude;
  /** DNS capture (REDIRECT port 53 to 15053, raw-table zones). Default true (chart ambient.dnsCapture). */
  dnsCapture?: boolean;
}

export interface AmbientInpodRules {
  /** iptables-restore --noflush payload: mangle, nat (and raw with DNS capture), in that order. */
  iptables: string;
  /** `ip -batch` lines for the pod namespace, in upstream's order (route, then rule). */
  ipRoute: string[];
}

function port(name: string, v: number): number {
  if (!Number.isInteger(v) || v < 1 || v > 65535) throw new RangeError(`${name} must be a TCP port (1-65535), got ${v}`);
  return v;
}

const TARGETS = new Set(['RETURN', 'REDIRECT', 'ACCEPT', 'DROP', 'DNAT', 'SNAT', 'MASQUERADE', 'MARK', 'CONNMARK', 'TPROXY', 'CT']);

/** The in-pod rules istio-cni installs for an ambient pod (IPv4, REDIRECT) and its routing lines. */
export function ambientInpodRules(opts: AmbientInpodOptions = {}): AmbientInpodRules {
  const out = port('outboundPort', opts.outboundPort ?? AMBIENT_PORTS.outbound);
  const inPlain = port('inboundPlainPort', opts.inboundPlainPort ?? AMBIENT_PORTS.inboundPlain);
  const tunnel = port('inboundTunnelPort', opts.inboundTunnelPort ?? AMBIENT_PORTS.inboundTunnel);
  const ex = opts.exclude ?? { mark: true };
  if ('uid' in ex) {
    if (!Number.isInteger(ex.uid) || ex.uid < 0) throw new RangeError(`exclude.uid must be a non-negative integer, got ${ex.uid}`);
  } else if (ex.mark !== true) {
    throw new RangeError('exclude must be { mark: true } or { uid: number }');
  }
  const dns = opts.dnsCapture ?? true;
  const { prerouting: PRERT, output: OUTPUT } = AMBIENT_CHAINS;
  const lo = AMBIENT_LOOPBACK;
  const mark = AMBIENT_MARK;
  const connmark = AMBIENT_CONNMARK;
  const restore = `0x${AMBIENT_MARKS.restoreMask.toString(16)}`;
  const probe = AMBIENT_HOST_PROBE_SNAT_IP;
  // The proxy-identity match on locally generated packets (OUTPUT hooks only): upstream's mark,
  // or the lab's owner uid, in the same place and with the same negation.
  const proxyOut = (negate: boolean) => ('uid' in ex ? `-m owner ${negate ? '! ' : ''}--uid-owner ${ex.uid}` : `-m mark ${negate ? '! ' : ''}--mark ${mark}`);
  // PREROUTING keeps upstream's mark match in both variants.
  const proxyIn = (negate: boolean) => `-m mark ${negate ? '! ' : ''}--mark ${mark}`;

  // [table, chain, rule] in the order AppendInpodRules() appends them.
  const rules: [string, string, string][] = [];
  const add = (table: string, chain: string, rest: string) => rules.push([table, chain, `-A ${chain} ${rest}`]);

  add('mangle', 'PREROUTING', `-j ${PRERT}`);
  add('mangle', 'OUTPUT', `-j ${OUTPUT}`);
  add('nat', 'OUTPUT', `-j ${OUTPUT}`);
  if (dns) {
    add('raw', 'PREROUTING', `-j ${PRERT}`);
    add('raw', 'OUTPUT', `-j ${OUTPUT}`);
  }
  add('nat', 'PREROUTING', `-j ${PRERT}`);
  // ztunnel's packet seen arriving (over lo, to the local app): remember it on the connection.
  add('mangle', PRERT, `${proxyIn(false)} -j CONNMARK --set-xmark ${connmark}`);
  // Kubelet probes, SNATed to the probe address on the host: not captured, nor their replies.
  add('nat', PRERT, `-s ${probe} -p tcp -m tcp -j ACCEPT`);
  add('nat', OUTPUT, `-d ${probe} -p tcp -m tcp -j ACCEPT`);
  // Inbound plaintext → ztunnel 15006; HBONE (15008) goes straight to ztunnel's listener.
  add('nat', PRERT, `! -d ${lo} -p tcp ! --dport ${tunnel} ${proxyIn(true)} -j REDIRECT --to-ports ${inPlain}`);
  // Packets of connections ztunnel delivered locally get the connmark back as their mark (→ table 100).
  add('mangle', OUTPUT, `-m connmark --mark ${connmark} -j CONNMARK --restore-mark --nfmask ${restore} --ctmask ${restore}`);
  if (dns) {
    add('nat', OUTPUT, `! -o lo -p udp ${proxyOut(true)} -m udp --dport 53 -j REDIRECT --to-port ${AMBIENT_PORTS.dns}`);
    add('nat', OUTPUT, `! -d ${lo} -p tcp --dport 53 ${proxyOut(true)} -j REDIRECT --to-ports ${AMBIENT_PORTS.dns}`);
    add('raw', OUTPUT, `-p udp ${proxyOut(false)} -m udp --dport 53 -j CT --zone 1`);
    add('raw', PRERT, `-p udp ${proxyIn(true)} -m udp --sport 53 -j CT --zone 1`);
  }
  add('nat', OUTPUT, `-p tcp -m mark --mark ${connmark} -j ACCEPT`);
  // App calling its own pod IP (over lo): not through ztunnel.
  add('nat', OUTPUT, `! -d ${lo} -o lo -j ACCEPT`);
  // Outbound TCP not from the proxy → ztunnel 15001.
  add('nat', OUTPUT, `! -d ${lo} -p tcp ${proxyOut(true)} -j REDIRECT --to-ports ${out}`);

  return { iptables: buildRestore(rules), ipRoute: ambientRouteLines() };
}

/** AddLoopbackRoutes() then AddInpodMarkIPRule(), IPv4, as iproute2 batch lines. */
function ambientRouteLines(): string[] {
  const { table, rulePriority } = AMBIENT_ROUTING;
  return [`route replace local 0.0.0.0/0 dev lo scope host table ${table}`, `rule add fwmark ${AMBIENT_CONNMARK} pref ${rulePriority} lookup ${table}`];
}

/** buildRestore(): per table (name order), -N per Istio chain by first use, then jump targets, then rules. */
function buildRestore(rules: [string, string, string][]): string {
  const tables = [...new Set(rules.map(([t]) => t))].sort();
  const lines: string[] = [];
  for (const table of tables) {
    const mine = rules.filter(([t]) => t === table);
    const chains: string[] = [];
    for (const [, chain] of mine) if (!BUILTIN_CHAINS.has(chain) && !chains.includes(chain)) chains.push(chain);
    for (const [, , r] of mine) {
      const m = / -j (\S+)$/.exec(r);
      if (m && !BUILTIN_CHAINS.has(m[1]) && !TARGETS.has(m[1]) && !chains.includes(m[1])) chains.push(m[1]);
    }
    lines.push(`* ${table}`, ...chains.map((c) => `-N ${c}`), ...mine.map(([, , r]) => r), 'COMMIT');
  }
  return [...lines, ''].join('\n');
}

// ---- Reading payloads and listings by table -------------------------------------------------------

/** Table names in the order a payload or iptables-save listing declares them. */
export function payloadTables(text: string): string[] {
  const out: string[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line.startsWith('*')) {
      const t = line.slice(1).trim();
      if (!out.includes(t)) out.push(t);
    }
  }
  return out;
}

/** The chains and rules of every table of a payload (or listing), via rules.ts parseTable. */
export function ambientTables(text: string): Map<string, TableRules> {
  return new Map(payloadTables(text).map((t) => [t, parseTable(text, t)]));
}

/** One table of a payload or listing, relabelled as `*nat` so the nat-only helpers of rules.ts apply. */
function asNat(text: string, table: string): string {
  const out: string[] = ['*nat'];
  let current: string | undefined;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line.startsWith('*')) current = line.slice(1).trim();
    else if (line === 'COMMIT') current = undefined;
    else if (current === table) out.push(line);
  }
  return [...out, 'COMMIT', ''].join('\n');
}

/**
 * Differences between the rules a multi-table payload installs and an `iptables-save` listing (all
 * tables), per table, per chain and in order — rules.ts diffAgainstSave applied table by table.
 * Empty when the listing holds the payload exactly.
 */
export function diffAmbientAgainstSave(payload: string, save: string): string[] {
  return payloadTables(payload).flatMap((t) => diffAgainstSave(asNat(payload, t), asNat(save, t)).map((p) => `${t}: ${p}`));
}

/** How `ip rule show` / `ip route show table N` list one of the batch lines this module writes. */
function listed(line: string): { show: string[]; text: string } | undefined {
  let m = /^rule add fwmark (\S+) pref (\d+) lookup (\d+)$/.exec(line);
  if (m) return { show: ['rule', 'show'], text: `${m[2]}:\tfrom all fwmark ${m[1]} lookup ${m[3]}` };
  m = /^route replace local 0\.0\.0\.0\/0 dev (\S+) scope host table (\d+)$/.exec(line);
  if (m) return { show: ['route', 'show', 'table', m[2]], text: `local default dev ${m[1]} scope host` };
  return undefined;
}

/** The batch lines whose rule or route the namespace does not hold (lines of other forms: always). */
export async function missingRouting(netns: string, lines: string[]): Promise<string[]> {
  const cache = new Map<string, string[]>();
  const missing: string[] = [];
  for (const line of lines) {
    const l = listed(line);
    if (!l) {
      missing.push(line);
      continue;
    }
    const key = l.show.join(' ');
    if (!cache.has(key))
      cache.set(
        key,
        (await exec('ip', l.show, { netns, allowFail: true })).stdout.split('\n').map((x) => x.trimEnd()),
      );
    if (!cache.get(key)!.includes(l.text)) missing.push(line);
  }
  return missing;
}

export interface AmbientApplyResult {
  /** False when the namespace already held exactly these rules and routes (nothing was changed). */
  applied: boolean;
  /** `-A` rules in the payload, all tables. */
  rules: number;
  /** Routing lines run (0 when all were present). */
  routes: number;
  bytes: number;
}

/**
 * Install the in-pod capture in a pod's network namespace, in CreateInpodRules()' order: the
 * routing lines (`ip -batch -`; a rule already present is skipped, as istio-cni ignores EEXIST),
 * then the payload (`iptables-restore -w 5 --noflush`). Like applyCapture, it first reads the
 * tables: the same rules already there → only missing routing is restored; some of the chains
 * present with other rules → error (remove the namespace rather than stack rule sets).
 */
export async function applyAmbientCapture(netns: string, rules: AmbientInpodRules): Promise<AmbientApplyResult> {
  if (!netns) throw runError('applyAmbientCapture needs a network namespace; refusing to touch the root namespace');
  const want = ambientTables(rules.iptables);
  const nRules = [...want.values()].reduce((n, t) => n + t.rules.length, 0);
  const res: AmbientApplyResult = { applied: false, rules: nRules, routes: 0, bytes: Buffer.byteLength(rules.iptables) };
  const save = (await exec('iptables-save', [], { netns })).stdout;
  const have = ambientTables(save);
  const present = [...want].flatMap(([t, w]) => w.chains.filter((c) => have.get(t)?.chains.includes(c)).map((c) => `${t}/${c}`));
  const total = [...want.values()].reduce((n, t) => n + t.chains.length, 0);
  const missing = await missingRouting(netns, rules.ipRoute);
  if (present.length > 0) {
    const diff = diffAmbientAgainstSave(rules.iptables, save);
    if (diff.length > 0 || present.length !== total)
      throw runError(`netns ${netns} already has capture chains ${present.join(', ')} with other rules:\n${diff.join('\n')}`);
  }
  if (missing.length > 0) {
    await exec('ip', ['-batch', '-'], { netns, input: missing.join('\n') + '\n' });
    res.routes = missing.length;
    res.applied = true;
  }
  if (present.length === 0) {
    await exec('iptables-restore', ['-w', '5', '--noflush'], { netns, input: rules.iptables });
    res.applied = true;
  }
  return res;
}

/** Read a namespace's tables and routing and report how they differ from the rules (empty = identical). */
export async function verifyAmbientCapture(netns: string, rules: AmbientInpodRules): Promise<string[]> {
  const save = await exec('iptables-save', [], { netns });
  return [...diffAmbientAgainstSave(rules.iptables, save.stdout), ...(await missingRouting(netns, rules.ipRoute)).map((l) => `routing missing: ${l}`)];
}

// ---- Run record --------------------------------------------------------------------------------------

/** What istio-cni runs in the pod's namespace for the same result (chart defaults). */
export const AMBIENT_UPSTREAM_INVOCATION =
  'istio-cni node agent (chart defaults ambient.dnsCapture=true, nativeNftables=false), per ambient pod, inside its netns: ' +
  'CreateInpodRules(PodLevelOverrides{}) = ip route replace local 0.0.0.0/0 dev lo scope host table 100; ' +
  'ip rule add fwmark 0x111/0xfff pref 32764 lookup 100; iptables-restore --noflush -v <AppendInpodRules payload>';

export interface AmbientCaptureDescription extends CaptureDescription {
  tables: string[];
  routing: string[];
  deviations: string[];
}

/** The run-record description of the ambient in-pod model (describeCapture's 'ambient' case). */
export function describeAmbientCapture(
  opts: AmbientInpodOptions,
  iptables: { version: string; backend: IptablesBackend },
  mechanism: string,
): AmbientCaptureDescription {
  const r = ambientInpodRules(opts);
  const ex = opts.exclude ?? { mark: true };
  const dns = opts.dnsCapture ?? true;
  const tables = ambientTables(r.iptables);
  const tunnel = opts.inboundTunnelPort ?? AMBIENT_PORTS.inboundTunnel;
  const hooks = [...tables].flatMap(([t, tr]) => tr.rules.filter((x) => BUILTIN_CHAINS.has(x.split(' ')[1])).map((x) => `-t ${t} ${x}`));
  const byUid = 'uid' in ex;
  const deviations = byUid
    ? [
        `the proxy's own locally generated traffic is recognised by socket owner (-m owner --uid-owner ${ex.uid}) instead of mark ${AMBIENT_MARK} ` +
          `in nat ISTIO_OUTPUT (the 15001 REDIRECT${dns ? ', the two port-53 REDIRECTs' : ''})${dns ? ' and raw ISTIO_OUTPUT (the DNS conntrack-zone rule)' : ''}: ` +
          'HAProxy 2.6 cannot set SO_MARK on its sockets',
        `PREROUTING rules keep upstream's mark ${AMBIENT_MARK} checks; so the connmark ${AMBIENT_CONNMARK} (and the table-${AMBIENT_ROUTING.table} route for replies) ` +
          "is never set for the proxy's connections: the proxy must deliver to the app from the pod's address, not a spoofed client address",
      ]
    : [];
  return {
    model: `Istio Ambient in-pod capture (istio-cni, ztunnel in-pod mode, REDIRECT)${byUid ? `, proxy excluded by uid ${ex.uid} instead of mark 0x539` : ''}`,
    upstreamInvocation: AMBIENT_UPSTREAM_INVOCATION + (dns ? '' : ' (ambient.dnsCapture=false)'),
    mechanism,
    iptables,
    table: 'nat',
    family: 'IPv4',
    chains: [...tables].flatMap(([t, tr]) => tr.chains.map((c) => `${t}/${c}`)),
    hooks,
    ports: {
      outbound: opts.outboundPort ?? AMBIENT_PORTS.outbound,
      inbound: opts.inboundPlainPort ?? AMBIENT_PORTS.inboundPlain,
      tunnel,
      ...(dns ? { dns: AMBIENT_PORTS.dns } : {}),
    },
    excluded: {
      ...(byUid ? { uid: ex.uid } : { mark: AMBIENT_MARK }),
      inboundPorts: [String(tunnel)],
      outboundPorts: [],
      notes: [
        byUid
          ? `outbound: socket owner uid ${ex.uid} (lab deviation; upstream: mark ${AMBIENT_MARK})`
          : `outbound: packets with mark ${AMBIENT_MARK} (ztunnel's sockets)`,
        `inbound: packets with mark ${AMBIENT_MARK}`,
        `destination ${AMBIENT_LOOPBACK}`,
        'loopback (-o lo) to a non-127.0.0.1 address: an app calling its own pod IP',
        `packets marked ${AMBIENT_CONNMARK} (restored from the connmark of connections ztunnel delivered locally)`,
        `source (inbound) / destination (outbound) ${AMBIENT_HOST_PROBE_SNAT_IP}: kubelet probes SNATed on the host`,
        ...deviations,
      ],
    },
    rules: [...tables.values()].reduce((n, t) => n + t.rules.length, 0),
    leftOut: [
      'IPv6 (chart default ambient.ipv6=true): the same rules with ::1/128 via ip6tables-restore, local ::/0 route and v6 fwmark rule; lab pods are IPv4-only',
      'host-namespace rules (nat POSTROUTING ISTIO_POSTRT: SNAT of node-local probes to 169.254.7.127 by ipset): not in the pod; no kubelet in the lab',
      'pod overrides: ingress mode, virtual interfaces, per-pod DNS capture annotation',
      'TPROXY inbound: removed upstream (382a07b8, Istio 1.25); REDIRECT since 4a49d35f (Istio 1.24)',
      'native nftables backend (nativeNftables=false by default); reconcile/cleanup and filter-table guardrails',
      ...(dns ? [] : ['DNS capture (chart default on): turned off for this run']),
    ],
    tables: [...tables.keys()],
    routing: r.ipRoute,
    deviations,
  };
}
