// The hosts backend's test machines for real (root, qemu): a fleet of two debian-6.1 VMs running
// dropbear, on a bridge inside one lab namespace, driven through the SSH runner as the backend
// will drive real machines: commands, a ping between them, a remote process started, probed
// from its /proc and killed by pid, an unreachable host as E_ENV. Then stop() leaves nothing:
// no qemu, no fleet namespace, no tap, no keys, the root namespace as found. A fleet that does
// not come up in time is removed the same way.
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { release, tmpdir } from 'node:os';
import { join } from 'node:path';
import type { MeshbenchError } from '../../harness/errors.js';
import { hostsForNodes, hostTarget, loadInventory, renderInventory } from '../../harness/hosts/inventory.js';
import { SshRunner } from '../../harness/hosts/ssh.js';
import { exec } from '../../harness/util/exec.js';
import { STATE_DIR } from '../../harness/util/host.js';
import { QEMU } from '../../harness/vm/boot.js';
import { startFleet } from '../../harness/vm/fleet.js';
import { cleanAround, hostSnapshot, labNetns, newLabPrefix, rootTestNeeding } from '../helpers.js';

const fleetTest = await rootTestNeeding([QEMU, 'dropbear', 'dropbearkey', 'ssh']);

cleanAround();

/** Everything of the fleet `prefix` still on the host: processes naming it, namespaces, root-namespace links, state files. */
async function leftovers(prefix: string): Promise<string[]> {
  const out: string[] = [];
  for (const d of readdirSync('/proc').filter((x) => /^\d+$/.test(x))) {
    try {
      const cmd = readFileSync(`/proc/${d}/cmdline`, 'utf8').replace(/\0/g, ' ');
      if (cmd.includes(`${prefix}-`) && Number(d) !== process.pid) out.push(`process ${d}: ${cmd.slice(0, 120)}`);
    } catch {
      /* exited */
    }
  }
  out.push(...(await labNetns()).filter((n) => n.startsWith(prefix)).map((n) => `netns ${n}`));
  const links = await exec('ip', ['-o', 'link'], { allowFail: true });
  out.push(
    ...links.stdout
      .split('\n')
      .filter((l) => l.includes(`${prefix}-`))
      .map((l) => `link ${l.slice(0, 60)}`),
  );
  if (existsSync(join(STATE_DIR, prefix))) out.push(`state ${join(STATE_DIR, prefix)}`);
  return out;
}

fleetTest('a fleet of two VMs with sshd: commands, ping, a remote process by pid, unreachable → E_ENV; stop leaves nothing', async (t) => {
  t.timeout(240_000);
  const before = await hostSnapshot();
  const prefix = newLabPrefix();
  const fleet = await startFleet({ prefix, kernel: 'debian-6.1', count: 2, memoryMiB: 768 });
  try {
    t.log(`${fleet.accel}: two VMs booted with sshd answering in ${fleet.bootMs} ms`);
    t.is(fleet.netns, `${prefix}-fleet`);
    t.deepEqual(
      fleet.vms.map((v) => [v.name, v.address]),
      [
        ['node1', '198.18.250.11'],
        ['node2', '198.18.250.12'],
      ],
    );
    // The fleet as an inventory file, read back: the backend reaches the VMs the way it reaches machines.
    const dir = mkdtempSync(join(tmpdir(), 'mbfleet-test-'));
    writeFileSync(join(dir, 'inventory.yaml'), renderInventory(fleet.inventory()));
    const hosts = hostsForNodes(loadInventory(join(dir, 'inventory.yaml')), ['node1', 'node2']);
    rmSync(dir, { recursive: true });
    t.deepEqual(
      hosts.map((h) => [h.netns, h.labInterface]),
      [
        [fleet.netns, 'eth1'],
        [fleet.netns, 'eth1'],
      ],
    );
    const [h1, h2] = hosts.map((h) => fleet.ssh.host(hostTarget(h)));

    for (const [i, h] of [h1, h2].entries()) {
      const r = await h.run(['sh', '-c', 'uname -r; uname -n; ip -o link show eth1 | grep -c UP']);
      t.deepEqual(r.stdout.trim().split('\n'), [fleet.kernel.release, `node${i + 1}`, '1'], "the Debian kernel, the VM's name, its lab NIC up");
      t.not(fleet.kernel.release, release(), 'not the host kernel');
    }
    const ping = await h1.run(['ping', '-c', '2', '-W', '3', fleet.vms[1].address]);
    t.regex(ping.stdout, /2 received/);

    // A long-running remote process: started, probed from that machine's /proc, killed by pid.
    const p = await h1.start(['sleep', '600']);
    t.true(p.pid > 1);
    const status = await h1.readFile(`/proc/${p.pid}/status`);
    t.regex(status ?? '', /^Name:\s+sleep$/m);
    t.regex(status ?? '', /^State:\s+S/m);
    t.true(await h1.alive(p));
    t.true(await h1.kill(p, { graceMs: 2000 }));
    t.false(await h1.alive(p.pid));
    t.is(await h1.readFile(`/proc/${p.pid}/status`), undefined);
    t.false(await h1.kill(p), 'killing it again finds nothing');

    // A command that fails is E_RUN with its exit; one that may fail gives its code.
    t.is((await h2.run(['sh', '-c', 'exit 7'], { allowFail: true })).code, 7);
    t.is((await t.throwsAsync(h2.run(['false'])))?.message.split('\n')[0], 'command on node2 failed (exit 1): false');

    // Unreachable: an address on the fleet's network with no machine, and a closed port.
    for (const bad of [
      { ...hostTarget(hosts[0]), name: 'ghost', address: '198.18.250.99' },
      { ...hostTarget(hosts[0]), name: 'closed', port: 2222 },
    ]) {
      const e = (await t.throwsAsync(fleet.ssh.host(bad).run(['true']))) as MeshbenchError;
      t.is(e.code, 'E_ENV', e.message);
      t.is(e.exitCode, 3);
      t.regex(e.message, new RegExp(`^host ${bad.name} \\(root@${bad.address}:${bad.port} from namespace ${fleet.netns}\\) is unreachable over SSH`));
    }

    // One command's round trip, over the shared connection and with a new one each time.
    const time = async (r: SshRunner, n: number) => {
      const h = r.host(hostTarget(hosts[0]));
      await h.run(['true']);
      const t0 = performance.now();
      for (let i = 0; i < n; i++) await h.run(['true']);
      return (performance.now() - t0) / n;
    };
    const plain = new SshRunner({ multiplex: false });
    const mux = await time(fleet.ssh, 10);
    const noMux = await time(plain, 5);
    await plain.close();
    t.log(`ssh round trip: ${mux.toFixed(0)} ms multiplexed, ${noMux.toFixed(0)} ms with a new connection each`);
  } finally {
    await fleet.stop();
  }
  await fleet.stop(); // safe to repeat
  t.deepEqual(await leftovers(prefix), []);
  t.false(existsSync(join(STATE_DIR, prefix, 'fleet')), 'keys removed');
  t.false(existsSync(fleet.ssh.controlDir!), 'control sockets removed');
  t.is(await hostSnapshot(), before, 'root namespace as found');
});

fleetTest('a fleet that does not come up in time is removed; a bad kernel name builds nothing', async (t) => {
  t.timeout(120_000);
  const prefix = newLabPrefix();
  const e = (await t.throwsAsync(startFleet({ prefix, kernel: 'debian-6.1', count: 1, memoryMiB: 768, bootTimeoutMs: 1500 }))) as MeshbenchError;
  t.is(e.code, 'E_RUN');
  t.regex(e.message, /sshd did not answer within 1500 ms/);
  t.deepEqual(await leftovers(prefix), []);
  const bad = (await t.throwsAsync(startFleet({ prefix, kernel: 'debian-0', count: 2 }))) as MeshbenchError;
  t.is(bad.code, 'E_INPUT');
  t.deepEqual(await leftovers(prefix), []);
});
