// Boot time per kernel in a qemu VM: time from qemu's start to the guest starting the command
// (goal under TCG here: ≤ 10 s), and the whole run to power-off. A kernel not yet cached is
// fetched first, timed apart. TCG figures are emulation: functional only.
// Usage (root): npx tsx bench/vm-boot.ts [kernels=all] [rounds=3]   e.g. debian-6.1,debian-6.12 3
import { runInVm, defaultCacheDir } from '../harness/vm/boot.js';
import { fetchKernel, KERNELS } from '../harness/vm/kernels.js';
import { isRoot } from '../harness/util/host.js';

const [kernelArg = Object.keys(KERNELS).join(','), roundsArg = '3'] = process.argv.slice(2);
if (!isRoot()) {
  console.error('bench/vm-boot.ts needs root (the 9p shares of the host root)');
  process.exit(3);
}
const f = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
for (const kernel of kernelArg.split(',')) {
  const t0 = performance.now();
  const k = await fetchKernel(kernel, defaultCacheDir());
  console.log(`${kernel} (${k.package} ${k.version}, uname ${k.release}): fetch/cache ${f(performance.now() - t0)}`);
  const boots: number[] = [];
  for (let r = 1; r <= Number(roundsArg); r++) {
    const res = await runInVm({ kernel, command: 'true' });
    boots.push(res.bootMs);
    console.log(`  round ${r}: ${res.accel} boot to command ${f(res.bootMs)}, total ${f(res.totalMs)}`);
  }
  boots.sort((a, b) => a - b);
  console.log(`  median boot to command ${f(boots[Math.floor(boots.length / 2)])}`);
}
