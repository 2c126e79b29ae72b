// Linkerd traffic capture: the nat rules linkerd2-proxy-init (the linkerd-init container) installs
// in a meshed pod's namespace with the chart's arguments, in proxy-init's command order but sent as
// one iptables-restore --noflush payload spelled as iptables-save lists it. Upstream sources, the
// rules and what is left out: docs/sidecar.md.

export type PortSpec = number | string;

export interface LinkerdProxyInitOptions {
  /** --proxy-uid. Default 2102. */
  proxyUid?: number;
  /** --proxy-gid. Default: none (the chart's proxy.gid is -1). */
  proxyGid?: number;
  /** --outgoing-proxy-port. Default 4140. */
  outboundPort?: number;
  /** --incoming-proxy-port. Default 4143. */
  inboundPort?: number;
  /** --inbound-ports-to-ignore: ports or "lo-hi" ranges. Default 4190, 4191, 4567, 4568. */
  inboundPortsToIgnore?: PortSpec[];
  /** --outbound-ports-to-ignore. Default 4567, 4568. */
  outboundPortsToIgnore?: PortSpec[];
  /** --subnets-to-ignore (inbound source CIDRs). Default none. */
  subnetsToIgnore?: string[];
  /** --ports-to-redirect: redirect only these inbound ports ("redirect-listed" mode). Default: all. */
  portsToRedirect?: number[];
}

export const LINKERD_DEFAULTS = {
  proxyUid: 2102,
  outboundPort: 4140,
  inboundPort: 4143,
  /** proxy.ports.control, proxy.ports.admin, then proxyInit.ignoreInboundPorts. */
  inboundPortsToIgnore: [4190, 4191, 4567, 4568],
  /** proxyInit.ignoreOutboundPorts. */
  outboundPortsToIgnore: [4567, 4568],
  adminPort: 4191,
  controlPort: 4190,
} as const;

/** The linkerd-init arguments the model reproduces (chart defaults). */
export const LINKERD_PROXY_INIT_INVOCATION = [
  'proxy-init',
  '--firewall-bin-path',
  'iptables-nft',
  '--firewall-save-bin-path',
  'iptables-nft-save',
  '--ipv6=false',
  '--incoming-proxy-port',
  '4143',
  '--outgoing-proxy-port',
  '4140',
  '--proxy-uid',
  '2102',
  '--inbound-ports-to-ignore',
  '4190,4191,4567,4568',
  '--outbound-ports-to-ignore',
  '4567,4568',
];

export const LINKERD_CHAINS = { redirect: 'PROXY_INIT_REDIRECT', output: 'PROXY_INIT_OUTPUT' } as const;

/** IptablesMultiportLimit in proxy-init. */
const MULTIPORT_LIMIT = 15;

function parsePortRange(spec: PortSpec): [number, number] {
  const s = String(spec).trim();
  const bounds = s.split('-');
  if (bounds.length > 2) throw new RangeError(`port range "${s}": expected <lower>-<upper>`);
  const [lo, hi] = [bounds[0], bounds[1] ?? bounds[0]].map((b) => (/^\d+$/.test(b) ? Number(b) : NaN));
  // util.IsValidPort accepts 0-65535.
  if (!(lo >= 0 && lo <= 65535)) throw new RangeError(`port range "${s}": "${bounds[0]}" is not a valid lower-bound`);
  if (!(hi >= 0 && hi <= 65535)) throw new RangeError(`port range "${s}": "${bounds[1] ?? bounds[0]}" is not a valid upper-bound`);
  if (hi < lo) throw new RangeError(`port range "${s}": upper-bound must be greater than or equal to lower-bound`);
  return [lo, hi];
}

/**
 * makeMultiportDestinations(): ports and ranges packed into multiport lists of at most 15 port
 * references (a range costs 2). proxy-init logs and skips an invalid entry; the lab rejects it.
 */
export function multiportDestinations(ports: PortSpec[]): string[][] {
  const slices: string[][] = [];
  if (ports.length === 0) return slices;
  let dest: string[] = [];
  let count = 0;
  for (const p of ports) {
    const [lo, hi] = parsePortRange(p);
    const cost = lo === hi ? 1 : 2;
    if (count + cost > MULTIPORT_LIMIT) {
      slices.push(dest);
      dest = [];
      count = 0;
    }
    dest.push(lo === hi ? `${lo}` : `${lo}:${hi}`);
    count += cost;
  }
  slices.push(dest);
  return slices;
}

function port(name: string, v: number): number {
  if (!Number.isInteger(v) || v < 1 || v > 65535) throw new RangeError(`${name} must be a TCP port (1-65535), got ${v}`);
  return v;
}

const comment = (what: string) => `-m comment --comment "proxy-init/${what}"`;

/** The linkerd-init nat rules (IPv4) as an iptables-restore --noflush payload. */
export function linkerdProxyInitRules(opts: LinkerdProxyInitOptions = {}): string {
  const uid = opts.proxyUid ?? LINKERD_DEFAULTS.proxyUid;
  const gid = opts.proxyGid;
  const out = port('outboundPort', opts.outboundPort ?? LINKERD_DEFAULTS.outboundPort);
  const inb = port('inboundPort', opts.inboundPort ?? LINKERD_DEFAULTS.inboundPort);
  const inIgnore = opts.inboundPortsToIgnore ?? [...LINKERD_DEFAULTS.inboundPortsToIgnore];
  const outIgnore = opts.outboundPortsToIgnore ?? [...LINKERD_DEFAULTS.outboundPortsToIgnore];
  const subnets = opts.subnetsToIgnore ?? [];
  const listed = opts.portsToRedirect ?? [];
  for (const s of subnets) if (!/^\d+\.\d+\.\d+\.\d+\/\d+$/.test(s)) throw new RangeError(`subnetsToIgnore: ${s} is not an IPv4 CIDR`);
  const { redirect, output } = LINKERD_CHAINS;

  const lines: string[] = ['*nat'];
  const ignorePorts = (chain: string, ports: PortSpec[]) => {
    for (const d of multiportDestinations(ports)) {
      const list = d.join(',');
      lines.push(`-A ${chain} -p tcp -m multiport --dports ${list} ${comment(`ignore-port-${list}`)} -j RETURN`);
    }
  };

  // addIncomingTrafficRules()
  lines.push(`-N ${redirect}`);
  ignorePorts(redirect, inIgnore);
  for (const s of subnets) lines.push(`-A ${redirect} -s ${s} ${comment(`ignore-subnet-${s}`)} -j RETURN`);
  if (listed.length === 0) {
    lines.push(`-A ${redirect} -p tcp ${comment('redirect-all-incoming-to-proxy-port')} -j REDIRECT --to-ports ${inb}`);
  } else {
    for (const p of listed.map((x) => port('portsToRedirect', x)))
      lines.push(`-A ${redirect} -p tcp -m tcp --dport ${p} ${comment(`redirect-port-${p}-to-proxy-port`)} -j REDIRECT --to-ports ${inb}`);
  }
  lines.push(`-A PREROUTING ${comment('install-proxy-init-prerouting')} -j ${redirect}`);

  // addOutgoingTrafficRules(): proxy-init skips the owner rules when the id is not > 0.
  lines.push(`-N ${output}`);
  if (uid > 0) lines.push(`-A ${output} -m owner --uid-owner ${uid} ${comment('ignore-proxy-user-id')} -j RETURN`);
  if (gid !== undefined && gid > 0) lines.push(`-A ${output} -m owner --gid-owner ${gid} ${comment('ignore-proxy-group-id')} -j RETURN`);
  lines.push(`-A ${output} -o lo ${comment('ignore-loopback')} -j RETURN`);
  ignorePorts(output, outIgnore);
  lines.push(`-A ${output} -p tcp ${comment('redirect-all-outgoing-to-proxy-port')} -j REDIRECT --to-ports ${out}`);
  lines.push(`-A OUTPUT ${comment('install-proxy-init-output')} -j ${output}`);

  lines.push('COMMIT', '');
  return lines.join('\n');
}
