// What a proxy engine is told to be, independent of the engine: listeners, where each Service's
// traffic goes, which peers may come in and with which requests. HAProxy renders it today; an
// `envoy` or `linkerd2-proxy` binary on PATH could render the same spec later.
import type { ProcessGroup, LabProcess } from '../../util/procs.js';

export interface Endpoint {
  pod: string;
  ip: string;
  port: number;
  /** The identity the proxy must see on the peer's certificate. */
  spiffeId: string;
}

export interface OutboundService {
  key: string; // stable, config-safe name: <ns>_<svc>_<port>
  name: string;
  namespace: string;
  vip: string;
  port: number;
  protocol: 'http' | 'grpc';
  endpoints: Endpoint[];
}

/**
 * A route on one Service, with the model's semantics (routeRuleFor in policy/model.ts): rules in
 * order, the first whose headers (exact values) and path prefix all match decides and splits by
 * weight among its destinations; a request no rule matches gets 404.
 */
export interface OutboundRoute {
  service: string; // OutboundService.key of the routed Service
  rules: OutboundRouteRule[];
}

export interface OutboundRouteRule {
  headers: [string, string][]; // lower-case names
  pathPrefix?: string;
  to: { to: string; weight: number }[]; // to = OutboundService.key
}

export interface InboundPort {
  port: number;
  protocol: 'http' | 'grpc';
}

/** Ingress authorization in engine terms: per destination port, allowed identities and L7 rules. */
export interface InboundAuthz {
  enforced: boolean;
  ports: {
    port: number | 'any';
    /** SPIFFE IDs allowed, or 'any' authenticated peer. */
    identities: string[] | 'any';
    /**
     * Set when peers carry no identity (a plaintext mesh, mtls=off): the allowed peers' pod
     * addresses, checked instead of `identities`; 'any' admits every source.
     */
    addresses?: string[] | 'any';
    l7?: { method?: string; pathRegex?: string; headers?: [string, string][] }[];
  }[];
}

/** Egress authorization: destinations (VIP or pod IP, port) the pod may open. */
export interface OutboundAuthz {
  enforced: boolean;
  allow: { ip: string; port: number | 'any' }[];
}

export interface SidecarSpec {
  pod: string;
  netns: string;
  uid: number;
  gid: number;
  threads: number;
  outboundPort: number;
  inboundPort: number;
  /** Source address of the proxy's connections to the app (Istio uses 127.0.0.6). */
  appSource?: string;
  identity: { spiffeId: string; bundleFile: string };
  rootCaFile: string;
  /** h1: HTTP/1.1 upstream for HTTP services (Istio's default); h2: everything multiplexed over HTTP/2 (Linkerd). */
  upstream: 'h1' | 'h2';
  services: OutboundService[];
  routes: OutboundRoute[];
  inbound: InboundPort[];
  authz: InboundAuthz;
  egress: OutboundAuthz;
  /** Unix socket for counters (engine admin/stats). */
  adminSocket: string;
  /** Extra request header the outbound side adds (Linkerd's l5d-orig-proto), if any. */
  origProtoHeader?: boolean;
  /**
   * How the two proxies talk: 'mtls' (default), or 'plain' HTTP (the mtls=off ablation: no
   * certificates; `identity` and `rootCaFile` are not used, inbound peers are checked by address).
   */
  transport?: 'mtls' | 'plain';
  /**
   * The capture-only ablation: a TCP pass-through and nothing else (outbound to the original
   * destination, inbound to the app on loopback); services, routes and authz are not rendered.
   */
  passThrough?: boolean;
  /**
   * false: the l7=off ablation. Both listeners in `mode tcp` (no HTTP parsing): outbound picks the
   * Service by original destination and balances its endpoints per connection, inbound authorizes
   * the peer at the session only (L7 rules are not rendered: their peers are admitted at L4);
   * `routes` and `origProtoHeader` are not rendered. Default true.
   */
  l7?: boolean;
}

export interface ProxyCounters {
  /** HTTP requests seen per frontend (outbound/inbound) and per backend (by OutboundService.key or app). */
  frontends: Record<string, number>;
  backends: Record<string, number>;
  /** Connections (sessions) per frontend and backend: what an L4 proxy counts. */
  frontendSessions: Record<string, number>;
  backendSessions: Record<string, number>;
}

export interface ProxyEngine {
  name: string;
  version(): Promise<string>;
  /** Engine configuration text for one sidecar. */
  renderSidecar(spec: SidecarSpec): string;
  start(procs: ProcessGroup, spec: SidecarSpec, configFile: string, logFile: string, role: string): LabProcess;
  counters(adminSocket: string): Promise<ProxyCounters>;
}

export interface Waypoint {
  ip: string;
  port: number;
  spiffeId: string;
  /** OutboundService keys it fronts. */
  services: string[];
}

/** One local pod as a node proxy (ztunnel-like) serves it: its listeners live in the pod's netns. */
export interface NodeProxyPod {
  pod: string;
  netns: string;
  ip: string;
  identity: { spiffeId: string; bundleFile: string };
  /** Where tunnelled traffic for this pod goes: original destination (VIP:port or pod IP:port) → app port. */
  inbound: { vip?: string; port: number; targetPort: number; protocol: 'http' | 'grpc' }[];
  authz: InboundAuthz;
  egress: OutboundAuthz;
}

export interface NodeProxySpec {
  node: string;
  netns: string;
  threads: number;
  outboundPort: number;
  inboundPlainPort: number;
  tunnelPort: number;
  rootCaFile: string;
  adminSocket: string;
  pods: NodeProxyPod[];
  /** Every Service of the mesh (the node's tables, shared by its pods). */
  services: OutboundService[];
  /** Every mesh workload by address, for traffic addressed to a pod rather than a Service. */
  workloads: { ip: string; spiffeId: string }[];
  /** Where the node's tables (map files) are written. */
  mapDir: string;
  /** Deliver to the app from the client's own address (IP_TRANSPARENT), not the proxy's. */
  keepSourceIp: boolean;
  /** Services with L7 policy or routes go through their namespace's waypoint instead of straight to an endpoint. */
  waypoints?: Waypoint[];
  /** 'plain' (mtls=off): tunnels without TLS, pods' `authz` by address; not with waypoints. Default 'mtls'. */
  transport?: 'mtls' | 'plain';
}

/** A waypoint for one namespace: the Services it fronts, each with its policy and routes. */
export interface WaypointSpec {
  namespace: string;
  threads: number;
  port: number; // where tunnels arrive (15008)
  tunnelPort: number; // the destination node proxies' tunnel port
  identity: { spiffeId: string; bundleFile: string };
  rootCaFile: string;
  adminSocket: string;
  /** Services sent through this waypoint, with the ingress policy of their backends (port = targetPort). */
  services: { service: OutboundService; targetPort: number; authz: InboundAuthz }[];
  routes: OutboundRoute[];
  /** Every Service a route or a fronted Service may lead to. */
  targets: OutboundService[];
}

/** One app port of one local pod whose ingress policy has L7 rules (Cilium: an L7 redirect). */
export interface L7IngressPort {
  pod: string;
  netns: string;
  ip: string;
  port: number;
  protocol: 'http' | 'grpc';
  /** Per group of peers (identity numbers, or any peer the datapath admitted): the requests allowed; [{}] allows all. */
  rules: { identities: number[] | 'any'; l7: { method?: string; pathRegex?: string; headers?: [string, string][] }[] }[];
}

/**
 * The eBPF dataplane's node L7 proxy (Cilium's per-node Envoy): connections arrive by TPROXY on
 * transparent listeners with their original addresses; the source's security identity is looked up
 * by address (Envoy reads the ipcache); requests are judged against the destination pod's L7 rules,
 * and routed Services are balanced here.
 */
export interface L7ProxySpec {
  node: string;
  threads: number;
  adminSocket: string;
  /** Where the node's tables (map files) are written. */
  mapDir: string;
  /** Listener of ingress L7 redirects: app port → proxy port. */
  proxyPorts: Record<number, number>;
  ingress: L7IngressPort[];
  /** Address → security identity, for every workload and node. */
  identities: { ip: string; identity: number }[];
  /** Routed Services balanced by the proxy (absent: none). */
  lb?: {
    port: number;
    routes: OutboundRoute[];
    /** The routed Services and every Service a route leads to. */
    services: OutboundService[];
    /** Local pods a routed connection can come from: upstream connections are made from their namespace. */
    clients: { ip: string; netns: string }[];
  };
}
