// `ambient`: Istio Ambient without a waypoint. istio-cni-style redirect rules inside each pod,
// one node proxy per node (HAProxy standing in for ztunnel) with listeners inside the pods,
// mTLS tunnels between node proxies carrying the source workload's identity. L4 only.
import { istioCniCapture, nodeProxyDataplane } from './family.js';

export const ambient = nodeProxyDataplane({
  name: 'ambient',
  standsFor: ['istio-ambient'],
  summary: 'Istio Ambient: in-pod redirect to one node proxy per node (HAProxy standing in for ztunnel), mTLS tunnels between nodes, L4 only',
  capture: istioCniCapture,
  threads: 2,
  keepSourceIp: false,
  waypoint: false,
});
