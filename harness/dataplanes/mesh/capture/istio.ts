// Istio classic sidecar traffic capture: the nat rules the injector's istio-init installs in a
// pod's namespace, as the iptables-restore payload istio-iptables feeds to `--noflush` (same
// chains, rule order and match options). Default: the injected invocation
// (ISTIO_SIDECAR_INVOCATION); the bare flags reproduce upstream's empty.golden. Upstream sources,
// the rules and what is left out: docs/sidecar.md.

export interface IstioSidecarOptions {
  /** -u: the proxy's uid, whose traffic is not captured. Default 1337. */
  proxyUid?: number;
  /** -g: the proxy's gid. Default: the uid (istio's rule when -g is not given). */
  proxyGid?: number;
  /** -p: outbound capture port (Envoy virtualOutbound). Default 15001. */
  outboundPort?: number;
  /** -z: inbound capture port (Envoy virtualInbound). Default 15006. */
  inboundPort?: number;
  /** -e: HBONE tunnel port, always RETURNed first in ISTIO_INBOUND. Default 15008. */
  inboundTunnelPort?: number;
  /** -d: inbound ports not captured (only used with -b '*'). Default 15090, 15021, 15020. */
  excludeInboundPorts?: number[];
  /** -b '*': capture all inbound TCP. Default true (the injector's value). */
  captureInbound?: boolean;
  /** -i '*': capture all outbound traffic. Default true (the injector's value). */
  captureOutbound?: boolean;
}

export const ISTIO_DEFAULTS = {
  proxyUid: 1337,
  outboundPort: 15001,
  inboundPort: 15006,
  inboundTunnelPort: 15008,
  excludeInboundPorts: [15090, 15021, 15020],
  /** ISTIO_OUTBOUND_IPV4_LOOPBACK_CIDR default. */
  hostLoopbackCidr: '127.0.0.1/32',
  /** Source address of Envoy's inbound passthrough connections to the app. */
  inboundPassthroughSource: '127.0.0.6/32',
} as const;

/** The istio-init arguments the model reproduces (injector defaults). */
export const ISTIO_SIDECAR_INVOCATION = [
  'istio-iptables',
  '-p',
  '15001',
  '-z',
  '15006',
  '-u',
  '1337',
  '-m',
  'REDIRECT',
  '-i',
  '*',
  '-x',
  '',
  '-b',
  '*',
  '-d',
  '15090,15021,15020',
];

export const ISTIO_CHAINS = {
  inbound: 'ISTIO_INBOUND',
  redirect: 'ISTIO_REDIRECT',
  inRedirect: 'ISTIO_IN_REDIRECT',
  output: 'ISTIO_OUTPUT',
} as const;

function port(name: string, v: number): number {
  if (!Number.isInteger(v) || v < 1 || v > 65535) throw new RangeError(`${name} must be a TCP port (1-65535), got ${v}`);
  return v;
}

function id(name: string, v: number): number {
  if (!Number.isInteger(v) || v < 0) throw new RangeError(`${name} must be a non-negative integer, got ${v}`);
  return v;
}

/** The istio-init nat rules (IPv4, REDIRECT mode) as an iptables-restore --noflush payload. */
export function istioSidecarRules(opts: IstioSidecarOptions = {}): string {
  const uid = id('proxyUid', opts.proxyUid ?? ISTIO_DEFAULTS.proxyUid);
  const gid = id('proxyGid', opts.proxyGid ?? uid);
  const out = port('outboundPort', opts.outboundPort ?? ISTIO_DEFAULTS.outboundPort);
  const inb = port('inboundPort', opts.inboundPort ?? ISTIO_DEFAULTS.inboundPort);
  const tunnel = port('inboundTunnelPort', opts.inboundTunnelPort ?? ISTIO_DEFAULTS.inboundTunnelPort);
  const exclude = (opts.excludeInboundPorts ?? ISTIO_DEFAULTS.excludeInboundPorts).map((p) => port('excludeInboundPorts', p));
  const captureInbound = opts.captureInbound ?? true;
  const captureOutbound = opts.captureOutbound ?? true;
  const lo = ISTIO_DEFAULTS.hostLoopbackCidr;
  const { inbound, redirect, inRedirect, output } = ISTIO_CHAINS;

  // [chain, rule] in the order run.go appends them.
  const rules: [string, string][] = [];
  const add = (chain: string, rest: string) => rules.push([chain, `-A ${chain} ${rest}`]);

  add(inbound, `-p tcp --dport ${tunnel} -j RETURN`);
  add(redirect, `-p tcp -j REDIRECT --to-ports ${out}`);
  add(inRedirect, `-p tcp -j REDIRECT --to-ports ${inb}`);
  if (captureInbound) {
    add('PREROUTING', `-p tcp -j ${inbound}`);
    for (const p of exclude) add(inbound, `-p tcp --dport ${p} -j RETURN`);
    add(inbound, `-p tcp -j ${inRedirect}`);
  }
  add('OUTPUT', `-j ${output}`);
  add(output, `-o lo -s ${ISTIO_DEFAULTS.inboundPassthroughSource} -j RETURN`);
  for (const [kind, v] of [
    ['uid', uid],
    ['gid', gid],
  ] as const) {
    // App → its own Service VIP → client Envoy → server Envoy → app: Envoy's loopback call to a
    // non-127.0.0.1 address goes to the inbound listener.
    add(output, `-o lo ! -d ${lo} -p tcp ! --dport ${tunnel} -m owner --${kind}-owner ${v} -j ${inRedirect}`);
    // App calling itself on lo by address: left alone.
    add(output, `-o lo -m owner ! --${kind}-owner ${v} -j RETURN`);
    // Envoy's own traffic, any protocol and destination: never captured (no loop).
    add(output, `-m owner --${kind}-owner ${v} -j RETURN`);
  }
  add(output, `-d ${lo} -j RETURN`);
  if (captureOutbound) add(output, `-j ${redirect}`);

  // buildRestore(): -N for each non-built-in chain in order of first use, then for jump targets.
  const chains: string[] = [];
  for (const [chain] of rules) if (!BUILTIN.has(chain) && !chains.includes(chain)) chains.push(chain);
  for (const [, r] of rules) {
    const m = / -j (\S+)$/.exec(r);
    if (m && !BUILTIN.has(m[1]) && !TARGETS.has(m[1]) && !chains.includes(m[1])) chains.push(m[1]);
  }
  return ['* nat', ...chains.map((c) => `-N ${c}`), ...rules.map(([, r]) => r), 'COMMIT', ''].join('\n');
}

const BUILTIN = new Set(['PREROUTING', 'INPUT', 'FORWARD', 'OUTPUT', 'POSTROUTING']);
const TARGETS = new Set(['RETURN', 'REDIRECT', 'ACCEPT', 'DROP', 'DNAT', 'SNAT', 'MASQUERADE', 'MARK', 'CONNMARK', 'TPROXY', 'CT']);
