// A fleet of test machines on this host for the `hosts` backend: `count` qemu VMs booting one
// kernel, each running a real SSH server (dropbear, from the host's read-only root), joined by a
// bridge inside one lab network namespace. The SSH client runs inside that namespace too, so
// nothing of it is reachable from, or routed through, the root namespace.
//
// Naming (P = the prefix, as in topology/graph.ts; all removed by `meshbench down` by prefix):
//   netns  P-fleet                     qemu processes, taps, bridges and the ssh client live here
//   links  P-fbr                       management bridge, 198.18.250.1/24 (the ssh client's side)
//          P-flb                       lab bridge: the VMs' eth1, no address (the lab puts its own)
//          P-ft<i> / P-fl<i>           tap of VM i on the management / lab bridge
//   files  /run/meshbench/P/fleet/     client key, host keys, known_hosts
// Addresses: 198.18.250.0/24 (outside the topology's 198.18.0.0/24 underlay, 198.18.64.0/18
// VIPs and 198.19.0.0/16 pods): VM i (1-based) is 198.18.250.<10+i> on its eth0.
// Why dropbear and not OpenSSH's sshd: Debian's dropbear-bin ships binaries only (no service,
// no maintainer scripts), so installing it starts nothing on the host; openssh-server would.
import { mkdirSync, readdirSync, rmdirSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { envError, inputError, runError } from '../errors.js';
import type { Inventory } from '../hosts/inventory.js';
import { SshRunner, type SshTarget } from '../hosts/ssh.js';
import { deleteNetns, netnsPids } from '../topology/netns.js';
import { exec, which } from '../util/exec.js';
import { PREFIX_RE, STATE_DIR, pidAlive } from '../util/host.js';
import { defaultCacheDir, startVm, type VmHandle } from './boot.js';
import { GUEST_IO } from './initrd.js';
import { type KernelFiles, resolveKernel } from './kernels.js';

export const FLEET_SUBNET = '198.18.250';
export const MAX_FLEET = 32;

export const fleetNames = {
  netns: (p: string) => `${p}-fleet`,
  bridge: (p: string) => `${p}-fbr`,
  labBridge: (p: string) => `${p}-flb`,
  tap: (p: string, i: number) => `${p}-ft${i}`,
  labTap: (p: string, i: number) => `${p}-fl${i}`,
  dir: (p: string) => join(STATE_DIR, p, 'fleet'),
};
export const fleetAddr = { host: `${FLEET_SUBNET}.1`, vm: (i: number) => `${FLEET_SUBNET}.${10 + i}` };
/** Locally administered MACs: 52:54:00 (qemu's) + 0x18 (the fleet) + NIC (0 management, 1 lab) + VM index. */
export const fleetMac = (i: number, nic: 0 | 1) => `52:54:00:18:0${nic}:${i.toString(16).padStart(2, '0')}`;

export interface FleetOptions {
  /** A lab prefix (mb + 4 base36 characters). */
  prefix: string;
  kernel: string;
  count: number;
  memoryMiB?: number;
  cpus?: number;
  cacheDir?: string;
  /** Give each VM a second NIC (eth1) on a lab bridge, without an address; default true. */
  labNetwork?: boolean;
  /** From the first qemu start to every sshd answering; default 120 s. */
  bootTimeoutMs?: number;
}

export interface FleetVm {
  /** node<i>: the topology's default node names. */
  name: string;
  index: number;
  address: string;
  mac: string;
  labMac?: string;
  pid: number;
  target: SshTarget;
}

export interface Fleet {
  prefix: string;
  netns: string;
  vms: FleetVm[];
  accel: 'kvm' | 'tcg';
  kernel: KernelFiles;
  /** From the start to every sshd answering a command. */
  bootMs: number;
  /** A runner connected to every VM (closed by stop()). */
  ssh: SshRunner;
  /** The fleet as an inventory (hosts node1…node<count>, ssh client in the fleet's namespace). */
  inventory(): Inventory;
  /** Power every VM off (killed after a grace), remove taps, bridges, the namespace and the keys. Safe to repeat. */
  stop(): Promise<void>;
}

/** The guest's command: network up (by MAC), keys in place, dropbear in the foreground. */
export function fleetGuestCommand(vm: { name: string; address: string; mac: string; labMac?: string }): string {
  const io = GUEST_IO;
  return `set -e
modprobe virtio_net
hostname ${vm.name}
# No udev: NICs get kernel names in probe order; name them by MAC (two steps: eth0/eth1 may be taken).
for d in /sys/class/net/*; do
  case "$(cat "$d/address")" in
    ${vm.mac}) ip link set "\${d##*/}" name mbmgmt ;;
    ${vm.labMac ?? 'none'}) ip link set "\${d##*/}" name mblab ;;
  esac
done
ip link set mbmgmt name eth0
${vm.labMac ? 'ip link set mblab name eth1\nip link set eth1 up' : ''}
ip addr add ${vm.address}/24 dev eth0
ip link set eth0 up
# root's login shell is the host's (bash), which would read the host's ~/.bashrc for every
# SSH command (seconds under TCG); /bin/sh reads nothing. Only the guest's overlay changes.
sed -i -E 's#^(root:[^:]*:0:0:[^:]*:[^:]*):.*$#\\1:/bin/sh#' /etc/passwd
mkdir -p /root/.ssh /etc/dropbear
chmod 700 /root/.ssh
cp ${io}/authorized_keys /root/.ssh/authorized_keys
chmod 600 /root/.ssh/authorized_keys
base64 -d ${io}/hostkey.b64 > /etc/dropbear/hostkey
chmod 600 /etc/dropbear/hostkey
echo MBFLEET-SSHD
# -s: keys only; -F -E: foreground, log to the output file; SIGINT from stage 2 stops it.
exec dropbear -F -E -s -m -r /etc/dropbear/hostkey -p 22
`;
}

const TOOLS: [string, string][] = [
  ['dropbear', 'install dropbear-bin (binaries only, no service; scripts/setup.sh does)'],
  ['dropbearkey', 'install dropbear-bin (scripts/setup.sh does)'],
  ['ssh', 'install openssh-client'],
  ['ssh-keygen', 'install openssh-client'],
];

/** Boot the fleet; returns once every VM's sshd runs a command. Anything made is removed on failure. */
export async function startFleet(o: FleetOptions): Promise<Fleet> {
  if (!PREFIX_RE.test(o.prefix)) throw inputError(`fleet prefix ${JSON.stringify(o.prefix)} is not a lab prefix (mb + 4 of 0-9 a-z)`);
  if (!Number.isInteger(o.count) || o.count < 1 || o.count > MAX_FLEET) throw inputError(`a fleet has 1 to ${MAX_FLEET} VMs, not ${o.count}`);
  for (const [tool, hint] of TOOLS) if (!(await which(tool))) throw envError(`${tool} not found`, hint);
  // Bad kernel names and unfetchable kernels fail here, before anything is built.
  await resolveKernel(o.kernel, o.cacheDir ?? defaultCacheDir());
  const t0 = Date.now();
  const p = o.prefix;
  const netns = fleetNames.netns(p);
  const lab = o.labNetwork ?? true;
  const dir = fleetNames.dir(p);
  const ssh = new SshRunner({ connectTimeoutS: 3 });
  const handles: VmHandle[] = [];
  const settled = new Set<VmHandle>();
  const outputs: string[][] = [];
  let stopping: Promise<void> | undefined;

  const stop = () =>
    (stopping ??= (async () => {
      await ssh.close().catch(() => {});
      for (const h of handles) h.stop(5000);
      // startVm kills qemu after the grace; this bounds the wait if even that failed.
      const gone = Promise.allSettled(handles.map((h) => h.done));
      await Promise.race([gone, sleep(15_000)]);
      // Only qemus whose `done` has not settled: a settled one's pid may belong to another process now.
      for (const h of handles) if (!settled.has(h) && h.pid > 0 && pidAlive(h.pid)) process.kill(h.pid, 'SIGKILL');
      // Anything else left in the namespace (an ssh master) was started there by us.
      for (const pid of netnsPids([netns])) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          /* gone */
        }
      }
      await gone;
      // Taps and bridges first (explicitly: a tap must never outlive the namespace), then it.
      await exec('ip', ['-n', netns, '-force', '-batch', '-'], {
        allowFail: true,
        input:
          [
            ...Array.from({ length: o.count }, (_, k) => [`link del ${fleetNames.tap(p, k + 1)}`, `link del ${fleetNames.labTap(p, k + 1)}`]).flat(),
            `link del ${fleetNames.bridge(p)}`,
            `link del ${fleetNames.labBridge(p)}`,
          ].join('\n') + '\n',
      });
      await deleteNetns([netns]);
      rmSync(dir, { recursive: true, force: true });
      try {
        if (!readdirSync(join(STATE_DIR, p)).length) rmdirSync(join(STATE_DIR, p));
      } catch {
        /* not there, or the run's own files are in it */
      }
    })());

  try {
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    await exec('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', `meshbench-${p}`, '-f', join(dir, 'id_ed25519')]);
    const vms: FleetVm[] = [];
    const known: string[] = [];
    const hostKeys: string[] = [];
    for (let i = 1; i <= o.count; i++) {
      const key = join(dir, `hostkey-${i}`);
      const r = await exec('dropbearkey', ['-t', 'ed25519', '-f', key]);
      const pub = r.stdout.split('\n').find((l) => l.startsWith('ssh-ed25519 '));
      if (!pub) throw runError(`dropbearkey printed no public key: ${r.stdout}`);
      const address = fleetAddr.vm(i);
      known.push(`${address} ${pub.split(' ').slice(0, 2).join(' ')}`);
      hostKeys.push(readFileSync(key).toString('base64'));
      vms.push({
        name: `node${i}`,
        index: i,
        address,
        mac: fleetMac(i, 0),
        labMac: lab ? fleetMac(i, 1) : undefined,
        pid: -1,
        target: {
          name: `node${i}`,
          address,
          user: 'root',
          port: 22,
          identityFile: join(dir, 'id_ed25519'),
          knownHostsFile: join(dir, 'known_hosts'),
          hostKeyChecking: 'strict',
          netns,
        },
      });
    }
    writeFileSync(join(dir, 'known_hosts'), `${known.join('\n')}\n`);

    const lines = [
      'link set lo up',
      `link add ${fleetNames.bridge(p)} type bridge`,
      `addr add ${fleetAddr.host}/24 dev ${fleetNames.bridge(p)}`,
      `link set ${fleetNames.bridge(p)} up`,
    ];
    if (lab) lines.push(`link add ${fleetNames.labBridge(p)} type bridge`, `link set ${fleetNames.labBridge(p)} up`);
    for (const vm of vms) {
      const taps: [string, string][] = [[fleetNames.tap(p, vm.index), fleetNames.bridge(p)]];
      if (lab) taps.push([fleetNames.labTap(p, vm.index), fleetNames.labBridge(p)]);
      for (const [tap, br] of taps) lines.push(`tuntap add dev ${tap} mode tap`, `link set ${tap} master ${br}`, `link set ${tap} up`);
    }
    await exec('ip', ['netns', 'add', netns]);
    // `ip -n` creates every device inside the namespace: nothing appears in the root one.
    await exec('ip', ['-n', netns, '-batch', '-'], { input: `${lines.join('\n')}\n` });

    const authorized = readFileSync(join(dir, 'id_ed25519.pub'), 'utf8');
    for (const vm of vms) {
      const out: string[] = [];
      outputs.push(out);
      const h = await startVm({
        kernel: o.kernel,
        cacheDir: o.cacheDir,
        memoryMiB: o.memoryMiB ?? 1024,
        cpus: o.cpus ?? 1,
        netns,
        nics: [{ tap: fleetNames.tap(p, vm.index), mac: vm.mac }, ...(vm.labMac ? [{ tap: fleetNames.labTap(p, vm.index), mac: vm.labMac }] : [])],
        command: fleetGuestCommand(vm),
        files: { authorized_keys: authorized, 'hostkey.b64': hostKeys[vm.index - 1] },
        // The VM lives until stop(); the fleet's own deadline is the boot timeout.
        timeoutMs: 24 * 3600_000,
        onOutput: (l) => {
          out.push(l);
          if (out.length > 200) out.shift();
        },
      });
      handles.push(h);
      vm.pid = h.pid;
      h.done.then(
        () => settled.add(h),
        () => settled.add(h),
      );
    }

    // Ready = a command runs over SSH (this also opens each host's shared connection).
    const deadline = t0 + (o.bootTimeoutMs ?? 120_000);
    await Promise.all(
      vms.map(async (vm, k) => {
        const host = ssh.host(vm.target);
        for (;;) {
          if (settled.has(handles[k])) throw runError(`fleet VM ${vm.name} stopped while booting; its output:\n${outputs[k].join('\n')}`);
          if (Date.now() > deadline)
            throw runError(`fleet VM ${vm.name}'s sshd did not answer within ${o.bootTimeoutMs ?? 120_000} ms; its output:\n${outputs[k].join('\n')}`);
          if (outputs[k].includes('MBFLEET-SSHD') && (await host.reachable(10_000))) return;
          await sleep(250);
        }
      }),
    );
    const bootMs = Date.now() - t0;
    return {
      prefix: p,
      netns,
      vms,
      accel: handles[0].accel,
      kernel: handles[0].kernel,
      bootMs,
      ssh,
      inventory: () => ({
        file: `fleet ${p}`,
        hosts: vms.map((vm) => ({ ...vm.target, user: 'root', port: 22, hostKeyChecking: 'strict' as const, labInterface: lab ? 'eth1' : undefined, line: 0 })),
      }),
      stop,
    };
  } catch (e) {
    await stop();
    throw e;
  }
}
