// Service VIPs the way kube-proxy's iptables mode does them, generated per node namespace:
// nat PREROUTING/OUTPUT → <P>-SERVICES → one <P>-SVC-* chain per service port → statistic-mode
// random choice → <P>-SEP-* chain per endpoint → DNAT to podIP:targetPort, with the hairpin
// masquerade for a pod that reaches itself. Chains carry the run prefix where kube-proxy
// writes KUBE-. Shared by every dataplane that keeps kube-proxy in place (not eBPF).
import { createHash } from 'node:crypto';
import type { Cluster, ServiceSpec } from '../../topology/graph.js';
import { exec } from '../../util/exec.js';
import { pMap } from '../../util/pmap.js';

const hash = (s: string) => createHash('sha256').update(s).digest('base64url').replace(/[-_]/g, 'X').slice(0, 12).toUpperCase();

export function chainNames(prefix: string) {
  const P = prefix.toUpperCase();
  return {
    services: `${P}-SERVICES`,
    postrouting: `${P}-POSTROUTING`,
    markMasq: `${P}-MARK-MASQ`,
    svc: (s: ServiceSpec) => `${P}-SVC-${hash(`${s.namespace}/${s.name}:${s.port}`)}`,
    sep: (s: ServiceSpec, ip: string) => `${P}-SEP-${hash(`${s.namespace}/${s.name}:${s.port}/${ip}`)}`,
  };
}

/** An iptables-restore payload (nat table, --noflush) for one node namespace. */
export function kubeProxyRules(c: Cluster): string {
  const n = chainNames(c.prefix);
  const chains = [n.services, n.postrouting, n.markMasq];
  const rules: string[] = [
    `-A PREROUTING -m comment --comment "meshbench service portals" -j ${n.services}`,
    `-A OUTPUT -m comment --comment "meshbench service portals" -j ${n.services}`,
    `-A POSTROUTING -m comment --comment "meshbench postrouting rules" -j ${n.postrouting}`,
    `-A ${n.postrouting} -m mark ! --mark 0x4000/0x4000 -j RETURN`,
    `-A ${n.postrouting} -j MARK --xor-mark 0x4000`,
    `-A ${n.postrouting} -m comment --comment "meshbench service traffic requiring SNAT" -j MASQUERADE`,
    `-A ${n.markMasq} -j MARK --set-xmark 0x4000/0x4000`,
  ];
  for (const s of c.services) {
    const svc = n.svc(s);
    chains.push(svc);
    const name = `${s.namespace}/${s.name}:${s.port}`;
    rules.push(`-A ${n.services} -d ${s.vip}/32 -p tcp -m comment --comment "${name} cluster IP" -m tcp --dport ${s.port} -j ${svc}`);
    const eps = s.backends;
    eps.forEach((pod, i) => {
      const sep = n.sep(s, pod.ip);
      chains.push(sep);
      const left = eps.length - i;
      const pick = left > 1 ? `-m statistic --mode random --probability ${(1 / left).toFixed(10)} ` : '';
      rules.push(`-A ${svc} -m comment --comment "${name} -> ${pod.ip}:${s.targetPort}" ${pick}-j ${sep}`);
      rules.push(`-A ${sep} -s ${pod.ip}/32 -m comment --comment "${name}" -j ${n.markMasq}`);
      rules.push(`-A ${sep} -p tcp -m comment --comment "${name}" -m tcp -j DNAT --to-destination ${pod.ip}:${s.targetPort}`);
    });
  }
  return ['*nat', ...chains.map((ch) => `:${ch} - [0:0]`), ...rules, 'COMMIT', ''].join('\n');
}

/** Load the rules into every node namespace (not into pods, not into the root namespace). */
export async function applyKubeProxy(c: Cluster): Promise<{ rulesBytes: number }> {
  const payload = kubeProxyRules(c);
  await pMap(c.nodes, 8, (node) => exec('iptables-restore', ['-w', '5', '--noflush'], { netns: node.netns, input: payload }));
  return { rulesBytes: Buffer.byteLength(payload) };
}
