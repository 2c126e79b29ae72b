// `meshbench run --kernel` for real (root, qemu, TCG here): the whole lab runs inside a VM booting
// Debian's 6.1 kernel, whose WireGuard module `ebpf` then uses instead of wireguard-go; the record
// and the report come back to the host, which is left as found. Also the 2-kernel matrix's report,
// SIGINT during a VM run (record kept, `incomplete`) and the bad-input exits.
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { RunRecord } from '../../harness/results/types.js';
import { exec } from '../../harness/util/exec.js';
import { defaultCacheDir, QEMU } from '../../harness/vm/boot.js';
import { KERNELS } from '../../harness/vm/kernels.js';
import { cli, cleanAround, hostSnapshot, quickArgs, quickScenarioCopy, rootTestNeeding } from '../helpers.js';

const vmTest = await rootTestNeeding([QEMU]);

cleanAround();

const tmpLeft = () =>
  readdirSync(tmpdir())
    .filter((f) => f.startsWith('mbvm-'))
    .sort();
const qemuLeft = async () => (await exec('pgrep', ['-f', `^${QEMU} `], { allowFail: true })).stdout.trim();
const runJson = (stdout: string) => stdout.match(/^run record: (.+)$/gm)?.map((l) => l.slice('run record: '.length)) ?? [];
const readRecord = (f: string) => JSON.parse(readFileSync(f, 'utf8')) as RunRecord;

vmTest(
  'run --kernel debian-6.1: baseline and ebpf inside the VM, ebpf on kernel WireGuard; the record and report come back; the host is left as found',
  async (t) => {
    const before = await hostSnapshot();
    const tmpBefore = tmpLeft();
    const dir = mkdtempSync(join(tmpdir(), 'mbvmrun-'));
    try {
      const r = await cli(quickArgs(join(dir, 'results'), join(dir, 'reports'), '--dataplanes', 'baseline,ebpf', '--kernel', 'debian-6.1'), {
        timeoutMs: 480_000,
      });
      t.is(r.code, 0, r.stderr.slice(-3000));
      t.regex(r.stderr, /TCG \(emulation: figures are functional only\)|KVM/);
      const [file] = runJson(r.stdout);
      t.true(file?.startsWith(join(dir, 'results', 'quick')), 'the record is in the host results directory');
      const rec = readRecord(file!);
      t.is(rec.status, 'complete');
      const manifest = JSON.parse(readFileSync(join(defaultCacheDir(), 'debian-6.1', 'manifest.json'), 'utf8')) as { release: string; package: string };
      t.is(rec.environment.kernel, manifest.release);
      const facts = rec.environment.kernelFacts;
      t.is(facts?.package?.name, manifest.package, 'the record names the kernel package');
      t.true(facts?.virtualisation === 'tcg' || facts?.virtualisation === 'kvm', `virtualisation ${facts?.virtualisation}`);
      t.is(facts?.functionalOnly, facts?.virtualisation === 'tcg');
      t.regex(rec.environment.kernel, /^6\.1\./);
      t.deepEqual(
        rec.cases.map((c) => [c.dataplane, c.status]),
        [
          ['baseline', 'ok'],
          ['ebpf', 'ok'],
        ],
      );
      const ebpf = rec.cases.find((c) => c.dataplane === 'ebpf')!;
      t.is((ebpf.provenance as Record<string, { engine?: string }>).wireguard?.engine, 'kernel', 'the 6.1 kernel has the WireGuard module: no wireguard-go');
      t.false(
        Object.keys(ebpf.resources?.byRole ?? {}).some((role) => /wireguard/.test(role)),
        'no wireguard-go process was measured',
      );
      const report = r.stdout.match(/^report: (.+)$/m)?.[1];
      t.true(!!report && existsSync(report), 'the report is written on the host');
      t.regex(readFileSync(report!, 'utf8'), /6\.1\.0/);
      t.is(await qemuLeft(), '', 'no qemu left');
      t.deepEqual(tmpLeft(), tmpBefore, 'no exchange directory left');
      t.true(existsSync(join(defaultCacheDir(), 'debian-6.1', 'vmlinuz')), 'the kernel cache is kept');
      t.is(await hostSnapshot(), before, 'root namespace, BPF objects, mounts and cgroups as before');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
);

vmTest('run --kernels debian-6.1,debian-6.12: one run per kernel, one report with both side by side', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'mbvmrun-'));
  try {
    // 50 qps: a TCG guest sharing this host's CPUs reached 173 of 200 qps once (a degraded case).
    const args = quickArgs(join(dir, 'results'), join(dir, 'reports'), '--kernels', 'debian-6.1,debian-6.12');
    args[1] = quickScenarioCopy(dir, 50);
    const r = await cli(args, { timeoutMs: 600_000 });
    t.is(r.code, 0, r.stderr.slice(-3000));
    const files = runJson(r.stdout);
    t.is(files.length, 2);
    const kernels = files.map((f) => readRecord(f).environment.kernel);
    t.regex(kernels[0], /^6\.1\./);
    t.regex(kernels[1], /^6\.12\./);
    const html = readFileSync(r.stdout.match(/^report: (.+)$/m)![1], 'utf8');
    const section = html.match(/<section id="kernels">[\s\S]*?<\/section>/)?.[0] ?? '';
    t.truthy(section, 'the report has a kernels-side-by-side section');
    for (const k of kernels) t.true(section.includes(k), `${k} in the kernels section`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

/** A 60 s VM run of baseline, sent `signal` once its progress shows `when`; the CLI's result. */
async function signalledVmRun(dir: string, signal: NodeJS.Signals, when: RegExp) {
  let sent = false;
  const r = await cli(quickArgs(join(dir, 'results'), join(dir, 'reports'), '--kernel', 'debian-6.1', '--duration', '60'), {
    timeoutMs: 300_000,
    onStderr: (chunk, child) => {
      if (!sent && when.test(chunk)) {
        sent = true;
        child.kill(signal);
      }
    },
  });
  return { ...r, sent };
}

vmTest('SIGINT during a VM run: the guest tears down, its record comes back marked incomplete, exit 130, nothing left', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'mbvmrun-'));
  const tmpBefore = tmpLeft();
  try {
    const r = await signalledVmRun(dir, 'SIGINT', /measuring/);
    t.true(r.sent, 'the run reached its measured window');
    t.is(r.code, 130, r.stderr.slice(-2000));
    const [file] = runJson(r.stdout);
    t.truthy(file, r.stdout);
    t.is(readRecord(file!).status, 'incomplete');
    t.is(await qemuLeft(), '');
    t.deepEqual(tmpLeft(), tmpBefore);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

vmTest('SIGKILL of meshbench during a VM run: qemu dies with it (parent-death signal), and down removes the exchange directory it left', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'mbvmrun-'));
  const tmpBefore = tmpLeft();
  try {
    const r = await signalledVmRun(dir, 'SIGKILL', /building topology/);
    t.true(r.sent);
    t.is(r.code, 128);
    for (let i = 0; i < 50 && (await qemuLeft()); i++) await new Promise((res) => setTimeout(res, 100));
    t.is(await qemuLeft(), '', 'qemu went with its parent');
    t.true(tmpLeft().length > tmpBefore.length, 'a killed meshbench cannot remove its exchange directory');
    const down = await cli(['down']);
    t.is(down.code, 0, down.stderr);
    t.regex(down.stdout, /temporary dir\(s\) of killed runs/);
    t.deepEqual(tmpLeft(), tmpBefore);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

vmTest('bad input with --kernel: an unknown kernel or a broken scenario is exit 2 and no VM boots; no qemu is exit 3', async (t) => {
  const unknown = await cli(['run', 'scenarios/quick.yaml', '--kernel', 'debian-4.19']);
  t.is(unknown.code, 2);
  for (const k of Object.keys(KERNELS)) t.true(unknown.stderr.includes(k), `lists ${k}`);
  const matrix = await cli(['run', 'scenarios/quick.yaml', '--kernels', 'debian-6.1,nope']);
  t.is(matrix.code, 2);
  t.regex(matrix.stderr, /unknown kernel "nope"/);
  const broken = await cli(['run', 'test/fixtures/scenarios/broken.yaml', '--kernel', 'debian-6.1']);
  t.is(broken.code, 2, broken.stderr);
  const noQemu = await cli(['run', 'scenarios/quick.yaml', '--kernel', 'debian-6.1', '--dataplanes', 'baseline'], {
    wrap: ['env', 'MESHBENCH_QEMU=/nonexistent/qemu-system-x86_64'],
  });
  t.is(noQemu.code, 3, noQemu.stderr);
  t.regex(noQemu.stderr, /qemu-system-x86/);
  t.is(await qemuLeft(), '');
});
