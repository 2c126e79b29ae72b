// The VM stage's pure parts (harness/vm/), rootless: the kernel registry and its errors, a user's
// kernel directory (resolveKernel: read, copied into the cache, the user's files untouched),
// reading the system's apt sources and rendering the private list, module resolution from
// recorded modules.dep files of Debian 6.1 and 6.12, the init scripts, the cpio writer, qemu's
// arguments (no network device), and the kernel facts' parsers (harness/probes/kernel.ts) with
// doctor's lines made from them.
import test from 'ava';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MeshbenchError } from '../../harness/errors.js';
import { qemuArgs } from '../../harness/vm/boot.js';
import { renderStage2 } from '../../harness/vm/guest.js';
import { cpioNewc, GUEST_IO, INITRD_MODULES, moduleName, parseModulesDep, renderInit, resolveModules, TAGS } from '../../harness/vm/initrd.js';
import {
  bzImageVersion,
  debianMirror,
  fetchKernel,
  isKernelName,
  KERNELS,
  knownKernels,
  kernelSpec,
  parseAptSources,
  privateAptOptions,
  readKernelDir,
  renderSourcesList,
  resolveKernel,
} from '../../harness/vm/kernels.js';
import {
  CONFIG_OPTIONS,
  configOptions,
  detectVirtualisation,
  type KernelFacts,
  moduleState,
  packageFromVersion,
  parseKernelConfig,
  parseVmEnv,
} from '../../harness/probes/kernel.js';
import { CHECK, kernelFactChecks } from '../../harness/probes/host.js';

const fixture = (f: string) => readFileSync(join('test/fixtures/vm', f), 'utf8');

test('an unknown kernel name is E_INPUT listing the known ones, before anything is fetched', async (t) => {
  const e = t.throws(() => kernelSpec('debian-4.19'), { instanceOf: MeshbenchError }) as MeshbenchError;
  t.is(e.code, 'E_INPUT');
  t.is(e.exitCode, 2);
  for (const k of Object.keys(KERNELS)) t.true(e.hint!.includes(k), `hint names ${k}`);
  const cache = mkdtempSync(join(tmpdir(), 'mbvmu-'));
  const e2 = await t.throwsAsync(fetchKernel('nope', cache), { instanceOf: MeshbenchError });
  t.is((e2 as MeshbenchError).code, 'E_INPUT');
  t.deepEqual(readdirSync(cache), [], 'nothing fetched');
  rmSync(cache, { recursive: true });
});

test('the registry: 5.10, 6.1, 6.12 and 7.x, each a suite, a linux-image package and an exact version', (t) => {
  t.deepEqual(knownKernels(), ['debian-5.10', 'debian-6.1', 'debian-6.12', 'debian-7']);
  for (const [name, k] of Object.entries(KERNELS)) {
    t.is(k.name, name);
    t.true(isKernelName(name));
    t.regex(k.package, /^linux-image-\S+-amd64$/);
    t.regex(k.version, /^\d+\.\d+\.\d+-\d/);
    t.regex(k.suite, /^(bullseye|bookworm|trixie)(-backports)?$/, 'a suite that keeps its pinned version (no sid, no testing)');
    // The series the name promises: debian-6.12 is a 6.12.x, debian-7 any 7.x.
    const series = name.replace(/^debian-/, '');
    t.true(k.version.startsWith(`${series}.`), `${name} pins ${k.version}`);
    t.true(k.package.includes(k.version.split('-')[0]) || k.package.startsWith(`linux-image-${series}.`), `${k.package} is ${series}`);
    for (const p of k.parts ?? []) t.regex(p, new RegExp(`^linux-(binary|modules|base)-${k.package.replace(/^linux-image-/, '').replace(/[.+]/g, '\\$&')}$`));
  }
  // 7.x split vmlinuz, modules and config out of linux-image: all three parts are fetched.
  t.deepEqual(
    KERNELS['debian-7'].parts?.map((p) => p.split('-')[1]),
    ['binary', 'modules', 'base'],
  );
  t.false(isKernelName('toString'), 'no prototype names');
  t.false(isKernelName('debian-4.19'));
});

test('the mirror comes from the system apt config (deb822 and one-line), security and disabled entries skipped', (t) => {
  const sources = parseAptSources([
    {
      path: '/etc/apt/sources.list.d/debian.sources',
      text: [
        'Types: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\nComponents: main',
        'Types: deb\nURIs: http://off.example/debian\nSuites: bookworm\nEnabled: no',
        'Types: deb\n# a comment\nURIs: http://mirror.example/debian\nSuites: bookworm bookworm-updates\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg',
      ].join('\n\n'),
    },
    {
      path: '/etc/apt/sources.list',
      text: '# deb http://commented.example/debian bookworm main\ndeb [arch=amd64 signed-by=/k.gpg] http://one.example/debian bookworm main\n',
    },
    { path: '/etc/apt/sources.list.d/x.list.disabled', text: 'deb http://ignored.example/debian bookworm main\n' },
  ]);
  t.deepEqual(
    sources.map((s) => s.uri),
    ['http://mirror.example/debian-security', 'http://mirror.example/debian', 'http://one.example/debian'],
  );
  const m = debianMirror(sources)!;
  t.is(m.uri, 'http://mirror.example/debian');
  t.is(
    renderSourcesList(m, 'bookworm-backports'),
    'deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://mirror.example/debian bookworm-backports main\n',
  );
  t.is(renderSourcesList({ uri: 'http://a/debian', suites: [] }, 'bookworm'), 'deb http://a/debian bookworm main\n');
  t.is(debianMirror([]), undefined);
});

test('private apt options point lists, cache and the sources list into the state dir, and no parts dir', (t) => {
  const o = privateAptOptions('/s');
  t.deepEqual(
    o.filter((x) => x !== '-o'),
    ['Dir::Etc::sourcelist=/s/sources.list', 'Dir::Etc::sourceparts=-', 'Dir::State::Lists=/s/lists', 'Dir::Cache=/s/cache', 'Debug::NoLocking=1'],
  );
});

test('modules.dep parsing and names: compressed suffixes dropped, dashes are underscores', (t) => {
  const dep = parseModulesDep(fixture('modules-6.12.dep'));
  t.deepEqual(dep.get('kernel/fs/9p/9p.ko.xz'), ['kernel/net/9p/9pnet.ko.xz', 'kernel/fs/netfs/netfs.ko.xz']);
  t.is(moduleName('kernel/net/9p/9pnet_virtio.ko.xz'), '9pnet_virtio');
  t.is(moduleName('a/b/sch-netem.ko.zst'), 'sch_netem');
  t.is(moduleName('a/overlay.ko'), 'overlay');
});

test('module resolution on 6.1: dependencies first, each once, builtin-free', (t) => {
  const order = resolveModules(fixture('modules-6.1.dep'), '', INITRD_MODULES);
  t.deepEqual(order, [
    'kernel/drivers/virtio/virtio.ko',
    'kernel/drivers/virtio/virtio_ring.ko',
    'kernel/drivers/virtio/virtio_pci_modern_dev.ko',
    'kernel/drivers/virtio/virtio_pci_legacy_dev.ko',
    'kernel/drivers/virtio/virtio_pci.ko',
    'kernel/net/9p/9pnet.ko',
    'kernel/net/9p/9pnet_virtio.ko',
    'kernel/fs/netfs/netfs.ko',
    'kernel/fs/fscache/fscache.ko',
    'kernel/fs/9p/9p.ko',
    'kernel/fs/overlayfs/overlay.ko',
  ]);
  for (const [i, p] of order.entries()) for (const d of parseModulesDep(fixture('modules-6.1.dep')).get(p)!) t.true(order.indexOf(d) < i, `${d} before ${p}`);
});

test('module resolution on 6.12: virtio_pci is built in, .ko.xz files, netfs before 9pnet', (t) => {
  const order = resolveModules(fixture('modules-6.12.dep'), fixture('modules-6.12.builtin'), INITRD_MODULES);
  t.deepEqual(order, [
    'kernel/fs/netfs/netfs.ko.xz',
    'kernel/net/9p/9pnet.ko.xz',
    'kernel/net/9p/9pnet_virtio.ko.xz',
    'kernel/fs/9p/9p.ko.xz',
    'kernel/fs/overlayfs/overlay.ko.xz',
  ]);
  // Without the builtin list, virtio_pci is unknown: an error naming it, not a silent skip.
  t.throws(() => resolveModules(fixture('modules-6.12.dep'), '', INITRD_MODULES), { message: /virtio_pci/ });
});

test('the init script loads the modules in order, mounts the shares by tag, switch_roots (not chroot)', (t) => {
  const init = renderInit({ modules: ['a.ko', 'b.ko'], release: '6.1.0-50-amd64' });
  t.true(init.startsWith('#!/bin/busybox sh\n'));
  t.true(init.indexOf('insmod /modules/a.ko') < init.indexOf('insmod /modules/b.ko'));
  t.regex(init, new RegExp(`mount -t 9p -o [^ ]*,ro ${TAGS.root} /ro`));
  t.regex(init, /lowerdir=\/ro,upperdir=\/rw\/upper,workdir=\/rw\/work \/newroot/);
  t.regex(init, new RegExp(`${TAGS.modules} /newroot/lib/modules/6\\.1\\.0-50-amd64`));
  t.regex(init, new RegExp(`-o [^ ]*msize=\\d+ ${TAGS.io} /newroot${GUEST_IO}`), 'the exchange share is writable (no ro)');
  t.regex(init, /exec switch_root \/newroot /);
  t.notRegex(init, /chroot/);
  const s2 = renderStage2();
  t.regex(s2, new RegExp(`sh ${GUEST_IO}/cmd.sh > ${GUEST_IO}/output 2>&1`));
  t.true(s2.indexOf('exit.tmp') < s2.indexOf('sysrq-trigger'), 'the exit code is written before power-off');
});

test('qemu gets no network device, TCG on q35 with -cpu max less AVX, the three 9p shares, root and modules read-only', (t) => {
  const a = qemuArgs({ accel: 'tcg', vmlinuz: '/k', initrd: '/i', modulesDir: '/m', ioDir: '/io', memoryMiB: 512, cpus: 2 });
  const s = a.join(' ');
  t.regex(s, /-accel tcg,thread=single -cpu max,avx=off,avx2=off,[a-z0-9=,]+ -M q35/);
  t.regex(s, /-nic none/);
  t.regex(s, /-nodefaults/);
  t.notRegex(s, /-netdev|-net |virtio-net|e1000/);
  t.regex(s, /-no-reboot/);
  t.regex(s, new RegExp(`path=/,security_model=none,multidevs=remap,readonly=on -device virtio-9p-pci,fsdev=${TAGS.root},mount_tag=${TAGS.root}`));
  t.regex(s, /path=\/m,[^ ]*readonly=on/);
  t.regex(s, /path=\/io,security_model=none,multidevs=remap -device/);
  t.regex(qemuArgs({ accel: 'kvm', vmlinuz: '/k', initrd: '/i', modulesDir: '/m', ioDir: '/io', memoryMiB: 512, cpus: 1 }).join(' '), /-accel kvm -cpu host/);
});

test('the cpio writer makes a newc archive that GNU cpio or busybox lists and extracts', (t) => {
  const buf = cpioNewc([
    { name: 'bin', mode: 0o040755 },
    { name: 'bin/hello', mode: 0o100755, data: Buffer.from('#!/bin/sh\necho hi\n') },
    { name: 'odd', mode: 0o100644, data: Buffer.from('x') },
  ]);
  t.is(buf.length % 4, 0);
  t.is(buf.subarray(0, 6).toString(), '070701');
  const dir = mkdtempSync(join(tmpdir(), 'mbvmu-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'a.cpio'), buf);
  const listing = execFileSync(
    'sh',
    ['-c', 'cd "$1" && busybox cpio -id < a.cpio 2>/dev/null && cat bin/hello odd && busybox cpio -t < a.cpio 2>/dev/null', 'sh', dir],
    { encoding: 'utf8' },
  );
  t.is(listing, '#!/bin/sh\necho hi\nxbin\nbin/hello\nodd\n');
});

// ── a user's kernel directory ──

/** A bzImage-shaped header: "HdrS" at 0x202, the version string's offset (minus 0x200) at 0x20e. */
function fakeBzImage(version: string): Buffer {
  const b = Buffer.alloc(0x1000);
  b.write('HdrS', 0x202, 'latin1');
  b.writeUInt16LE(0x300, 0x20e);
  b.write(`${version}\0`, 0x500, 'latin1');
  return b;
}

/** A tree as `make install modules_install INSTALL_MOD_PATH=dir` leaves it (modules.dep optional). */
function fakeKernelDir(release: string, o: { modulesDep?: boolean; config?: boolean } = {}): string {
  const dir = mkdtempSync(join(tmpdir(), 'mbvmu-kdir-'));
  mkdirSync(join(dir, 'boot'));
  writeFileSync(join(dir, 'boot', `vmlinuz-${release}`), fakeBzImage(`${release} (me@box) #3 SMP PREEMPT_DYNAMIC Sat Nov 28 2026`));
  if (o.config) writeFileSync(join(dir, 'boot', `config-${release}`), 'CONFIG_WIREGUARD=m\n# CONFIG_NET_SCH_NETEM is not set\n');
  const m = join(dir, 'lib', 'modules', release);
  mkdirSync(join(m, 'kernel', 'net'), { recursive: true });
  writeFileSync(join(m, 'kernel', 'net', 'dummy.ko'), 'not really ELF');
  writeFileSync(join(m, 'modules.order'), 'kernel/net/dummy.ko\n');
  writeFileSync(join(m, 'modules.builtin'), 'kernel/drivers/virtio/virtio_pci.ko\n');
  if (o.modulesDep) writeFileSync(join(m, 'modules.dep'), '');
  return dir;
}

/** Every path under dir with its size and mtime: the user's tree must not change. */
function treeState(dir: string): string {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      const p = join(d, e.name);
      const st = statSync(p);
      // Not nlink: the cache may hard-link the user's module files, which only adds a link.
      out.push(`${p} ${st.size} ${st.mtimeMs}`);
      if (e.isDirectory()) walk(p);
    }
  };
  walk(dir);
  return out.join('\n');
}

test('bzImageVersion reads the setup header, and nothing from a file that is not a bzImage', (t) => {
  t.is(bzImageVersion(fakeBzImage('6.1.0-50-amd64 (debian-kernel@lists.debian.org) #1 SMP')), '6.1.0-50-amd64 (debian-kernel@lists.debian.org) #1 SMP');
  t.is(bzImageVersion(Buffer.alloc(0x1000)), undefined);
  t.is(bzImageVersion(Buffer.from('short')), undefined);
});

test('resolveKernel: an unknown name or a path that is no kernel directory is E_INPUT (exit 2) naming the known kernels and what a directory needs', async (t) => {
  const cache = mkdtempSync(join(tmpdir(), 'mbvmu-cache-'));
  const empty = mkdtempSync(join(tmpdir(), 'mbvmu-empty-'));
  const noMods = mkdtempSync(join(tmpdir(), 'mbvmu-nomods-'));
  writeFileSync(join(noMods, 'bzImage'), fakeBzImage('6.6.6 #1'));
  t.teardown(() => {
    for (const d of [cache, empty, noMods]) rmSync(d, { recursive: true, force: true });
  });
  const cases: [string, RegExp][] = [
    ['debian-4.19', /unknown kernel "debian-4\.19"/],
    ['./no/such/kernel', /"\.\/no\/such\/kernel" is not a directory/],
    [join(noMods, 'bzImage'), /is not a directory/],
    [empty, /neither a vmlinuz\* \(or bzImage\) file nor lib\/modules/],
    [noMods, /no lib\/modules\/<release>\//],
  ];
  for (const [arg, msg] of cases) {
    const e = (await t.throwsAsync(resolveKernel(arg, cache), { instanceOf: MeshbenchError })) as MeshbenchError;
    t.is(e.code, 'E_INPUT', arg);
    t.is(e.exitCode, 2);
    t.regex(e.message, msg);
    for (const k of knownKernels()) t.true(e.hint!.includes(k), `the hint names ${k}`);
    t.regex(e.hint!, /vmlinuz\* \(or bzImage\).*lib\/modules\/<release>\/.*modules_install/);
  }
  t.deepEqual(readdirSync(cache), [], 'nothing fetched or cached');
});

test('resolveKernel: a kernel directory without modules.dep is copied into the cache, depmod run there, the user tree untouched', async (t) => {
  const release = '6.9.0-mine';
  const dir = fakeKernelDir(release, { config: true });
  const cache = mkdtempSync(join(tmpdir(), 'mbvmu-cache-'));
  t.teardown(() => {
    rmSync(dir, { recursive: true, force: true });
    rmSync(cache, { recursive: true, force: true });
  });
  const before = treeState(dir);
  const k = await resolveKernel(dir, cache);
  t.is(k.name, `custom:${release}`);
  t.is(k.release, release);
  t.is(k.source, dir);
  t.regex(k.version, /^6\.9\.0-mine \(me@box\) #3 SMP/);
  t.true(k.vmlinuz.startsWith(cache), 'vmlinuz is copied into the cache (the initrd is written beside it)');
  t.true(k.modulesDir.startsWith(cache) && k.modulesDir.endsWith(`/lib/modules/${release}`));
  t.regex(readFileSync(join(k.modulesDir, 'modules.dep'), 'utf8'), /^kernel\/net\/dummy\.ko:/m, 'depmod ran in the cache');
  t.is(readFileSync(join(k.modulesDir, 'kernel', 'net', 'dummy.ko'), 'utf8'), 'not really ELF', 'the module tree is there (hard-linked or copied)');
  t.is(readFileSync(k.config!, 'utf8'), readFileSync(join(dir, 'boot', `config-${release}`), 'utf8'));
  t.is(k.config, join(k.modulesDir, 'config'), 'the guest sees it at /lib/modules/<release>/config');
  t.false(existsSync(join(dir, 'lib', 'modules', release, 'modules.dep')), 'no modules.dep written into the user tree');
  t.is(treeState(dir), before, 'the user tree is as it was');
  t.deepEqual(await resolveKernel(dir, cache), k, 'a second call is a cache hit');
  t.deepEqual(JSON.parse(readFileSync(join(k.vmlinuz, '..', 'manifest.json'), 'utf8')), k);
});

test('resolveKernel: a directory with its own modules.dep and no config; a vmlinuz without modules for it is E_INPUT', async (t) => {
  const dir = fakeKernelDir('6.9.1', { modulesDep: true });
  const cache = mkdtempSync(join(tmpdir(), 'mbvmu-cache-'));
  t.teardown(() => {
    rmSync(dir, { recursive: true, force: true });
    rmSync(cache, { recursive: true, force: true });
  });
  const k = await resolveKernel(dir, cache);
  t.is(k.config, undefined);
  t.true(existsSync(join(k.modulesDir, 'modules.dep')));
  // Another image whose release has no modules, next to it: still the one that has them.
  writeFileSync(join(dir, 'boot', 'vmlinuz-7.0.0-other'), fakeBzImage('7.0.0-other #1'));
  t.is((readKernelDir(dir) as { release: string }).release, '6.9.1');
  rmSync(join(dir, 'boot', 'vmlinuz-6.9.1'));
  t.regex(readKernelDir(dir) as string, /no vmlinuz matches a release under lib\/modules \(images: vmlinuz-7\.0\.0-other; releases: 6\.9\.1\)/);
});

// ── kernel facts (harness/probes/kernel.ts) ──

const CONFIG_510 = `#
# Linux/x86 5.10.223 Kernel Configuration
CONFIG_BPF_SYSCALL=y
CONFIG_BPF_JIT=y
CONFIG_CGROUP_BPF=y
CONFIG_WIREGUARD=m
CONFIG_NET_SCH_NETEM=m
CONFIG_INET_ESP=m
CONFIG_XFRM_USER=m
CONFIG_NET_CLS_BPF=m
CONFIG_VETH=m
CONFIG_NETFILTER_XT_TARGET_TPROXY=m
CONFIG_BPF_STREAM_PARSER=y
CONFIG_DEBUG_INFO_BTF=y
# CONFIG_IKCONFIG is not set
CONFIG_LOCALVERSION=""
`;

test('kernel config: y/m/n for the lab options, "is not set" and absent both n', (t) => {
  const v = parseKernelConfig(CONFIG_510);
  t.is(v.get('CONFIG_IKCONFIG'), 'n');
  t.is(v.get('CONFIG_LOCALVERSION'), '""');
  const o = configOptions(v);
  t.deepEqual(Object.keys(o), [...CONFIG_OPTIONS]);
  t.is(o.CONFIG_WIREGUARD, 'm');
  t.is(o.CONFIG_DEBUG_INFO_BTF, 'y');
  t.is(o.CONFIG_BPF_STREAM_PARSER, 'y');
  const host = configOptions(parseKernelConfig('# CONFIG_WIREGUARD is not set\nCONFIG_VETH=y\n'));
  t.is(host.CONFIG_WIREGUARD, 'n');
  t.is(host.CONFIG_NET_SCH_NETEM, 'n', 'absent from the file: n');
  t.is(host.CONFIG_VETH, 'y');
});

test('module states from modules.builtin and modules.dep (compressed names, dashes), config only when neither file exists', (t) => {
  const dep = 'kernel/drivers/net/wireguard/wireguard.ko.xz: kernel/lib/crypto/libchacha20poly1305.ko.xz\nkernel/net/sched/sch_netem.ko.xz:\n';
  const builtin = 'kernel/net/ipv4/esp4.ko\nkernel/drivers/virtio/virtio_pci.ko\n';
  t.is(moduleState('wireguard', { dep, builtin }), 'module');
  t.is(moduleState('sch_netem', { dep, builtin }), 'module');
  t.is(moduleState('esp4', { dep, builtin }), 'builtin');
  t.is(
    moduleState('libchacha20poly1305', { dep: 'a/x.ko: kernel/lib/crypto/libchacha20poly1305.ko\n', builtin }),
    'absent',
    'a dependency column is not a module line',
  );
  t.is(moduleState('xt_TPROXY', { dep: 'kernel/net/netfilter/xt_TPROXY.ko:\n', builtin: '' }), 'module');
  t.is(moduleState('sch_netem', { dep: 'kernel/net/sched/sch-netem.ko.zst:\n', builtin: '' }), 'module');
  // No /lib/modules/<release> at all (a container, a custom host kernel): the config decides.
  t.is(moduleState('wireguard', {}, 'y'), 'builtin');
  t.is(moduleState('wireguard', {}, 'm'), 'absent', '=m with no modules installed cannot load');
  t.is(moduleState('wireguard', {}, undefined), 'absent');
});

test('virtualisation: MESHBENCH_VM first, then qemu TCG CPU model, kvm-clock, DMI vendor, the hypervisor flag', (t) => {
  const cpu = (model: string, flags = 'fpu sse2') => `processor\t: 0\nmodel name\t: ${model}\nflags\t\t: ${flags}\n`;
  t.like(detectVirtualisation({ vmEnv: parseVmEnv('{"kernel":"debian-6.1","accel":"kvm"}'), cpuinfo: cpu('QEMU TCG CPU version 2.5+') }), {
    virtualisation: 'kvm',
  });
  t.like(detectVirtualisation({ cpuinfo: cpu('QEMU TCG CPU version 2.5+', 'fpu hypervisor'), clocksources: 'hpet acpi_pm ', dmiVendor: 'QEMU\n' }), {
    virtualisation: 'tcg',
  });
  t.like(detectVirtualisation({ cpuinfo: cpu('AMD EPYC', 'fpu hypervisor'), clocksources: 'tsc kvm-clock ' }), { virtualisation: 'kvm' });
  t.like(detectVirtualisation({ cpuinfo: cpu('Intel Xeon', 'fpu hypervisor'), clocksources: 'tsc hpet', dmiVendor: 'VMware, Inc.\n' }), {
    virtualisation: 'vm',
  });
  t.like(detectVirtualisation({ cpuinfo: cpu('Intel Xeon', 'fpu hypervisor'), clocksources: 'tsc' }), {
    virtualisation: 'vm',
    hypervisor: 'cpuinfo hypervisor flag',
  });
  t.deepEqual(detectVirtualisation({ cpuinfo: cpu('AMD Ryzen'), clocksources: 'tsc hpet acpi_pm', dmiVendor: 'ASUS\n' }), { virtualisation: 'none' });
  t.deepEqual(detectVirtualisation({}), { virtualisation: 'none' });
});

test('MESHBENCH_VM parsing: fields kept when typed right, junk ignored; the package from a Debian /proc/version', (t) => {
  t.deepEqual(
    parseVmEnv('{"kernel":"debian-7","package":"linux-image-7.3.4+deb13-amd64","version":"7.3.4-1~bpo13+1","release":"7.3.4+deb13-amd64","accel":"tcg"}'),
    {
      kernel: 'debian-7',
      package: 'linux-image-7.3.4+deb13-amd64',
      version: '7.3.4-1~bpo13+1',
      release: '7.3.4+deb13-amd64',
      accel: 'tcg',
    },
  );
  t.is(parseVmEnv('{"accel":"hvf"}')!.accel, undefined);
  t.is(parseVmEnv('not json'), undefined);
  t.is(parseVmEnv(undefined), undefined);
  t.deepEqual(
    packageFromVersion(
      'Linux version 6.1.0-50-amd64 (debian-kernel@lists.debian.org) (gcc-12 (Debian 12.2.0-14+deb12u1) 12.2.0, GNU ld (GNU Binutils for Debian) 2.40) #1 SMP PREEMPT_DYNAMIC Debian 6.1.176-1 (2026-07-02)',
      '6.1.0-50-amd64',
    ),
    { name: 'linux-image-6.1.0-50-amd64', version: '6.1.176-1' },
  );
  t.deepEqual(packageFromVersion('Linux version 7.3.4+deb13-amd64 (…) #1 SMP PREEMPT_DYNAMIC Debian 7.3.4-1~bpo13+1 (2026-11-01)', '7.3.4+deb13-amd64'), {
    name: 'linux-image-7.3.4+deb13-amd64',
    version: '7.3.4-1~bpo13+1',
  });
  t.is(packageFromVersion('Linux version 6.18.44-fc-v669 (builder@sandboxing) (gcc (GCC) 15.3.0) #1 SMP PREEMPT_DYNAMIC @0', '6.18.44-fc-v669'), undefined);
});

test("doctor's kernel lines: TCG is a warning saying figures are functional only; no config found is a warning with the paths looked at", (t) => {
  const facts: KernelFacts = {
    release: '6.1.0-50-amd64',
    version: 'Linux version 6.1.0-50-amd64',
    virtualisation: 'tcg',
    hypervisor: 'qemu, said by MESHBENCH_VM',
    functionalOnly: true,
    config: { source: '/lib/modules/6.1.0-50-amd64/config', options: { CONFIG_WIREGUARD: 'm', CONFIG_VETH: 'm' } },
    btf: true,
    modules: { wireguard: 'module', netem: 'module', esp: 'module' },
  };
  const [virt, cfg] = kernelFactChecks(facts);
  t.is(virt.name, CHECK.virtualisation);
  t.is(virt.status, 'warn');
  t.regex(virt.detail, /^tcg .*functional only/);
  t.is(cfg.name, CHECK.kernelConfig);
  t.is(cfg.status, 'ok');
  t.is(cfg.detail, '/lib/modules/6.1.0-50-amd64/config: WIREGUARD=m VETH=m');
  const [v2, c2] = kernelFactChecks({
    ...facts,
    virtualisation: 'kvm',
    hypervisor: 'kvm-clock clocksource',
    functionalOnly: false,
    config: { source: null, options: {} },
  });
  t.is(v2.status, 'ok');
  t.is(v2.detail, 'kvm (kvm-clock clocksource)');
  t.is(c2.status, 'warn');
  t.regex(c2.detail, /\/proc\/config\.gz, \/boot\/config-6\.1\.0-50-amd64 or \/lib\/modules\/6\.1\.0-50-amd64\/config/);
  t.is(kernelFactChecks({ ...facts, virtualisation: 'none', hypervisor: undefined })[0].detail, 'none (bare metal)');
});
