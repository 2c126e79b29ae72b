// What a VM costs a run: the same scenario run directly on the host and with `--kernel K`
// (the whole lab inside a qemu VM), wall time of each and their ratio, plus the guest's memory
// at the end of the run. Under TCG (no KVM) the ratio is emulation's: functional only.
// Usage (root): npx tsx bench/vm-run.ts [kernel=debian-6.1] [dataplanes=baseline,ebpf] [duration=5]
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isRoot } from '../harness/util/host.js';

const [kernel = 'debian-6.1', dataplanes = 'baseline,ebpf', duration = '5'] = process.argv.slice(2);
if (!isRoot()) {
  console.error('bench/vm-run.ts needs root (it runs the lab)');
  process.exit(3);
}
const dir = mkdtempSync(join(tmpdir(), 'mbbench-vmrun-'));
const run = (extra: string[]) => {
  const args = ['--import', 'tsx', 'harness/cli/main.ts', 'run', 'scenarios/quick.yaml', '--dataplanes', dataplanes, '--duration', duration, '--warmup', '1'];
  const t0 = performance.now();
  const r = spawnSync(process.execPath, [...args, '--results', join(dir, 'results'), '--no-report', '--json', ...extra], { encoding: 'utf8' });
  const ms = performance.now() - t0;
  if (r.status !== 0) {
    console.error(r.stderr.slice(-2000));
    process.exit(1);
  }
  const out = JSON.parse(r.stdout) as { status: string; cases: { dataplane: string; status: string; p50Us?: number }[] };
  return { ms, out };
};
try {
  const direct = run([]);
  const vm = run(['--kernel', kernel, '--vm-memory', '4096']);
  const s = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
  console.log(`scenario quick, dataplanes ${dataplanes}, ${duration} s measured + 1 s warm-up per case`);
  console.log(`  directly on the host:       ${s(direct.ms)}  (${direct.out.cases.map((c) => `${c.dataplane} ${c.status}`).join(', ')})`);
  console.log(`  inside a VM booting ${kernel}: ${s(vm.ms)}  (${vm.out.cases.map((c) => `${c.dataplane} ${c.status}`).join(', ')})`);
  console.log(`  ratio VM / direct: ${(vm.ms / direct.ms).toFixed(2)}× (goal: none; TCG here, so functional only)`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
