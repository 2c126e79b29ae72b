// The ebpf dataplane with each node on its own machine (root, qemu, TCG here): the quick
// scenario's node1 and node2 on two fleet VMs (Debian 6.1 kernels, eth1 on a bridge between them
// moved into the node namespaces as the lab's underlay), deployed through the places as a run
// does. A request from the client pod on VM1 to the echo VIP is balanced by VM1's socket LB and
// carried to the backend on VM2 by kernel WireGuard; mb-flowd on each VM writes its flow records
// there. The case directory is under /dev/shm, which the guests (whose root is this host's, shared
// read-only) do not see: what a VM needs must have been pushed. After teardown no bpffs mount or
// run cgroup is left on either VM; after the place sweeps, nothing of the prefix.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { bpffsDir, lbPins } from '../../harness/dataplanes/ebpf/family.js';
import { ebpf } from '../../harness/dataplanes/ebpf/ebpf.js';
import type { Deployed } from '../../harness/dataplanes/types.js';
import { makeDir, pullDir, type Place } from '../../harness/place/index.js';
import { loadScenario } from '../../harness/scenario/load.js';
import { sweepPlace } from '../../harness/topology/cleanup.js';
import { buildCluster } from '../../harness/topology/graph.js';
import { clusterUp } from '../../harness/topology/netns.js';
import { exec } from '../../harness/util/exec.js';
import { waitListening } from '../../harness/util/net.js';
import { ProcessGroup } from '../../harness/util/procs.js';
import { QEMU } from '../../harness/vm/boot.js';
import { serverArgs } from '../../harness/workloads/fortio-server.js';
import { cleanAround, hostSnapshot, newLabPrefix, rootTestNeeding, withFleetPlaces } from '../helpers.js';

const vmTest = await rootTestNeeding([QEMU, 'dropbear', 'dropbearkey', 'ssh']);

cleanAround();

/** What of the prefix a machine still has: bpffs mounts, the run cgroup, state, namespaces. */
async function leftovers(place: Place, prefix: string): Promise<{ mounts: string[]; cgroup: boolean; state: string[]; netns: string[] }> {
  const cg = (await place.mounts()).find((m) => m.fstype === 'cgroup2')?.target ?? '/sys/fs/cgroup';
  return {
    mounts: (await place.mounts()).filter((m) => m.target.includes(prefix) || m.source.includes(prefix)).map((m) => m.target),
    cgroup: await place.exists(join(cg, prefix)),
    state: (await place.list('/run/meshbench')).filter((f) => f.startsWith(prefix)),
    netns: (await place.exec('ip', ['netns', 'list'])).stdout.split('\n').filter((l) => l.startsWith(prefix)),
  };
}

vmTest('ebpf across two VMs: socket LB on VM1, kernel WireGuard to the backend on VM2, flows on each; teardown leaves nothing on either', async (t) => {
  t.timeout(300_000);
  const before = await hostSnapshot();
  const prefix = newLabPrefix();
  const caseDir = mkdtempSync('/dev/shm/mbebpfhosts-');
  try {
    await withFleetPlaces(prefix, 2, async (places) => {
      const s = loadScenario('scenarios/quick.yaml');
      const c = buildCluster(s, prefix, { labInterfaces: { node1: 'eth1', node2: 'eth1' } });
      const eth1Before = await Promise.all(places.map(async (p) => (await p.exec('ip', ['-br', 'link', 'show', 'eth1'])).stdout.split(/\s+/)[0]));
      const procs = new ProcessGroup(prefix, caseDir);
      const ctx = { cluster: c, scenario: s, procs, caseDir, chain: ['echo'], log: (m: string) => t.log(m) };
      let d: Deployed | undefined;
      try {
        // As a run does: the case directory on every machine, then the cluster and the dataplane.
        for (const p of places) await makeDir(p, caseDir);
        await clusterUp(c);
        const t0 = performance.now();
        d = await ebpf.deploy(ctx);
        t.log(`deploy on two VMs: ${Math.round(performance.now() - t0)} ms`);

        const echo = c.services.find((x) => x.name === 'echo')!;
        const backend = echo.backends[0];
        t.is(backend.node, 'node2');
        t.is(c.client.node, 'node1');
        const srv = await procs.startAsync({
          name: `app-${backend.name}`,
          role: 'app',
          cmd: `${places[1].root}/.tools/bin/fortio`,
          args: serverArgs(echo, undefined),
          netns: backend.netns,
          logFile: join(caseDir, `app-${backend.name}.log`),
        });
        t.is(srv.place, places[1]);
        await waitListening(backend.netns, echo.targetPort, 30_000, srv);

        // The client's request: below VM1's run cgroup, so VM1's socket LB rewrites the VIP.
        const cgroup = await procs.cgroupForOn(places[0], 'test');
        t.truthy(cgroup);
        const url = `http://${echo.vip}:${echo.port}/`;
        const r = await exec(`${places[0].root}/.tools/bin/fortio`, ['curl', '-loglevel', 'error', '-timeout', '5s', url], {
          netns: c.client.netns,
          cgroup,
          allowFail: true,
        });
        t.is(r.code, 0, r.stdout + r.stderr);
        t.regex(r.stdout + r.stderr, /HTTP\/1\.1 200/);
        // VM1's LB counted it (its own maps, in its own bpffs); VM2's LB saw no connect.
        const hits = async (p: Place) => {
          const dump = JSON.parse((await p.exec('bpftool', ['-j', 'map', 'dump', 'pinned', lbPins(prefix).map('mb_lb4_hits')])).stdout) as {
            values: { value: string[] }[];
          }[];
          return dump.flatMap((e) => e.values).reduce((a, v) => a + v.value.reduceRight((x, b) => x * 256 + parseInt(b, 16), 0), 0);
        };
        t.is(await hits(places[0]), 1, "VM1's socket LB balanced the request");
        t.is(await hits(places[1]), 0);

        // Kernel WireGuard on both (Debian 6.1 has the module): a wireguard link, no wireguard-go.
        t.is(d.provenance.wireguard.engine, 'kernel');
        t.is(d.provenance.wireguard.version, '6.1.0-50-amd64');
        t.regex(String(d.provenance.ebpf.version), /; kernel 6\.1\.0-50-amd64$/);
        for (const [i, p] of places.entries()) {
          t.regex((await p.exec('ip', ['-d', 'link', 'show', `${prefix}-wg${i + 1}`], { netns: c.nodes[i].netns })).stdout, /\bwireguard\b/);
          t.is((await p.exec('pidof', ['wireguard-go'], { allowFail: true })).stdout.trim(), '', `no wireguard-go on ${p.name}`);
        }
        t.false(procs.procs.some((p) => p.role === 'wireguard'));
        t.deepEqual(
          procs.procs
            .filter((p) => p.role === 'agent')
            .map((p) => [p.name, p.place.name])
            .sort(),
          [
            ['flowd-node1', places[0].name],
            ['flowd-node2', places[1].name],
          ],
          'one mb-flowd per node, on its machine',
        );

        const k = await d.kernelResources!();
        t.log(`kernel: ${JSON.stringify(k)}`);
        t.true((k.bpfMapBytes ?? 0) > 0);
        t.true((k.bpfRunCount ?? 0) > 0, 'programs ran (mb-flowd turned run-time stats on)');
        t.true((k.wireguardTxBytes ?? 0) > 0, 'the request went through WireGuard');

        // mb-flowd wrote its records on each VM; pulled back here they show the request on both nodes.
        await sleep(600);
        for (const p of places) await pullDir(p, join(caseDir, 'flows'));
        const records = (node: string) =>
          readFileSync(join(caseDir, 'flows', `${node}.jsonl`), 'utf8')
            .split('\n')
            .filter(Boolean)
            .map((l) => JSON.parse(l) as { destination: { ip: string; port: number } });
        for (const node of ['node1', 'node2'])
          t.true(
            records(node).some((f) => f.destination.ip === backend.ip && f.destination.port === echo.targetPort),
            `${node} saw the connection to the backend`,
          );
        t.truthy(readFileSync(join(caseDir, 'flows', 'identities.json'), 'utf8'), "the controller's identities stay");
      } finally {
        await d?.beforeStop?.();
        await procs.stopAll();
        await ebpf.teardown(ctx);
        await procs.close();
      }
      // The dataplane's own teardown (and the process group's close) removed its mounts and cgroups.
      for (const p of places) {
        const l = await leftovers(p, prefix);
        t.deepEqual(
          l.mounts.filter((m) => !m.startsWith('/run/netns/')),
          [],
          `${p.name}: no bpffs left by teardown (the namespaces go with the sweep)`,
        );
        t.false(await p.exists(join(bpffsDir(prefix), 'lb')), `${p.name}: no pins left`);
        t.false(l.cgroup, `${p.name}: no run cgroup left`);
      }
      for (const p of places) {
        await sweepPlace(prefix, p);
        await p.exec('rm', ['-rf', '--', caseDir]);
      }
      for (const [i, p] of places.entries()) {
        t.deepEqual(await leftovers(p, prefix), { mounts: [], cgroup: false, state: [], netns: [] }, `${p.name}: nothing of ${prefix}`);
        t.is((await p.exec('ip', ['-br', 'link', 'show', 'eth1'])).stdout.split(/\s+/)[0], eth1Before[i], `${p.name}: eth1 is back`);
      }
    });
  } finally {
    rmSync(caseDir, { recursive: true, force: true });
  }
  t.is(await hostSnapshot(), before, 'this host as found');
});
