// The kernel matrix (root, qemu): every registered kernel booted in turn (2 vCPUs, 1 GiB) with the
// built CLI's `doctor --json` run inside it. Each guest's doctor must name that kernel's release
// and Debian package, the accelerator the VM really used (TCG here), WireGuard, netem and ESP as
// loadable modules that work, BTF, and the config at /lib/modules/<release>/config. MESHBENCH_VM
// is not set, so virtualisation comes from the guest's own detection. Boot times are logged.
import test from 'ava';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Check } from '../../harness/probes/host.js';
import { exec, which } from '../../harness/util/exec.js';
import { QEMU, runInVm } from '../../harness/vm/boot.js';
import { GUEST_IO } from '../../harness/vm/initrd.js';
import { KERNELS, knownKernels } from '../../harness/vm/kernels.js';
import { ROOT, rootTestNeeding } from '../helpers.js';

// The host root is the guest's root, so the repository's absolute path is the same inside.
const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const CLI = join(REPO, 'dist', 'harness', 'cli', 'main.js');

const haveQemu = !!(await which(QEMU));
const run = ROOT && haveQemu;
const vmTest = await rootTestNeeding([QEMU]);

const times: { kernel: string; bootMs: number; totalMs: number }[] = [];

if (run)
  test.serial.before(async (t) => {
    // dist must be the sources under test. tsc emits even when a file elsewhere (someone's work
    // in progress) has a type error; the doctor below then shows whether the emitted code runs.
    const b = await exec('sh', ['-c', 'cd "$1" && npm run build', 'sh', REPO], { timeoutMs: 180_000, allowFail: true });
    if (b.code !== 0)
      t.log(`npm run build exited ${b.code} (running the emitted dist anyway):\n${(b.stdout + b.stderr).trim().split('\n').slice(-5).join('\n')}`);
  });

for (const name of knownKernels()) {
  vmTest(`${name}: doctor inside reports the kernel, the accelerator, WireGuard/netem/ESP as working modules, BTF`, async (t) => {
    let json = '';
    const r = await runInVm({
      kernel: name,
      memoryMiB: 1024,
      cpus: 2,
      timeoutMs: 180_000,
      command: `cd '${REPO}' && node '${CLI}' doctor --json > ${GUEST_IO}/doctor.json`,
      collect: (io) => {
        if (existsSync(join(io, 'doctor.json'))) json = readFileSync(join(io, 'doctor.json'), 'utf8');
      },
    });
    times.push({ kernel: name, bootMs: r.bootMs, totalMs: r.totalMs });
    t.log(
      `${name} (${r.kernel.release}, ${r.accel}): booted to the command in ${(r.bootMs / 1000).toFixed(1)} s, doctor done at ${(r.totalMs / 1000).toFixed(1)} s`,
    );
    t.is(r.exitCode, 0, `doctor found a required check missing or failed:\n${r.output}\n${json.slice(0, 4000)}`);
    const checks = JSON.parse(json) as Check[];
    const by = (n: string) => checks.find((c) => c.name === n);
    const facts = by('kernel release')?.kernel;
    if (!facts) return t.fail('no kernel facts on the "kernel release" check');
    t.is(facts.release, r.kernel.release);
    t.is(facts.package?.name, KERNELS[name].package);
    t.is(facts.package?.version, KERNELS[name].version, 'the package version, read from /proc/version');
    t.is(facts.virtualisation, r.accel, 'the guest detects the accelerator the VM runs on');
    t.is(facts.functionalOnly, r.accel === 'tcg');
    if (r.accel === 'tcg') t.regex(by('virtualisation')!.detail, /functional only/);
    t.deepEqual(facts.modules, { wireguard: 'module', netem: 'module', esp: 'module' });
    t.true(facts.btf, 'BTF');
    t.is(facts.config.source, `/lib/modules/${r.kernel.release}/config`);
    t.is(facts.config.options.CONFIG_WIREGUARD, 'm');
    t.is(facts.config.options.CONFIG_DEBUG_INFO_BTF, 'y');
    for (const c of ['wireguard module', 'netem', 'ipsec esp']) t.is(by(c)?.status, 'ok', `${c} works inside: ${by(c)?.detail}`);
  });
}

test.serial.after.always((t) => {
  if (!run || !times.length) return;
  const total = times.reduce((s, x) => s + x.totalMs, 0);
  t.log(
    `matrix: ${times.map((x) => `${x.kernel} boot ${(x.bootMs / 1000).toFixed(1)} s`).join(', ')}; doctor in ${times.length} kernels took ${(total / 1000).toFixed(1)} s`,
  );
});
