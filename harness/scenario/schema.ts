// Schemas for the two YAML files a user writes: a topology (nodes, idle pods) and a scenario
// (services, client, workloads, dataplanes, repeats). Plain data; nothing here touches the host.
// `npm run build` turns these into JSON Schemas under schemas/ for editors.
import { z } from 'zod';
import { PolicySchema, RouteSchema } from './policy-schema.js';

const dnsLabel = z
  .string()
  .regex(/^[a-z]([a-z0-9-]{0,30}[a-z0-9])?$/, 'must be a lowercase DNS label (a-z, 0-9, "-", at most 32 characters)');
const port = z.number().int().min(1).max(65535);
const labelMap = z.record(z.string().regex(/^[A-Za-z0-9./_-]{1,63}$/, 'bad label key'), z.string().max(63));

/** "20s", "1m30s", "500ms", or a number of seconds. */
export const duration = z.union([
  z.number().positive(),
  z.string().regex(/^(\d+(\.\d+)?(ms|s|m|h))+$/, 'must be a duration like 500ms, 20s, 1m30s'),
]);

export function durationSeconds(d: number | string): number {
  if (typeof d === 'number') return d;
  const unit: Record<string, number> = { ms: 0.001, s: 1, m: 60, h: 3600 };
  let total = 0;
  for (const m of d.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h)/g)) total += Number(m[1]) * unit[m[2]];
  return total;
}

export const TopologySchema = z
  .object({
    kind: z.literal('Topology'),
    name: dnsLabel,
    description: z.string().optional(),
    /** A count (named node1..nodeN) or explicit names. */
    nodes: z.union([z.number().int().min(1).max(250), z.array(dnsLabel).min(1).max(250)]),
    /** Idle pods per node (a namespace with an address and no process), for scale. */
    podsPerNode: z.number().int().min(0).max(250).default(0),
    underlay: z.object({ mtu: z.number().int().min(1280).max(9000).default(1500) }).strict().default({ mtu: 1500 }),
  })
  .strict();

export const ServiceSchema = z
  .object({
    name: dnsLabel,
    namespace: dnsLabel.default('default'),
    port: port,
    targetPort: port,
    /** What the backends speak on targetPort. */
    protocol: z.enum(['http', 'grpc']).default('http'),
    /** 0 = a Service only, selecting pods declared by other services (canary v1/v2 behind one name). */
    replicas: z.number().int().min(0).max(64).default(1),
    /** Labels of the backend pods; defaults to {app: <name>}. */
    selector: labelMap.optional(),
    /** Extra labels on the backend pods (version: v2 …). */
    labels: labelMap.optional(),
    /** Nodes the replicas are placed on, round-robin; default all nodes. */
    nodes: z.array(dnsLabel).min(1).optional(),
  })
  .strict();

export const WorkloadSchema = z
  .object({
    name: dnsLabel.default('default'),
    protocol: z.enum(['http1', 'http2', 'grpc']),
    /** Requests per second over all connections, or "max" for a closed loop as fast as it goes. */
    qps: z.union([z.number().positive().max(1_000_000), z.literal('max')]),
    connections: z.number().int().min(1).max(1024).default(4),
    duration: duration,
    warmup: duration.default('3s'),
    /** Request body bytes (POST when > 0). */
    payloadBytes: z.number().int().min(0).max(1_048_576).default(0),
    /** Response body bytes asked of the echo server. */
    responseBytes: z.number().int().min(0).max(1_048_576).default(0),
    /** Services called in turn for each request: the client calls chain[0], which calls chain[1] … */
    chain: z.array(dnsLabel).min(1).max(8),
  })
  .strict();

export const ScenarioSchema = z
  .object({
    kind: z.literal('Scenario'),
    name: dnsLabel,
    description: z.string().optional(),
    /** Path to a topology file, relative to this file, or an inline topology. */
    topology: z.union([z.string().min(1), TopologySchema]),
    services: z.array(ServiceSchema).min(1),
    client: z
      .object({ name: dnsLabel.default('client'), namespace: dnsLabel.default('default'), node: dnsLabel, labels: labelMap.optional() })
      .strict(),
    workloads: z.array(WorkloadSchema).min(1),
    dataplanes: z.array(z.string()).min(1),
    /** Who may talk to whom (the lab's own format, shared by every dataplane). */
    policies: z.array(PolicySchema).default([]),
    /** CiliumNetworkPolicy files (the subset the source documents use), relative to this file. */
    policyFiles: z.array(z.string().min(1)).default([]),
    /** L7 traffic routing (canary): header matches and weighted splits, done by the client-side proxy. */
    routes: z.array(RouteSchema).default([]),
    repeats: z.number().int().min(1).max(100).default(1),
    /**
     * The source document's table this scenario reproduces: an id in reference/claims.yaml, other
     * tables its cases also measure (`also`), what was scaled to fit this machine
     * ("<what>": "<document> → <lab>"), and a free note.
     */
    reference: z
      .object({
        table: z.string().min(1),
        also: z.array(z.string().min(1)).optional(),
        scaling: z.record(z.string(), z.string()).optional(),
        note: z.string().optional(),
      })
      .strict()
      .optional(),
    /**
     * What `--quick` changes: timing and repeats, and for scenarios whose full size takes long to
     * build, a smaller topology (a file relative to this one, or inline) and fewer replicas per
     * service (service name → replicas).
     */
    quick: z
      .object({
        duration: duration.optional(),
        warmup: duration.optional(),
        repeats: z.number().int().min(1).optional(),
        topology: z.union([z.string().min(1), TopologySchema]).optional(),
        replicas: z.record(z.string(), z.number().int().min(1).max(64)).optional(),
      })
      .strict()
      .optional(),
    /** CPUs to pin the load generator and the app servers to; "auto" splits the host's CPUs. */
    pinning: z
      .union([z.literal('auto'), z.literal('none'), z.object({ load: z.string(), apps: z.string() }).strict()])
      .default('auto'),
  })
  .strict();

export type Topology = z.infer<typeof TopologySchema>;
export type Service = z.infer<typeof ServiceSchema>;
export type Workload = z.infer<typeof WorkloadSchema>;
export type ScenarioInput = z.infer<typeof ScenarioSchema>;

/** A scenario after loading: topology resolved, defaults filled in. */
export interface Scenario extends Omit<ScenarioInput, 'topology'> {
  topology: Topology;
  /** Where it came from, for messages and the run record. */
  file: string;
  /** policies[0 … inlinePolicies-1] are written in the scenario; the rest come from policyFiles. */
  inlinePolicies: number;
  topologyFile?: string;
  /** `quick.topology` loaded, when the scenario has one. */
  quickTopology?: Topology;
}
