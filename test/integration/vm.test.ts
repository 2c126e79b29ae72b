// The VM stage for real (root, qemu): boot Debian's 6.1 kernel under TCG (KVM if it works),
// run commands inside that need that kernel's modules (kernel WireGuard, netem: this host has
// neither), and leave the host as found: same root-namespace snapshot, no qemu, no temp dirs,
// the kernel cache kept. Also: a hung guest is killed at its timeout, an unfetchable kernel is E_ENV.
import test from 'ava';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MeshbenchError } from '../../harness/errors.js';
import { exec, which } from '../../harness/util/exec.js';
import { defaultCacheDir, QEMU, runInVm } from '../../harness/vm/boot.js';
import { TAGS } from '../../harness/vm/initrd.js';
import { fetchKernel, KERNELS } from '../../harness/vm/kernels.js';
import { hostSnapshot, rootTest } from '../helpers.js';

const haveQemu = !!(await which(QEMU));
const vmTest: typeof rootTest = haveQemu
  ? rootTest
  : (((title: string, ...rest: unknown[]) => (test.skip as any)(`${title} (skipped: ${QEMU} not installed)`, ...rest)) as any);

const tmpLeft = () =>
  readdirSync(tmpdir())
    .filter((f) => f.startsWith('mbvm-'))
    .sort();
// Full command line (-f): the process name is cut to 15 characters, so `pgrep -x` never matches.
const qemuLeft = async () => (await exec('pgrep', ['-f', `^${QEMU} .*mount_tag=${TAGS.root}`], { allowFail: true })).stdout.trim();

vmTest('debian-6.1 boots and runs commands with kernel WireGuard and netem; the host is left as found', async (t) => {
  const beforeSnap = await hostSnapshot();
  const beforeTmp = tmpLeft();
  const r = await runInVm({
    kernel: 'debian-6.1',
    command: [
      'uname -r',
      'modprobe wireguard && ip link add wgt type wireguard && ip link del wgt && echo WG-OK',
      'modprobe sch_netem && echo NETEM-OK',
      'ip -o link | cut -d: -f2 | tr -d " " | paste -sd,',
      'exit 5',
    ].join('\n'),
    timeoutMs: 120_000,
  });
  t.log(`${r.accel}: booted to the command in ${r.bootMs} ms, ${r.totalMs} ms in all`);
  t.log(r.output);
  t.is(r.exitCode, 5, 'the exit code comes back');
  const lines = r.output.trim().split('\n');
  t.is(lines[0], r.kernel.release, 'uname -r is the fetched kernel');
  t.is(r.kernel.release, '6.1.0-50-amd64');
  t.is(r.kernel.version, KERNELS['debian-6.1'].version);
  t.regex(r.kernel.sha256, /^[0-9a-f]{64}$/);
  t.true(lines.includes('WG-OK'), 'kernel WireGuard works inside');
  t.true(lines.includes('NETEM-OK'), 'sch_netem loads inside');
  t.is(lines[3], 'lo', 'the VM has no network device but loopback');
  t.true(r.accel === 'tcg' || r.accel === 'kvm');
  t.true(r.bootMs > 0);
  t.is(await qemuLeft(), '', 'no qemu left running');
  t.deepEqual(tmpLeft(), beforeTmp, 'temp dirs removed');
  t.true(existsSync(join(defaultCacheDir(), 'debian-6.1', 'manifest.json')), 'the kernel cache is kept');
  t.is(await hostSnapshot(), beforeSnap, 'root namespace as found');
  // A second fetch is a cache hit: no download, same manifest, quick.
  const t0 = Date.now();
  t.deepEqual(await fetchKernel('debian-6.1', defaultCacheDir()), r.kernel);
  t.true(Date.now() - t0 < 1000);
});

vmTest('debian-6.12 (backports: .ko.xz modules, virtio_pci built in) boots and loads WireGuard', async (t) => {
  const r = await runInVm({
    kernel: 'debian-6.12',
    command: 'uname -r && modprobe wireguard && ip link add wgt type wireguard && echo WG-OK',
    timeoutMs: 120_000,
  });
  t.log(`${r.accel}: booted to the command in ${r.bootMs} ms`);
  t.is(r.exitCode, 0, r.output);
  t.deepEqual(r.output.trim().split('\n'), [r.kernel.release, 'WG-OK']);
  t.regex(r.kernel.release, /^6\.12\./);
  t.is(await qemuLeft(), '');
});

vmTest('a guest that does not finish is killed at its timeout, by pid, with nothing left', async (t) => {
  const beforeTmp = tmpLeft();
  const e = await t.throwsAsync(runInVm({ kernel: 'debian-6.1', command: 'sleep 600', timeoutMs: 15_000 }), { instanceOf: MeshbenchError });
  t.is((e as MeshbenchError).code, 'E_RUN');
  t.regex(e!.message, /did not finish within 15000 ms/);
  t.is(await qemuLeft(), '');
  t.deepEqual(tmpLeft(), beforeTmp);
});

vmTest('a kernel version the mirror does not serve is E_ENV saying what to do, and leaves no cache entry', async (t) => {
  const cache = mkdtempSync(join(tmpdir(), 'mbvm-cache-test-'));
  KERNELS['debian-bogus'] = { name: 'debian-bogus', suite: 'bookworm', package: 'linux-image-6.1.0-50-amd64', version: '0.0.1-1' };
  try {
    const e = await t.throwsAsync(fetchKernel('debian-bogus', cache), { instanceOf: MeshbenchError });
    t.is((e as MeshbenchError).code, 'E_ENV');
    t.is((e as MeshbenchError).exitCode, 3);
    t.regex(e!.message, /cannot fetch kernel debian-bogus/);
    t.regex((e as MeshbenchError).hint!, /mirror/);
    t.deepEqual(readdirSync(cache), [], 'a failed fetch leaves nothing in the cache');
  } finally {
    delete KERNELS['debian-bogus'];
    rmSync(cache, { recursive: true, force: true });
  }
});
