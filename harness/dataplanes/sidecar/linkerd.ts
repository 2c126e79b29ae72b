// `linkerd-sidecar`: Linkerd's model. Capture as linkerd2-proxy-init (outbound 4140, inbound 4143,
// proxy uid 2102), ECDSA P-256 identities, one proxy thread, only the destinations the pod uses,
// and every proxy-to-proxy request carried over multiplexed HTTP/2 (HTTP/1.1 upgraded, marked
// with l5d-orig-proto). HAProxy plays linkerd2-proxy.
import { linkerdProxyInitRules } from '../mesh/capture/linkerd.js';
import { sidecarDataplane, type SidecarProfile } from './family.js';

export const linkerdProfile: SidecarProfile = {
  name: 'linkerd-sidecar',
  standsFor: ['linkerd'],
  summary: 'Linkerd: proxy-init REDIRECT to a per-pod proxy (HAProxy standing in for linkerd2-proxy), mTLS over multiplexed HTTP/2, only used destinations',
  standInFor: 'linkerd2-proxy',
  captureProfile: 'linkerd',
  capture: () => linkerdProxyInitRules(),
  uid: 2102,
  gid: 2102,
  outboundPort: 4140,
  inboundPort: 4143,
  threads: 1,
  keyType: 'ecdsa-p256',
  upstream: 'h2',
  origProtoHeader: true,
  scope: 'used',
  loopbackLegs: 4,
};

export const linkerdSidecar = sidecarDataplane(linkerdProfile);
