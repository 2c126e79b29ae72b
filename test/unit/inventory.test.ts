// The hosts backend's pure parts, rootless: inventory files (good ones with their defaults and
// paths, bad ones with every problem at its `file:line`), inventories made from `vagrant
// ssh-config` output, nodes matched to hosts, and the SSH runner's argv: options, quoting that
// survives a real shell unchanged, and which ssh failures mean an unreachable host (E_ENV).
import test from 'ava';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { MeshbenchError } from '../../harness/errors.js';
import { hostsForNodes, hostTarget, inventoryFromSshConfig, loadInventory, parseInventory, renderInventory } from '../../harness/hosts/inventory.js';
import { remoteCommand, shq, sshArgv, sshFailure, type SshTarget } from '../../harness/hosts/ssh.js';
import { fleetGuestCommand, fleetMac, fleetNames } from '../../harness/vm/fleet.js';

const fx = (f: string) => `test/fixtures/inventories/${f}`;

function inputErr(t: import('ava').ExecutionContext, fn: () => unknown): MeshbenchError {
  const e = t.throws(fn) as MeshbenchError;
  t.true(e instanceof MeshbenchError, String(e));
  t.is(e.code, 'E_INPUT');
  t.is(e.exitCode, 2);
  return e;
}

test('a good inventory: every field, paths relative to the file, defaults', (t) => {
  const inv = loadInventory(fx('good.yaml'));
  t.deepEqual(
    inv.hosts.map((h) => [h.name, h.address, h.user, h.port, h.hostKeyChecking, h.labInterface, h.line]),
    [
      ['node1', '198.18.250.11', 'root', 22, 'strict', 'eth1', 4],
      ['node2', 'lab-b.example.net', 'vagrant', 2222, 'accept-new', 'enp7s0', 11],
    ],
  );
  t.is(inv.hosts[0].identityFile, resolve('test/fixtures/inventories/keys/placeholder-key'));
  t.is(inv.hosts[0].knownHostsFile, resolve('test/fixtures/inventories/keys/known_hosts'));
  // A non-root user goes through sudo unless the inventory says otherwise.
  t.deepEqual(hostTarget(inv.hosts[1]), {
    name: 'node2',
    address: 'lab-b.example.net',
    user: 'vagrant',
    port: 2222,
    identityFile: inv.hosts[1].identityFile,
    knownHostsFile: undefined,
    hostKeyChecking: 'accept-new',
    netns: undefined,
    sudo: undefined,
  });
  const min = loadInventory(fx('minimal.yaml')).hosts[0];
  t.like(min, { user: 'root', port: 22, hostKeyChecking: 'strict', identityFile: undefined, labInterface: undefined });
});

test('bad inventories: every problem as file:line, exit 2', (t) => {
  const f = (name: string) => `test/fixtures/inventories/${name}`;
  t.deepEqual(inputErr(t, () => loadInventory(fx('bad-fields.yaml'))).details, [
    `${f('bad-fields.yaml')}:5: hosts.0.port: Too big: expected number to be <=65535`,
    `${f('bad-fields.yaml')}:6: hosts.1.name: must be a lowercase DNS label (a-z, 0-9, "-", at most 32 characters)`,
    `${f('bad-fields.yaml')}:8: hosts.1.labInterface: must be an interface name (at most 15 characters of A-Z a-z 0-9 _ . -)`,
    `${f('bad-fields.yaml')}:9: hosts.2: missing required key "address"`,
    // An address ssh would read as an option is refused.
    `${f('bad-fields.yaml')}:12: hosts.3.address: must be a host name or an IP address`,
    `${f('bad-fields.yaml')}:13: hosts.3.identityfile: unknown key(s) "identityfile"`,
    `${f('bad-fields.yaml')}:16: hosts.4.hostKeyChecking: Invalid option: expected one of "strict"|"accept-new"|"off"`,
  ]);
  t.deepEqual(inputErr(t, () => loadInventory(fx('bad-duplicate.yaml'))).details, [
    `${f('bad-duplicate.yaml')}:6: hosts.1.address: "198.18.250.11:22" is also hosts.0: one machine per node`,
    `${f('bad-duplicate.yaml')}:7: hosts.2.name: "node1" is listed twice (also hosts.0)`,
    `${f('bad-duplicate.yaml')}:9: hosts.2.identityFile: ${JSON.stringify(resolve(f('keys/no-such-key')))}: file not found`,
  ]);
  t.deepEqual(inputErr(t, () => loadInventory(fx('bad-kind.yaml'))).details, [`${f('bad-kind.yaml')}:2: not an inventory file: kind must be Inventory`]);
  t.deepEqual(inputErr(t, () => loadInventory(fx('bad-empty.yaml'))).details, [`${f('bad-empty.yaml')}:2: hosts: must list at least one host`]);
  const syntax = inputErr(t, () => loadInventory(fx('bad-syntax.yaml')));
  t.regex(syntax.details[0], /^test\/fixtures\/inventories\/bad-syntax\.yaml:\d+: /);
  t.is(syntax.message, `${f('bad-syntax.yaml')} is not a valid inventory`);
  t.deepEqual(inputErr(t, () => loadInventory(fx('missing.yaml'))).details, [`${f('missing.yaml')}:1: file not found`]);
  t.deepEqual(inputErr(t, () => loadInventory(fx('keys'))).details, [`${f('keys')}:1: is a directory, not a regular file`]);
});

test('vagrant ssh-config output becomes an inventory (quoted paths, no host key checking)', (t) => {
  const inv = inventoryFromSshConfig(readFileSync(fx('vagrant-ssh-config.txt'), 'utf8'), { labInterface: 'eth1', checkFiles: false });
  t.deepEqual(
    inv.hosts.map((h) => [h.name, h.address, h.user, h.port, h.identityFile, h.hostKeyChecking, h.knownHostsFile, h.labInterface, h.line]),
    [
      ['node1', '192.168.121.23', 'vagrant', 22, '/work/.vagrant/machines/node1/libvirt/private_key', 'off', '/dev/null', 'eth1', 1],
      ['node2', '192.168.121.87', 'vagrant', 22, '/work/.vagrant/machines/node2/libvirt/private key', 'off', '/dev/null', 'eth1', 14],
    ],
  );
  // Missing keys are reported at their IdentityFile line.
  t.deepEqual(inputErr(t, () => inventoryFromSshConfig(readFileSync(fx('vagrant-ssh-config.txt'), 'utf8'))).details, [
    'vagrant ssh-config:8: hosts.0.identityFile: "/work/.vagrant/machines/node1/libvirt/private_key": file not found',
    'vagrant ssh-config:21: hosts.1.identityFile: "/work/.vagrant/machines/node2/libvirt/private key": file not found',
  ]);
  t.deepEqual(inputErr(t, () => inventoryFromSshConfig(readFileSync(fx('bad-ssh-config.txt'), 'utf8'), { source: 'bad-ssh-config.txt' })).details, [
    'bad-ssh-config.txt:4: Host "node1": port: Too big: expected number to be <=65535',
    'bad-ssh-config.txt:6: Host "Node_2": name: must be a lowercase DNS label (a-z, 0-9, "-", at most 32 characters)',
  ]);
  t.deepEqual(inputErr(t, () => inventoryFromSshConfig('\n# nothing\n')).details, [
    'vagrant ssh-config:1: no "Host" entries (is any machine up? run `vagrant up` first)',
  ]);
});

test('rendered inventories read back the same', (t) => {
  const inv = loadInventory(fx('good.yaml'));
  const back = parseInventory(renderInventory(inv), fx('rendered.yaml'));
  t.deepEqual(
    back.hosts.map(({ line: _l, ...h }) => h),
    inv.hosts.map(({ line: _l, ...h }) => h),
  );
});

test('each topology node needs a host of its name', (t) => {
  const inv = loadInventory(fx('good.yaml'));
  t.deepEqual(
    hostsForNodes(inv, ['node2', 'node1']).map((h) => h.address),
    ['lab-b.example.net', '198.18.250.11'],
  );
  const e = inputErr(t, () => hostsForNodes(inv, ['node1', 'node2', 'node3']));
  t.is(e.message, `${fx('good.yaml')} has no host for node "node3"`);
  t.deepEqual(e.details, [`${fx('good.yaml')}:4: hosts: the topology's nodes are node1, node2, node3; the inventory names node1, node2`]);
});

const target: SshTarget = {
  name: 'node1',
  address: '198.18.250.11',
  user: 'root',
  port: 2222,
  identityFile: '/k/id',
  knownHostsFile: '/k/known_hosts',
  netns: 'mbab12-fleet',
};

test('ssh argv: no user config, no agent, batch mode, strict host keys, multiplexing, `--` before the host', (t) => {
  const a = sshArgv(target, 'uname -r', { connectTimeoutS: 4, controlPath: '/tmp/mbssh-x/%C', persistS: 30 });
  const opts = a.filter((_, i) => a[i - 1] === '-o');
  t.deepEqual(a.slice(0, 8), ['-F', '/dev/null', '-p', '2222', '-l', 'root', '-i', '/k/id']);
  for (const o of [
    'IdentitiesOnly=yes',
    'BatchMode=yes',
    'IdentityAgent=none',
    'ForwardAgent=no',
    'ConnectTimeout=4',
    'StrictHostKeyChecking=yes',
    'UserKnownHostsFile=/k/known_hosts',
    'GlobalKnownHostsFile=/dev/null',
    'ControlMaster=auto',
    'ControlPath=/tmp/mbssh-x/%C',
    'ControlPersist=30',
  ])
    t.true(opts.includes(o), o);
  t.deepEqual(a.slice(-3), ['--', '198.18.250.11', 'uname -r']);
  const plain = sshArgv({ ...target, hostKeyChecking: 'off', identityFile: undefined }, 'true', { connectTimeoutS: 4 });
  t.true(plain.includes('ControlMaster=no'));
  t.false(plain.includes('-i'));
  t.true(plain.includes('StrictHostKeyChecking=no') && plain.includes('UserKnownHostsFile=/dev/null'));
  t.true(sshArgv({ ...target, hostKeyChecking: 'accept-new' }, 'true', { connectTimeoutS: 4 }).includes('StrictHostKeyChecking=accept-new'));
});

test('remote commands: every argument reaches the remote shell unchanged; sudo for other users', (t) => {
  const argv = ['printf', '%s\\n', 'a b', "it's", '$(id)', '`id`', '; rm -rf /', '"q"', '*', '', 'x\ny', '-n', '~'];
  // What a POSIX shell (the remote one) makes of the command line.
  const out = execFileSync('sh', ['-c', remoteCommand(argv)], { encoding: 'utf8' });
  t.deepEqual(out.split('\n').slice(0, -1), ['a b', "it's", '$(id)', '`id`', '; rm -rf /', '"q"', '*', '', 'x', 'y', '-n', '~']);
  t.is(remoteCommand(['ip', '-br', 'link']), 'ip -br link');
  t.is(remoteCommand(['id', '-u'], true), 'sudo -n -- id -u');
  t.is(shq("a'b"), `'a'\\''b'`);
  t.throws(() => remoteCommand([]));
});

test('ssh failures: unreachable, refused key and unknown host key are E_ENV naming the host; a command exiting 255 is not', (t) => {
  const unreachable = sshFailure(target, 'ssh: connect to host 198.18.250.11 port 2222: No route to host\n');
  t.is(unreachable?.code, 'E_ENV');
  t.is(unreachable?.exitCode, 3);
  t.is(
    unreachable?.message,
    'host node1 (root@198.18.250.11:2222 from namespace mbab12-fleet) is unreachable over SSH: ssh: connect to host 198.18.250.11 port 2222: No route to host',
  );
  t.regex(unreachable?.hint ?? '', /reachable from here .* sshd runs there/);
  t.regex(sshFailure(target, 'ssh: connect to host x port 22: Connection timed out')?.message ?? '', /unreachable/);
  t.regex(sshFailure(target, 'root@198.18.250.11: Permission denied (publickey).')?.message ?? '', /refused the SSH login/);
  t.regex(
    sshFailure(target, 'No ED25519 host key is known for [198.18.250.11]:2222 and you have requested strict checking.\nHost key verification failed.')
      ?.message ?? '',
    /host key/,
  );
  t.is(sshFailure(target, 'some tool: failed\n'), undefined);
});

test('fleet: names fit 15 characters and carry the prefix; the guest finds its NICs by MAC', (t) => {
  for (const n of [
    fleetNames.netns('mbab12'),
    fleetNames.bridge('mbab12'),
    fleetNames.labBridge('mbab12'),
    fleetNames.tap('mbab12', 32),
    fleetNames.labTap('mbab12', 32),
  ]) {
    t.regex(n, /^mbab12-/);
    t.true(n.length <= 15, n);
  }
  t.is(fleetMac(10, 1), '52:54:00:18:01:0a');
  const cmd = fleetGuestCommand({ name: 'node2', address: '198.18.250.12', mac: fleetMac(2, 0), labMac: fleetMac(2, 1) });
  t.regex(cmd, /52:54:00:18:00:02\) ip link set "\$\{d##\*\/\}" name mbmgmt/);
  t.regex(cmd, /ip addr add 198\.18\.250\.12\/24 dev eth0/);
  t.regex(cmd, /exec dropbear -F -E -s/);
});
