// RemotePlace on a real machine (root, qemu): one debian-6.1 fleet VM with dropbear, reached as an
// inventory host. Commands in its root namespace and in a namespace made there through the place,
// a detached process (log, netns, cpus, env) probed from its /proc, killed by pid and seen to exit,
// files written with a mode and read back (three in one command), its tools and mounts. Then the
// VM is cleaned through the place, the fleet stopped, and this host is as found.
import { readdirSync, readFileSync } from 'node:fs';
import { release } from 'node:os';
import { RemotePlace } from '../../harness/place/remote.js';
import { QEMU } from '../../harness/vm/boot.js';
import { startFleet } from '../../harness/vm/fleet.js';
import { cleanAround, hostSnapshot, newLabPrefix, rootTestNeeding } from '../helpers.js';

const vmTest = await rootTestNeeding([QEMU, 'dropbear', 'dropbearkey', 'ssh']);

cleanAround();

/** Processes of this host whose command line names the prefix (qemu, ssh masters). */
function processesNaming(prefix: string): string[] {
  const out: string[] = [];
  for (const d of readdirSync('/proc').filter((x) => /^\d+$/.test(x))) {
    try {
      const cmd = readFileSync(`/proc/${d}/cmdline`, 'utf8').replace(/\0/g, ' ');
      if (cmd.includes(`${prefix}-`) && Number(d) !== process.pid) out.push(`${d}: ${cmd.slice(0, 120)}`);
    } catch {
      /* exited */
    }
  }
  return out;
}

vmTest('RemotePlace on a fleet VM: exec in its root and a namespace made there, a process by pid, files, tools, mounts; nothing left', async (t) => {
  t.timeout(150_000);
  const before = await hostSnapshot();
  const prefix = newLabPrefix();
  const ns = `${prefix}-n1`;
  const fleet = await startFleet({ prefix, kernel: 'debian-6.1', count: 1, memoryMiB: 768 });
  let place: RemotePlace | undefined;
  try {
    t.log(`${fleet.accel}: VM with sshd answering in ${fleet.bootMs} ms`);
    place = RemotePlace.of(fleet.ssh, fleet.inventory().hosts[0], { pollMs: 250 });
    const p = place;
    t.is(p.name, 'node1');
    t.is(p.root, process.cwd(), "meshbenchDir: this checkout (the guest sees this host's files)");

    const uname = (await p.exec('uname', ['-r'])).stdout.trim();
    t.is(uname, '6.1.0-50-amd64');
    t.not(uname, release());
    let t0 = performance.now();
    for (let i = 0; i < 5; i++) await p.exec('true', []);
    const execMs = (performance.now() - t0) / 5;
    const e = await t.throwsAsync(p.exec('sh', ['-c', 'echo nope >&2; exit 4']));
    t.is(e?.message, 'command failed on node1 (exit 4): sh -c echo nope >&2; exit 4\nnope');
    t.is((await p.exec('cat', [], { input: "in 'put'\n" })).stdout, "in 'put'\n");

    // A namespace made on the VM through the place; a command inside it sees only its loopback.
    await p.exec('ip', ['netns', 'add', ns]);
    const links = (await p.exec('ip', ['-br', 'link'], { netns: ns })).stdout.trim();
    t.regex(links, /^lo\s+DOWN/);
    t.is(links.split('\n').length, 1, links);
    t.regex((await p.exec('ip', ['-br', 'link'])).stdout, /^eth0\s+UP/m, 'the root namespace has the NICs');

    // A detached process: in the namespace, pinned, env set, output appended to a log on the VM.
    const dir = `/tmp/${prefix} place`;
    await p.mkdir(dir, { mode: 0o700 });
    const log = `${dir}/sleep.log`;
    await p.writeFile(log, 'before\n');
    const proc = await p.start({
      cmd: 'sh',
      args: ['-c', 'echo "$MB_V"; exec sleep 30'],
      netns: ns,
      cpus: '0',
      env: { ...process.env, MB_V: 'v $(x)' },
      logFile: log,
      cwd: dir,
    });
    t.true(proc.pid > 1 && proc.startTime !== undefined);
    t.true(await p.alive(proc.pid, proc.startTime));
    const status = (await p.readFile(`/proc/${proc.pid}/status`)) ?? '';
    t.regex(status, /^Name:\s+sleep$/m);
    t.regex(status, /^Cpus_allowed_list:\s+0$/m);
    t.regex(status, /^SigIgn:\s+0+$/m);
    const [netOfProc, netOfNs] = await Promise.all([
      p.exec('readlink', [`/proc/${proc.pid}/ns/net`]),
      p.exec('sh', ['-c', 'readlink /proc/self/ns/net'], { netns: ns }),
    ]);
    t.is(netOfProc.stdout, netOfNs.stdout, 'started inside the namespace');
    t.false(await p.kill(proc.pid, { startTime: (proc.startTime ?? 0) + 1 }), 'another start time: left alone');
    t.true(await p.kill(proc.pid, { startTime: proc.startTime }));
    t0 = performance.now();
    t.is(await proc.exited, 128);
    t.log(`exit seen ${(performance.now() - t0).toFixed(0)} ms after the kill returned (poll every 250 ms)`);
    t.is(proc.exitSignal, 'SIGKILL');
    t.false(await p.alive(proc.pid));
    t.is(await p.readFile(log), 'before\nv $(x)\n');
    const quick = await p.start({ cmd: 'sh', args: ['-c', 'exit 6'] });
    t.is(await quick.exited, 6);

    // Files: a key-like file with its mode, read back; three at once in one command.
    await p.writeFile(`${dir}/key`, "k'ey\n", { mode: 0o600 });
    t.is((await p.exec('stat', ['-c', '%a', `${dir}/key`])).stdout.trim(), '600');
    t.is((await p.exec('stat', ['-c', '%a', dir])).stdout.trim(), '700');
    t.is(await p.readFile(`${dir}/key`), "k'ey\n");
    t.true(await p.exists(`${dir}/key`));
    t.false(await p.exists(`${dir}/nope`));
    t.deepEqual((await p.list(dir)).sort(), ['key', 'sleep.log']);
    await p.readFiles(['/proc/loadavg']);
    t0 = performance.now();
    const three = await p.readFiles(['/proc/sys/kernel/osrelease', `${dir}/key`, '/proc/1/comm']);
    const readMs = performance.now() - t0;
    t.deepEqual(three, ['6.1.0-50-amd64\n', "k'ey\n", three[2]]);
    t.truthy(three[2]);

    t.regex((await p.findTool('ip')) ?? '', /\/ip$/);
    t.is(await p.findTool('mb-no-such-tool'), undefined);
    t.true((await p.mounts()).some((m) => m.target === '/proc' && m.fstype === 'proc'));
    t.log(`round trips: exec ${execMs.toFixed(0)} ms, readFiles of 3 files ${readMs.toFixed(0)} ms`);

    // Clean the VM through the place.
    await p.exec('ip', ['netns', 'del', ns]);
    await p.exec('rm', ['-rf', '--', dir]);
    t.false((await p.exec('ip', ['netns', 'list'])).stdout.includes(ns));
    t.deepEqual(
      (await p.list('/tmp')).filter((f) => f.startsWith('mbproc.')),
      [],
      'no process directories left on the VM',
    );
  } finally {
    place?.close();
    await fleet.stop();
  }
  t.deepEqual(processesNaming(prefix), []);
  t.is(await hostSnapshot(), before, 'this host as found');
});
