// Node-to-node encryption the way Cilium does it: one WireGuard device per node
// (cilium_wg0, UDP 51871), one key pair per node, each peer allowed the other node's pod CIDR, and
// routes to other nodes' pods through the device. The kernel's WireGuard where it exists, else
// wireguard-go (a user-space process per node, whose CPU and memory the results count).
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { runError } from '../../errors.js';
import { exec } from '../../util/exec.js';
import { WG_SOCKET_DIR } from '../../util/host.js';
import type { ProcessGroup } from '../../util/procs.js';
import type { Cluster, NodeSpec } from '../../topology/graph.js';

export const WG_PORT = 51871;
/** The WireGuard device of node i: unique across nodes, because wireguard-go's control socket is /var/run/wireguard/<name>.sock. */
export const wgDevice = (c: Cluster, n: NodeSpec) => `${c.prefix}-wg${n.index}`;

export interface WireGuard {
  implementation: 'kernel' | 'wireguard-go';
  version: string;
  devices: Record<string, string>;
  /** Node pairs with a handshake before the workloads started (the rest handshake on their first packet). */
  handshakes: { done: number; of: number };
}

async function keyPair(dir: string, node: string): Promise<{ priv: string; pub: string }> {
  const priv = join(dir, `${node}.key`);
  const key = (await exec('wg', ['genkey'])).stdout.trim();
  writeFileSync(priv, key + '\n', { mode: 0o600 });
  const pub = (await exec('wg', ['pubkey'], { input: key + '\n' })).stdout.trim();
  return { priv, pub };
}

/**
 * wireguard-go makes the device first and its control socket a moment later; `wg set` before the
 * socket exists falls back to netlink and fails ("Protocol not supported"), so wait for both.
 */
async function waitForDevice(c: Cluster, n: NodeSpec, ms: number): Promise<void> {
  const dev = wgDevice(c, n);
  for (const end = Date.now() + ms; Date.now() < end; await sleep(20)) {
    if (!existsSync(join(WG_SOCKET_DIR, `${dev}.sock`))) continue;
    const r = await exec('ip', ['link', 'show', dev], { netns: n.netns, allowFail: true });
    if (r.code === 0) return;
  }
  throw runError(`wireguard-go did not create ${dev} and its control socket in ${n.netns} within ${ms} ms`);
}

/**
 * Wait until every node has a handshake with every peer; returns how many each has. Nodes are
 * polled one after another (a `wg show` per node and round; with many nodes, polling them all at
 * once takes the CPU the handshakes need), complete ones no more. After `ms`, a node with none is
 * an error (its WireGuard does not work); nodes with some go on, and their other peers handshake
 * on their first packet, as on a real cluster.
 */
async function waitForHandshakes(c: Cluster, ms: number): Promise<number[]> {
  const peers = c.nodes.length - 1;
  const done = c.nodes.map(() => 0);
  for (const end = Date.now() + ms; Date.now() < end; await sleep(50)) {
    for (const [i, n] of c.nodes.entries()) {
      if (done[i] === peers) continue;
      const out = (await exec('wg', ['show', wgDevice(c, n), 'latest-handshakes'], { netns: n.netns })).stdout.trim();
      done[i] = out.split('\n').filter((l) => Number(l.split(/\s+/)[1]) > 0).length;
    }
    if (done.every((d) => d === peers)) return done;
  }
  const none = c.nodes.filter((_, i) => done[i] === 0).map((n) => n.name);
  if (none.length) throw runError(`WireGuard on ${none.join(', ')} completed no handshake with its ${peers} peers within ${ms} ms`);
  return done;
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
        const p = procs.start({
          name: `wireguard-${n.name}`,
          role: 'wireguard',
          cmd: 'wireguard-go',
          args: ['-f', dev],
          netns: n.netns,
          logFile: join(dir, `${n.name}.log`),
          env: { ...process.env, LOG_LEVEL: 'error' },
        });
        await Promise.race([
          waitForDevice(c, n, 5000),
          p.exited.then((code) =>
            Promise.reject(runError(`wireguard-go for ${n.name} exited with ${code}: ${readFileSync(join(dir, `${n.name}.log`), 'utf8').trim()}`)),
          ),
        ]);
      }
      const args = ['set', dev, 'private-key', keys.get(n.name)!.priv, 'listen-port', String(WG_PORT)];
      for (const peer of c.nodes)
        if (peer !== n) args.push('peer', keys.get(peer.name)!.pub, 'endpoint', `${peer.underlayIp}:${WG_PORT}`, 'allowed-ips', peer.podCidr);
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
  // n(n−1)/2 handshakes: wireguard-go on a small host needs longer for a large cluster (and
  // answers with cookies, asking for a retry, when its handshake queue runs long).
  const done = await waitForHandshakes(c, 15000 + 500 * c.nodes.length);
  const pairs = done.reduce((a, b) => a + b, 0) / 2;
  const allPairs = (c.nodes.length * (c.nodes.length - 1)) / 2;
  const version =
    implementation === 'kernel'
      ? (await exec('uname', ['-r'])).stdout.trim()
      : (await exec('wireguard-go', ['--version'], { allowFail: true })).stdout.trim().split('\n')[0];
  return { implementation, version, devices: Object.fromEntries(c.nodes.map((n) => [n.name, wgDevice(c, n)])), handshakes: { done: pairs, of: allPairs } };
}
