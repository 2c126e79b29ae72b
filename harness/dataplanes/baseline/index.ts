// `baseline`: no mesh. Service VIPs are load-balanced by kube-proxy-style iptables DNAT chains in
// the node namespaces and nothing else sits in the path. Every other dataplane's overhead is
// measured against this one in the same run.
import { placeOfNode } from '../../place/index.js';
import { toolVersion } from '../../util/tools.js';
import { applyKubeProxy, kubeProxyRules } from '../mesh/kube-proxy.js';
import type { Dataplane } from '../types.js';

export const baseline: Dataplane = {
  name: 'baseline',
  standsFor: ['baseline-no-visibility'],
  summary: 'no mesh: kube-proxy-style iptables DNAT for Service VIPs in the node namespaces, nothing else in the path',

  needs: [{ tool: 'iptables-restore' }],

  plan: ({ cluster }) => ({ configs: { 'kube-proxy rules': kubeProxyRules(cluster) } }),

  async deploy(ctx) {
    const { rulesBytes } = await applyKubeProxy(ctx.cluster);
    // The iptables that holds the rules: node 1's machine (this host unless --hosts placed it).
    const version = (await toolVersion('iptables', placeOfNode(1))) ?? 'unknown';
    return {
      provenance: {
        'service-lb': {
          engine: 'iptables',
          version,
          configBytes: rulesBytes,
          mechanism: 'kube-proxy iptables mode: nat DNAT chains with statistic-mode random endpoint choice, per node namespace',
        },
      },
      path: {
        userSpaceHops: 0,
        loopbackLegs: 0,
        redirect: 'none',
        encryption: 'none',
        serviceRouting: `iptables DNAT in the client's node (${/nf_tables/.test(version) ? 'nf_tables backend' : 'legacy backend'})`,
      },
    };
  },

  // The rules live in the node namespaces and go with them.
  async teardown() {},
};
