// The eBPF dataplane on the real kernel: socket LB without DNAT, identity policy in tc with flow
// events for every drop, WireGuard on the wire.
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { rootTest, cleanAround } from '../helpers.js';
import { withLab, vip, captureUnderlay, MARKER, type Lab } from '../lab.js';
import { exec } from '../../harness/util/exec.js';
import { setTimeout as sleep } from 'node:timers/promises';
import { lbPins, nodePins } from '../../harness/dataplanes/ebpf/family.js';

cleanAround();
const SCENARIO = 'test/fixtures/scenarios/ebpf-policy.yaml';

interface Flow {
  node: string;
  verdict: string;
  dropReason?: string;
  direction: string;
  source: { ip: string; port: number; identity: number };
  destination: { ip: string; port: number; identity: number };
}

async function flows(lab: Lab): Promise<Flow[]> {
  await sleep(500); // the agents poll the ring buffers every 200 ms
  const dir = readdirSync(lab.dir, { recursive: true, withFileTypes: false }) as string[];
  return dir
    .filter((f) => /flows\/node\d+\.jsonl$/.test(f))
    .flatMap((f) => readFileSync(join(lab.dir, f), 'utf8').split('\n').filter(Boolean))
    .map((l) => JSON.parse(l) as Flow);
}

rootTest('ebpf: a VIP connect reaches a backend with no DNAT rule in any namespace; backends are balanced', async (t) => {
  await withLab(
    'ebpf',
    'mbebp1',
    async (lab) => {
      const { c, curl } = lab;
      for (let i = 0; i < 60; i++) t.is((await curl(c.client, `${vip(c, 'echo')}/echo`)).code, 0);
      for (const ns of [...c.nodes.map((n) => n.netns), ...c.pods.map((p) => p.netns)]) {
        const nat = await exec('iptables-save', ['-t', 'nat'], { netns: ns, allowFail: true });
        t.notRegex(nat.stdout, /DNAT/, `no DNAT rule in ${ns}`);
      }
      // Per-CPU counters, dumped as little-endian byte lists.
      const le = (bytes: string[]) => bytes.reduceRight((a, b) => a * 256 + parseInt(b, 16), 0);
      const dump = JSON.parse((await exec('bpftool', ['-j', 'map', 'dump', 'pinned', lbPins(c.prefix).map('mb_lb4_hits')])).stdout) as {
        values: { value: string[] }[];
      }[];
      const hits = dump.map((e) => e.values.reduce((a, v) => a + le(v.value), 0));
      t.is(
        hits.reduce((a, b) => a + b, 0),
        60,
        'every connect went through the socket LB',
      );
      t.is(hits.length, 3, `all three echo backends chosen (${hits.join(', ')})`);
      t.true(Math.min(...hits) >= 8, `roughly even: ${hits.join(', ')}`);
      const echoVip = c.services.find((s) => s.name === 'echo')!.vip;
      const seen = await flows(lab);
      t.true(seen.length >= 60);
      t.false(
        seen.some((f) => f.destination.ip === echoVip),
        'no packet carries the VIP',
      );
    },
    SCENARIO,
  );
});

rootTest('ebpf: the L4 allow/deny matrix of the CiliumNetworkPolicy examples holds, and each drop is in the flow log with its reason', async (t) => {
  await withLab(
    'ebpf',
    'mbebp2',
    async (lab) => {
      const { c, pod, curl } = lab;
      const backend = (svc: string) => c.services.find((s) => s.name === svc)!.backends[0];
      // [from, to Service, allowed?, drop reason, direction of the drop]
      const matrix: [string, string, boolean, string?, string?][] = [
        ['api-gateway-0', 'backend-service', true],
        ['frontend', 'backend-service', false, 'POLICY_DENIED', 'INGRESS'],
        ['backend-service-0', 'database', true],
        ['backend-service-0', 'cache', true],
        ['backend-service-0', 'public-api', false, 'POLICY_DENIED', 'EGRESS'],
        ['frontend', 'public-api', true], // L4 only: the L7 rules are not enforced by `ebpf`
        ['order-service-0', 'public-api', false, 'POLICY_DENIED', 'INGRESS'],
        // No handshake yet: the SYN is dropped; its retransmit (1 s later) would pass once the
        // agents have authenticated the pair, so every request here gives up after 500 ms.
        ['order-service-0', 'payment-service', false, 'AUTH_REQUIRED', 'INGRESS'],
        ['frontend', 'echo', true], // no policy selects echo
      ];
      for (const [from, to, ok] of matrix) {
        const r = await curl(pod(from), `${vip(c, to)}/echo`, ['-timeout', '500ms']);
        t.is(r.code === 0, ok, `${from} → ${to}: ${r.out.trim().split('\n').at(-1)}`);
      }
      const seen = await flows(lab);
      for (const [from, to, ok, reason, direction] of matrix) {
        const drops = seen.filter((f) => f.verdict === 'DROPPED' && f.source.ip === pod(from).ip && f.destination.ip === backend(to).ip);
        if (ok) t.is(drops.length, 0, `${from} → ${to}: no drop`);
        else
          t.true(drops.length > 0 && drops.every((d) => d.dropReason === reason && d.direction === direction), `${from} → ${to}: ${JSON.stringify(drops[0])}`);
      }
    },
    SCENARIO,
  );
});

rootTest('ebpf: the underlay carries only WireGuard; a payload marker never appears in clear', async (t) => {
  await withLab(
    'ebpf',
    'mbebp3',
    async ({ c, d, curl, pod }) => {
      const before = (await d.kernelResources!()).wireguardTxBytes!;
      const wire = await captureUnderlay(
        c,
        async () => {
          for (let i = 0; i < 5; i++) t.is((await curl(pod('frontend'), `${vip(c, 'public-api')}/api/v1/products/${MARKER}`)).code, 0);
        },
        // Everything IPv4 but the kernel's own IGMP reports (sent when links come up).
        'ip and not igmp',
      );
      const packets = wire.split('\n').filter((l) => /^\d\d:\d\d:\d\d\.\d+ IP /.test(l));
      t.true(packets.length >= 10, `${packets.length} packets`);
      for (const p of packets) t.regex(p, /^\S+ IP 198\.18\.0\.\d+\.51871 > 198\.18\.0\.\d+\.51871: UDP/, p);
      t.false(wire.includes(MARKER));
      const sent = (await d.kernelResources!()).wireguardTxBytes! - before;
      t.true(sent > 5 * 100, `WireGuard sent ${sent} bytes for 5 requests`);
    },
    SCENARIO,
  );
});

rootTest(
  'ebpf: auth-required traffic is dropped with AUTH_REQUIRED until the node agents complete a TLS 1.3 handshake, then flows; stopping the agents keeps flows forwarding',
  async (t) => {
    await withLab(
      'ebpf',
      'mbebp4',
      async (lab) => {
        const { c, pod, curl, procs, fortio } = lab;
        const from = pod('order-service-0');
        const url = `${vip(c, 'payment-service')}/echo`;
        t.not((await curl(from, url, ['-timeout', '500ms'])).code, 0, 'no entry yet: the first SYN is dropped');
        t.true((await flows(lab)).some((f) => f.verdict === 'DROPPED' && f.dropReason === 'AUTH_REQUIRED' && f.source.ip === from.ip));

        // The drop was on node2 (payment-service's ingress): its agent handshakes with node1's.
        const log = join(lab.dir, 'auth', 'node2.log');
        let done: { ok: boolean; local: number; remote: number; remoteNode: string; ms: number } | undefined;
        for (let i = 0; i < 100 && !done; i++) {
          await sleep(50);
          if (existsSync(log))
            done = readFileSync(log, 'utf8')
              .split('\n')
              .filter((l) => l.startsWith('{'))
              .map((l) => JSON.parse(l))
              .find((r) => r.ok);
        }
        t.truthy(done, readFileSync(log, 'utf8'));
        const ids = JSON.parse(readFileSync(join(lab.dir, 'flows', 'identities.json'), 'utf8')).endpoints;
        t.is(done!.local, ids[pod('payment-service-0').ip].identity);
        t.is(done!.remote, ids[from.ip].identity);
        t.is(done!.remoteNode, 'node1');
        t.log(`handshake and entry in ${done!.ms} ms`);
        const entries = JSON.parse((await exec('bpftool', ['-j', 'map', 'dump', 'pinned', nodePins(c.prefix, c.nodes[1]).map('mb_auth')])).stdout) as unknown[];
        t.is(entries.length, 1);
        t.is((await curl(from, url)).code, 0, 'after the handshake the connection is allowed');

        // A load running while the agents stop loses nothing; new connections still pass.
        const load = exec(fortio, ['load', '-qps', '50', '-c', '2', '-t', '3s', '-loglevel', 'warning', url], {
          netns: from.netns,
          cgroup: procs.cgroupFor('test'),
          allowFail: true,
        });
        await sleep(1000);
        await Promise.all(procs.procs.filter((p) => p.name.startsWith('authd-')).map((p) => procs.stop(p)));
        const r = await load;
        t.regex(r.stdout + r.stderr, /Code 200 : \d+ \(100\.0 %\)/, 'every request of the running load answered 200');
        t.is((await curl(from, url)).code, 0, 'a new connection after the agents stopped');
      },
      SCENARIO,
    );
  },
);
