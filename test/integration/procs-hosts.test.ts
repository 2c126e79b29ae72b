// ProcessGroup and ResourceProbe on another machine (root, qemu): one debian-6.1 fleet VM
// registered as node 1. A process in a node 1 namespace (made on the VM) and a root-namespace
// process placed there by its spec both start on the VM, in cgroups under the VM's cgroup2 mount,
// listed with start times in the VM's state file; the probe reads them there; stopAll ends them
// through the place and close() leaves nothing of the group on the VM. This host is as found.
import { setTimeout as sleep } from 'node:timers/promises';
import type { Place } from '../../harness/place/index.js';
import { ResourceProbe } from '../../harness/probes/resources.js';
import { exec } from '../../harness/util/exec.js';
import { ProcessGroup, stateFilePath } from '../../harness/util/procs.js';
import { QEMU } from '../../harness/vm/boot.js';
import { cleanAround, hostSnapshot, newLabPrefix, rootTestNeeding, withFleetPlaces } from '../helpers.js';

const vmTest = await rootTestNeeding([QEMU, 'dropbear', 'dropbearkey', 'ssh']);

cleanAround();

/** The pids in a cgroup there (the started shell joins it as it starts: wait a moment for it). */
async function cgroupPids(place: Place, dir: string): Promise<string[]> {
  let text: string | undefined;
  for (let i = 0; i < 20; i++) {
    text = await place.readFile(`${dir}/cgroup.procs`);
    if (text?.trim()) break;
    await sleep(100);
  }
  return (text ?? '').split('\n').filter(Boolean);
}

vmTest('ProcessGroup on a fleet VM: cgroups, state file and probe there; stopAll ends them; close() leaves nothing there', async (t) => {
  t.timeout(180_000);
  const before = await hostSnapshot();
  const prefix = newLabPrefix();
  const ns = `${prefix}-n1`;
  await withFleetPlaces(prefix, 1, async ([vm]) => {
    await exec('ip', ['netns', 'add', ns], { place: vm });
    const g = new ProcessGroup(prefix);
    try {
      const app = await g.startAsync({ name: 'app-0', role: 'app', cmd: 'sleep', args: ['600'], netns: ns });
      const agent = await g.startAsync({ name: 'agent-node1', role: 'agent', cmd: 'sleep', args: ['600'], place: vm });
      t.is(app.place, vm, 'a node 1 namespace: node 1’s place');
      t.is(agent.place, vm, 'named by its spec');
      t.is(app.child, undefined);
      t.deepEqual(
        g.places().map((p) => p.name),
        ['local', 'node1'],
      );

      // The VM's state file lists both, with their start times (a sweep there can kill them).
      const state = JSON.parse((await vm.readFile(stateFilePath(prefix))) ?? '{}');
      t.is(state.prefix, prefix);
      t.deepEqual(state.pids, [
        { pid: app.pid, startTime: app.startTime, name: 'app-0' },
        { pid: agent.pid, startTime: agent.startTime, name: 'agent-node1' },
      ]);
      t.true(typeof app.startTime === 'number' && typeof agent.startTime === 'number');
      t.true(await vm.alive(app.pid, app.startTime));

      // Their cgroups are under the VM's cgroup2 mount, and each holds its process.
      const cg2 = (await vm.mounts()).find((m) => m.fstype === 'cgroup2')?.target;
      t.truthy(cg2, 'the VM has cgroup v2');
      t.is(await g.cgroupBaseOn(vm), `${cg2}/${prefix}`);
      for (const p of [app, agent]) {
        t.is(p.cgroup, `${cg2}/${prefix}/${p.name}`);
        t.deepEqual(await cgroupPids(vm, p.cgroup!), [String(p.pid)], p.name);
      }
      const [netOfApp, netOfNs] = await Promise.all([
        vm.exec('readlink', [`/proc/${app.pid}/ns/net`]),
        vm.exec('sh', ['-c', 'readlink /proc/self/ns/net'], { netns: ns }),
      ]);
      t.is(netOfApp.stdout, netOfNs.stdout, 'app-0 runs in the namespace');
      t.is(await g.cgroupForOn(vm, 'probe'), `${cg2}/${prefix}/probe`);
      t.true(await vm.exists(`${cg2}/${prefix}/probe`));

      // The probe reads them on the VM.
      const probe = new ResourceProbe(500);
      await probe.begin(g.procs);
      await sleep(1500);
      const r = await probe.end();
      t.deepEqual(r.processes.map((p) => p.name).sort(), ['agent-node1', 'app-0']);
      for (const p of r.processes) {
        t.true(p.rssBytes > 0 && p.rssPeakBytes >= p.rssBytes && p.pssBytes > 0, `${p.name}: ${JSON.stringify(p)}`);
        t.true(p.cpuSeconds >= 0 && p.cpuSeconds < 0.5, `${p.name} sleeps: ${p.cpuSeconds} s`);
      }
      t.true(r.windowS >= 1.5, String(r.windowS));
      t.true(r.kernel.softirqSeconds >= 0);
      t.regex(r.method, /summed over node1$/);
      t.log(`app-0 rss ${r.processes.find((p) => p.name === 'app-0')?.rssBytes} B; window ${r.windowS} s`);

      // stopAll ends both through the place; the state file there is then empty.
      await g.stopAll();
      for (const p of [app, agent]) {
        t.is(await p.exited, 128, p.name);
        t.is(p.exitSignal, 'SIGTERM', p.name);
        t.false(await vm.alive(p.pid, p.startTime), p.name);
      }
      t.deepEqual(JSON.parse((await vm.readFile(stateFilePath(prefix))) ?? '{}').pids, []);

      await g.close();
      t.false(await vm.exists(`${cg2}/${prefix}`), 'the cgroup tree is gone from the VM');
      t.false(await vm.exists(stateFilePath(prefix)), 'the state file is gone from the VM');
    } finally {
      await g.stopAll();
      await g.close();
      await exec('ip', ['netns', 'del', ns], { place: vm, allowFail: true });
    }
    t.false((await exec('ip', ['netns', 'list'], { place: vm })).stdout.includes(ns));
  });
  t.is(await hostSnapshot(), before, 'this host as found');
});
