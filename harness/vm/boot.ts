// Boot a fetched kernel in qemu and run one command inside: the host root read-only over 9p
// with a tmpfs overlay, the kernel's modules on a second share, a temp exchange directory for
// the command, its output and exit code. No network device at all. KVM when it really works
// (probed by starting it), TCG otherwise.
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { envError, runError } from '../errors.js';
import { which } from '../util/exec.js';
import { renderStage2, STOP_FILE } from './guest.js';
import { buildInitrd, TAGS } from './initrd.js';
import { type KernelFiles, resolveKernel } from './kernels.js';
import { ownedTmpDir } from '../util/tmp.js';

/** The qemu binary (MESHBENCH_QEMU overrides, e.g. a build of your own). */
export const QEMU = process.env.MESHBENCH_QEMU || 'qemu-system-x86_64';

/** Kernels and initrds are kept here across runs (MESHBENCH_KERNEL_CACHE overrides). */
export function defaultCacheDir(): string {
  return process.env.MESHBENCH_KERNEL_CACHE ?? join(homedir(), '.cache', 'meshbench', 'kernels');
}

export interface VmRequest {
  kernel: string;
  /** Shell text run by /bin/sh inside the guest; a function when it needs to know the kernel and accelerator first. */
  command: string | ((kernel: KernelFiles, accel: 'kvm' | 'tcg') => string);
  timeoutMs?: number;
  memoryMiB?: number;
  cpus?: number;
  cacheDir?: string;
  /** Start qemu inside this network namespace (where its tap devices are). */
  netns?: string;
  /** virtio-net NICs on tap devices that already exist in `netns`; none by default. */
  nics?: Nic[];
  /** Extra files for the exchange directory (name → content), seen in the guest under GUEST_IO. */
  files?: Record<string, string>;
  /** Called with the exchange directory after the guest stopped, before it is removed. */
  collect?: (ioDir: string) => void | Promise<void>;
  /** Called with each new line the command writes to its output, while it runs. */
  onOutput?: (line: string) => void;
}

export interface Nic {
  /** Name of an existing tap device in the VM's network namespace. */
  tap: string;
  mac: string;
}

export interface VmResult {
  exitCode: number;
  output: string;
  /** From qemu's start to the guest starting the command. */
  bootMs: number;
  totalMs: number;
  accel: 'kvm' | 'tcg';
  kernel: KernelFiles;
  /** True when the command was asked to stop (stop()) before it finished by itself. */
  stopped: boolean;
}

/** A started VM: its qemu pid, a way to stop it, and its result once it powered off. */
export interface VmHandle {
  pid: number;
  accel: 'kvm' | 'tcg';
  kernel: KernelFiles;
  /**
   * Ask the guest's command to stop (SIGINT inside, so a lab run tears down and writes its
   * record); qemu is killed if the guest has not powered off after `graceMs`.
   */
  stop(graceMs?: number): void;
  done: Promise<VmResult>;
}

/**
 * TCG, conservatively: one emulation thread for all vCPUs (`thread=single`: the guest still sees
 * two CPUs, so pinning works) and `max` less the AVX family, whose emulation is new in Debian 12's
 * qemu 7.2. With multi-threaded TCG and AVX, node in the guest died now and then in CI (SIGSEGV at
 * start-up; a spurious "memory access out of bounds" in a wasm module): about 2 guests in 25.
 */
export const TCG_CPU = 'max,avx=off,avx2=off,fma=off,f16c=off,vaes=off,vpclmulqdq=off';

/** qemu's arguments for one boot; pure, so a test can check what the VM gets (no NIC). */
export function qemuArgs(o: {
  accel: 'kvm' | 'tcg';
  vmlinuz: string;
  initrd: string;
  modulesDir: string;
  ioDir: string;
  memoryMiB: number;
  cpus: number;
  nics?: Nic[];
}): string[] {
  const share = (id: string, path: string, readonly: boolean) => [
    '-fsdev',
    `local,id=${id},path=${path},security_model=none,multidevs=remap${readonly ? ',readonly=on' : ''}`,
    '-device',
    `virtio-9p-pci,fsdev=${id},mount_tag=${id}`,
  ];
  return [
    ...(o.accel === 'kvm' ? ['-accel', 'kvm', '-cpu', 'host'] : ['-accel', 'tcg,thread=single', '-cpu', TCG_CPU]),
    '-M',
    'q35',
    '-m',
    String(o.memoryMiB),
    '-smp',
    String(o.cpus),
    '-nographic',
    '-nodefaults',
    '-serial',
    'stdio',
    '-monitor',
    'none',
    '-no-reboot',
    // No user-mode (slirp) network ever: either no NIC, or taps inside a lab namespace.
    ...(o.nics?.length
      ? o.nics.flatMap((n, i) => ['-netdev', `tap,id=n${i},ifname=${n.tap},script=no,downscript=no`, '-device', `virtio-net-pci,netdev=n${i},mac=${n.mac}`])
      : ['-nic', 'none']),
    '-kernel',
    o.vmlinuz,
    '-initrd',
    o.initrd,
    '-append',
    'console=ttyS0 panic=-1 quiet loglevel=3',
    ...share(TAGS.root, '/', true),
    ...share(TAGS.modules, o.modulesDir, true),
    ...share(TAGS.io, o.ioDir, false),
  ];
}

let kvmProbe: Promise<boolean> | undefined;

/**
 * Whether KVM runs a guest here. /dev/kvm can exist and open while the first vCPU run aborts
 * (nested KVM on these machines), so start qemu with KVM on an empty machine: if it is still
 * alive after a moment, KVM works.
 */
export function probeKvm(): Promise<boolean> {
  kvmProbe ??= (async () => {
    if (!existsSync('/dev/kvm')) return false;
    const child = spawn(QEMU, ['-accel', 'kvm', '-cpu', 'host', '-M', 'q35', '-m', '64', '-display', 'none', '-nodefaults', '-no-reboot', '-nic', 'none'], {
      stdio: 'ignore',
    });
    const exited = new Promise<boolean>((resolve) => {
      child.on('exit', () => resolve(true));
      child.on('error', () => resolve(true));
    });
    const died = await Promise.race([exited, sleep(1500).then(() => false)]);
    if (!died && child.pid) {
      process.kill(child.pid, 'SIGKILL');
      await exited;
    }
    return !died;
  })();
  return kvmProbe;
}

/** Boot `kernel`, run `command`, power off; the VM and its temp files are gone on return. */
export async function runInVm(req: VmRequest): Promise<VmResult> {
  return (await startVm(req)).done;
}

/** Boot `kernel` and start `command`; `done` settles once the VM is gone and its files removed. */
export async function startVm(req: VmRequest): Promise<VmHandle> {
  if (!(await which(QEMU))) throw envError(`${QEMU} not found`, 'install qemu-system-x86 (scripts/setup.sh does)');
  const cacheDir = req.cacheDir ?? defaultCacheDir();
  const kernel = await resolveKernel(req.kernel, cacheDir);
  const initrd = await buildInitrd({ modulesDir: kernel.modulesDir, release: kernel.release, outDir: dirname(kernel.vmlinuz) });
  const accel = (await probeKvm()) ? 'kvm' : 'tcg';
  const timeoutMs = req.timeoutMs ?? 120_000;
  const ioDir = ownedTmpDir('mbvm-');
  let child: ChildProcess;
  try {
    writeFileSync(join(ioDir, 'stage2.sh'), renderStage2());
    writeFileSync(join(ioDir, 'cmd.sh'), `${typeof req.command === 'function' ? req.command(kernel, accel) : req.command}\n`);
    for (const [name, text] of Object.entries(req.files ?? {})) writeFileSync(join(ioDir, name), text);
    const args = qemuArgs({
      accel,
      vmlinuz: kernel.vmlinuz,
      initrd,
      modulesDir: kernel.modulesDir,
      ioDir,
      memoryMiB: req.memoryMiB ?? 1024,
      cpus: req.cpus ?? 2,
      nics: req.nics,
    });
    // setpriv execs qemu (same pid) with a parent-death signal: if meshbench itself is killed,
    // the VM goes with it instead of running on unowned. `ip netns exec` execs too.
    const argv = ['setpriv', '--pdeathsig', 'KILL', '--', QEMU, ...args];
    if (req.netns) argv.unshift('ip', 'netns', 'exec', req.netns);
    child = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (e) {
    rmSync(ioDir, { recursive: true, force: true });
    throw e;
  }
  const start = Date.now();
  let serial = '';
  let bootMs = -1;
  child.stdout!.setEncoding('utf8').on('data', (d: string) => {
    serial += d;
    if (serial.length > 1 << 20) serial = serial.slice(-(1 << 19));
    if (bootMs < 0 && serial.includes('MBVM-CMD-START')) bootMs = Date.now() - start;
  });
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (serial += d));
  const kill = () => {
    if (child.pid && child.exitCode === null && child.signalCode === null) process.kill(child.pid, 'SIGKILL');
  };
  let timedOut = false;
  let stopped = false;
  let graceTimer: NodeJS.Timeout | undefined;
  const exit = new Promise<number>((resolve) => {
    child.on('error', () => resolve(127));
    child.on('exit', (code, signal) => resolve(code ?? (signal ? 128 : 1)));
  });
  const timer = setTimeout(() => {
    timedOut = true;
    kill();
  }, timeoutMs);
  // The command's output, line by line, while it runs (the exchange directory is shared).
  let outPos = 0;
  let partial = '';
  const pump = () => {
    if (!req.onOutput) return;
    try {
      const buf = readFileSync(join(ioDir, 'output'));
      if (buf.length <= outPos) return;
      const lines = (partial + buf.subarray(outPos).toString('utf8')).split('\n');
      outPos = buf.length;
      partial = lines.pop() ?? '';
      for (const l of lines) req.onOutput(l);
    } catch {
      /* not written yet */
    }
  };
  const poll = req.onOutput ? setInterval(pump, 500) : undefined;
  const done = (async (): Promise<VmResult> => {
    try {
      const qemuCode = await exit;
      clearTimeout(timer);
      clearTimeout(graceTimer);
      clearInterval(poll);
      pump();
      if (partial && req.onOutput) req.onOutput(partial);
      const totalMs = Date.now() - start;
      const tail = () => serial.split('\n').slice(-30).join('\n');
      await req.collect?.(ioDir);
      if (timedOut) throw runError(`the VM (${req.kernel}) did not finish within ${timeoutMs} ms; console tail:\n${tail()}`);
      const exitFile = join(ioDir, 'exit');
      if (!existsSync(exitFile)) {
        if (stopped) throw runError(`the VM (${req.kernel}) was stopped before its command finished`);
        throw runError(`the VM (${req.kernel}) stopped (qemu exit ${qemuCode}) before the command finished; console tail:\n${tail()}`);
      }
      return {
        exitCode: Number(readFileSync(exitFile, 'utf8').trim()),
        output: existsSync(join(ioDir, 'output')) ? readFileSync(join(ioDir, 'output'), 'utf8') : '',
        bootMs,
        totalMs,
        accel,
        kernel,
        stopped,
      };
    } finally {
      rmSync(ioDir, { recursive: true, force: true });
    }
  })();
  return {
    pid: child.pid ?? -1,
    accel,
    kernel,
    stop(graceMs = 60_000) {
      if (stopped) return;
      stopped = true;
      try {
        writeFileSync(join(ioDir, STOP_FILE), '');
      } catch {
        /* already gone */
      }
      graceTimer = setTimeout(kill, graceMs);
    },
    done,
  };
}
