// Sidecar traffic capture inside a pod's network namespace: applies, verifies and describes the
// nat rules of the istio-init (istio.ts) and linkerd2-proxy-init (linkerd.ts) models, and
// re-exports the ambient in-pod model (ambient.ts). Payloads go in with `iptables-restore
// --noflush` inside the pod's netns, never in the root namespace. What the rules do:
// docs/sidecar.md.
import { runError } from '../../../errors.js';
import { exec } from '../../../util/exec.js';
import { ISTIO_DEFAULTS, ISTIO_SIDECAR_INVOCATION, istioSidecarRules, type IstioSidecarOptions } from './istio.js';
import { LINKERD_DEFAULTS, LINKERD_PROXY_INIT_INVOCATION, linkerdProxyInitRules, multiportDestinations, type LinkerdProxyInitOptions } from './linkerd.js';
import { diffAgainstSave, parseTable, rulesByChain } from './rules.js';
import { describeAmbientCapture, type AmbientInpodOptions } from './ambient.js';

export { istioSidecarRules, ISTIO_DEFAULTS, ISTIO_CHAINS, ISTIO_SIDECAR_INVOCATION, type IstioSidecarOptions } from './istio.js';
export {
  linkerdProxyInitRules,
  LINKERD_DEFAULTS,
  LINKERD_CHAINS,
  LINKERD_PROXY_INIT_INVOCATION,
  multiportDestinations,
  type LinkerdProxyInitOptions,
  type PortSpec,
} from './linkerd.js';
export {
  ambientInpodRules,
  applyAmbientCapture,
  verifyAmbientCapture,
  diffAmbientAgainstSave,
  ambientTables,
  AMBIENT_MARKS,
  AMBIENT_MARK,
  AMBIENT_CONNMARK,
  AMBIENT_PORTS,
  AMBIENT_ROUTING,
  AMBIENT_CHAINS,
  type AmbientInpodOptions,
  type AmbientInpodRules,
  type AmbientExclude,
  type AmbientCaptureDescription,
} from './ambient.js';
export { canonicalRule, diffAgainstSave, parseTable, parseCounters, rulesByChain, tokenize, ruleChain, BUILTIN_CHAINS, type TableRules } from './rules.js';

/** The user chains a payload creates, in declaration order. */
export function captureChains(payload: string): string[] {
  return parseTable(payload).chains;
}

/** The `-A` rules of a payload, in the order it appends them. */
export function captureRules(payload: string): string[] {
  return parseTable(payload).rules;
}

export interface ApplyResult {
  /** False when the namespace already held exactly these rules (nothing was changed). */
  applied: boolean;
  rules: number;
  bytes: number;
}

/**
 * Install a capture payload in a pod's network namespace (iptables-restore -w 5 --noflush, via
 * nsenter). Like istio-iptables' state check, it first reads the nat table: the same rules already
 * in place → nothing to do; some of the chains present with other rules → error (the pod holds
 * another capture; remove the namespace rather than stack rule sets).
 */
export async function applyCapture(netns: string, payload: string): Promise<ApplyResult> {
  if (!netns) throw runError('applyCapture needs a network namespace; refusing to touch the root namespace');
  const want = parseTable(payload);
  const res: ApplyResult = { applied: false, rules: want.rules.length, bytes: Buffer.byteLength(payload) };
  const save = await exec('iptables-save', ['-t', 'nat'], { netns });
  const have = parseTable(save.stdout);
  const present = want.chains.filter((c) => have.chains.includes(c));
  if (present.length > 0) {
    const diff = diffAgainstSave(payload, save.stdout);
    if (diff.length === 0 && present.length === want.chains.length) return res;
    throw runError(`netns ${netns} already has capture chains ${present.join(', ')} with other rules:\n${diff.join('\n')}`);
  }
  await exec('iptables-restore', ['-w', '5', '--noflush'], { netns, input: payload });
  res.applied = true;
  return res;
}

/** Read the nat table of a namespace and report how it differs from a payload (empty = identical). */
export async function verifyCapture(netns: string, payload: string): Promise<string[]> {
  const save = await exec('iptables-save', ['-t', 'nat'], { netns });
  return diffAgainstSave(payload, save.stdout);
}

/** 'istio' is accepted as another name for 'istio-sidecar'. 'ambient': istio-cni in-pod rules (ambient.ts). */
export type CaptureKind = 'istio-sidecar' | 'istio' | 'linkerd' | 'ambient';
export type CaptureProfile =
  | CaptureKind
  | { kind: 'istio-sidecar' | 'istio'; opts?: IstioSidecarOptions }
  | { kind: 'linkerd'; opts?: LinkerdProxyInitOptions }
  | { kind: 'ambient'; opts?: AmbientInpodOptions };

export { iptablesBackend, type CaptureDescription, type IptablesBackend } from './types.js';
import type { CaptureDescription } from './types.js';
import { iptablesBackend } from './types.js';

/**
 * What the run record should say about a capture model. Reads `iptables --version` (the host's
 * binary; the pod namespaces use the same one) unless a version line is given.
 */
export async function describeCapture(profile: CaptureProfile, opts: { iptablesVersion?: string } = {}): Promise<CaptureDescription> {
  const p = typeof profile === 'string' ? { kind: profile } : profile;
  let version = opts.iptablesVersion;
  if (version === undefined) {
    const r = await exec('iptables', ['--version'], { allowFail: true });
    if (r.code !== 0) throw runError(`iptables --version failed: ${(r.stderr || r.stdout).trim()}`);
    version = r.stdout.trim().split('\n')[0];
  }
  const backend = iptablesBackend(version);
  const mechanism = `iptables REDIRECT (${backend} backend)`;

  // What every nat-table model states the same way.
  const natFacts = (payload: string) => ({
    mechanism,
    iptables: { version: version!, backend },
    table: 'nat' as const,
    family: 'IPv4' as const,
    chains: captureChains(payload),
    hooks: hooks(payload),
  });

  if (p.kind === 'ambient') return describeAmbientCapture(('opts' in p ? p.opts : undefined) ?? {}, { version, backend }, mechanism);

  if (p.kind === 'istio-sidecar' || p.kind === 'istio') {
    const o: IstioSidecarOptions = ('opts' in p ? p.opts : undefined) ?? {};
    const payload = istioSidecarRules(o);
    const uid = o.proxyUid ?? ISTIO_DEFAULTS.proxyUid;
    const captureInbound = o.captureInbound ?? true;
    const captureOutbound = o.captureOutbound ?? true;
    const tunnel = o.inboundTunnelPort ?? ISTIO_DEFAULTS.inboundTunnelPort;
    return {
      model: 'Istio sidecar capture (istio-init, istio-iptables REDIRECT mode)',
      upstreamInvocation: ISTIO_SIDECAR_INVOCATION.map((a) => (a === '' ? "''" : a === '*' ? "'*'" : a)).join(' '),
      ...natFacts(payload),
      ports: {
        outbound: o.outboundPort ?? ISTIO_DEFAULTS.outboundPort,
        inbound: o.inboundPort ?? ISTIO_DEFAULTS.inboundPort,
        tunnel,
      },
      excluded: {
        uid,
        gid: o.proxyGid ?? uid,
        inboundPorts: captureInbound ? [tunnel, ...(o.excludeInboundPorts ?? ISTIO_DEFAULTS.excludeInboundPorts)].map(String) : ['all (inbound capture off)'],
        outboundPorts: captureOutbound ? [] : ['all (outbound capture off)'],
        notes: [
          'loopback traffic not from the proxy uid/gid',
          `destination ${ISTIO_DEFAULTS.hostLoopbackCidr}`,
          `source ${ISTIO_DEFAULTS.inboundPassthroughSource} on lo (Envoy inbound passthrough)`,
          `proxy uid/gid loopback calls to a non-127.0.0.1 address go to the inbound port (not port ${tunnel})`,
        ],
      },
      rules: captureRules(payload).length,
      leftOut: [
        'IPv6 (ip6tables): only for pods with an IPv6 address or DUAL_STACK; lab pods are IPv4-only',
        'mangle table: TPROXY interception mode and INVALID_DROP only',
        'raw table and ISTIO_OUTPUT_DNS: DNS capture (ISTIO_META_DNS_CAPTURE) only, off by default',
        'filter table: temporary guardrails while reconciling drifted rules only',
        'annotation-driven options (-o, -q, -x CIDRs, -k, -c, owner groups), native nftables, istio-cni',
      ],
    };
  }

  const o: LinkerdProxyInitOptions = ('opts' in p ? p.opts : undefined) ?? {};
  const payload = linkerdProxyInitRules(o);
  const inIgnore = multiportDestinations(o.inboundPortsToIgnore ?? [...LINKERD_DEFAULTS.inboundPortsToIgnore]).flat();
  const outIgnore = multiportDestinations(o.outboundPortsToIgnore ?? [...LINKERD_DEFAULTS.outboundPortsToIgnore]).flat();
  return {
    model: 'Linkerd proxy-init capture (linkerd2-proxy-init)',
    upstreamInvocation: LINKERD_PROXY_INIT_INVOCATION.join(' '),
    ...natFacts(payload),
    ports: {
      outbound: o.outboundPort ?? LINKERD_DEFAULTS.outboundPort,
      inbound: o.inboundPort ?? LINKERD_DEFAULTS.inboundPort,
      admin: LINKERD_DEFAULTS.adminPort,
      control: LINKERD_DEFAULTS.controlPort,
    },
    excluded: {
      uid: o.proxyUid ?? LINKERD_DEFAULTS.proxyUid,
      ...(o.proxyGid !== undefined && o.proxyGid > 0 ? { gid: o.proxyGid } : {}),
      inboundPorts: inIgnore,
      outboundPorts: outIgnore,
      notes: ['all loopback output (-o lo)', ...(o.subnetsToIgnore ?? []).map((s) => `inbound from ${s}`)],
    },
    rules: captureRules(payload).length,
    leftOut: [
      'IPv6 (ip6tables): the chart passes --ipv6=false by default; lab pods are IPv4-only',
      '--timeout-close-wait-secs (a conntrack sysctl): unset by default',
      'linkerd-cni: the same rules installed by the CNI plugin',
    ],
  };
}

/** The payload's rules in PREROUTING and OUTPUT (the jumps into its chains). */
function hooks(payload: string): string[] {
  const by = rulesByChain(captureRules(payload));
  return ['PREROUTING', 'OUTPUT'].flatMap((c) => by.get(c) ?? []);
}
