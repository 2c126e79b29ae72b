// Boot a fetched kernel in qemu and run one command inside: the host root read-only over 9p
// with a tmpfs overlay, the kernel's modules on a second share, a temp exchange directory for
// the command, its output and exit code. No network device at all. KVM when it really works
// (probed by starting it), TCG otherwise.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { envError, runError } from '../errors.js';
import { which } from '../util/exec.js';
import { buildInitrd, renderStage2, TAGS } from './initrd.js';
import { fetchKernel, type KernelFiles } from './kernels.js';

export const QEMU = 'qemu-system-x86_64';

/** Kernels and initrds are kept here across runs (MESHBENCH_KERNEL_CACHE overrides). */
export function defaultCacheDir(): string {
  return process.env.MESHBENCH_KERNEL_CACHE ?? join(homedir(), '.cache', 'meshbench', 'kernels');
}

export interface VmRequest {
  kernel: string;
  /** Shell text run by /bin/sh inside the guest. */
  command: string;
  timeoutMs?: number;
  memoryMiB?: number;
  cpus?: number;
  cacheDir?: string;
}

export interface VmResult {
  exitCode: number;
  output: string;
  /** From qemu's start to the guest starting the command. */
  bootMs: number;
  totalMs: number;
  accel: 'kvm' | 'tcg';
  kernel: KernelFiles;
}

/** qemu's arguments for one boot; pure, so a test can check what the VM gets (no NIC). */
export function qemuArgs(o: {
  accel: 'kvm' | 'tcg';
  vmlinuz: string;
  initrd: string;
  modulesDir: string;
  ioDir: string;
  memoryMiB: number;
  cpus: number;
}): string[] {
  const share = (id: string, path: string, readonly: boolean) => [
    '-fsdev',
    `local,id=${id},path=${path},security_model=none,multidevs=remap${readonly ? ',readonly=on' : ''}`,
    '-device',
    `virtio-9p-pci,fsdev=${id},mount_tag=${id}`,
  ];
  return [
    ...(o.accel === 'kvm' ? ['-accel', 'kvm', '-cpu', 'host'] : ['-accel', 'tcg', '-cpu', 'max']),
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
    '-nic',
    'none',
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
  if (!(await which(QEMU))) throw envError(`${QEMU} not found`, 'install qemu-system-x86 (scripts/setup.sh does)');
  const cacheDir = req.cacheDir ?? defaultCacheDir();
  const kernel = await fetchKernel(req.kernel, cacheDir);
  const initrd = await buildInitrd({ modulesDir: kernel.modulesDir, release: kernel.release, outDir: dirname(kernel.vmlinuz) });
  const accel = (await probeKvm()) ? 'kvm' : 'tcg';
  const timeoutMs = req.timeoutMs ?? 120_000;
  const ioDir = mkdtempSync(join(tmpdir(), 'mbvm-'));
  try {
    writeFileSync(join(ioDir, 'stage2.sh'), renderStage2());
    writeFileSync(join(ioDir, 'cmd.sh'), `${req.command}\n`);
    const args = qemuArgs({
      accel,
      vmlinuz: kernel.vmlinuz,
      initrd,
      modulesDir: kernel.modulesDir,
      ioDir,
      memoryMiB: req.memoryMiB ?? 1024,
      cpus: req.cpus ?? 2,
    });
    const start = Date.now();
    // setpriv execs qemu (same pid) with a parent-death signal: if meshbench itself is killed,
    // the VM goes with it instead of running on unowned.
    const child = spawn('setpriv', ['--pdeathsig', 'KILL', '--', QEMU, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let serial = '';
    let bootMs = -1;
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      serial += d;
      if (bootMs < 0 && serial.includes('MBVM-CMD-START')) bootMs = Date.now() - start;
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => (serial += d));
    let timedOut = false;
    const exit = new Promise<number>((resolve) => {
      child.on('error', () => resolve(127));
      child.on('exit', (code, signal) => resolve(code ?? (signal ? 128 : 1)));
    });
    const timer = setTimeout(() => {
      timedOut = true;
      if (child.pid && child.exitCode === null) process.kill(child.pid, 'SIGKILL');
    }, timeoutMs);
    const qemuCode = await exit;
    clearTimeout(timer);
    const totalMs = Date.now() - start;
    const tail = () => serial.split('\n').slice(-30).join('\n');
    if (timedOut) throw runError(`the VM (${req.kernel}) did not finish within ${timeoutMs} ms; console tail:\n${tail()}`);
    const exitFile = join(ioDir, 'exit');
    if (!existsSync(exitFile)) throw runError(`the VM (${req.kernel}) stopped (qemu exit ${qemuCode}) before the command finished; console tail:\n${tail()}`);
    return {
      exitCode: Number(readFileSync(exitFile, 'utf8').trim()),
      output: existsSync(join(ioDir, 'output')) ? readFileSync(join(ioDir, 'output'), 'utf8') : '',
      bootMs,
      totalMs,
      accel,
      kernel,
    };
  } finally {
    rmSync(ioDir, { recursive: true, force: true });
  }
}
