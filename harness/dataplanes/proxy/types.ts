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

/** A canary route on one Service: header matches first, then a weighted split (percent). */
export interface OutboundRoute {
  service: string; // OutboundService.key of the routed Service
  headerRules: { headers: [string, string][]; to: string }[]; // to = OutboundService.key
  split: { to: string; weight: number }[];
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
}

export interface ProxyCounters {
  /** Requests seen per frontend (outbound/inbound) and per backend (by OutboundService.key or app). */
  frontends: Record<string, number>;
  backends: Record<string, number>;
}

export interface ProxyEngine {
  name: string;
  version(): Promise<string>;
  /** Engine configuration text for one sidecar. */
  renderSidecar(spec: SidecarSpec): string;
  start(procs: ProcessGroup, spec: SidecarSpec, configFile: string, logFile: string, role: string): LabProcess;
  counters(adminSocket: string): Promise<ProxyCounters>;
}
