// The top-level Vagrantfile, checked with the real vagrant + vagrant-libvirt that setup.sh
// installs: `vagrant validate` passes (kvm and qemu drivers, 2 and 3 nodes, kernel fetched or
// not), bad settings fail naming the valid ones, every address in it is in 198.18.0.0/15 on
// isolated networks, and validating leaves the host as found. Never `vagrant up`: no libvirtd
// runs here, and nothing in these tests may create a VM or a libvirt network.
import test from 'ava';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exec, which } from '../../harness/util/exec.js';
import { knownKernels } from '../../harness/vm/kernels.js';
import { hostSnapshot, ROOT } from '../helpers.js';

const VAGRANT = await which('vagrant');
// Root runs scripts/setup.sh (CI does), which installs vagrant: there a missing vagrant is a failure.
const vagrantTest: typeof test.serial =
  VAGRANT || ROOT
    ? test.serial
    : (((title: string, ...rest: unknown[]) =>
        (test.skip as any)(`${title} (skipped: vagrant not installed; scripts/setup.sh installs it as root)`, ...rest)) as any);

const tmp = mkdtempSync(join(tmpdir(), 'mbvagrant-'));
test.after.always(() => rmSync(tmp, { recursive: true, force: true }));

let n = 0;
/** `vagrant <args>` in the repo root, with its home and .vagrant/ in fresh temp dirs (nothing written to ~ or the checkout). */
async function vagrant(args: string[], env: Record<string, string> = {}) {
  if (!VAGRANT) throw new Error('vagrant is not installed: run scripts/setup.sh as root (it installs vagrant and vagrant-libvirt from Debian)');
  const dir = join(tmp, String(n++));
  const dotfile = join(dir, 'dot');
  mkdirSync(dotfile, { recursive: true });
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('MESHBENCH_') && !k.startsWith('VAGRANT_')));
  const r = await exec(VAGRANT, args, {
    allowFail: true,
    env: {
      ...clean,
      VAGRANT_HOME: join(dir, 'home'),
      VAGRANT_DOTFILE_PATH: dotfile,
      VAGRANT_CHECKPOINT_DISABLE: '1',
      VAGRANT_BOX_UPDATE_CHECK_DISABLE: '1',
      VAGRANT_NO_COLOR: '1',
      MESHBENCH_KERNEL_CACHE: join(dir, 'kernels'),
      ...env,
    },
  });
  return { ...r, dotfile, out: r.stdout + r.stderr };
}

/** A kernel cache entry shaped as fetchKernel + `scripts/vagrant-box.sh kernel` leave it (empty files: validate reads no content). */
function fakeKernel(cache: string, name: string): void {
  const dir = join(cache, name);
  const modulesDir = join(dir, 'modules', 'lib', 'modules', '6.1.0-50-amd64');
  mkdirSync(modulesDir, { recursive: true });
  writeFileSync(join(modulesDir, 'modules.dep'), '');
  writeFileSync(join(dir, 'vmlinuz'), '');
  writeFileSync(join(dir, 'vagrant-initrd.gz'), '');
  writeFileSync(join(dir, 'manifest.json'), JSON.stringify({ name, release: '6.1.0-50-amd64', vmlinuz: join(dir, 'vmlinuz'), modulesDir }));
}

const machines = (dotfile: string) => readdirSync(join(dotfile, 'machines')).sort();

/** Processes whose command line mentions this suite's temp dir (a vagrant, ruby or rsync left behind). */
const ours = async () => (await exec('pgrep', ['-af', tmp], { allowFail: true })).stdout.trim();
/** libvirt daemons and dnsmasq, anywhere on the host. */
const libvirtProcs = async () => {
  const r = await Promise.all(['libvirtd', 'virtqemud', 'virtnetworkd', 'virtlogd', 'dnsmasq'].map((p) => exec('pgrep', ['-x', p], { allowFail: true })));
  return r
    .map((x) => x.stdout.trim())
    .join(' ')
    .trim();
};
const libvirtNetworks = () => {
  const d = '/etc/libvirt/qemu/networks';
  return existsSync(d) ? readdirSync(d, { recursive: true }).map(String).sort().join(',') : '';
};

vagrantTest('vagrant validate passes with the kvm default and with qemu, 2 and 3 nodes, kernel fetched or not; the host is left as found', async (t) => {
  const before = await hostSnapshot();
  const procsBefore = await libvirtProcs();
  const netsBefore = libvirtNetworks();

  const plain = await vagrant(['validate']);
  t.is(plain.code, 0, plain.out);
  t.regex(plain.stdout, /Vagrantfile validated successfully/);
  t.deepEqual(machines(plain.dotfile), ['node1', 'node2']);

  const qemu3 = await vagrant(['validate'], { MESHBENCH_LIBVIRT_DRIVER: 'qemu', MESHBENCH_NODES: '3' });
  t.is(qemu3.code, 0, qemu3.out);
  t.deepEqual(machines(qemu3.dotfile), ['node1', 'node2', 'node3']);

  // Fetched: the modules synced folder and the kernel/initrd paths are in the config too.
  const cache = join(tmp, 'cache');
  fakeKernel(cache, 'debian-6.12');
  const fetched = await vagrant(['validate'], { MESHBENCH_KERNEL: 'debian-6.12', MESHBENCH_KERNEL_CACHE: cache, MESHBENCH_LIBVIRT_DRIVER: 'qemu' });
  t.is(fetched.code, 0, fetched.out);

  t.is(await ours(), '', 'no vagrant process left');
  t.is(await libvirtProcs(), procsBefore, 'no libvirt daemon or dnsmasq started');
  t.is(libvirtNetworks(), netsBefore, 'no libvirt network defined');
  t.false(existsSync('.vagrant'), 'nothing written to the checkout');
  t.is(await hostSnapshot(), before);
});

vagrantTest('an unknown kernel, driver or node count fails validate, naming the valid ones', async (t) => {
  const k = await vagrant(['validate'], { MESHBENCH_KERNEL: 'debian-4.19' });
  t.not(k.code, 0);
  t.true(k.out.includes(`unknown MESHBENCH_KERNEL "debian-4.19"; known kernels: ${knownKernels().join(', ')}`), k.out);
  const d = await vagrant(['validate'], { MESHBENCH_LIBVIRT_DRIVER: 'xen' });
  t.not(d.code, 0);
  t.regex(d.out, /unknown MESHBENCH_LIBVIRT_DRIVER "xen"; known drivers: kvm, qemu/);
  const nodes = await vagrant(['validate'], { MESHBENCH_NODES: 'two' });
  t.not(nodes.code, 0);
  t.regex(nodes.out, /MESHBENCH_NODES="two" must be a whole number/);
});

vagrantTest('a command that boots stops at once, saying how to fetch a kernel that is not ready', async (t) => {
  // `provision` of a machine that does not exist creates nothing even if this check were gone;
  // the Vagrantfile must stop while loading, before vagrant asks libvirt anything.
  const r = await vagrant(['provision', 'node1'], { MESHBENCH_KERNEL: 'debian-5.10' });
  t.not(r.code, 0);
  t.regex(r.out, /kernel debian-5\.10 is not ready for Vagrant/);
  t.regex(r.out, /scripts\/vagrant-box\.sh kernel debian-5\.10/);
});

/** 198.18.0.0/15 as a 32-bit range. */
const inLabRange = (ip: string) => {
  const o = ip.split('.').map(Number);
  return o[0] === 198 && (o[1] === 18 || o[1] === 19) && o.every((x) => x >= 0 && x <= 255);
};

test('every address in the Vagrantfile is in 198.18.0.0/15, on isolated networks; libvirt default networks never named', (t) => {
  const code = readFileSync('Vagrantfile', 'utf8')
    .split('\n')
    .filter((l) => !/^\s*#/.test(l))
    .map((l) => l.replace(/\s#\s.*$/, ''))
    .join('\n');
  // Dotted quads and three-octet prefixes ("198.18.251" + ".N"), with or without a /len; a
  // netmask is not an address.
  const addrs = [...code.matchAll(/(?<![\d.])(?<!netmask: ')(\d{1,3}(?:\.\d{1,3}){2,3})(?:\/\d+)?(?![\d.])/g)].map((m) =>
    m[1].split('.').length === 3 ? `${m[1]}.0` : m[1],
  );
  t.true(addrs.length >= 2, `addresses found: ${addrs.join(', ')}`);
  for (const a of addrs) t.true(inLabRange(a), `${a} is outside 198.18.0.0/15`);
  // Networks: named ours, forward mode none (no NAT, no route out), never libvirt's own.
  t.regex(code, /management_network_name = 'meshbench-[a-z0-9-]+'/);
  t.regex(code, /management_network_address = MGMT_NET/);
  for (const m of code.matchAll(/(?:management_network_mode =|libvirt__forward_mode:)\s*'([^']+)'/g))
    t.true(['none', 'veryisolated'].includes(m[1]), `forward mode ${m[1]}`);
  t.is([...code.matchAll(/libvirt__forward_mode:/g)].length, [...code.matchAll(/:private_network/g)].length, 'every private network sets its forward mode');
  t.notRegex(code, /'default'|"default"|vagrant-libvirt'|:public_network|management_network_device/);
  for (const m of code.matchAll(/libvirt__network_name:\s*'([^']+)'/g)) t.regex(m[1], /^meshbench/);
});
