// Host probing for `meshbench doctor`: what this host can do for the lab, each fact with what to do
// when it is missing, and which dataplanes can run (from the needs each one declares). Read-only
// towards the host: kernel features are probed only inside one scratch namespace the doctor makes
// and always deletes (`mbdoc<c>-scratch`, a lab name `meshbench down` would remove). Nothing here
// touches the root namespace's links, routes, rules or sysctls, mounts anything, or sends a packet.
// Status: ok; missing (with `required`, a run cannot start: exit 3); warn (optional feature
// absent, or a required one with a caveat); skipped (not probed, e.g. without root).
// Over 500 lines on purpose: one probe per fact, each with its own fix text, sharing one scratch-namespace guard.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { accessSync, constants, existsSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { basename, join } from 'node:path';
import { exec, type ExecResult } from '../util/exec.js';
import { LAB_OBJECT_RE, bpffsRoot, cgroup2Root, isRoot, mounts, readText } from '../util/host.js';
import { FORTIO_VERSION, PROJECT_ROOT, findTool, installHint } from '../util/tools.js';
import { allDataplanes } from '../dataplanes/registry.js';
import { HOST, engineFlags, needChecks, type Need } from '../dataplanes/needs.js';
import { HAPROXY_FLAG_USE, haproxyBuild } from '../dataplanes/engine/haproxy.js';
import { iptablesBackend as backendOf } from '../dataplanes/mesh/capture/index.js';
import { type Feature, FEATURE_MODULES, type KernelFacts, kernelFacts, type ModuleState, parseKernelConfig, readKernelConfig } from './kernel.js';
import { ownedTmpDir } from '../util/tmp.js';

/** What doctor judges a dataplane by: its name and its declared needs (the registry's entries, or a test's). */
export type DataplaneNeeds = { name: string; needs: Need[] };

export interface Check {
  group: string;
  name: string;
  status: 'ok' | 'missing' | 'warn' | 'skipped';
  required: boolean;
  detail: string;
  fix?: string;
  /** On the `kernel release` check: every fact about the running kernel (for --json readers). */
  kernel?: KernelFacts;
}

type Status = Check['status'];

/** Check names the summary (and the tests) refer to. Unique across groups. */
export const CHECK = {
  root: 'root',
  kernelRelease: 'kernel release',
  virtualisation: 'virtualisation',
  kernelConfig: 'kernel config',
  node: 'node',
  netns: 'netns',
  veth: 'veth',
  iptablesBackend: 'iptables backend',
  redirect: HOST.redirect,
  tproxy: HOST.tproxy,
  dnat: 'iptables DNAT',
  wireguard: 'wireguard module',
  netem: 'netem',
  esp: 'ipsec esp',
  cgroup2: HOST.cgroup2,
  bpffs: HOST.bpffs,
  schedCls: HOST.schedCls,
  cgroupSockAddr: HOST.cgroupSockAddr,
  libbpfHeaders: HOST.libbpfHeaders,
  haproxy: 'haproxy',
  haproxyFeatures: 'haproxy features',
} as const;

const SCRATCH_SUFFIX = '-scratch';
/** Emulation (TCG) runs every probe ~10× slower, module autoload included: timeouts scale with it. */
let slowdown = 1;
const cmdTimeoutMs = () => 3000 * slowdown;
const bpftoolTimeoutMs = () => 4000 * slowdown;

// ───────────────────────────── formatting ─────────────────────────────

const MARK: Record<Status, string> = { ok: '✓', missing: '✗', warn: '!', skipped: '-' };

/** Grouped, aligned text: one line per check, the fix under every line that is not ok, a summary. */
export function formatDoctor(checks: Check[]): string {
  const width = Math.max(0, ...checks.map((c) => c.name.length));
  const groups: string[] = [];
  for (const c of checks) if (!groups.includes(c.group)) groups.push(c.group);
  const out: string[] = [];
  for (const g of groups) {
    out.push(g);
    for (const c of checks.filter((x) => x.group === g)) {
      const req = c.status === 'missing' && c.required ? ' (required)' : '';
      out.push(`  ${MARK[c.status]} ${c.name.padEnd(width)}  ${oneLine(c.detail)}${req}`);
      if (c.status !== 'ok' && c.fix) out.push(`  ${' '.repeat(width + 4)}fix: ${oneLine(c.fix)}`);
    }
  }
  out.push('');
  out.push(summarize(checks));
  return out.join('\n');
}

const oneLine = (s: string) => s.replace(/\s*\n\s*/g, '; ').trim();

interface Capability {
  label: string;
  /** Every one of these checks must be usable… */
  needs?: string[];
  /** …or, instead, any one of these alternatives (each a list that must all be usable). */
  anyOf?: { via: string; needs: string[] }[];
}

/** Lab features that are not dataplanes, by the checks they depend on. */
const FEATURES: Capability[] = [
  {
    label: 'WireGuard',
    anyOf: [
      { via: 'kernel', needs: [CHECK.wireguard] },
      { via: 'wireguard-go', needs: ['wireguard-go', 'wg'] },
    ],
  },
  { label: 'fault injection', needs: [CHECK.netem] },
  { label: 'IPsec', needs: [CHECK.esp] },
];

/** What the lab can run: every dataplane by the checks of its declared needs, then the other features. */
export function capabilities(dataplanes: DataplaneNeeds[] = allDataplanes()): Capability[] {
  return [...dataplanes.map((d) => ({ label: d.name, needs: [...new Set(d.needs.flatMap(needChecks))] })), ...FEATURES];
}

/** ok, or a warning on a required check (it works, with a caveat such as another fortio version). */
const usable = (c: Check | undefined) => !!c && (c.status === 'ok' || (c.status === 'warn' && c.required));

/** The final line: how many required checks are missing, and what the lab can run. */
export function summarize(checks: Check[], dataplanes: DataplaneNeeds[] = allDataplanes()): string {
  const byName = new Map(checks.map((c) => [c.name, c]));
  const requiredMissing = checks.filter((c) => c.required && c.status === 'missing');
  const warnings = checks.filter((c) => c.status === 'warn').length;
  const skipped = checks.filter((c) => c.status === 'skipped').length;
  const plural = (n: number, w: string) => `${n} ${w}${n === 1 ? '' : 's'}`;
  const head = `${plural(requiredMissing.length, 'required check')} missing${requiredMissing.length ? ` (${requiredMissing.map((c) => c.name).join(', ')})` : ''}, ${plural(warnings, 'warning')}${skipped ? `, ${skipped} skipped` : ''}`;
  if (requiredMissing.length) {
    const probe = skipped && requiredMissing.some((c) => c.name === CHECK.root) ? ' · run doctor as root to probe what was skipped' : '';
    return `${head} · the lab can run nothing until the required checks are fixed${probe}`;
  }

  const can: string[] = [];
  const cannot: string[] = [];
  const unknown: string[] = [];
  const judge = (needs: string[]) => {
    const blockers = needs.filter((n) => !usable(byName.get(n)));
    const notProbed = blockers.filter((n) => !byName.get(n) || byName.get(n)!.status === 'skipped');
    return { blockers, notProbed };
  };
  for (const cap of capabilities(dataplanes)) {
    if (cap.anyOf) {
      const results = cap.anyOf.map((a) => ({ via: a.via, ...judge(a.needs) }));
      const ok = results.find((r) => r.blockers.length === 0);
      if (ok) can.push(`${cap.label} (${ok.via})`);
      else if (results.every((r) => r.notProbed.length === r.blockers.length)) unknown.push(cap.label);
      else cannot.push(`${cap.label} (${results.flatMap((r) => r.blockers).join(', ')})`);
      continue;
    }
    const { blockers, notProbed } = judge(cap.needs ?? []);
    if (blockers.length === 0) can.push(cap.label);
    else if (notProbed.length === blockers.length) unknown.push(cap.label);
    else cannot.push(`${cap.label} (${blockers.join(', ')})`);
  }
  const parts = [head, `can run: ${can.length ? can.join(', ') : 'nothing'}`];
  if (cannot.length) parts.push(`not yet: ${cannot.join('; ')}`);
  if (unknown.length) parts.push(`not probed: ${unknown.join(', ')}`);
  return parts.join(' · ');
}

// ───────────────────────────── checks ─────────────────────────────

const mk = (group: string, name: string, status: Status, required: boolean, detail: string, fix?: string): Check => ({
  group,
  name,
  status,
  required,
  detail,
  ...(fix && status !== 'ok' ? { fix } : {}),
});

const firstLine = (s: string) =>
  s
    .split('\n')
    .map((l) => l.trim())
    .find(Boolean) ?? '';
const errText = (r: ExecResult) => (firstLine(r.stderr) || firstLine(r.stdout) || `exit ${r.code}`).replace(/^Error:\s*/, '').replace(/\.$/, '');

export async function runDoctor(dataplanes: DataplaneNeeds[] = allDataplanes()): Promise<Check[]> {
  const root = isRoot();
  const [facts, kcfg] = await Promise.all([kernelFacts(), kernelConfig()]);
  slowdown = facts.virtualisation === 'tcg' ? 10 : 1;
  const toolsP = toolChecks(dataplanes);
  const featuresP = root ? featureProbe() : Promise.resolve(undefined);
  const [tools, kernel, ebpf] = await Promise.all([toolsP, kernelChecks(root, kcfg, toolsP, featuresP), ebpfChecks(root, featuresP)]);
  const be = kernel.kernel.find((c) => c.name === CHECK.iptablesBackend);
  if (be) Object.assign(be, iptablesBackend(tools.find((c) => c.name === 'iptables')));
  withModuleStates(kernel.kernel, facts.modules);
  return [...privilegeChecks(root), ...hostChecks(facts), ...kernel.kernel, ...ebpf, ...kernel.helpers, ...tools];
}

/** nf_tables or legacy, from `iptables --version` (read by the tools checks), as the capture rules read it. */
function iptablesBackend(ipt: Check | undefined): Pick<Check, 'status' | 'detail'> {
  if (ipt?.status !== 'ok') return { status: 'skipped', detail: 'iptables not installed' };
  return {
    status: 'ok',
    detail: backendOf(ipt.detail) === 'nf_tables' ? 'nf_tables (iptables-nft: rules live in nftables tables of each namespace)' : 'legacy (x_tables)',
  };
}

function privilegeChecks(root: boolean): Check[] {
  const uid = typeof process.getuid === 'function' ? process.getuid() : -1;
  return [
    root
      ? mk('privileges', CHECK.root, 'ok', true, 'running as root (uid 0)')
      : mk(
          'privileges',
          CHECK.root,
          'missing',
          true,
          `running as uid ${uid}: runs, \`down\` and the kernel probes need root`,
          'run as root (e.g. sudo npx meshbench …)',
        ),
  ];
}

function hostChecks(facts: KernelFacts): Check[] {
  const g = 'host';
  const cpus = os.cpus();
  const cores = typeof os.availableParallelism === 'function' ? os.availableParallelism() : cpus.length;
  const model = cpus[0]?.model?.trim() ?? 'unknown CPU';
  const gib = (b: number) => `${(b / 2 ** 30).toFixed(1)} GiB`;
  const major = Number(process.versions.node.split('.')[0]);
  return [
    { ...mk(g, CHECK.kernelRelease, 'ok', false, kernelReleaseDetail(facts)), kernel: facts },
    ...kernelFactChecks(facts),
    cores >= 2
      ? mk(g, 'cpu cores', 'ok', false, `${cores} usable (${model})`)
      : mk(
          g,
          'cpu cores',
          'warn',
          false,
          `${cores} usable (${model}): load generator and servers cannot be pinned to separate CPUs`,
          'use a host (or VM) with at least 2 cores',
        ),
    mk(g, 'memory', 'ok', false, `${gib(os.totalmem())} total, ${gib(os.freemem())} free`),
    major >= 20
      ? mk(g, CHECK.node, 'ok', true, `${process.version}`)
      : mk(
          g,
          CHECK.node,
          'missing',
          true,
          `${process.version}: meshbench needs Node.js 20 or later`,
          'install Node.js 20 or later (NodeSource packages or nvm)',
        ),
  ];
}

// ── kernel config and modules, to say what to do about a missing feature ──

interface KernelConfig {
  source?: string;
  values: Map<string, string>;
}

/** The same file kernelFacts reads (/proc/config.gz, /boot/config-<release>, /lib/modules/<release>/config), every option. */
async function kernelConfig(): Promise<KernelConfig> {
  const f = await readKernelConfig(os.release());
  return { source: f?.source, values: f ? parseKernelConfig(f.text) : new Map() };
}

// ── kernel facts (harness/probes/kernel.ts) as doctor lines ──

function kernelReleaseDetail(f: KernelFacts): string {
  const pkg = f.package ? `, package ${f.package.name} ${f.package.version}` : '';
  const booted = f.kernel ? ` (booted by meshbench as ${f.kernel})` : '';
  return `${f.release} (${os.arch()})${pkg}${booted}`;
}

/** Virtualisation (TCG: figures are functional only) and where the kernel config came from. */
export function kernelFactChecks(f: KernelFacts): Check[] {
  const g = 'host';
  const by = f.hypervisor ? ` (${f.hypervisor})` : '';
  const virt =
    f.virtualisation === 'tcg'
      ? mk(
          g,
          CHECK.virtualisation,
          'warn',
          false,
          `tcg${by}: qemu emulates the CPU, so every figure here is functional only, never comparable with KVM or bare metal`,
          'for figures, run on a host where KVM works or on bare metal',
        )
      : mk(g, CHECK.virtualisation, 'ok', false, `${f.virtualisation === 'none' ? 'none (bare metal)' : f.virtualisation}${by}`);
  const opts = Object.entries(f.config.options)
    .map(([k, v]) => `${k.replace(/^CONFIG_/, '')}=${v}`)
    .join(' ');
  const cfg = f.config.source
    ? mk(g, CHECK.kernelConfig, 'ok', false, `${f.config.source}: ${opts}`)
    : mk(
        g,
        CHECK.kernelConfig,
        'warn',
        false,
        `not found in /proc/config.gz, /boot/config-${f.release} or /lib/modules/${f.release}/config: fixes cannot name the missing options`,
        `install the kernel's config as /boot/config-${f.release} (Debian's linux-image packages do)`,
      );
  return [virt, cfg];
}

const MODULE_WORDS: Record<ModuleState, string> = { builtin: 'built in', module: 'a loadable module', absent: 'absent from this kernel' };

/** Say on the WireGuard, netem and ESP lines whether this kernel has each built in, as a module, or not at all (read from modules.builtin/dep, nothing loaded). */
function withModuleStates(checks: Check[], states: Record<Feature, ModuleState>): void {
  const byCheck: Record<Feature, string> = { wireguard: CHECK.wireguard, netem: CHECK.netem, esp: CHECK.esp };
  for (const f of Object.keys(byCheck) as Feature[]) {
    const c = checks.find((x) => x.name === byCheck[f]);
    if (c) c.detail = `${c.detail} [${FEATURE_MODULES[f]}: ${MODULE_WORDS[states[f]]}]`;
  }
}

const modulesSupported = () => existsSync('/proc/modules');

/** "CONFIG_X is not set, CONFIG_Y=y" when the kernel config is readable, else ''. */
function configNote(kcfg: KernelConfig, ...opts: string[]): string {
  if (!kcfg.source) return '';
  return opts
    .map((o) => {
      const v = kcfg.values.get(o);
      return v === undefined || v === 'n' ? `${o} is not set` : `${o}=${v}`;
    })
    .join(', ');
}

/** The evidence behind a refusal, appended to a detail: " [tc: <error>; CONFIG_X is not set]". */
function evidence(tool: string, r: ExecResult, kcfg: KernelConfig, ...opts: string[]): string {
  const cfg = configNote(kcfg, ...opts);
  return ` [${tool}: ${errText(r)}${cfg ? `; ${cfg}` : ''}]`;
}

/** modprobe when the kernel can load modules, else the kernel option it needs. */
function moduleFix(modules: string[], opts: string[], kcfg?: KernelConfig): string {
  // Name only the options the running kernel lacks, when its config says so.
  const unset = kcfg?.source ? opts.filter((o) => (kcfg.values.get(o) ?? 'n') === 'n') : [];
  if (unset.length) opts = unset;
  if (modulesSupported()) return `modprobe ${modules.join(' ')} (needs a kernel with ${opts.map((o) => `${o}=m or =y`).join(', ')})`;
  return `this kernel cannot load modules (no /proc/modules): boot a kernel built with ${opts.map((o) => `${o}=y`).join(', ')}`;
}

// ── the scratch namespace ──

/** `mbdoc<c>-scratch`: a lab-prefixed name, so `meshbench down` would clean it up. */
export function scratchName(): string {
  const c = '0123456789abcdefghijklmnopqrstuvwxyz'[randomBytes(1)[0] % 36];
  const name = `mbdoc${c}${SCRATCH_SUFFIX}`;
  if (!LAB_OBJECT_RE.test(name)) throw new Error(`scratch namespace name ${name} does not match the lab prefix`);
  return name;
}

/**
 * Undo what the doctor made (scratch namespace, temp dir) even when a signal ends the process
 * mid-probe. Armed before anything is made, so there is no window in which a made object is
 * unguarded; on a signal it cleans up synchronously and then lets the signal take its course.
 */
class Guard {
  ns?: string;
  dir?: string;
  private readonly sigs: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
  private readonly handler = (sig: NodeJS.Signals) => {
    this.disarm();
    this.cleanupSync();
    if (process.listenerCount(sig) === 0) process.kill(process.pid, sig);
  };

  constructor() {
    for (const s of this.sigs) process.on(s, this.handler);
  }

  disarm(): void {
    for (const s of this.sigs) process.off(s, this.handler);
  }

  cleanupSync(): void {
    if (this.ns) {
      try {
        execFileSync('ip', ['netns', 'del', this.ns], { stdio: 'ignore', timeout: cmdTimeoutMs() });
      } catch {
        /* not made yet, or already gone */
      }
    }
    if (this.dir) rmSync(this.dir, { recursive: true, force: true });
  }
}

async function listNetnsNames(): Promise<string[]> {
  const r = await exec('ip', ['netns', 'list'], { allowFail: true, timeoutMs: cmdTimeoutMs() });
  return r.stdout
    .split('\n')
    .map((l) => l.split(' ')[0])
    .filter(Boolean);
}

const KERNEL = 'kernel';

function kernelSkipped(reason: string): Check[] {
  const names: [string, boolean][] = [
    [CHECK.netns, true],
    [CHECK.veth, true],
    [CHECK.iptablesBackend, false],
    [CHECK.redirect, true],
    [CHECK.dnat, true],
    [CHECK.tproxy, false],
    [CHECK.wireguard, false],
    [CHECK.netem, false],
    [CHECK.esp, false],
  ];
  return names.map(([n, req]) => mk(KERNEL, n, 'skipped', req, reason));
}

interface KernelResult {
  kernel: Check[];
  /** eBPF helper checks: probed in the scratch namespace, shown with the eBPF group. */
  helpers: Check[];
}

async function kernelChecks(root: boolean, kcfg: KernelConfig, toolsP: Promise<Check[]>, featuresP: Promise<FeatureProbe | undefined>): Promise<KernelResult> {
  const cg = cgroupCheck();
  if (!root) return { kernel: [...kernelSkipped('needs root'), cg], helpers: helperSkipped('needs root') };

  const guard = new Guard();
  let result: KernelResult;
  let ns = '';
  try {
    // Compiling the helper probes takes a moment; start it before the namespace exists.
    const compiled = compileHelperProbes(guard);
    let error = '';
    for (let i = 0; i < 5 && !guard.ns; i++) {
      ns = scratchName();
      // Synchronous (a few ms), so no signal handler can run between creating it and guarding it.
      try {
        execFileSync('ip', ['netns', 'add', ns], { stdio: ['ignore', 'ignore', 'pipe'], timeout: cmdTimeoutMs() });
        guard.ns = ns;
      } catch (err) {
        error = String((err as { stderr?: Buffer }).stderr ?? (err as Error).message)
          .trim()
          .replace(/^Error:\s*/, '');
        if (!/exists/i.test(error)) break; // "exists": a name taken by someone else; try another
      }
    }
    if (!guard.ns) {
      await compiled;
      const kernel = kernelSkipped('no scratch namespace to probe in');
      kernel[0] = mk(
        KERNEL,
        CHECK.netns,
        'missing',
        true,
        `ip netns add ${ns} failed: ${firstLine(error)}`,
        'the kernel needs CONFIG_NET_NS=y; inside a container, give it CAP_SYS_ADMIN and a writable /run/netns',
      );
      return { kernel: [...kernel, cg], helpers: helperSkipped('no scratch namespace to probe in') };
    }
    const pfx = ns.slice(0, -SCRATCH_SUFFIX.length); // mbdoc<c>
    const [veth, ipt, wg, netem, esp, helpers] = await Promise.all([
      probeVeth(ns, pfx, kcfg),
      probeIptables(ns, kcfg),
      probeWireguard(ns, pfx, kcfg, toolsP),
      probeNetem(ns, kcfg),
      probeEsp(ns, kcfg),
      probeHelpers(ns, compiled, featuresP),
    ]);
    const nsCheck = mk(KERNEL, CHECK.netns, 'ok', true, `scratch namespace ${ns} created (and deleted again)`);
    result = { kernel: [nsCheck, veth, mk(KERNEL, CHECK.iptablesBackend, 'ok', false, ''), ...ipt, wg, netem, esp, cg], helpers };
  } finally {
    if (guard.ns) await exec('ip', ['netns', 'del', guard.ns], { allowFail: true, timeoutMs: cmdTimeoutMs() });
    if (guard.dir) rmSync(guard.dir, { recursive: true, force: true });
    guard.disarm();
  }
  if ((await listNetnsNames()).includes(ns)) {
    result.kernel.push(mk(KERNEL, 'scratch cleanup', 'warn', false, `could not delete the scratch namespace ${ns}`, 'meshbench down'));
  }
  return result;
}

async function probeVeth(ns: string, pfx: string, kcfg: KernelConfig): Promise<Check> {
  const r = await exec('ip', ['-n', ns, 'link', 'add', `${pfx}-va`, 'type', 'veth', 'peer', 'name', `${pfx}-vb`], {
    allowFail: true,
    timeoutMs: cmdTimeoutMs(),
  });
  return r.code === 0
    ? mk(KERNEL, CHECK.veth, 'ok', true, 'veth pair created with both ends inside the scratch namespace')
    : mk(KERNEL, CHECK.veth, 'missing', true, `cannot create a veth pair${evidence('ip', r, kcfg, 'CONFIG_VETH')}`, moduleFix(['veth'], ['CONFIG_VETH'], kcfg));
}

async function probeIptables(ns: string, kcfg: KernelConfig): Promise<Check[]> {
  if (!(await findTool('iptables'))) {
    return [
      mk(KERNEL, CHECK.redirect, 'skipped', true, 'iptables not installed (see tools)'),
      mk(KERNEL, CHECK.dnat, 'skipped', true, 'iptables not installed (see tools)'),
      mk(KERNEL, CHECK.tproxy, 'skipped', false, 'iptables not installed (see tools)'),
    ];
  }
  const ipt = (args: string[]) => exec('iptables', ['-w', '2', ...args], { netns: ns, allowFail: true, timeoutMs: cmdTimeoutMs() });
  const match = ['-p', 'tcp', '-d', '198.18.0.1', '--dport', '9'];
  // One after another: the probes share the namespace's ruleset.
  const redirect = await ipt(['-t', 'nat', '-A', 'OUTPUT', ...match, '-j', 'REDIRECT', '--to-ports', '15001']);
  const dnat = await ipt([
    '-t',
    'nat',
    '-A',
    'OUTPUT',
    ...match,
    '-m',
    'comment',
    '--comment',
    'meshbench doctor',
    '-m',
    'statistic',
    '--mode',
    'random',
    '--probability',
    '0.5',
    '-j',
    'DNAT',
    '--to-destination',
    '198.18.0.2:9',
  ]);
  const tproxy = await ipt(['-t', 'mangle', '-A', 'PREROUTING', ...match, '-j', 'TPROXY', '--on-port', '15006', '--tproxy-mark', '0x1/0x1']);
  return [
    redirect.code === 0
      ? mk(KERNEL, CHECK.redirect, 'ok', true, 'nat OUTPUT … -j REDIRECT accepted (sidecar capture)')
      : mk(
          KERNEL,
          CHECK.redirect,
          'missing',
          true,
          `nat REDIRECT refused: sidecar capture cannot run${evidence('iptables', redirect, kcfg, 'CONFIG_NETFILTER_XT_TARGET_REDIRECT')}`,
          moduleFix(['nf_nat', 'xt_REDIRECT'], ['CONFIG_NF_NAT', 'CONFIG_NETFILTER_XT_TARGET_REDIRECT'], kcfg),
        ),
    dnat.code === 0
      ? mk(KERNEL, CHECK.dnat, 'ok', true, 'nat DNAT with -m statistic -m comment accepted (kube-proxy service rules)')
      : mk(
          KERNEL,
          CHECK.dnat,
          'missing',
          true,
          `nat DNAT with -m statistic refused: kube-proxy service rules cannot load${evidence('iptables', dnat, kcfg, 'CONFIG_NETFILTER_XT_MATCH_STATISTIC', 'CONFIG_NETFILTER_XT_MATCH_COMMENT')}`,
          moduleFix(['xt_statistic', 'xt_comment', 'xt_nat'], ['CONFIG_NETFILTER_XT_MATCH_STATISTIC', 'CONFIG_NETFILTER_XT_MATCH_COMMENT'], kcfg),
        ),
    tproxy.code === 0
      ? mk(KERNEL, CHECK.tproxy, 'ok', false, 'mangle PREROUTING … -j TPROXY accepted (transparent inbound capture)')
      : mk(
          KERNEL,
          CHECK.tproxy,
          'warn',
          false,
          `mangle TPROXY refused: ambient-style capture cannot run${evidence('iptables', tproxy, kcfg, 'CONFIG_NETFILTER_XT_TARGET_TPROXY')}`,
          moduleFix(['nf_tproxy_ipv4', 'xt_TPROXY'], ['CONFIG_NETFILTER_XT_TARGET_TPROXY'], kcfg),
        ),
  ];
}

async function probeWireguard(ns: string, pfx: string, kcfg: KernelConfig, toolsP: Promise<Check[]>): Promise<Check> {
  const r = await exec('ip', ['-n', ns, 'link', 'add', `${pfx}-wg`, 'type', 'wireguard'], { allowFail: true, timeoutMs: cmdTimeoutMs() });
  if (r.code === 0) return mk(KERNEL, CHECK.wireguard, 'ok', false, 'kernel WireGuard: interface created in the scratch namespace');
  const why = evidence('ip', r, kcfg, 'CONFIG_WIREGUARD');
  const kernelFix = `for in-kernel WireGuard: ${moduleFix(['wireguard'], ['CONFIG_WIREGUARD'], kcfg)}`;
  const tools = await toolsP;
  const wgGo = tools.find((c) => c.name === 'wireguard-go');
  const wg = tools.find((c) => c.name === 'wg');
  if (wgGo?.status === 'ok' && wg?.status === 'ok') {
    const tun = existsSync('/dev/net/tun') ? '/dev/net/tun present' : 'but /dev/net/tun is MISSING';
    return mk(KERNEL, CHECK.wireguard, 'warn', false, `no WireGuard kernel module: the lab will use wireguard-go (${wgGo.detail}, ${tun})${why}`, kernelFix);
  }
  return mk(
    KERNEL,
    CHECK.wireguard,
    'warn',
    false,
    `no WireGuard kernel module: the lab will use wireguard-go, but ${wgGo?.status === 'ok' ? 'wg' : 'wireguard-go'} is not installed, so WireGuard scenarios cannot run${why}`,
    `apt-get install wireguard-go wireguard-tools; or ${kernelFix}`,
  );
}

async function probeNetem(ns: string, kcfg: KernelConfig): Promise<Check> {
  const r = await exec('tc', ['-n', ns, 'qdisc', 'add', 'dev', 'lo', 'root', 'netem', 'delay', '1ms'], { allowFail: true, timeoutMs: cmdTimeoutMs() });
  if (r.code === 0) return mk(KERNEL, CHECK.netem, 'ok', false, 'netem qdisc accepted (delay/loss for fault-injection scenarios)');
  return mk(
    KERNEL,
    CHECK.netem,
    'warn',
    false,
    `no netem qdisc: fault-injection scenarios (delay, loss) need it${evidence('tc', r, kcfg, 'CONFIG_NET_SCH_NETEM')}`,
    moduleFix(['sch_netem'], ['CONFIG_NET_SCH_NETEM'], kcfg),
  );
}

async function probeEsp(ns: string, kcfg: KernelConfig): Promise<Check> {
  const enc = randomBytes(16).toString('hex');
  const auth = randomBytes(32).toString('hex');
  const r = await exec(
    'ip',
    [
      '-n',
      ns,
      'xfrm',
      'state',
      'add',
      'src',
      '198.18.0.1',
      'dst',
      '198.18.0.2',
      'proto',
      'esp',
      'spi',
      '0x100',
      'enc',
      'cbc(aes)',
      `0x${enc}`,
      'auth',
      'hmac(sha256)',
      `0x${auth}`,
    ],
    { allowFail: true, timeoutMs: cmdTimeoutMs() },
  );
  if (r.code === 0) return mk(KERNEL, CHECK.esp, 'ok', false, 'xfrm ESP state (cbc(aes) + hmac(sha256)) accepted');
  return mk(
    KERNEL,
    CHECK.esp,
    'warn',
    false,
    `ESP state refused: IPsec-encrypted dataplanes cannot run${evidence('ip xfrm', r, kcfg, 'CONFIG_INET_ESP', 'CONFIG_XFRM_USER')}`,
    moduleFix(['esp4', 'xfrm_user'], ['CONFIG_INET_ESP', 'CONFIG_XFRM_USER'], kcfg),
  );
}

function cgroupCheck(): Check {
  const root = cgroup2Root();
  if (!root) {
    return mk(
      KERNEL,
      CHECK.cgroup2,
      'warn',
      false,
      'cgroup v2 is not mounted: CPU per role falls back to /proc/PID/stat and cgroup/connect4 programs cannot attach',
      'mount -t cgroup2 none /sys/fs/cgroup/unified (or boot with systemd.unified_cgroup_hierarchy=1)',
    );
  }
  const v1 = mounts().filter((m) => m.fstype === 'cgroup');
  const layout = v1.length ? `hybrid layout, ${v1.length} v1 hierarchies beside it` : 'unified layout';
  const controllers = (readText(join(root, 'cgroup.controllers')) ?? '').trim() || 'none';
  const cpuStat = existsSync(join(root, 'cpu.stat')) ? 'cpu.stat present' : 'no cpu.stat';
  let writable = true;
  try {
    accessSync(root, constants.W_OK);
  } catch {
    writable = false;
  }
  const detail = `${root} (${layout}); v2 controllers: ${controllers}; ${cpuStat}${writable ? '' : '; not writable by this user'}`;
  return mk(KERNEL, CHECK.cgroup2, 'ok', false, detail);
}

// ── eBPF ──

const EBPF = 'ebpf';
const PROG_TYPES = ['sched_cls', 'cgroup_sock_addr', 'sock_ops', 'sk_msg'];
const MAP_TYPES = ['sockhash', 'ringbuf', 'lpm_trie'];
const HELPERS = ['bpf_redirect_peer', 'bpf_sk_assign'];

/** `bpftool -j feature probe kernel`, parsed; undefined with the reason when it cannot run. */
async function featureProbe(): Promise<FeatureProbe | undefined> {
  const bpftool = await findTool('bpftool');
  if (!bpftool) return { error: 'bpftool not installed (see tools)' };
  const r = await exec(bpftool, ['-j', 'feature', 'probe', 'kernel'], { allowFail: true, timeoutMs: bpftoolTimeoutMs() });
  if (r.code !== 0) return { error: `bpftool feature probe failed: ${errText(r)}` };
  try {
    return JSON.parse(r.stdout) as FeatureProbe;
  } catch (err) {
    return { error: `bpftool feature probe printed no JSON: ${(err as Error).message}` };
  }
}

async function ebpfChecks(root: boolean, featuresP: Promise<FeatureProbe | undefined>): Promise<Check[]> {
  const out: Check[] = [];
  out.push(
    existsSync('/sys/kernel/btf/vmlinux')
      ? mk(EBPF, 'btf', 'ok', false, '/sys/kernel/btf/vmlinux present (CO-RE programs can load)')
      : mk(EBPF, 'btf', 'warn', false, 'no /sys/kernel/btf/vmlinux: CO-RE programs cannot relocate', 'boot a kernel built with CONFIG_DEBUG_INFO_BTF=y'),
  );
  const jit = readText('/proc/sys/net/core/bpf_jit_enable')?.trim();
  out.push(
    jit === undefined
      ? mk(
          EBPF,
          'bpf jit',
          'warn',
          false,
          'no /proc/sys/net/core/bpf_jit_enable: the kernel has no BPF JIT; programs run interpreted',
          'use a kernel built with CONFIG_BPF_JIT=y',
        )
      : jit === '0'
        ? mk(
            EBPF,
            'bpf jit',
            'warn',
            false,
            'net.core.bpf_jit_enable = 0: programs run interpreted, so eBPF costs would be overstated',
            'sysctl -w net.core.bpf_jit_enable=1 (a global setting: the lab does not change it for you)',
          )
        : mk(EBPF, 'bpf jit', 'ok', false, `enabled (net.core.bpf_jit_enable = ${jit})`),
  );
  const fs = bpffsRoot();
  out.push(
    fs
      ? mk(EBPF, CHECK.bpffs, 'ok', false, `mounted at ${fs}`)
      : (readText('/proc/filesystems') ?? '').includes('\tbpf\n')
        ? mk(
            EBPF,
            CHECK.bpffs,
            'ok',
            false,
            'not mounted on the host; the eBPF dataplanes mount a private one at /run/meshbench/<prefix>/bpffs and unmount it at teardown',
          )
        : mk(
            EBPF,
            CHECK.bpffs,
            'warn',
            false,
            'this kernel has no bpf filesystem: programs and maps cannot be pinned (the eBPF dataplanes need it)',
            'use a kernel built with CONFIG_BPF_SYSCALL=y',
          ),
  );
  const stats = readText('/proc/sys/kernel/bpf_stats_enabled')?.trim();
  out.push(
    stats === undefined
      ? mk(EBPF, 'bpf_stats_enabled', 'warn', false, 'no kernel.bpf_stats_enabled sysctl: per-program run time cannot be measured', 'use a kernel ≥ 5.1')
      : mk(
          EBPF,
          'bpf_stats_enabled',
          'ok',
          false,
          `present (now ${stats}); the eBPF dataplanes count per-program run time through a BPF_ENABLE_STATS handle held by their agents, which has the effect of 1 while they run and never writes the sysctl`,
        ),
  );
  if (!root) {
    for (const t of PROG_TYPES) out.push(mk(EBPF, `prog ${t}`, 'skipped', false, 'needs root'));
    for (const t of MAP_TYPES) out.push(mk(EBPF, `map ${t}`, 'skipped', false, 'needs root'));
    return out;
  }
  const j = await featuresP;
  if (!j || j.error) {
    const why = j?.error ?? 'bpftool feature probe did not run';
    for (const t of PROG_TYPES) out.push(mk(EBPF, `prog ${t}`, 'skipped', false, why));
    for (const t of MAP_TYPES) out.push(mk(EBPF, `map ${t}`, 'skipped', false, why));
    return out;
  }
  // One line per program or map type the lab uses, from bpftool's feature report.
  const typeChecks = (
    kind: 'prog' | 'map',
    types: readonly string[],
    report: Record<string, boolean> | undefined,
    key: (t: string) => string,
    okText: string,
    noun: string,
  ) => {
    for (const t of types) {
      const v = report?.[key(t)];
      out.push(
        v === true
          ? mk(EBPF, `${kind} ${t}`, 'ok', false, okText)
          : mk(
              EBPF,
              `${kind} ${t}`,
              'warn',
              false,
              v === false ? `${noun} not supported by this kernel` : "not in bpftool's report",
              'use a newer kernel (6.1 or later has every type the lab uses)',
            ),
      );
    }
  };
  typeChecks('prog', PROG_TYPES, j.program_types, (t) => `have_${t}_prog_type`, 'program type loads', 'program type');
  typeChecks('map', MAP_TYPES, j.map_types, (t) => `have_${t}_map_type`, 'map type creatable', 'map type');
  return out;
}

interface FeatureProbe {
  program_types?: Record<string, boolean>;
  map_types?: Record<string, boolean>;
  helpers?: Record<string, string[]>;
  /** Set instead of the rest when bpftool could not run. */
  error?: string;
}

/** What bpftool's helper lists say, and whether they can be believed. */
function helpersFromJson(j: FeatureProbe | undefined): { trusted: boolean; has: (h: string) => boolean | undefined; note: string } {
  const cls = j?.helpers?.sched_cls_available_helpers;
  if (!Array.isArray(cls)) return { trusted: false, has: () => undefined, note: j?.error ?? "bpftool's report has no helper lists" };
  // bpf_redirect_peer only exists for tc programs. A bpftool whose libbpf predates the verifier's
  // "program of this type cannot use helper" message counts every helper as available everywhere.
  const kprobe = j?.helpers?.kprobe_available_helpers;
  const trusted = !(Array.isArray(kprobe) && kprobe.includes('bpf_redirect_peer'));
  return {
    trusted,
    has: (h) => cls.includes(h),
    note: trusted ? '' : "bpftool's helper lists are wrong on this kernel (they offer every helper to every program type)",
  };
}

// ── helper probes: load a tiny tc program that calls the helper, in the scratch namespace ──

const HELPER_SRC = `#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
SEC("tc")
int probe(struct __sk_buff *skb) {
#ifdef PROBE_REDIRECT_PEER
  return bpf_redirect_peer(1, 0);
#else
  struct bpf_sock_tuple t = {};
  struct bpf_sock *sk = bpf_sk_lookup_tcp(skb, &t, sizeof(t.ipv4), BPF_F_CURRENT_NETNS, 0);
  if (!sk) return TC_ACT_OK;
  long r = bpf_sk_assign(skb, sk, 0);
  bpf_sk_release(sk);
  return r ? TC_ACT_SHOT : TC_ACT_OK;
#endif
}
char _license[] SEC("license") = "GPL";
`;

interface Compiled {
  objects?: Record<string, string>;
  reason?: string;
}

const MULTIARCH: Record<string, string> = {
  x64: 'x86_64-linux-gnu',
  arm64: 'aarch64-linux-gnu',
  arm: 'arm-linux-gnueabihf',
  ppc64: 'powerpc64le-linux-gnu',
  s390x: 's390x-linux-gnu',
  riscv64: 'riscv64-linux-gnu',
};

/** Compile one tiny tc object per helper into a temp dir the guard removes. */
async function compileHelperProbes(guard: Guard): Promise<Compiled> {
  const clang = await findTool('clang');
  if (!clang) return { reason: 'clang not installed' };
  if (!existsSync('/usr/include/bpf/bpf_helpers.h')) return { reason: 'libbpf headers not installed' };
  const dir = ownedTmpDir('mbdoc-');
  guard.dir = dir;
  try {
    const src = join(dir, 'probe.c');
    writeFileSync(src, HELPER_SRC);
    // Debian keeps asm/types.h under the multiarch directory, which clang -target bpf does not search.
    const inc = `/usr/include/${MULTIARCH[process.arch] ?? ''}`;
    const incArgs = MULTIARCH[process.arch] && existsSync(inc) ? ['-I', inc] : [];
    const defs: Record<string, string[]> = { bpf_redirect_peer: ['-DPROBE_REDIRECT_PEER'], bpf_sk_assign: [] };
    const objects: Record<string, string> = {};
    const results = await Promise.all(
      HELPERS.map(async (h) => {
        const obj = join(dir, `${h}.o`);
        const r = await exec(clang, ['-O2', '-target', 'bpf', ...incArgs, ...defs[h], '-c', src, '-o', obj], { allowFail: true, timeoutMs: cmdTimeoutMs() });
        if (r.code === 0) objects[h] = obj;
        return r;
      }),
    );
    const failed = results.find((r) => r.code !== 0);
    if (failed) return { reason: `clang -target bpf failed: ${errText(failed)}` };
    return { objects };
  } catch (err) {
    return { reason: String(err) };
  }
}

function helperSkipped(reason: string): Check[] {
  return HELPERS.map((h) => mk(EBPF, `helper ${h}`, 'skipped', false, reason));
}

async function probeHelpers(ns: string, compiledP: Promise<Compiled>, featuresP: Promise<FeatureProbe | undefined>): Promise<Check[]> {
  const compiled = await compiledP;
  const loaded = new Map<string, { ok: boolean; unavailable: boolean; why: string }>();
  let loadReason = compiled.reason;
  if (compiled.objects && !(await findTool('tc'))) loadReason = 'tc not installed';
  else if (compiled.objects) {
    const q = await exec('tc', ['-n', ns, 'qdisc', 'add', 'dev', 'lo', 'clsact'], { allowFail: true, timeoutMs: cmdTimeoutMs() });
    if (q.code !== 0) loadReason = `tc clsact refused: ${errText(q)}`;
    else {
      let pref = 1;
      for (const h of HELPERS) {
        const r = await exec(
          'tc',
          ['-n', ns, 'filter', 'add', 'dev', 'lo', 'ingress', 'pref', String(pref++), 'bpf', 'da', 'obj', compiled.objects[h], 'sec', 'tc'],
          { allowFail: true, timeoutMs: cmdTimeoutMs() },
        );
        const log = `${r.stderr}\n${r.stdout}`;
        const refusal = log.split('\n').find((l) => /cannot use helper|unknown func|invalid func/.test(l));
        loaded.set(h, { ok: r.code === 0, unavailable: !!refusal, why: (refusal ?? errText(r)).trim() });
      }
    }
  }
  const json = helpersFromJson(await featuresP);
  return HELPERS.map((h) => {
    const name = `helper ${h}`;
    const l = loaded.get(h);
    const note = json.note ? `; ${json.note}` : '';
    const fix = 'use a kernel ≥ 5.10 (bpf_redirect_peer) / ≥ 5.7 (bpf_sk_assign) with CONFIG_NET_CLS_BPF';
    if (l) {
      if (l.ok) return mk(EBPF, name, 'ok', false, `a tc (sched_cls) program calling it loads${note}`);
      if (l.unavailable) return mk(EBPF, name, 'warn', false, `the verifier refuses it in a tc program: ${l.why}`, fix);
      return mk(
        EBPF,
        name,
        'warn',
        false,
        `load probe failed, so availability is unknown: ${l.why}`,
        'the eBPF dataplanes would hit the same loader error: check clang, libbpf-dev and the tc (iproute2) build',
      );
    }
    if (json.trusted && json.has(h) !== undefined) {
      return json.has(h)
        ? mk(EBPF, name, 'ok', false, 'available to sched_cls programs (bpftool feature probe)')
        : mk(EBPF, name, 'warn', false, 'not available to sched_cls programs (bpftool feature probe)', fix);
    }
    return mk(
      EBPF,
      name,
      'warn',
      false,
      `unknown: ${json.note || 'no bpftool report'}, and the load probe could not run (${loadReason ?? 'no reason'})`,
      'apt-get install clang libbpf-dev, then run doctor again',
    );
  });
}

// ── tools ──

const TOOLS = 'tools';

interface ToolSpec {
  name: string;
  pkg: string;
  required: boolean;
  args: string[];
  /** What the lab uses it for, shown when it is missing. */
  use: string;
}

const TOOL_SPECS: ToolSpec[] = [
  { name: 'ip', pkg: 'iproute2', required: true, args: ['-V'], use: 'builds every namespace, link and route' },
  { name: 'tc', pkg: 'iproute2', required: false, args: ['-V'], use: 'attaches eBPF programs, netem faults' },
  { name: 'iptables', pkg: 'iptables', required: true, args: ['--version'], use: 'service VIPs and traffic capture' },
  { name: 'iptables-restore', pkg: 'iptables', required: true, args: ['--version'], use: 'loads rule sets in one step' },
  { name: 'ss', pkg: 'iproute2', required: true, args: ['-V'], use: 'waits for listeners' },
  { name: 'sysctl', pkg: 'procps', required: true, args: ['--version'], use: 'sets ip_forward inside node namespaces' },
  { name: 'taskset', pkg: 'util-linux', required: true, args: ['--version'], use: 'pins load generator and servers to CPUs' },
  { name: 'clang', pkg: 'clang', required: false, args: ['--version'], use: 'compiles bpf/ for the eBPF dataplanes' },
  { name: 'llc', pkg: 'llvm', required: false, args: ['--version'], use: 'BPF backend for bpf/' },
  { name: 'bpftool', pkg: 'bpftool', required: false, args: ['version'], use: 'loads and inspects eBPF programs and maps' },
  { name: 'tcpdump', pkg: 'tcpdump', required: false, args: ['--version'], use: 'debugging captures inside namespaces' },
  { name: 'ping', pkg: 'iputils-ping', required: false, args: ['-V'], use: 'reachability checks' },
  { name: 'wireguard-go', pkg: 'wireguard-go', required: false, args: ['--version'], use: 'userspace WireGuard when the kernel has no module' },
  { name: 'wg', pkg: 'wireguard-tools', required: false, args: ['--version'], use: 'configures WireGuard interfaces' },
];

/** A short version line: the first line of output, without URLs or the tool's full path. */
function versionLine(out: string, path?: string): string {
  let l = firstLine(out);
  if (path && l.startsWith(path)) l = basename(path) + l.slice(path.length);
  return l
    .replace(/\s*-?\s*https?:\/\/\S+/g, '')
    .replace(/\s+/g, ' ')
    .slice(0, 80)
    .trim();
}

async function plainTool(t: ToolSpec): Promise<Check> {
  const p = await findTool(t.name);
  if (!p) return mk(TOOLS, t.name, 'missing', t.required, `not found (${t.use})`, `apt-get install ${t.pkg}`);
  const r = await exec(p, t.args, { allowFail: true, timeoutMs: cmdTimeoutMs() });
  const v = versionLine(r.stdout || r.stderr, p) || `present at ${p} (version unknown)`;
  if (t.name === 'llc') {
    const all = `${r.stdout}\n${r.stderr}`;
    if (!/^\s*bpf\s/m.test(all))
      return mk(TOOLS, t.name, 'warn', false, `${v}, but without the BPF target`, 'apt-get install llvm (Debian builds include the BPF target)');
    return mk(TOOLS, t.name, 'ok', false, `${v} (BPF target present)`);
  }
  return mk(TOOLS, t.name, 'ok', t.required, v);
}

async function fortioCheck(): Promise<Check> {
  const fix = `run scripts/setup.sh (installs fortio ${FORTIO_VERSION} into .tools/bin with go install)`;
  const p = await findTool('fortio');
  if (!p) return mk(TOOLS, 'fortio', 'missing', true, 'not found on PATH or in .tools/bin (the load generator and test servers)', fix);
  const r = await exec(p, ['version'], { allowFail: true, timeoutMs: cmdTimeoutMs() });
  const v = firstLine(r.stdout || r.stderr);
  const bare = v.replace(/^v/, '').split(/\s/)[0];
  if (bare === FORTIO_VERSION) return mk(TOOLS, 'fortio', 'ok', true, `${bare} at ${p}`);
  return mk(
    TOOLS,
    'fortio',
    'warn',
    true,
    `${v || 'unknown version'} at ${p}; the lab pins ${FORTIO_VERSION}, so figures may not compare`,
    `put fortio ${FORTIO_VERSION} first on PATH, or remove this one and ${fix}`,
  );
}

async function haproxyChecks(want: string[]): Promise<Check[]> {
  const b = await haproxyBuild(cmdTimeoutMs());
  if (!b) {
    return [
      mk(TOOLS, CHECK.haproxy, 'warn', false, 'not found: the proxy dataplanes (sidecars, ambient, ebpf-l7) need it', 'apt-get install haproxy'),
      mk(TOOLS, CHECK.haproxyFeatures, 'skipped', false, 'haproxy not installed'),
    ];
  }
  const lacking = want.filter((f) => !b.features.includes(f));
  const shown = want.map((f) => (b.features.includes(f) ? `+${f}` : `-${f}`)).join(' ');
  const uses = want.map((f) => HAPROXY_FLAG_USE[f] ?? f).join(', ');
  return [
    mk(TOOLS, CHECK.haproxy, 'ok', false, b.version),
    !b.listed
      ? mk(TOOLS, CHECK.haproxyFeatures, 'warn', false, 'no feature list in haproxy -vv', 'apt-get install haproxy (Debian builds have +NS +TPROXY)')
      : lacking.length === 0
        ? mk(TOOLS, CHECK.haproxyFeatures, 'ok', false, `${shown} (${uses})`)
        : mk(
            TOOLS,
            CHECK.haproxyFeatures,
            'warn',
            false,
            `${shown}: built without ${lacking.join(', ')}, so the dataplanes that ask for them cannot run`,
            'apt-get install haproxy (Debian builds have +NS +TPROXY), or build with USE_NS=1 USE_LINUX_TPROXY=1',
          ),
  ];
}

function headersCheck(): Check {
  return existsSync('/usr/include/bpf/bpf_helpers.h')
    ? mk(TOOLS, CHECK.libbpfHeaders, 'ok', false, '/usr/include/bpf/bpf_helpers.h')
    : mk(TOOLS, CHECK.libbpfHeaders, 'missing', false, 'no /usr/include/bpf/bpf_helpers.h (bpf/ needs it)', 'apt-get install libbpf-dev');
}

/** Who needs a tool or file, for the line that says it is missing. */
const neededBy = (dataplanes: DataplaneNeeds[], name: string) =>
  dataplanes
    .filter((d) => d.needs.some((n) => ('tool' in n && n.tool === name) || ('file' in n && n.file === name)))
    .map((d) => d.name)
    .join(', ');

/** Tools the dataplanes declare beyond the fixed list, found or not (not run: some are daemons). */
async function declaredTools(dataplanes: DataplaneNeeds[]): Promise<Check[]> {
  const known = new Set([...TOOL_SPECS.map((t) => t.name), 'fortio', 'haproxy']);
  const names = [...new Set(dataplanes.flatMap((d) => d.needs.flatMap((n) => ('tool' in n ? [n.tool] : []))))].filter((n) => !known.has(n));
  return Promise.all(
    names.map(async (name) => {
      const p = await findTool(name);
      return p
        ? mk(TOOLS, name, 'ok', false, `present at ${p}`)
        : mk(TOOLS, name, 'missing', false, `not found (needed by ${neededBy(dataplanes, name)})`, installHint(name));
    }),
  );
}

/** Files the dataplanes declare (built by the set-up), present or not. */
function declaredFiles(dataplanes: DataplaneNeeds[]): Check[] {
  const files = new Map<string, string>();
  for (const d of dataplanes) for (const n of d.needs) if ('file' in n) files.set(n.file, n.fix);
  return [...files].map(([file, fix]) =>
    existsSync(join(PROJECT_ROOT, file))
      ? mk(TOOLS, file, 'ok', false, 'built')
      : mk(TOOLS, file, 'missing', false, `not built (needed by ${neededBy(dataplanes, file)})`, fix),
  );
}

/** The checks doctor adds for what the dataplanes declare beyond its fixed list (tools, built files). */
export async function declaredChecks(dataplanes: DataplaneNeeds[] = allDataplanes()): Promise<Check[]> {
  return [...(await declaredTools(dataplanes)), ...declaredFiles(dataplanes)];
}

async function toolChecks(dataplanes: DataplaneNeeds[]): Promise<Check[]> {
  const want = engineFlags(dataplanes.flatMap((d) => d.needs));
  const [plain, fortio, haproxy, declared] = await Promise.all([
    Promise.all(TOOL_SPECS.map(plainTool)),
    fortioCheck(),
    haproxyChecks(want),
    declaredChecks(dataplanes),
  ]);
  const at = (n: string) => plain.find((c) => c.name === n)!;
  // Required first, then the optional ones, in a fixed order.
  return [
    at('ip'),
    at('tc'),
    at('iptables'),
    at('iptables-restore'),
    at('ss'),
    at('sysctl'),
    at('taskset'),
    fortio,
    ...haproxy,
    at('clang'),
    at('llc'),
    headersCheck(),
    at('bpftool'),
    at('tcpdump'),
    at('ping'),
    at('wireguard-go'),
    at('wg'),
    ...declared,
  ];
}
