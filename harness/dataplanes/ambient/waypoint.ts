// `ambient-waypoint`: Istio Ambient with a waypoint per namespace, the namespace enrolled as a
// whole: every request goes source node proxy → waypoint (HAProxy standing in for Envoy: L7
// policy, canary split) → destination node proxy: three user-space hops, two mTLS legs.
import { istioCniCapture, nodeProxyDataplane } from './family.js';

export const ambientWaypoint = nodeProxyDataplane({
  name: 'ambient-waypoint',
  summary:
    'Istio Ambient with a waypoint per namespace (HAProxy standing in for Envoy): node proxy → waypoint → node proxy, L7 policy and routes at the waypoint',
  capture: istioCniCapture,
  threads: 2,
  keepSourceIp: false,
  waypoint: true,
});
