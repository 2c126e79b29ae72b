// `ebpf-l7`: the eBPF dataplane with Cilium's per-node L7 proxy (HAProxy standing in for Envoy).
// Connections to app ports with ingress L7 rules, and to Services with routes, are redirected by
// the tc programs (mark + TPROXY in the node namespace) to one proxy per node, which enforces the
// L7 rules and the canary split; every other connection stays in the kernel as with `ebpf`.
import { ebpfDataplane } from './family.js';

export const ebpfL7 = ebpfDataplane({
  name: 'ebpf-l7',
  standsFor: ['cilium-l7', 'cilium-node-envoy-http-filter', 'proxy-http-visibility'],
  summary: 'Cilium-like eBPF with the node L7 proxy (HAProxy standing in for Envoy) for ports with L7 rules and routed Services only; everything else as ebpf',
  l7: true,
  encryption: 'wireguard',
});
