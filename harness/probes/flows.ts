// The eBPF dataplanes' flow log (`<caseDir>/flows/`), read and summarized into a service dependency
// map: workloads and edges workload → workload:port/protocol with connection counts and outcomes.
// Everything here is pure except the two readers; output order is fixed, so the same log gives
// the same summary. Log layout and counting rules: docs/results.md (the run record's `flows`).
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import type { FlowEdge, FlowSummary, FlowWorkload } from '../results/types.js';
import { byString } from '../util/order.js';

export type { FlowEdge, FlowSummary, FlowWorkload } from '../results/types.js';

export interface Flow {
  timeNs: number;
  node: string;
  verdict: string;
  dropReason?: string;
  direction: string;
  observationPoint: string;
  protocol: string;
  source: { ip: string; port: number; identity: number };
  destination: { ip: string; port: number; identity: number };
  proxyPort?: number;
  /** `L7` for the node proxy's request records; absent for the datapath's. */
  type?: string;
  /** L7 records only: the request as the proxy saw it. */
  l7?: { method: string; path: string; status: number; upstream?: string; route?: string };
  /** Added when read: the case the flow belongs to, and names from identities.json. */
  case?: string;
  sourcePod?: string;
  sourceNamespace?: string;
  destinationPod?: string;
  destinationNamespace?: string;
  /** The destination is a Service VIP (a routed Service, sent to the node L7 proxy). */
  destinationService?: { namespace: string; name: string };
}

export interface FlowNames {
  endpoints: Record<string, { pod: string; namespace: string; node: string; identity: number }>;
  identities?: Record<string, string[]>;
  /** Service VIP → Service. */
  services?: Record<string, { namespace: string; name: string }>;
}

export interface FlowLog {
  /** Every record of every file, named, in time order (ties in file and line order). */
  flows: Flow[];
  /** `file:line` of lines that start with `{` but are not JSON (a record cut short). */
  unreadable: string[];
  /** L7 request records the node proxies could not write, summed over nodes (only when they said). */
  l7Dropped?: number;
}

/** Beside `<node>-l7.jsonl`, the node L7 proxy's counters at the end of the case: {node, droppedLogs, source}. */
export const L7_STATS_SUFFIX = '-l7-stats.json';

/** One flows/ directory: every `*.jsonl` file (in name order), named from its identities.json. */
export function readFlowDir(dir: string): FlowLog {
  const namesFile = join(dir, 'identities.json');
  const names: FlowNames = existsSync(namesFile) ? JSON.parse(readFileSync(namesFile, 'utf8')) : { endpoints: {} };
  const endpoints = names.endpoints ?? {};
  const caseName = basename(dirname(dir));
  const flows: Flow[] = [];
  const unreadable: string[] = [];
  for (const f of readdirSync(dir)
    .filter((x) => x.endsWith('.jsonl'))
    .sort()) {
    const lines = readFileSync(join(dir, f), 'utf8').split('\n');
    lines.forEach((line, i) => {
      if (!line.startsWith('{')) return;
      let fl: Flow;
      try {
        fl = JSON.parse(line) as Flow;
      } catch {
        unreadable.push(`${join(dir, f)}:${i + 1}`);
        return;
      }
      if (!fl || typeof fl !== 'object' || !fl.source || !fl.destination) {
        unreadable.push(`${join(dir, f)}:${i + 1}`);
        return;
      }
      if (fl.type === 'L7') dashesOut(fl);
      const s = endpoints[fl.source.ip];
      const d = endpoints[fl.destination.ip];
      const svc = d ? undefined : names.services?.[fl.destination.ip];
      flows.push({
        ...fl,
        case: caseName,
        sourcePod: s?.pod,
        sourceNamespace: s?.namespace,
        destinationPod: d?.pod,
        destinationNamespace: d?.namespace,
        ...(svc ? { destinationService: svc } : {}),
      });
    });
  }
  // Array.prototype.sort is stable: equal times keep file and line order.
  flows.sort((a, b) => a.timeNs - b.timeNs);
  const stats = readdirSync(dir).filter((x) => x.endsWith(L7_STATS_SUFFIX));
  let l7Dropped: number | undefined;
  for (const f of stats) {
    try {
      const n = (JSON.parse(readFileSync(join(dir, f), 'utf8')) as { droppedLogs?: unknown }).droppedLogs;
      if (typeof n === 'number' && Number.isFinite(n)) l7Dropped = (l7Dropped ?? 0) + n;
    } catch {
      unreadable.push(`${join(dir, f)}:1`);
    }
  }
  return { flows, unreadable, ...(l7Dropped !== undefined ? { l7Dropped } : {}) };
}

/** HAProxy logs an absent value as "-": leave such fields out of an L7 record. */
function dashesOut(fl: Flow): void {
  if (fl.dropReason === '-' || fl.dropReason === '') delete fl.dropReason;
  if (fl.l7?.route === '-') delete fl.l7.route;
  if (fl.l7?.upstream === '-:-') delete fl.l7.upstream;
}

/** A case directory's flow log, or undefined when the case has none (not an eBPF dataplane). */
export function readCaseFlows(caseDir: string): FlowLog | undefined {
  const dir = join(caseDir, 'flows');
  return existsSync(dir) ? readFlowDir(dir) : undefined;
}

/** Security identities Cilium reserves, named as Hubble names them. */
export const RESERVED_IDENTITIES: Record<number, string> = { 1: 'host', 2: 'world', 6: 'remote-node' };

export const FLOW_SUMMARY_METHOD =
  'flow log of the whole case (deploy, warm-up and measured window): a connection is one 5-tuple, seen at either node, its outcome the verdict of its last record; L7 records count one per request; pods grouped into workloads by namespace and name without the replica index';

/** `frontend` → `frontend`, `api-gateway-0` → `api-gateway`: a Service's pods are `<name>-<n>`. */
export function workloadOfPod(pod: string): string {
  return pod.replace(/-\d+$/, '') || pod;
}

interface End {
  id: string;
  w: Omit<FlowWorkload, 'pods' | 'identities'>;
  pod?: string;
  identity: number;
}

function endOf(ip: string, identity: number, pod: string | undefined, namespace: string | undefined, service?: { namespace: string; name: string }): End {
  if (service)
    return { id: `${service.namespace}/${service.name}`, w: { id: '', kind: 'service', name: service.name, namespace: service.namespace }, identity };
  if (pod !== undefined) {
    const name = workloadOfPod(pod);
    const ns = namespace ?? '';
    return {
      id: ns ? `${ns}/${name}` : name,
      w: { id: '', kind: 'workload', name, ...(ns ? { namespace: ns } : {}) },
      pod: ns ? `${ns}/${pod}` : pod,
      identity,
    };
  }
  const reserved = RESERVED_IDENTITIES[identity];
  if (reserved) return { id: reserved, w: { id: '', kind: 'reserved', name: reserved }, identity };
  return { id: ip, w: { id: '', kind: 'address', name: ip }, identity };
}

const sortedRecord = (m: Map<string, number>): Record<string, number> => Object.fromEntries([...m.entries()].sort((a, b) => byString(a[0], b[0])));
const isL7 = (f: Flow) => f.type === 'L7' || f.observationPoint === 'l7-proxy';
const reasonOf = (f: Flow) => (f.dropReason ? f.dropReason : 'UNKNOWN');

interface EdgeAcc {
  from: string;
  to: string;
  port: number;
  protocol: string;
  connections: number;
  forwarded: number;
  redirected: number;
  dropped: Map<string, number>;
  droppedThenForwarded: Map<string, number>;
  l7?: { forwarded: number; denied: number; dropped: Map<string, number> };
}

interface ConnAcc {
  edge: EdgeAcc;
  last: Flow;
  redirected: boolean;
  drops: Set<string>;
}

const bump = (m: Map<string, number>, k: string, n = 1) => m.set(k, (m.get(k) ?? 0) + n);

/**
 * Flows → workloads and edges. Order-independent: records are put in time order first (ties by
 * node, observation point, direction, verdict), so the same records give the same summary.
 */
export function summarizeFlows(flows: Flow[], unreadable = 0, l7Dropped?: number): FlowSummary {
  const ordered = flows
    .map((f, i) => ({ f, i }))
    .sort(
      (a, b) =>
        a.f.timeNs - b.f.timeNs ||
        byString(a.f.node ?? '', b.f.node ?? '') ||
        byString(a.f.observationPoint ?? '', b.f.observationPoint ?? '') ||
        byString(a.f.direction ?? '', b.f.direction ?? '') ||
        byString(a.f.verdict ?? '', b.f.verdict ?? '') ||
        a.i - b.i,
    )
    .map((x) => x.f);
  const workloads = new Map<string, { w: End['w']; pods: Set<string>; identities: Set<number> }>();
  const edges = new Map<string, EdgeAcc>();
  const conns = new Map<string, ConnAcc>();
  const nodes = new Set<string>();
  let l3 = 0;
  let l7 = 0;

  const workload = (e: End) => {
    let w = workloads.get(e.id);
    if (!w) workloads.set(e.id, (w = { w: { ...e.w, id: e.id }, pods: new Set(), identities: new Set() }));
    if (e.pod) w.pods.add(e.pod);
    if (Number.isInteger(e.identity) && e.identity > 0) w.identities.add(e.identity);
  };
  const edgeOf = (from: string, to: string, port: number, protocol: string) => {
    const key = JSON.stringify([from, to, protocol, port]);
    let e = edges.get(key);
    if (!e)
      edges.set(key, (e = { from, to, port, protocol, connections: 0, forwarded: 0, redirected: 0, dropped: new Map(), droppedThenForwarded: new Map() }));
    return e;
  };

  for (const f of ordered) {
    if (f.node) nodes.add(f.node);
    const src = endOf(f.source.ip, f.source.identity, f.sourcePod, f.sourceNamespace);
    const dst = endOf(f.destination.ip, f.destination.identity, f.destinationPod, f.destinationNamespace, f.destinationService);
    workload(src);
    workload(dst);
    if (isL7(f)) {
      // HTTP rides on TCP: the request belongs on the same edge as its connection.
      l7++;
      const e = edgeOf(src.id, dst.id, f.destination.port, 'TCP');
      e.l7 ??= { forwarded: 0, denied: 0, dropped: new Map() };
      if (f.verdict !== 'DROPPED') e.l7.forwarded++;
      else if (f.dropReason === 'POLICY_DENIED') e.l7.denied++;
      else bump(e.l7.dropped, reasonOf(f));
      continue;
    }
    l3++;
    const key = `${f.protocol} ${f.source.ip}:${f.source.port} ${f.destination.ip}:${f.destination.port}`;
    let c = conns.get(key);
    if (!c) conns.set(key, (c = { edge: edgeOf(src.id, dst.id, f.destination.port, f.protocol), last: f, redirected: false, drops: new Set() }));
    c.last = f;
    if (f.verdict === 'REDIRECTED') c.redirected = true;
    if (f.verdict === 'DROPPED') c.drops.add(reasonOf(f));
  }

  for (const c of conns.values()) {
    const e = c.edge;
    e.connections++;
    if (c.redirected) e.redirected++;
    if (c.last.verdict === 'DROPPED') {
      bump(e.dropped, reasonOf(c.last));
    } else {
      e.forwarded++;
      for (const r of c.drops) bump(e.droppedThenForwarded, r);
    }
  }

  const outEdges: FlowEdge[] = [...edges.values()]
    .sort((a, b) => byString(a.from, b.from) || byString(a.to, b.to) || byString(a.protocol, b.protocol) || a.port - b.port)
    .map((e) => ({
      from: e.from,
      to: e.to,
      port: e.port,
      protocol: e.protocol,
      connections: e.connections,
      forwarded: e.forwarded,
      redirected: e.redirected,
      dropped: sortedRecord(e.dropped),
      ...(e.droppedThenForwarded.size ? { droppedThenForwarded: sortedRecord(e.droppedThenForwarded) } : {}),
      ...(e.l7 ? { l7: { forwarded: e.l7.forwarded, denied: e.l7.denied, ...(e.l7.dropped.size ? { dropped: sortedRecord(e.l7.dropped) } : {}) } } : {}),
    }));
  const outWorkloads: FlowWorkload[] = [...workloads.values()]
    .sort((a, b) => byString(a.w.id, b.w.id))
    .map(({ w, pods, identities }) => ({ ...w, ...(pods.size ? { pods: pods.size } : {}), identities: [...identities].sort((a, b) => a - b) }));
  return {
    method: FLOW_SUMMARY_METHOD,
    records: { l3, l7, unreadable, ...(l7Dropped !== undefined ? { l7Dropped } : {}) },
    nodes: [...nodes].sort(byString),
    workloads: outWorkloads,
    edges: outEdges,
  };
}

/** The summary of a case directory's flow log, or undefined when the case wrote none. */
export function summarizeCaseFlows(caseDir: string): FlowSummary | undefined {
  const log = readCaseFlows(caseDir);
  return log && summarizeFlows(log.flows, log.unreadable.length, log.l7Dropped);
}

/** Does the edge lose traffic: connections that ended dropped, or requests the L7 proxy refused. */
export function edgeHasDrops(e: FlowEdge): boolean {
  const sum = (r: Record<string, number> | undefined) => Object.values(r ?? {}).reduce((a, b) => a + b, 0);
  return sum(e.dropped) > 0 || (e.l7?.denied ?? 0) > 0 || sum(e.l7?.dropped) > 0;
}

/** Does the edge pass through the node L7 proxy (connections redirected, or request records). */
export function edgeViaL7Proxy(e: FlowEdge): boolean {
  return e.redirected > 0 || e.l7 !== undefined;
}
