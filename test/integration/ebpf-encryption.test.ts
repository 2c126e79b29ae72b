// The eBPF family's encryption option on the real kernel (issue 17): `ebpf[encryption=none]` leaves
// no WireGuard device, process or UDP tunnel traffic, pod traffic between nodes crosses the
// underlay in clear (a request's marker is in the capture) and identity policy still holds there;
// `ebpf[encryption=wireguard]`, checked by the same probes, has all three and never shows the marker.
import type { ExecutionContext } from 'ava';
import { randomBytes } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { rootTest, cleanAround } from '../helpers.js';
import { withLab, vip, captureUnderlay, type Lab } from '../lab.js';
import { exec } from '../../harness/util/exec.js';
import { WG_PORT } from '../../harness/dataplanes/ebpf/wireguard.js';

cleanAround();
const SCENARIO = 'test/fixtures/scenarios/ebpf-policy.yaml';
const REQUESTS = 5;

/** Every link in the lab's namespaces (nodes and pods) that is a WireGuard device by name or by kind (kernel `wireguard`, wireguard-go's `tun`). */
async function wgLinks(c: Lab['c']): Promise<string[]> {
  const found: string[] = [];
  for (const ns of [...c.nodes.map((n) => n.netns), ...c.pods.map((p) => p.netns)]) {
    const r = await exec('ip', ['-d', '-j', 'link', 'show'], { netns: ns });
    for (const l of JSON.parse(r.stdout) as { ifname: string; linkinfo?: { info_kind?: string } }[])
      if (l.ifname.startsWith(`${c.prefix}-wg`) || ['wireguard', 'tun'].includes(l.linkinfo?.info_kind ?? '')) found.push(`${ns}/${l.ifname}`);
  }
  return found;
}

/** wireguard-go processes on the host serving this lab's devices (by their command line). */
function wgProcesses(prefix: string): string[] {
  const out: string[] = [];
  for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    let argv: string[];
    try {
      argv = readFileSync(`/proc/${pid}/cmdline`, 'latin1').split('\0');
    } catch {
      continue; // gone meanwhile
    }
    if (argv.some((a) => /(^|\/)wireguard-go$/.test(a)) && argv.some((a) => a.startsWith(`${prefix}-wg`))) out.push(`${pid}: ${argv.join(' ')}`);
  }
  return out;
}

interface Wire {
  packets: string[];
  tunnel: string[];
  marker: boolean;
}

/** REQUESTS requests frontend (node1) → public-api (node2) carrying a fresh marker, captured on node1's underlay device. */
async function crossNode(t: ExecutionContext, { c, curl, pod }: Lab): Promise<Wire> {
  t.not(pod('frontend').node, c.services.find((s) => s.name === 'public-api')!.backends[0].node, 'client and server on different nodes');
  const marker = `mb-marker-${randomBytes(6).toString('hex')}`;
  const wire = await captureUnderlay(
    c,
    async () => {
      for (let i = 0; i < REQUESTS; i++) t.is((await curl(pod('frontend'), `${vip(c, 'public-api')}/api/v1/products/${marker}`)).code, 0);
    },
    // Everything IPv4 but the kernel's own IGMP reports (sent when links come up).
    'ip and not igmp',
  );
  const packets = wire.split('\n').filter((l) => /^\d\d:\d\d:\d\d\.\d+ IP /.test(l));
  const tunnel = packets.filter((p) => {
    const m = /^\S+ IP (\S+) > (\S+): UDP/.exec(p);
    return !!m && (m[1].endsWith(`.${WG_PORT}`) || m[2].endsWith(`.${WG_PORT}`));
  });
  return { packets, tunnel, marker: wire.includes(marker) };
}

/** order-service-0 (node1) → public-api (node2) is denied by public-api's ingress policy, enforced on node2 from what arrives on its underlay or tunnel device. */
async function deniedAcrossNodes(t: ExecutionContext, lab: Lab): Promise<void> {
  const { c, curl, pod } = lab;
  const from = pod('order-service-0');
  const to = c.services.find((s) => s.name === 'public-api')!.backends[0];
  t.not(from.node, to.node);
  t.not((await curl(from, `${vip(c, 'public-api')}/echo`, ['-timeout', '500ms'])).code, 0, 'order-service-0 → public-api is denied');
  t.is((await curl(pod('frontend'), `${vip(c, 'public-api')}/echo`)).code, 0, 'frontend → public-api is allowed');
  await sleep(500); // the agents poll the ring buffers every 200 ms
  const drops = readFileSync(join(lab.dir, 'flows', `${to.node}.jsonl`), 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as { verdict: string; dropReason?: string; direction: string; source: { ip: string }; destination: { ip: string } })
    .filter((f) => f.verdict === 'DROPPED' && f.source.ip === from.ip && f.destination.ip === to.ip);
  t.true(
    drops.length > 0 && drops.every((d) => d.dropReason === 'POLICY_DENIED' && d.direction === 'INGRESS'),
    `dropped on ${to.node} at ingress: ${JSON.stringify(drops[0])}`,
  );
}

rootTest(
  'ebpf[encryption=none]: no WireGuard device, process or UDP tunnel; the marker crosses the underlay in clear; policy across nodes still holds',
  async (t) => {
    await withLab(
      'ebpf[encryption=none]',
      'mbenc1',
      async (lab) => {
        const { c, d, procs } = lab;
        t.deepEqual(await wgLinks(c), [], 'no WireGuard device in any lab namespace');
        t.deepEqual(wgProcesses(c.prefix), [], 'no wireguard-go of this lab');
        t.false(
          procs.procs.some((p) => p.role === 'wireguard'),
          'no process in the wireguard role',
        );
        const wire = await crossNode(t, lab);
        t.true(wire.packets.length >= 2 * REQUESTS, `${wire.packets.length} packets`);
        t.deepEqual(wire.tunnel, [], `no UDP ${WG_PORT}`);
        t.true(wire.marker, 'the marker is on the wire in clear');
        await deniedAcrossNodes(t, lab);
        // The record says so, and carries no WireGuard figure.
        t.regex(d.path.encryption, /^none \(native routing over the underlay/);
        t.false('wireguard' in d.provenance);
        t.notRegex(String(d.provenance.ebpf.mechanism), /WireGuard/);
        t.false('wireguardTxBytes' in (await d.kernelResources!()));
      },
      SCENARIO,
    );
  },
);

rootTest('ebpf[encryption=wireguard]: the same probes find the devices, the tunnel traffic, and no marker', async (t) => {
  await withLab(
    'ebpf[encryption=wireguard]',
    'mbenc2',
    async (lab) => {
      const { c, d } = lab;
      const links = await wgLinks(c);
      t.deepEqual(links.map((l) => l.split('/')[1]).sort(), c.nodes.map((n) => `${c.prefix}-wg${n.index}`).sort(), 'one WireGuard device per node');
      const engine = (d.provenance.wireguard as { engine?: string } | undefined)?.engine;
      t.truthy(engine);
      if (engine === 'wireguard-go') t.is(wgProcesses(c.prefix).length, c.nodes.length, 'one wireguard-go per node');
      const wire = await crossNode(t, lab);
      t.true(wire.tunnel.length >= 2 * REQUESTS, `${wire.tunnel.length} UDP ${WG_PORT} packets`);
      t.deepEqual(
        wire.packets.filter((p) => !wire.tunnel.includes(p)),
        [],
        'nothing else on the underlay',
      );
      t.false(wire.marker, 'the marker never appears in clear');
      await deniedAcrossNodes(t, lab);
      t.regex(d.path.encryption, /^WireGuard between nodes/);
      t.true(((await d.kernelResources!()).wireguardTxBytes ?? 0) > REQUESTS * 100);
    },
    SCENARIO,
  );
});
