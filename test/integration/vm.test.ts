// The VM stage for real (root, qemu): boot Debian's 6.1 kernel under TCG (KVM if it works),
// run commands inside that need that kernel's modules (kernel WireGuard, netem: this host has
// neither), and leave the host as found: same root-namespace snapshot, no qemu, no temp dirs,
// the kernel cache kept. Also: a kernel directory of the user's boots (and is never written to),
// a hung guest is killed at its timeout, an unfetchable kernel is E_ENV.
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MeshbenchError } from '../../harness/errors.js';
import { exec } from '../../harness/util/exec.js';
import { defaultCacheDir, QEMU, runInVm } from '../../harness/vm/boot.js';
import { TAGS } from '../../harness/vm/initrd.js';
import { fetchKernel, KERNELS } from '../../harness/vm/kernels.js';
import { hostSnapshot, rootTestNeeding } from '../helpers.js';

const vmTest = await rootTestNeeding([QEMU]);

const tmpLeft = () =>
  readdirSync(tmpdir())
    .filter((f) => f.startsWith('mbvm-'))
    .sort();
// Full command line (-f): the process name is cut to 15 characters, so `pgrep -x` never matches.
// Only this process's children (setpriv execs qemu): other engineers' VMs may run beside these.
const qemuLeft = async () => (await exec('pgrep', ['-P', String(process.pid), '-f', `^${QEMU} .*mount_tag=${TAGS.root}`], { allowFail: true })).stdout.trim();

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
      'grep -q "^CONFIG_WIREGUARD=m" /lib/modules/$(uname -r)/config && echo CONFIG-OK',
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
  t.true(lines.includes('CONFIG-OK'), 'the kernel config is at /lib/modules/<release>/config inside');
  t.is(r.kernel.config, join(r.kernel.modulesDir, 'config'));
  t.is(r.kernel.suite, 'bookworm');
  t.deepEqual(
    r.kernel.debs?.map((d) => d.package),
    [KERNELS['debian-6.1'].package],
  );
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

vmTest("a kernel directory of the user's (vmlinuz, lib/modules without modules.dep) boots as custom:<release>; nothing is written into it", async (t) => {
  const deb = await fetchKernel('debian-6.1', defaultCacheDir());
  const dir = mkdtempSync(join(tmpdir(), 'mbvm-userkernel-'));
  const cache = mkdtempSync(join(tmpdir(), 'mbvm-cache-test-'));
  t.teardown(() => {
    rmSync(dir, { recursive: true, force: true });
    rmSync(cache, { recursive: true, force: true });
  });
  // As `make install modules_install INSTALL_MOD_PATH=dir` leaves it: no modules.dep (depmod not run).
  mkdirSync(join(dir, 'boot'));
  copyFileSync(deb.vmlinuz, join(dir, 'boot', `vmlinuz-${deb.release}`));
  copyFileSync(deb.config!, join(dir, 'boot', `config-${deb.release}`));
  mkdirSync(join(dir, 'lib', 'modules'), { recursive: true });
  await exec('cp', ['-a', deb.modulesDir, join(dir, 'lib', 'modules')]);
  await exec('sh', [
    '-c',
    'cd "$1" && rm -f modules.dep modules.dep.bin modules.alias* modules.symbols* modules.softdep modules.devname config',
    'sh',
    join(dir, 'lib', 'modules', deb.release),
  ]);
  const listing = async () => (await exec('sh', ['-c', 'cd "$1" && find . -printf "%p %s %T@\\n" | sort', 'sh', dir])).stdout;
  const before = await listing();
  const r = await runInVm({
    kernel: dir,
    cacheDir: cache,
    command: 'uname -r && modprobe wireguard && ip link add wgt type wireguard && echo WG-OK && test -f /lib/modules/$(uname -r)/config && echo CONFIG-OK',
  });
  t.is(r.exitCode, 0, r.output);
  t.deepEqual(r.output.trim().split('\n'), [deb.release, 'WG-OK', 'CONFIG-OK']);
  t.is(r.kernel.name, `custom:${deb.release}`);
  t.is(r.kernel.source, dir);
  t.regex(r.kernel.version, /^6\.1\.0-50-amd64 \(debian-kernel@lists\.debian\.org\)/, 'version from the bzImage header');
  t.true(r.kernel.vmlinuz.startsWith(cache) && r.kernel.modulesDir.startsWith(cache));
  t.is(await listing(), before, 'the user directory is as it was (no modules.dep, no initrd, no config written there)');
  t.true(statSync(join(cache, readdirSync(cache)[0], 'modules', 'lib', 'modules', deb.release, 'modules.dep')).size > 0, 'depmod ran in the cache');
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
