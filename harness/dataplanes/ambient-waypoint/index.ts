// `ambient-waypoint`: Istio Ambient with a waypoint per namespace. Services with L7 policy or
// routes go source node proxy → waypoint (HAProxy standing in for Envoy: L7 policy, canary
// split) → destination node proxy: three user-space hops, two mTLS legs. The rest as `ambient`.
import { istioCniCapture, nodeProxyDataplane } from '../proxy/node-proxy.js';

export const ambientWaypoint = nodeProxyDataplane({
  name: 'ambient-waypoint',
  summary: 'Istio Ambient with a waypoint per namespace (HAProxy standing in for Envoy) for Services with L7 policy or routes',
  capture: istioCniCapture,
  threads: 2,
  keepSourceIp: false,
  waypoint: true,
});
