// Node-to-node encryption the way Cilium does it (DATAPLANES.md): one WireGuard device per node
// (cilium_wg0, UDP 51871), one key pair per node, each peer allowed the other node's pod CIDR, and
// routes to other nodes' pods through the device. The kernel's WireGuard where it exists, else
// wireguard-go (a user-space process per node, whose CPU and memory the results count).
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { runError } from '../../errors.js';
import { exec } from '../../util/exec.js';
import type { ProcessGroup } from '../../util/procs.js';
import type { Cluster, NodeSpec } from '../../topology/graph.js';

export const WG_PORT = 51871;
/** The WireGuard device of node i: unique across nodes, because wireguard-go's control socket is /var/run/wireguard/<name>.sock. */
export const wgDevice = (c: Cluster, n: NodeSpec) => `${c.prefix}-wg${n.index}`;

export interface WireGuard {
  implementation: 'kernel' | 'wireguard-go';
  version: string;
  devices: Record<string, string>;
}

async function keyPair(dir: string, node: string): Promise<{ priv: string; pub: string }> {
  const priv = join(dir, `${node}.key`);
  const key = (await exec('wg', ['genkey'])).stdout.trim();
  writeFileSync(priv, key + '\n', { mode: 0o600 });
  const pub = (await exec('wg', ['pubkey'], { input: key + '\n' })).stdout.trim();
  return { priv, pub };
}

async function waitForDevice(c: Cluster, n: NodeSpec, ms: number): Promise<void> {
  const dev = wgDevice(c, n);
  for (const end = Date.now() + ms; Date.now() < end; await sleep(20)) {
    const r = await exec('ip', ['link', 'show', dev], { netns: n.netns, allowFail: true });
    if (r.code === 0) return;
  }
  throw runError(`wireguard-go did not create ${dev} in ${n.netns} within ${ms} ms`);
}

async function waitForHandshakes(c: Cluster, n: NodeSpec, ms: number): Promise<void> {
  let last = '';
  for (const end = Date.now() + ms; Date.now() < end; await sleep(50)) {
    last = (await exec('wg', ['show', wgDevice(c, n), 'latest-handshakes'], { netns: n.netns })).stdout.trim();
    const times = last.split('\n').filter(Boolean).map((l) => Number(l.split(/\s+/)[1]));
    if (times.length === c.nodes.length - 1 && times.every((t) => t > 0)) return;
  }
  throw runError(`WireGuard on ${n.name} did not complete its handshakes within ${ms} ms: ${last}`);
}

/** Bytes the run's WireGuard devices have sent (encrypted), summed over nodes and peers. */
export async function wireguardTxBytes(c: Cluster): Promise<number> {
  let tx = 0;
  for (const n of c.nodes) {
    const r = await exec('wg', ['show', wgDevice(c, n), 'transfer'], { netns: n.netns, allowFail: true });
    for (const l of r.stdout.split('\n').filter(Boolean)) tx += Number(l.split(/\s+/)[2] ?? 0);
  }
  return tx;
}

export async function wireguardUp(c: Cluster, procs: ProcessGroup, dir: string): Promise<WireGuard> {
  mkdirSync(dir, { recursive: true });
  // The kernel module, if this kernel has it: try it in the first node's namespace.
  const probe = await exec('ip', ['link', 'add', wgDevice(c, c.nodes[0]), 'type', 'wireguard'], { netns: c.nodes[0].netns, allowFail: true });
  const implementation = probe.code === 0 ? 'kernel' : 'wireguard-go';
  const keys = new Map<string, { priv: string; pub: string }>();
  for (const n of c.nodes) keys.set(n.name, await keyPair(dir, n.name));
  await Promise.all(
    c.nodes.map(async (n) => {
      const dev = wgDevice(c, n);
      if (implementation === 'kernel') {
        if (n !== c.nodes[0]) await exec('ip', ['link', 'add', dev, 'type', 'wireguard'], { netns: n.netns });
      } else {
        const p = procs.start({ name: `wireguard-${n.name}`, role: 'wireguard', cmd: 'wireguard-go', args: ['-f', dev], netns: n.netns, logFile: join(dir, `${n.name}.log`), env: { ...process.env, LOG_LEVEL: 'error' } });
        await Promise.race([waitForDevice(c, n, 5000), p.exited.then((code) => Promise.reject(runError(`wireguard-go for ${n.name} exited with ${code}: ${readFileSync(join(dir, `${n.name}.log`), 'utf8').trim()}`)))]);
      }
      const args = ['set', dev, 'private-key', keys.get(n.name)!.priv, 'listen-port', String(WG_PORT)];
      for (const peer of c.nodes) if (peer !== n) args.push('peer', keys.get(peer.name)!.pub, 'endpoint', `${peer.underlayIp}:${WG_PORT}`, 'allowed-ips', peer.podCidr);
      await exec('wg', args, { netns: n.netns });
      const lines = [`link set ${dev} up`, ...c.nodes.filter((p) => p !== n).map((p) => `route replace ${p.podCidr} dev ${dev}`)];
      await exec('ip', ['-batch', '-'], { netns: n.netns, input: lines.join('\n') + '\n' });
    }),
  );
  // Handshakes before any workload starts, as on a cluster that has been up a while. Setting a
  // persistent keepalive makes a device initiate at once; only the lower-numbered node of each
  // pair does, because two initiations crossing each other both fail and WireGuard waits 5 s
  // before retrying.
  await Promise.all(
    c.nodes.map(async (n) => {
      const peers = c.nodes.filter((p) => p.index > n.index);
      if (!peers.length) return;
      await exec('wg', ['set', wgDevice(c, n), ...peers.flatMap((p) => ['peer', keys.get(p.name)!.pub, 'persistent-keepalive', '25'])], { netns: n.netns });
    }),
  );
  await Promise.all(c.nodes.map((n) => waitForHandshakes(c, n, 15000)));
  const version = implementation === 'kernel' ? (await exec('uname', ['-r'])).stdout.trim() : (await exec('wireguard-go', ['--version'], { allowFail: true })).stdout.trim().split('\n')[0];
  return { implementation, version, devices: Object.fromEntries(c.nodes.map((n) => [n.name, wgDevice(c, n)])) };
}
