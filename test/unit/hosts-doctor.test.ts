// `meshbench doctor --hosts`, rootless: the inventory's meshbenchDir (checked, its defaults for
// files, the test fleet and `vagrant ssh-config`), the remote script run by a real local shell
// exactly as the remote shell gets it, a remote run's outcome read as checks or an error, and how
// several hosts' results make one output and one exit code. Bad inventories and option clashes
// through the real CLI: exit 2 before any ssh.
import test from 'ava';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { envError, type MeshbenchError, runError } from '../../harness/errors.js';
import {
  checkHostsOptions,
  combineHostDoctors,
  type HostDoctor,
  hostExitCode,
  interpretDoctorRun,
  remoteDoctorArgv,
  vagrantInventory,
} from '../../harness/hosts/doctor.js';
import { type InventoryHost, inventoryFromSshConfig, meshbenchDirOf, parseInventory, renderInventory } from '../../harness/hosts/inventory.js';
import { remoteCommand } from '../../harness/hosts/ssh.js';
import type { Check } from '../../harness/probes/host.js';
import { exec } from '../../harness/util/exec.js';
import { PROJECT_ROOT } from '../../harness/util/tools.js';
import { cli } from '../helpers.js';

const host = (name: string, more: Partial<InventoryHost> = {}): InventoryHost => ({
  name,
  address: `198.18.250.${10 + Number(name.replace(/\D/g, '') || 99)}`,
  user: 'root',
  port: 22,
  hostKeyChecking: 'strict',
  line: 3,
  ...more,
});
const check = (name: string, status: Check['status'], required = true): Check => ({ group: 'kernel', name, status, required, detail: `${name} detail` });
const okChecks = [check('netns', 'ok'), check('wireguard module', 'ok', false)];

test('meshbenchDir: kept when absolute, refused at its line otherwise; default this checkout, /vagrant from ssh-config', (t) => {
  const inv = parseInventory(
    'kind: Inventory\nhosts:\n  - name: node1\n    address: 198.18.250.11\n    meshbenchDir: /opt/meshbench\n  - name: node2\n    address: 198.18.250.12\n',
    'inv.yaml',
  );
  t.is(inv.hosts[0].meshbenchDir, '/opt/meshbench');
  t.is(meshbenchDirOf(inv.hosts[0]), '/opt/meshbench');
  t.is(inv.hosts[1].meshbenchDir, undefined);
  t.is(meshbenchDirOf(inv.hosts[1]), PROJECT_ROOT, "the test fleet's guests see this checkout at the same path");
  t.true(PROJECT_ROOT.startsWith('/'));
  // Read back from its rendering unchanged (and the default is not written out).
  const back = parseInventory(renderInventory(inv), 'rendered.yaml');
  t.deepEqual(
    back.hosts.map((h) => h.meshbenchDir),
    ['/opt/meshbench', undefined],
  );

  const e = t.throws(() =>
    parseInventory(
      'kind: Inventory\nhosts:\n  - name: node1\n    address: 198.18.250.11\n    meshbenchDir: meshbench\n  - name: node2\n    address: 198.18.250.12\n    meshbenchDir: ""\n',
      'bad.yaml',
    ),
  ) as MeshbenchError;
  t.is(e.exitCode, 2);
  t.deepEqual(e.details, [
    'bad.yaml:5: hosts.0.meshbenchDir: must be an absolute path on that machine',
    'bad.yaml:8: hosts.1.meshbenchDir: Too small: expected string to have >=1 characters',
    'bad.yaml:8: hosts.1.meshbenchDir: must be an absolute path on that machine',
  ]);

  const text = readFileSync('test/fixtures/inventories/vagrant-ssh-config.txt', 'utf8');
  t.deepEqual(
    inventoryFromSshConfig(text, { checkFiles: false }).hosts.map((h) => meshbenchDirOf(h)),
    ['/vagrant', '/vagrant'],
    "the Vagrantfile's synced folder",
  );
  t.deepEqual(
    inventoryFromSshConfig(text, { checkFiles: false, meshbenchDir: '/srv/mb' }).hosts.map((h) => h.meshbenchDir),
    ['/srv/mb', '/srv/mb'],
  );
});

test('the remote script, run by a real shell as ssh hands it over: cd <dir> && node <dir>/dist/…/main.js doctor --json; not set up → its own exit', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "mb hosts'doctor-"));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  // The remote shell gets one string (remoteCommand); a directory with a space and a quote survives.
  const remote = (d: string, path = process.env.PATH) => exec('sh', ['-c', remoteCommand(remoteDoctorArgv(d))], { allowFail: true, env: { PATH: path } });
  t.is((await remote(dir)).code, 97, 'no dist/ there');
  mkdirSync(join(dir, 'dist', 'harness', 'cli'), { recursive: true });
  writeFileSync(
    join(dir, 'dist', 'harness', 'cli', 'main.js'),
    'console.log(JSON.stringify([{ group: "g", name: "cwd", status: "ok", required: false, detail: process.cwd() + " " + process.argv.slice(2).join(" ") }]));\n',
  );
  const r = await remote(dir);
  t.is(r.code, 0, r.stderr);
  const got = interpretDoctorRun(host('node1', { meshbenchDir: dir }), r);
  t.deepEqual('checks' in got && got.checks[0].detail, `${dir} doctor --json`);
  // No node on the PATH: its own exit, told apart from doctor's.
  const bin = join(dir, 'bin');
  mkdirSync(bin);
  symlinkSync('/bin/sh', join(bin, 'sh'));
  t.is((await exec('/bin/sh', ['-c', remoteCommand(remoteDoctorArgv(dir))], { allowFail: true, env: { PATH: bin } })).code, 98);
});

test("a remote run's outcome: checks, not set up (E_ENV naming dir and setup.sh), sudo, garbage (E_RUN)", (t) => {
  const h = host('node1', { meshbenchDir: '/srv/mb', netns: 'mbab12-fleet' });
  const ok = interpretDoctorRun(h, { code: 3, stdout: JSON.stringify([check('root', 'missing')]), stderr: '' });
  t.true('checks' in ok && ok.checks.length === 1);
  t.is(hostExitCode(ok), 3, 'a required check missing');

  const err = (r: HostDoctor) => ('error' in r ? r.error : undefined)!;
  const noMb = err(interpretDoctorRun(h, { code: 97, stdout: '', stderr: '' }));
  t.is(noMb.code, 'E_ENV');
  t.is(noMb.message, 'host node1 (root@198.18.250.11:22 from namespace mbab12-fleet) has no meshbench at /srv/mb (/srv/mb/dist/harness/cli/main.js not found)');
  t.regex(noMb.hint!, /run scripts\/setup\.sh in \/srv\/mb on it .* or set meshbenchDir for node1 in the inventory/);
  t.regex(err(interpretDoctorRun(h, { code: 98, stdout: '', stderr: '' })).message, /has no node \(Node\.js\) on its PATH$/);
  const sudo = err(interpretDoctorRun(host('node2', { user: 'vagrant' }), { code: 1, stdout: '', stderr: 'sudo: a password is required\n' }));
  t.is(sudo.code, 'E_ENV');
  t.regex(sudo.hint!, /passwordless sudo/);
  const junk = err(interpretDoctorRun(h, { code: 1, stdout: 'Segmentation fault', stderr: 'TypeError: x is not a function\n    at main' }));
  t.is(junk.code, 'E_RUN');
  t.is(junk.exitCode, 1);
  t.regex(junk.message, /^doctor on host node1 .* printed no checks \(exit 1\):\nTypeError/);
  t.is(err(interpretDoctorRun(h, { code: 0, stdout: '{"not":"a list"}', stderr: '' })).code, 'E_RUN');
});

test('several hosts: JSON keyed by host, a heading and doctor text per host, every failing host named, the worst exit', (t) => {
  const [n1, n2, n3] = [host('node1'), host('node2'), host('node3', { address: '198.18.250.99' })];
  const good: HostDoctor[] = [
    { host: n1, checks: okChecks },
    { host: n2, checks: okChecks },
  ];
  const all = combineHostDoctors(good, true);
  t.is(all.exitCode, 0);
  t.is(all.stderr, '');
  t.deepEqual(JSON.parse(all.stdout), { node1: okChecks, node2: okChecks });

  const human = combineHostDoctors(good, false);
  t.is(human.exitCode, 0);
  t.regex(human.stdout, /^── node1 \(root@198\.18\.250\.11:22\) ──\nkernel\n {2}✓ netns .*\n[\s\S]*\n── node2 \(root@198\.18\.250\.12:22\) ──\nkernel\n/);

  // A required check missing on one host: exit 3, the others still printed.
  const missing = combineHostDoctors([good[0], { host: n2, checks: [check('netns', 'missing')] }], false);
  t.is(missing.exitCode, 3);
  t.regex(missing.stdout, /── node2 [\s\S]*✗ netns +netns detail \(required\)/);

  // Two unreachable hosts: both named on stderr with what to check, the reachable one printed, exit 3.
  const down = (h: InventoryHost) =>
    envError(
      `host ${h.name} (root@${h.address}:22) is unreachable over SSH: ssh: connect to host ${h.address} port 22: No route to host`,
      'check that the machine is up',
    );
  const mixed = combineHostDoctors(
    [
      { host: n1, error: down(n1) },
      { host: n2, checks: okChecks },
      { host: n3, error: down(n3) },
    ],
    true,
  );
  t.is(mixed.exitCode, 3);
  t.regex(mixed.stderr, /^meshbench: host node1 \(root@198\.18\.250\.11:22\) is unreachable over SSH: .*\n {2}→ check that the machine is up\n/);
  t.regex(mixed.stderr, /meshbench: host node3 \(root@198\.18\.250\.99:22\) is unreachable/);
  t.regex(mixed.stderr, /2 of 3 hosts unreachable or not set up \(node1, node3\)\n$/);
  const json = JSON.parse(mixed.stdout);
  t.deepEqual(Object.keys(json), ['node1', 'node2', 'node3']);
  t.deepEqual(json.node2, okChecks);
  t.like(json.node3, { error: { code: 'E_ENV', hint: 'check that the machine is up' } });
  t.regex(
    combineHostDoctors([{ host: n3, error: down(n3) }], false).stdout,
    /^── node3 \(root@198\.18\.250\.99:22\) ──\nnot checked: host node3 .*unreachable/,
  );

  // Doctor itself failing on a host is a failed run (1); an unreachable host still makes it 3.
  const crashed: HostDoctor = { host: n2, error: runError('doctor on host node2 printed no checks (exit 1)') };
  t.is(combineHostDoctors([good[0], crashed], false).exitCode, 1);
  t.is(combineHostDoctors([{ host: n1, error: down(n1) }, crashed], false).exitCode, 3);
});

test('--hosts with --kernel(s) is bad input; a broken inventory is exit 2 with file:line, before any ssh', async (t) => {
  t.notThrows(() => checkHostsOptions({ hosts: 'inv.yaml' }));
  t.notThrows(() => checkHostsOptions({ kernel: 'debian-6.1' }));
  const both = t.throws(() => checkHostsOptions({ hosts: 'vagrant', kernels: ['debian-6.1'] })) as MeshbenchError;
  t.is(both.exitCode, 2);
  t.is(both.message, '--hosts and --kernels together');

  const clash = await cli(['doctor', '--hosts', 'inv.yaml', '--kernel', 'debian-6.1']);
  t.is(clash.code, 2, clash.stderr);
  t.regex(clash.stderr, /--hosts and --kernel together/);

  const dir = mkdtempSync(join(tmpdir(), 'mbhd-unit-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'inventory.yaml');
  writeFileSync(file, 'kind: Inventory\nhosts:\n  - name: node1\n    address: 198.18.250.11\n    port: 0\n');
  const r = await cli(['doctor', '--hosts', file, '--json']);
  t.is(r.code, 2, r.stderr);
  t.is(r.stdout, '');
  t.true(r.stderr.includes(`${file}:5: hosts.0.port: Too small`), r.stderr);
  t.false(/ssh|unreachable/i.test(r.stderr));
});

test.serial('--hosts vagrant: `vagrant ssh-config` of the directory as an inventory (/vagrant, eth1); no vagrant or no machine up → exit 3', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'mbhd-vagrant-'));
  const path = process.env.PATH;
  t.teardown(() => {
    process.env.PATH = path;
    rmSync(dir, { recursive: true, force: true });
  });
  const bin = join(dir, 'bin');
  mkdirSync(bin);
  writeFileSync(join(dir, 'key'), 'not a key\n');
  // A stand-in vagrant: prints ssh-config for VAGRANT_CWD=<dir>/up, fails as vagrant does elsewhere.
  writeFileSync(
    join(bin, 'vagrant'),
    `#!/bin/sh
[ "$1" = ssh-config ] || exit 64
if [ "$VAGRANT_CWD" = '${dir}/up' ]; then
  printf 'Host node1\\n  HostName 198.18.250.11\\n  User vagrant\\n  Port 22\\n  IdentityFile ${dir}/key\\n  StrictHostKeyChecking no\\n'
  exit 0
fi
echo 'The provider for this Vagrant-managed machine is reporting that it is not yet ready for SSH.' >&2
exit 1
`,
    { mode: 0o755 },
  );
  process.env.PATH = `${bin}:${path}`;
  const inv = await vagrantInventory(join(dir, 'up'));
  t.is(inv.file, `vagrant ssh-config (${dir}/up)`);
  t.like(inv.hosts[0], { name: 'node1', address: '198.18.250.11', user: 'vagrant', meshbenchDir: '/vagrant', labInterface: 'eth1', hostKeyChecking: 'off' });
  const down = (await t.throwsAsync(vagrantInventory(join(dir, 'down')))) as MeshbenchError;
  t.is(down.exitCode, 3);
  t.is(
    down.message,
    `\`vagrant ssh-config\` in ${dir}/down found no running machine: The provider for this Vagrant-managed machine is reporting that it is not yet ready for SSH.`,
  );
  t.regex(down.hint!, /run `vagrant up` first/);

  process.env.PATH = join(dir, 'nowhere');
  const none = (await t.throwsAsync(vagrantInventory(dir))) as MeshbenchError;
  t.is(none.exitCode, 3);
  t.is(none.message, 'vagrant is not installed');
  t.regex(none.hint!, /scripts\/setup\.sh/);
});
