// `istio-sidecar`: Istio's classic sidecar model. Capture as `istio-iptables -p 15001 -z 15006
// -u 1337 -m REDIRECT`, RSA-2048 workload certificates, two proxy threads (Envoy's default
// concurrency in a sidecar), every Service of the mesh in every sidecar's configuration, HTTP/1.1
// upstream for HTTP/1.1 apps, inbound forwarded to the app from 127.0.0.6. HAProxy plays Envoy.
import { istioSidecarRules } from '../mesh/capture/istio.js';
import { sidecarDataplane, type SidecarProfile } from './family.js';

export const istioProfile: SidecarProfile = {
  name: 'istio-sidecar',
  standsFor: ['istio-sidecar', 'cilium-istio-two-sidecars'],
  summary: 'Istio classic sidecar: iptables REDIRECT to a per-pod proxy (HAProxy standing in for Envoy), mTLS between proxies, whole-mesh config per pod',
  standInFor: 'Envoy (istio-proxy sidecar)',
  captureProfile: 'istio',
  capture: () => istioSidecarRules(),
  uid: 1337,
  gid: 1337,
  outboundPort: 15001,
  inboundPort: 15006,
  threads: 2,
  keyType: 'rsa-2048',
  upstream: 'h1',
  appSource: '127.0.0.6',
  scope: 'whole-mesh',
  loopbackLegs: 4,
};

export const istioSidecar = sidecarDataplane(istioProfile);
