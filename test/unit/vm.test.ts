// The VM stage's pure parts (harness/vm/), rootless: the kernel registry's errors, reading the
// system's apt sources and rendering the private list, module resolution from recorded
// modules.dep files of Debian 6.1 and 6.12, the init scripts, the cpio writer and qemu's
// arguments (no network device).
import test from 'ava';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MeshbenchError } from '../../harness/errors.js';
import { qemuArgs } from '../../harness/vm/boot.js';
import { cpioNewc, GUEST_IO, INITRD_MODULES, moduleName, parseModulesDep, renderInit, renderStage2, resolveModules, TAGS } from '../../harness/vm/initrd.js';
import { debianMirror, fetchKernel, KERNELS, kernelSpec, parseAptSources, privateAptOptions, renderSourcesList } from '../../harness/vm/kernels.js';

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

test('every registered kernel pins a suite, a linux-image package and an exact version', (t) => {
  t.true('debian-6.1' in KERNELS);
  for (const [name, k] of Object.entries(KERNELS)) {
    t.is(k.name, name);
    t.regex(k.package, /^linux-image-\S+-amd64$/);
    t.regex(k.version, /^\d+\.\d+\.\d+-\d/);
    t.regex(k.suite, /^bookworm(-backports)?$/);
  }
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

test('qemu gets no network device, TCG on q35 with -cpu max, the three 9p shares, root and modules read-only', (t) => {
  const a = qemuArgs({ accel: 'tcg', vmlinuz: '/k', initrd: '/i', modulesDir: '/m', ioDir: '/io', memoryMiB: 512, cpus: 2 });
  const s = a.join(' ');
  t.regex(s, /-accel tcg -cpu max -M q35/);
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
