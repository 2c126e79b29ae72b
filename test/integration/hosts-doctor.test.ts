// `meshbench doctor --hosts` for real (root, qemu): the CLI runs doctor over SSH on a fleet of two
// debian-6.1 VMs (dropbear, inside the fleet's lab namespace; each guest runs this checkout's
// built CLI, seen through its read-only root). Both hosts answer with the 6.1 kernel and kernel
// WireGuard; a host where nothing listens is exit 3 naming it, with the reachable host still
// reported; a broken inventory is exit 2 at its line before any ssh runs (an ssh wrapper on the
// CLI's PATH records every call). After each CLI run no ssh of its own is left, nor its control
// directory; after the fleet stops, nothing of it is left and the root namespace is as found.
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { renderInventory } from '../../harness/hosts/inventory.js';
import type { Check } from '../../harness/probes/host.js';
import { exec, which } from '../../harness/util/exec.js';
import { PROJECT_ROOT } from '../../harness/util/tools.js';
import { QEMU } from '../../harness/vm/boot.js';
import { startFleet } from '../../harness/vm/fleet.js';
import { cleanAround, cli, hostSnapshot, newLabPrefix, rootTestNeeding } from '../helpers.js';

const fleetTest = await rootTestNeeding([QEMU, 'dropbear', 'dropbearkey', 'ssh']);

cleanAround();

/** Processes (other than this one) whose command line names `s`. */
function processesNaming(s: string): string[] {
  const out: string[] = [];
  for (const d of readdirSync('/proc').filter((x) => /^\d+$/.test(x))) {
    try {
      const cmd = readFileSync(`/proc/${d}/cmdline`, 'utf8').replace(/\0/g, ' ');
      if (cmd.includes(s) && Number(d) !== process.pid) out.push(`${d}: ${cmd.slice(0, 160)}`);
    } catch {
      /* exited */
    }
  }
  return out;
}
const sshDirs = () => readdirSync(tmpdir()).filter((n) => n.startsWith('mbssh-'));

fleetTest(
  'doctor --hosts: two VMs report 6.1 and kernel WireGuard; an unreachable host is exit 3 by name; a broken inventory is exit 2 before ssh',
  async (t) => {
    t.timeout(300_000);
    const t0 = Date.now();
    // The guests run the built CLI of this checkout (CI's set-up builds it).
    if (!existsSync(join(PROJECT_ROOT, 'dist', 'harness', 'cli', 'main.js'))) await exec('npm', ['run', 'build'], { timeoutMs: 180_000 });
    const dir = mkdtempSync(join(tmpdir(), 'mbhd-test-'));
    // An ssh on the CLI's PATH that logs each call, then runs the real one.
    const bin = join(dir, 'bin');
    const calls = join(dir, 'ssh-calls');
    mkdirSync(bin);
    writeFileSync(join(bin, 'ssh'), `#!/bin/sh\necho "$*" >> '${calls}'\nexec '${await which('ssh')}' "$@"\n`);
    chmodSync(join(bin, 'ssh'), 0o755);
    const wrap = ['env', `PATH=${bin}:${process.env.PATH}`];
    const before = await hostSnapshot();
    const prefix = newLabPrefix();

    // Bad input first: nothing needs to be up for it, and nothing may be tried.
    writeFileSync(join(dir, 'broken.yaml'), `kind: Inventory\nhosts:\n  - name: node1\n    address: ${'198.18.250.11'}\n    meshbenchDir: relative/dir\n`);
    const bad = await cli(['doctor', '--hosts', join(dir, 'broken.yaml'), '--json'], { wrap });
    t.is(bad.code, 2, bad.stderr);
    t.true(bad.stderr.includes(`${join(dir, 'broken.yaml')}:5: hosts.0.meshbenchDir: must be an absolute path on that machine`), bad.stderr);
    t.is(bad.stdout, '');
    t.false(existsSync(calls), 'no ssh attempted for a broken inventory');

    const fleet = await startFleet({ prefix, kernel: 'debian-6.1', count: 2, memoryMiB: 768 });
    const fleetDirs = sshDirs();
    /** After a CLI run: no ssh of the CLI's own (the fleet's runner aside), and no control directory of its. */
    const cliLeftovers = () => [
      ...processesNaming(prefix).filter((p) => !p.includes(fleet.ssh.controlDir!) && !/qemu-system/.test(p)),
      ...sshDirs().filter((d) => !fleetDirs.includes(d)),
    ];
    try {
      t.log(`${fleet.accel}: two VMs booted with sshd answering in ${(fleet.bootMs / 1000).toFixed(1)} s`);
      const inv = fleet.inventory();
      const good = join(dir, 'fleet.yaml');
      writeFileSync(good, renderInventory(inv));

      const t1 = Date.now();
      const r = await cli(['doctor', '--hosts', good, '--json'], { wrap, timeoutMs: 240_000 });
      t.log(`doctor --hosts on two TCG VMs: ${((Date.now() - t1) / 1000).toFixed(1)} s`);
      t.is(r.code, 0, `${r.stderr}\n${r.stdout.slice(0, 3000)}`);
      const byHost = JSON.parse(r.stdout) as Record<string, Check[]>;
      t.deepEqual(Object.keys(byHost), ['node1', 'node2']);
      for (const [name, checks] of Object.entries(byHost)) {
        const by = (n: string) => checks.find((c) => c.name === n);
        const facts = by('kernel release')?.kernel;
        t.is(facts?.release, '6.1.0-50-amd64', `${name} runs the 6.1 kernel`);
        t.is(facts?.release, fleet.kernel.release);
        t.is(facts?.virtualisation, fleet.accel, `${name}'s doctor detects ${fleet.accel} by itself`);
        t.is(facts?.modules.wireguard, 'module');
        t.is(by('wireguard module')?.status, 'ok', `${name}: kernel WireGuard works there: ${by('wireguard module')?.detail}`);
      }
      t.true(readFileSync(calls, 'utf8').includes(inv.hosts[0].address), 'the wrapper saw the ssh calls');
      t.deepEqual(cliLeftovers(), [], "the CLI's ssh masters ended and its control directory removed");

      // node1 and a host on the fleet's network where no machine is: every host is tried, the
      // unreachable one named with its address and what to check; node1's checks still printed.
      const ghost = join(dir, 'ghost.yaml');
      writeFileSync(ghost, renderInventory({ ...inv, hosts: [inv.hosts[0], { ...inv.hosts[1], name: 'ghost', address: '198.18.250.99' }] }));
      const t2 = Date.now();
      const g = await cli(['doctor', '--hosts', ghost], { wrap, timeoutMs: 240_000 });
      t.log(`with an unreachable host: ${((Date.now() - t2) / 1000).toFixed(1)} s`);
      t.is(g.code, 3, g.stderr);
      t.regex(g.stderr, new RegExp(`meshbench: host ghost \\(root@198\\.18\\.250\\.99:22 from namespace ${fleet.netns}\\) is unreachable over SSH`));
      t.regex(g.stderr, /→ check that the machine is up, that 198\.18\.250\.99 port 22 is reachable/);
      t.notRegex(g.stderr, /host node1/);
      t.regex(g.stdout, /^── node1 \(root@198\.18\.250\.11:22\) ──\n[\s\S]*✓ wireguard module/);
      t.regex(g.stdout, /── ghost \(root@198\.18\.250\.99:22\) ──\nnot checked: host ghost/);
      t.deepEqual(cliLeftovers(), []);
    } finally {
      await fleet.stop();
      rmSync(dir, { recursive: true, force: true });
    }
    t.deepEqual(processesNaming(prefix), [], 'no qemu, no ssh left');
    t.deepEqual(
      sshDirs().filter((d) => !fleetDirs.includes(d)),
      [],
    );
    t.false(existsSync(fleet.ssh.controlDir!), "the fleet's control sockets removed");
    t.is(await hostSnapshot(), before, 'root namespace as found');
    t.log(`whole test: ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  },
);
