// `ebpf`: the eBPF family L3/L4 only (Cilium without its L7 proxy): every request stays in the kernel.
import { ebpfDataplane } from './family.js';

export const ebpf = ebpfDataplane({
  name: 'ebpf',
  standsFor: ['cilium', 'cilium-l4', 'cilium-no-http-filter', 'ebpf-http-visibility'],
  summary: 'Cilium-like eBPF, L3/L4 only: socket LB at connect(), identity policy in tc, no proxy',
  l7: false,
  encryption: 'wireguard',
});
