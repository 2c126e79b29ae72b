// Facts about the running kernel for doctor and the run record: release, version, which Debian
// package it is, whether it runs under a hypervisor (and whether that is TCG emulation, whose
// timings are functional only), the config options the lab cares about, BTF, and whether
// WireGuard, netem and ESP are built in, modules or absent. Read-only and rootless: files under
// /proc, /sys, /boot and /lib/modules only, nothing is loaded. Parsers are pure (tested on strings);
// kernelFacts() gathers the files.
import os from 'node:os';
import { gunzipSync } from 'node:zlib';
import { readFile, stat } from 'node:fs/promises';

export type Virtualisation = 'none' | 'kvm' | 'tcg' | 'vm';
export type ConfigValue = 'y' | 'm' | 'n';
export type ModuleState = 'builtin' | 'module' | 'absent';

/** Options that decide what the lab can do inside a kernel. */
export const CONFIG_OPTIONS = [
  'CONFIG_WIREGUARD',
  'CONFIG_NET_SCH_NETEM',
  'CONFIG_INET_ESP',
  'CONFIG_XFRM_USER',
  'CONFIG_DEBUG_INFO_BTF',
  'CONFIG_BPF_SYSCALL',
  'CONFIG_BPF_JIT',
  'CONFIG_CGROUP_BPF',
  'CONFIG_NET_CLS_BPF',
  'CONFIG_VETH',
  'CONFIG_NETFILTER_XT_TARGET_TPROXY',
  // sockmap / sockhash
  'CONFIG_BPF_STREAM_PARSER',
] as const;
export type ConfigOption = (typeof CONFIG_OPTIONS)[number];

/** The lab's features by the module that provides each. */
export const FEATURE_MODULES = { wireguard: 'wireguard', netem: 'sch_netem', esp: 'esp4' } as const;
export type Feature = keyof typeof FEATURE_MODULES;

export interface KernelFacts {
  /** uname -r */
  release: string;
  /** /proc/version */
  version: string;
  virtualisation: Virtualisation;
  /** What said so: `MESHBENCH_VM`, `kvm-clock`, the CPU model, the DMI vendor … */
  hypervisor?: string;
  /** True under TCG: timings are emulation, never comparable with KVM or bare metal. */
  functionalOnly: boolean;
  /** The registry name when meshbench booted this kernel in a VM (MESHBENCH_VM). */
  kernel?: string;
  package?: { name: string; version: string };
  config: {
    /** The file the options were read from, or null when the kernel's config is nowhere to be found. */
    source: string | null;
    /** Empty when source is null: unknown, not "n". */
    options: Partial<Record<ConfigOption, ConfigValue>>;
  };
  /** /sys/kernel/btf/vmlinux exists (CO-RE programs can relocate). */
  btf: boolean;
  modules: Record<Feature, ModuleState>;
}

/** What the lead's VM runner puts in the guest's environment as MESHBENCH_VM. */
export interface VmEnv {
  kernel?: string;
  package?: string;
  version?: string;
  release?: string;
  accel?: 'tcg' | 'kvm';
}

export function parseVmEnv(text: string | undefined): VmEnv | undefined {
  if (!text) return undefined;
  try {
    const j = JSON.parse(text) as Record<string, unknown>;
    if (typeof j !== 'object' || j === null) return undefined;
    const str = (k: string) => (typeof j[k] === 'string' ? (j[k] as string) : undefined);
    const accel = str('accel');
    return {
      kernel: str('kernel'),
      package: str('package'),
      version: str('version'),
      release: str('release'),
      accel: accel === 'tcg' || accel === 'kvm' ? accel : undefined,
    };
  } catch {
    return undefined;
  }
}

/** Every `CONFIG_X=v` and `# CONFIG_X is not set` (as n) of a kernel config. */
export function parseKernelConfig(text: string): Map<string, string> {
  const values = new Map<string, string>();
  for (const line of text.split('\n')) {
    const m = line.match(/^(CONFIG_\w+)=(.*)$/) ?? line.match(/^# (CONFIG_\w+) is not set$/);
    if (m) values.set(m[1], m[2] ?? 'n');
  }
  return values;
}

/** The lab's options as y/m/n (absent from the config means n). */
export function configOptions(values: Map<string, string>): Record<ConfigOption, ConfigValue> {
  const out = {} as Record<ConfigOption, ConfigValue>;
  for (const o of CONFIG_OPTIONS) {
    const v = values.get(o);
    out[o] = v === 'y' || v === 'm' ? v : 'n';
  }
  return out;
}

/** `kernel/net/sched/sch_netem.ko.xz` → `sch_netem` (as modprobe names it: dashes are underscores). */
const modName = (path: string) => (path.split('/').pop() ?? '').replace(/\.ko(\.(xz|zst|gz))?$/, '').replace(/-/g, '_');

/**
 * A module's state from modules.builtin and modules.dep of /lib/modules/<release>; when neither
 * file exists, from the config option (y: built in; m without modules installed: absent).
 */
export function moduleState(name: string, files: { dep?: string; builtin?: string }, option?: ConfigValue): ModuleState {
  const names = (text: string | undefined, field: (l: string) => string) =>
    new Set(
      (text ?? '')
        .split('\n')
        .map((l) => modName(field(l).trim()))
        .filter(Boolean),
    );
  if (names(files.builtin, (l) => l).has(name)) return 'builtin';
  if (names(files.dep, (l) => l.split(':')[0]).has(name)) return 'module';
  if (files.builtin === undefined && option === 'y') return 'builtin';
  return 'absent';
}

/**
 * none, kvm, tcg or vm (another or an unknown hypervisor). MESHBENCH_VM (set by meshbench's own
 * VM runner) is believed first; then kvm-clock means KVM underneath, qemu's TCG CPU model means
 * emulation, and the cpuinfo `hypervisor` flag or a DMI vendor of a hypervisor means some VM.
 */
export function detectVirtualisation(s: { vmEnv?: VmEnv; cpuinfo?: string; clocksources?: string; dmiVendor?: string; dmiProduct?: string }): {
  virtualisation: Virtualisation;
  hypervisor?: string;
} {
  if (s.vmEnv?.accel) return { virtualisation: s.vmEnv.accel, hypervisor: 'qemu, said by MESHBENCH_VM' };
  const model = s.cpuinfo?.match(/^model name\s*:\s*(.+)$/m)?.[1].trim();
  const flags = s.cpuinfo?.match(/^flags\s*:\s*(.+)$/m)?.[1].split(/\s+/) ?? [];
  const vendor = s.dmiVendor?.trim();
  if (model && /QEMU TCG/.test(model)) return { virtualisation: 'tcg', hypervisor: `CPU model "${model}"` };
  if ((s.clocksources ?? '').split(/\s+/).includes('kvm-clock')) return { virtualisation: 'kvm', hypervisor: 'kvm-clock clocksource' };
  const knownVendor =
    vendor && /QEMU|KVM|VMware|Xen|Microsoft|innotek|VirtualBox|Parallels|Amazon EC2|Google|Bochs|BHYVE|Firecracker/i.test(`${vendor} ${s.dmiProduct ?? ''}`);
  if (knownVendor) return { virtualisation: 'vm', hypervisor: `DMI ${[vendor, s.dmiProduct?.trim()].filter(Boolean).join(' / ')}` };
  if (flags.includes('hypervisor')) return { virtualisation: 'vm', hypervisor: 'cpuinfo hypervisor flag' };
  return { virtualisation: 'none' };
}

/** Debian's kernel names its package version in /proc/version: `… Debian 6.1.176-1 (2026-07-02)`. */
export function packageFromVersion(procVersion: string, release: string): { name: string; version: string } | undefined {
  // After the build number: the compiler's own "(Debian 12.2.0-14)" comes earlier in the line.
  const v = procVersion.match(/#\d+ .*\bDebian (\d[\w.:~+-]*)/)?.[1];
  return v ? { name: `linux-image-${release}`, version: v } : undefined;
}

const read = async (p: string): Promise<string | undefined> => {
  try {
    return await readFile(p, 'utf8');
  } catch {
    return undefined;
  }
};

/** The kernel's config: /proc/config.gz, /boot/config-<release>, /lib/modules/<release>/config, first found. */
export async function readKernelConfig(release: string): Promise<{ source: string; text: string } | undefined> {
  try {
    return { source: '/proc/config.gz', text: gunzipSync(await readFile('/proc/config.gz')).toString('utf8') };
  } catch {
    /* no IKCONFIG_PROC */
  }
  for (const p of [`/boot/config-${release}`, `/lib/modules/${release}/config`]) {
    const text = await read(p);
    if (text !== undefined) return { source: p, text };
  }
  return undefined;
}

export async function kernelFacts(): Promise<KernelFacts> {
  const release = os.release();
  const mods = `/lib/modules/${release}`;
  const [version, cfg, cpuinfo, clocksources, dmiVendor, dmiProduct, dep, builtin, btf] = await Promise.all([
    read('/proc/version'),
    readKernelConfig(release),
    read('/proc/cpuinfo'),
    read('/sys/devices/system/clocksource/clocksource0/available_clocksource'),
    read('/sys/class/dmi/id/sys_vendor'),
    read('/sys/class/dmi/id/product_name'),
    read(`${mods}/modules.dep`),
    read(`${mods}/modules.builtin`),
    stat('/sys/kernel/btf/vmlinux').then(
      () => true,
      () => false,
    ),
  ]);
  const vmEnv = parseVmEnv(process.env.MESHBENCH_VM);
  const virt = detectVirtualisation({ vmEnv, cpuinfo, clocksources, dmiVendor, dmiProduct });
  const options: Partial<Record<ConfigOption, ConfigValue>> = cfg ? configOptions(parseKernelConfig(cfg.text)) : {};
  const procVersion = (version ?? '').trim();
  // The VM runner's word on the package counts only for the kernel it booted.
  const pkgFromEnv =
    vmEnv?.package && vmEnv.version && (!vmEnv.release || vmEnv.release === release) ? { name: vmEnv.package, version: vmEnv.version } : undefined;
  const pkg = pkgFromEnv ?? packageFromVersion(procVersion, release);
  const modules = {} as Record<Feature, ModuleState>;
  for (const [f, m] of Object.entries(FEATURE_MODULES) as [Feature, string][]) {
    const opt = { wireguard: options.CONFIG_WIREGUARD, netem: options.CONFIG_NET_SCH_NETEM, esp: options.CONFIG_INET_ESP }[f];
    modules[f] = moduleState(m, { dep, builtin }, opt);
  }
  return {
    release,
    version: procVersion,
    virtualisation: virt.virtualisation,
    ...(virt.hypervisor ? { hypervisor: virt.hypervisor } : {}),
    functionalOnly: virt.virtualisation === 'tcg',
    ...(vmEnv?.kernel ? { kernel: vmEnv.kernel } : {}),
    ...(pkg ? { package: pkg } : {}),
    config: { source: cfg?.source ?? null, options },
    btf,
    modules,
  };
}
