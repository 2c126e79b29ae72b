// VMs per kernel: boot time from qemu's start to the guest starting its command (goal under TCG
// here: ≤ 10 s), the kernel matrix's total for `doctor` in every kernel (goal: ≤ 3 min for four),
// and the memory one VM uses: inside the guest (MemTotal − MemAvailable after boot) and qemu's
// resident set on the host (/proc/<pid>/status, peak). A kernel not yet cached is fetched first,
// timed apart. TCG figures are emulation: functional only.
// Usage (root): npx tsx bench/vm-boot.ts [kernels=all] [rounds=3] [--no-doctor]   e.g. debian-6.1,debian-7 3
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isRoot } from '../harness/util/host.js';
import { exec } from '../harness/util/exec.js';
import { defaultCacheDir, startVm, type VmRequest, type VmResult } from '../harness/vm/boot.js';
import { GUEST_IO } from '../harness/vm/initrd.js';
import { knownKernels, resolveKernel } from '../harness/vm/kernels.js';

const args = process.argv.slice(2).filter((a) => !a.startsWith('--'));
const doctor = !process.argv.includes('--no-doctor');
const [kernelArg = 'all', roundsArg = '3'] = args;
if (!isRoot()) {
  console.error('bench/vm-boot.ts needs root (the 9p shares of the host root)');
  process.exit(3);
}
const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const MEMORY_MIB = 1024;
const s = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
const mib = (kb: number) => `${(kb / 1024).toFixed(0)} MiB`;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** Run one VM, sampling qemu's VmRSS/VmHWM (kB) on the host while it runs. */
async function measured(req: VmRequest): Promise<VmResult & { rssKb: number; hwmKb: number }> {
  const h = await startVm(req);
  let rssKb = 0;
  let hwmKb = 0;
  const sample = () => {
    try {
      const st = readFileSync(`/proc/${h.pid}/status`, 'utf8');
      rssKb = Math.max(rssKb, Number(st.match(/^VmRSS:\s+(\d+)/m)?.[1] ?? 0));
      hwmKb = Math.max(hwmKb, Number(st.match(/^VmHWM:\s+(\d+)/m)?.[1] ?? 0));
    } catch {
      /* gone */
    }
  };
  const timer = setInterval(sample, 200);
  try {
    return { ...(await h.done), rssKb, hwmKb };
  } finally {
    clearInterval(timer);
  }
}

const kernels = kernelArg === 'all' ? knownKernels() : kernelArg.split(',');
const boots: Record<string, number> = {};
console.log(`VM boot (${MEMORY_MIB} MiB, 2 vCPUs); goals under TCG: boot ≤ 10 s, doctor in all kernels ≤ 3 min`);
for (const kernel of kernels) {
  const t0 = performance.now();
  const k = await resolveKernel(kernel, defaultCacheDir());
  console.log(`${kernel} (${k.package} ${k.version}, uname ${k.release}): fetch/cache ${s(performance.now() - t0)}`);
  const times: number[] = [];
  for (let r = 1; r <= Number(roundsArg); r++) {
    // Let the guest settle a moment after boot, so qemu's resident set shows a booted guest.
    const res = await measured({ kernel, memoryMiB: MEMORY_MIB, command: "sleep 1; awk '/^MemTotal|^MemAvailable/ {print $2}' /proc/meminfo" });
    const [total, avail] = res.output.trim().split('\n').map(Number);
    times.push(res.bootMs);
    console.log(
      `  round ${r}: ${res.accel} boot to command ${s(res.bootMs)} (goal ≤ 10 s), total ${s(res.totalMs)}; guest used ${mib(total - avail)} of ${mib(total)}, qemu RSS ${mib(res.rssKb)} (peak ${mib(res.hwmKb)})`,
    );
  }
  boots[kernel] = median(times);
  console.log(`  median boot to command ${s(boots[kernel])} (goal ≤ 10 s)`);
}

if (doctor) {
  // The matrix as the test runs it: the built CLI's doctor inside each kernel, one after another.
  const b = await exec('sh', ['-c', 'cd "$1" && npm run build', 'sh', REPO], { timeoutMs: 180_000, allowFail: true });
  if (b.code !== 0) console.log(`(npm run build exited ${b.code}; tsc still emitted dist, running that)`);
  const cli = join(REPO, 'dist', 'harness', 'cli', 'main.js');
  const t0 = performance.now();
  for (const kernel of kernels) {
    const res = await measured({
      kernel,
      memoryMiB: MEMORY_MIB,
      timeoutMs: 180_000,
      command: `cd '${REPO}' && node '${cli}' doctor --json > ${GUEST_IO}/doctor.json; e=$?; awk '/^MemTotal|^MemAvailable/ {print $2}' /proc/meminfo; exit $e`,
    });
    const [total, avail] = res.output.trim().split('\n').slice(-2).map(Number);
    console.log(
      `doctor in ${kernel}: exit ${res.exitCode}, ${s(res.totalMs)} (boot ${s(res.bootMs)}); guest used ${mib(total - avail)} after doctor, qemu RSS peak ${mib(res.hwmKb)}`,
    );
  }
  console.log(`matrix: doctor in ${kernels.length} kernel(s) took ${s(performance.now() - t0)} (goal for 4 kernels ≤ 3 min)`);
}
