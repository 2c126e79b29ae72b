// Node-to-node encryption the way Cilium does it: one WireGuard device per node
// (cilium_wg0, UDP 51871), one key pair per node, each peer allowed the other node's pod CIDR, and
// routes to other nodes' pods through the device. The kernel's WireGuard where it exists, else
// wireguard-go (a user-space process per node, whose CPU and memory the results count). With
// nodes on several machines each machine's kernel is probed (its first node's namespace): the
// record then says which nodes run which. Keys are made here; each private key file is written on
// its node's machine too (`wg set` reads it there).
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { runError } from '../../errors.js';
import { makeDir, placeOfNode, placesOf, putFile, type Place } from '../../place/index.js';
import { exec } from '../../util/exec.js';
import { WG_SOCKET_DIR } from '../../util/host.js';
import { findTool } from '../../util/tools.js';
import type { ProcessGroup } from '../../util/procs.js';
import type { Cluster, NodeSpec } from '../../topology/graph.js';

export const WG_PORT = 51871;
/** The WireGuard device of node i: unique across nodes, because wireguard-go's control socket is /var/run/wireguard/<name>.sock. */
export const wgDevice = (c: Cluster, n: NodeSpec) => `${c.prefix}-wg${n.index}`;

export type WgKind = 'kernel' | 'wireguard-go';

export interface WireGuard {
  /** One kind for every node, or `mixed` when machines differ (then see `perNode`). */
  implementation: WgKind | 'mixed';
  /** Each node's kind (they differ only when nodes are on machines with different kernels). */
  perNode: Record<string, WgKind>;
  version: string;
  devices: Record<string, string>;
  /** Node pairs with a handshake before the workloads started (the rest handshake on their first packet). */
  handshakes: { done: number; of: number };
}

async function keyPair(dir: string, node: string, place: Place): Promise<{ priv: string; pub: string }> {
  const priv = join(dir, `${node}.key`);
  const key = (await exec('wg', ['genkey'])).stdout.trim();
  await putFile(place, priv, key + '\n', { mode: 0o600 });
  const pub = (await exec('wg', ['pubkey'], { input: key + '\n' })).stdout.trim();
  return { priv, pub };
}

/** The common kind, `mixed` when nodes differ. */
export function wgImplementation(perNode: Record<string, WgKind>): WgKind | 'mixed' {
  const kinds = [...new Set(Object.values(perNode))];
  return kinds.length === 1 ? kinds[0] : 'mixed';
}

/** One version string: the value when every machine says the same, else `<machine>: <value>` for each. */
export function joinVersions(byPlace: { place: string; version: string }[]): string {
  const distinct = [...new Set(byPlace.map((v) => v.version))];
  return distinct.length <= 1 ? (distinct[0] ?? '') : byPlace.map((v) => `${v.place}: ${v.version}`).join('; ');
}

/**
 * wireguard-go makes the device first and its control socket a moment later; `wg set` before the
 * socket exists falls back to netlink and fails ("Protocol not supported"), so wait for both.
 */
async function waitForDevice(c: Cluster, n: NodeSpec, ms: number): Promise<void> {
  const dev = wgDevice(c, n);
  const place = placeOfNode(n.index);
  for (const end = Date.now() + ms; Date.now() < end; await sleep(20)) {
    if (!(await place.exists(join(WG_SOCKET_DIR, `${dev}.sock`)))) continue;
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

/** Bytes the run's WireGuard devices have sent (encrypted), summed over nodes and peers: machines at once, a machine's nodes one by one. */
export async function wireguardTxBytes(c: Cluster): Promise<number> {
  const perPlace = await Promise.all(
    placesOf(c.nodes).map(async (place) => {
      let tx = 0;
      for (const n of c.nodes.filter((x) => placeOfNode(x.index) === place))
        tx += transferTxBytes((await exec('wg', ['show', wgDevice(c, n), 'transfer'], { netns: n.netns, allowFail: true })).stdout);
      return tx;
    }),
  );
  return perPlace.reduce((a, b) => a + b, 0);
}

/** The sent bytes in `wg show <dev> transfer` output (peer, received, sent per line). */
export const transferTxBytes = (out: string): number =>
  out
    .split('\n')
    .filter(Boolean)
    .reduce((a, l) => a + Number(l.split(/\s+/)[2] ?? 0), 0);

export async function wireguardUp(c: Cluster, procs: ProcessGroup, dir: string): Promise<WireGuard> {
  const places = placesOf(c.nodes);
  for (const place of places) await makeDir(place, dir);
  // The kernel module, if a machine's kernel has it: try it in that machine's first node's namespace.
  const kindOf = new Map<Place, WgKind>();
  for (const place of places) {
    const first = c.nodes.find((n) => placeOfNode(n.index) === place)!;
    const probe = await exec('ip', ['link', 'add', wgDevice(c, first), 'type', 'wireguard'], { netns: first.netns, allowFail: true });
    kindOf.set(place, probe.code === 0 ? 'kernel' : 'wireguard-go');
  }
  const probed = new Set(places.map((place) => c.nodes.find((n) => placeOfNode(n.index) === place)!));
  const perNode = Object.fromEntries(c.nodes.map((n) => [n.name, kindOf.get(placeOfNode(n.index))!])) as Record<string, WgKind>;
  const keys = new Map<string, { priv: string; pub: string }>();
  for (const n of c.nodes) keys.set(n.name, await keyPair(dir, n.name, placeOfNode(n.index)));
  await Promise.all(
    c.nodes.map(async (n) => {
      const dev = wgDevice(c, n);
      const place = placeOfNode(n.index);
      if (perNode[n.name] === 'kernel') {
        if (!probed.has(n)) await exec('ip', ['link', 'add', dev, 'type', 'wireguard'], { netns: n.netns });
      } else {
        const log = join(dir, `${n.name}.log`);
        const p = await procs.startAsync({
          name: `wireguard-${n.name}`,
          role: 'wireguard',
          cmd: (await findTool('wireguard-go', place)) ?? 'wireguard-go',
          args: ['-f', dev],
          netns: n.netns,
          logFile: log,
          env: { ...process.env, LOG_LEVEL: 'error' },
        });
        await Promise.race([
          waitForDevice(c, n, 5000),
          p.exited.then(async (code) =>
            Promise.reject(runError(`wireguard-go for ${n.name} exited with ${code}: ${((await place.readFile(log)) ?? '').trim()}`)),
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
  // Per machine: its kernel release, or its wireguard-go's version.
  const versions = await Promise.all(
    places.map(async (place) => ({
      place: place.name,
      version:
        kindOf.get(place) === 'kernel'
          ? (await exec('uname', ['-r'], { place })).stdout.trim()
          : (await exec((await findTool('wireguard-go', place)) ?? 'wireguard-go', ['--version'], { allowFail: true, place })).stdout.trim().split('\n')[0],
    })),
  );
  return {
    implementation: wgImplementation(perNode),
    perNode,
    version: joinVersions(versions),
    devices: Object.fromEntries(c.nodes.map((n) => [n.name, wgDevice(c, n)])),
    handshakes: { done: pairs, of: allPairs },
  };
}
