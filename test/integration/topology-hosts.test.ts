// The topology on two machines (root, qemu): quick.yaml's cluster with node1 and node2 on two
// fleet VMs (debian-6.1, each with sshd on eth0 and eth1 on a shared L2 bridge). A management
// interface is refused before anything is built; then each VM's eth1 becomes its node's underlay
// and the client pod on VM1 reaches the echo pod on VM2 over that real L2. sweepPlace then leaves
// each VM as found: lab processes killed (by namespace, cgroup and state file, a bystander spared),
// namespaces, mounts, cgroups and files gone, eth1 back with its name and MTU, also when its node
// namespace was already deleted. This host is as found.
import { loadScenario } from '../../harness/scenario/load.js';
import { sweepPlace } from '../../harness/topology/cleanup.js';
import { buildCluster } from '../../harness/topology/graph.js';
import { clusterUp, LAB_IF_CHECK_SCRIPT, parseLabIfCheck } from '../../harness/topology/netns.js';
import { exec } from '../../harness/util/exec.js';
import { STATE_DIR } from '../../harness/util/host.js';
import { QEMU } from '../../harness/vm/boot.js';
import { cleanAround, hostSnapshot, newLabPrefix, rootTestNeeding, withFleetPlaces } from '../helpers.js';

const vmTest = await rootTestNeeding([QEMU, 'dropbear', 'dropbearkey', 'ssh', 'ping']);

cleanAround();

vmTest('hosts topology: eth1 of each VM is the underlay, a pod on VM1 pings a pod on VM2, sweepPlace gives everything back', async (t) => {
  t.timeout(120_000);
  const before = await hostSnapshot();
  const prefix = newLabPrefix();
  const t0 = performance.now();
  await withFleetPlaces(prefix, 2, async (places) => {
    const [vm1, vm2] = places;
    t.log(`fleet up in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    const sh = async (i: 0 | 1, script: string, ...args: string[]) => (await places[i].exec('sh', ['-c', script, 'sh', ...args])).stdout;
    // A non-default MTU on VM1's eth1, so giving it back is seen (the lab sets 1500 while it has it).
    await vm1.exec('ip', ['link', 'set', 'dev', 'eth1', 'mtu', '1400']);
    const link = (i: 0 | 1) => sh(i, 'ip -o link show dev eth1 | grep -o "mtu [0-9]*\\|<[^>]*>"');
    const eth1Before = await Promise.all([link(0), link(1)]);
    t.deepEqual(eth1Before, ['<BROADCAST,MULTICAST,UP,LOWER_UP>\nmtu 1400\n', '<BROADCAST,MULTICAST,UP,LOWER_UP>\nmtu 1500\n']);

    // eth0 carries the SSH session (seen from the session's own environment and its route back),
    // so it is refused, and nothing is made on either VM.
    const ck = parseLabIfCheck((await vm1.exec('sh', ['-c', LAB_IF_CHECK_SCRIPT, 'sh', 'eth0'])).stdout);
    t.like(ck, { exists: true, sshServer: '198.18.250.11', sshDev: 'eth0' });
    const bad = buildCluster(loadScenario('scenarios/quick.yaml'), prefix, { labInterfaces: { node1: 'eth0', node2: 'eth1' } });
    const e = await t.throwsAsync(clusterUp(bad));
    t.regex(e!.message, /^host node1: refusing to move eth0 into the lab: it carries the SSH connection meshbench uses \(198\.18\.250\.11\)/);
    for (const i of [0, 1] as const) t.is(await sh(i, 'ip netns list; ls /run/meshbench 2>/dev/null; true'), '', `VM${i + 1}: nothing made`);

    const c = buildCluster(loadScenario('scenarios/quick.yaml'), prefix, { labInterfaces: { node1: 'eth1', node2: 'eth1' } });
    const up = await clusterUp(c);
    t.log(
      `clusterUp on two VMs: ${up.totalMs.toFixed(0)} ms (namespaces ${up.namespacesMs.toFixed(0)}, links ${up.linksMs.toFixed(0)}, config ${up.configMs.toFixed(0)})`,
    );
    const backend = c.services[0].backends[0];
    t.is(backend.node, 'node2');
    t.is(c.client.node, 'node1');
    const ping = await exec('ping', ['-c', '1', '-W', '2', backend.ip], { netns: c.client.netns, allowFail: true });
    t.is(ping.code, 0, ping.stdout + ping.stderr);
    t.regex(ping.stdout, /1 received/);

    const ul = `${prefix}-ul`;
    const inNode1 = JSON.parse((await exec('ip', ['-j', 'addr', 'show', 'dev', ul], { netns: c.nodes[0].netns })).stdout)[0];
    t.is(inNode1.mtu, 1500);
    t.deepEqual(
      inNode1.addr_info.filter((a: { family: string }) => a.family === 'inet').map((a: { local: string; prefixlen: number }) => `${a.local}/${a.prefixlen}`),
      ['198.18.0.1/24'],
    );
    t.is(inNode1.address, '52:54:00:18:01:01', "VM1's eth1 itself");
    t.is((await vm1.exec('ip', ['link', 'show', 'dev', 'eth1'], { allowFail: true })).code, 1, 'eth1 is gone from VM1’s root namespace');
    t.deepEqual(JSON.parse((await vm1.readFile(`${STATE_DIR}/${prefix}/underlay.json`)) ?? '{}'), { node: 'node1', name: 'eth1', mtu: 1400, up: true });

    // What a run leaves for the sweep: a process in a pod namespace (VM1); on VM2 one in a lab
    // cgroup, one recorded in the state file, a bystander, a bpffs under the state directory with a program attached to the lab cgroup, a
    // wireguard-go socket; and node2's namespace already deleted (eth1 comes back as P-ul).
    const cg = (await vm2.mounts()).find((m) => m.fstype === 'cgroup2')!.target;
    await vm2.mkdir(`${cg}/${prefix}/app`);
    const [inPod, inCgroup, recorded, bystander] = await Promise.all([
      vm1.start({ cmd: 'sleep', args: ['600'], netns: c.client.netns }),
      vm2.start({ cmd: 'sleep', args: ['600'], cgroup: `${cg}/${prefix}/app` }),
      vm2.start({ cmd: 'sleep', args: ['600'] }),
      vm2.start({ cmd: 'sleep', args: ['600'] }),
    ]);
    await vm2.writeFile(`${STATE_DIR}/${prefix}.json`, JSON.stringify({ prefix, pids: [{ pid: recorded.pid, startTime: recorded.startTime, name: 'rec' }] }));
    await sh(
      1,
      [
        'mkdir -p "$1/bpffs" /var/run/wireguard && mount -t bpf bpf "$1/bpffs"',
        'bpftool prog loadall "$3/bpf/build/sock_lb.o" "$1/bpffs/lb" pinmaps "$1/bpffs/lb/maps"',
        'bpftool cgroup attach "$4/$2/app" connect4 pinned "$1/bpffs/lb/sock4_connect" multi',
        ': > "/var/run/wireguard/$2-wg2" && ip netns del "$2-n2"',
      ].join(' && '),
      `${STATE_DIR}/${prefix}`,
      prefix,
      vm2.root,
      cg,
    );

    const reports = [await sweepPlace(prefix, vm1), await sweepPlace(prefix, vm2)];
    t.log(`sweepPlace: ${JSON.stringify(reports)}`);
    t.like(reports[0], { processes: 1, namespaces: 2, interfaces: 1 });
    t.like(reports[1], { processes: 2, namespaces: 1, cgroups: 1, bpfPrograms: 1, interfaces: 1 });
    t.false(await vm1.alive(inPod.pid, inPod.startTime));
    t.false(await vm2.alive(inCgroup.pid, inCgroup.startTime));
    t.false(await vm2.alive(recorded.pid, recorded.startTime));
    t.true(await vm2.alive(bystander.pid, bystander.startTime), 'not the lab’s: left alone');
    await vm2.kill(bystander.pid, { startTime: bystander.startTime });

    const left = `ip netns list | grep "^$1-"; ls -d /run/meshbench/"$1"* /var/run/wireguard/"$1"* "$2/$1" 2>/dev/null; grep " /run/meshbench/$1" /proc/self/mounts; ip -o link | grep -o "$1-[a-z0-9]*"; true`;
    for (const i of [0, 1] as const) {
      t.is(
        await sh(i, left, prefix, i === 0 ? ((await vm1.mounts()).find((m) => m.fstype === 'cgroup2')?.target ?? '/sys/fs/cgroup') : cg),
        '',
        `VM${i + 1}: nothing of the lab left`,
      );
      t.is(await link(i), eth1Before[i], `VM${i + 1}: eth1 back with its MTU, up`);
    }
    t.deepEqual(await sweepPlace(prefix, vm2), { processes: 0, namespaces: 0, cgroups: 0, bpfPrograms: 0, tmpDirs: 0, interfaces: 0 }, 'safe to repeat');
  });
  t.log(`whole test ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  t.is(await hostSnapshot(), before, 'this host as found');
});
