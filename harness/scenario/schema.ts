// Schemas for the two YAML files a user writes: a topology (nodes, idle pods) and a scenario
// (services, client, workloads, dataplanes, repeats). Plain data; nothing here touches the host.
// `npm run build` turns these into JSON Schemas under schemas/ for editors.
// Every count, duration and string has an upper bound and strings a charset, so whatever passes
// `validate` can be built and run (docs/inputs.md lists the bounds and why).
import { z } from 'zod';
import { PolicySchema, RouteSchema, LabelSelectorSchema } from './policy-schema.js';

const dnsLabel = z.string().regex(/^[a-z]([a-z0-9-]{0,30}[a-z0-9])?$/, 'must be a lowercase DNS label (a-z, 0-9, "-", at most 32 characters)');
const port = z.number().int().min(1).max(65535);
/** Pod labels: Kubernetes label keys and values (policy-schema.ts), at most 32 of them. */
const labelMap = LabelSelectorSchema;

/** Longest free text (description, note, scaling values). */
export const MAX_TEXT = 4096;
/** Free text: no control characters but tab and newline. */
// eslint-disable-next-line no-control-regex
const text = z
  .string()
  .max(MAX_TEXT)
  .regex(/^[^\u0000-\u0008\u000b-\u001f\u007f]*$/, 'must not hold control characters');
/** A short name such as a reference table id or a scaling key. */
const shortText = (n = 128) =>
  z
    .string()
    .min(1)
    .max(n)
    .regex(/^[^\u0000-\u001f\u007f]*$/, 'must not hold control characters');

/** Bounds of durations, in seconds: a 0 duration makes fortio run forever, a huge one as good as. */
export const DURATION_BOUNDS = { min: 0.001, duration: 3600, warmup: 600 } as const;
const DURATION_RE = /^(\d{1,9}(\.\d{1,9})?(ms|s|m|h)){1,4}$/;

/** "20s", "1m30s", "500ms", or a number of seconds; between 1 ms and `maxS` seconds. */
export const durationUpTo = (maxS: number) =>
  z.union([z.number(), z.string().max(64).regex(DURATION_RE, 'must be a duration like 500ms, 20s, 1m30s')]).superRefine((d, ctx) => {
    if (typeof d === 'string' && !DURATION_RE.test(d)) return; // reported by the regex
    const s = durationSeconds(d);
    if (!(s >= DURATION_BOUNDS.min)) ctx.addIssue({ code: 'custom', message: 'must be more than 0 (at least 1ms); a 0 duration never ends' });
    else if (!(s <= maxS)) ctx.addIssue({ code: 'custom', message: `must be at most ${formatSeconds(maxS)}` });
  });
/** A measured duration: at most 1h. */
export const duration = durationUpTo(DURATION_BOUNDS.duration);
/** A warm-up: at most 10m. */
export const warmupDuration = durationUpTo(DURATION_BOUNDS.warmup);

const formatSeconds = (s: number) => (s % 3600 === 0 ? `${s / 3600}h` : s % 60 === 0 ? `${s / 60}m` : `${s}s`);

/** Why `s` seconds cannot be a duration (`what` = duration or warmup), or undefined; for CLI overrides. */
export function durationProblem(s: number, what: 'duration' | 'warmup'): string | undefined {
  if (!Number.isFinite(s) || s < DURATION_BOUNDS.min) return 'must be a number of seconds ≥ 0.001';
  if (s > DURATION_BOUNDS[what]) return `must be at most ${DURATION_BOUNDS[what]} seconds (${formatSeconds(DURATION_BOUNDS[what])})`;
  return undefined;
}

export function durationSeconds(d: number | string): number {
  if (typeof d === 'number') return d;
  const unit: Record<string, number> = { ms: 0.001, s: 1, m: 60, h: 3600 };
  let total = 0;
  for (const m of d.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h)/g)) total += Number(m[1]) * unit[m[2]];
  return total;
}

/** Largest repeats, in the scenario and its quick form. */
export const MAX_REPEATS = 100;
/** Upper bounds of the scenario's lists. */
export const MAX_COUNT = {
  services: 100,
  workloads: 32,
  dataplanes: 16,
  policies: 256,
  policyFiles: 32,
  routes: 100,
  nodesOfService: 250,
  also: 16,
  scaling: 32,
} as const;
/** CPU list for taskset -c: 0 or 1-3 or 0,2-3 (numbers < 4096, at most 16 items). */
export const CPU_LIST_RE = /^\d{1,4}(-\d{1,4})?(,\d{1,4}(-\d{1,4})?){0,15}$/;
const cpuList = z
  .string()
  .regex(CPU_LIST_RE, 'must be a CPU list such as 0, 1-3 or 0,2-3')
  .refine(
    (s) =>
      !CPU_LIST_RE.test(s) ||
      s.split(',').every((r) => {
        const [a, b = a] = r.split('-').map(Number);
        return a <= b && b < 4096;
      }),
    'ranges must go up (1-3, not 3-1), CPUs below 4096',
  );
/** A file name the scenario refers to (relative to it); a YAML file. */
export const FileRefSchema = z
  .string()
  .min(1)
  .max(1024)
  .regex(/\.ya?ml$/, 'must name a .yaml or .yml file')
  .regex(/^[^\u0000-\u001f\u007f]*$/, 'must not hold control characters');

/** Defaults of `validity`: at most 0.1 % errors, at least 95 % of the requested rate. */
export const VALIDITY_DEFAULTS = { maxErrorRate: 0.001, minRateRatio: 0.95 } as const;
/** Default of `validity.maxGeneratorCpu`: the load generator busy at most 90 % of the CPUs it may use. */
export const MAX_GENERATOR_CPU_DEFAULT = 0.9;
/** mb-load's highest rate (its -rate bound). */
export const OPENLOOP_MAX_QPS = 100_000;

export const TopologySchema = z
  .object({
    kind: z.literal('Topology'),
    name: dnsLabel,
    description: text.optional(),
    /** A count (named node1..nodeN) or explicit names. */
    nodes: z.union([z.number().int().min(1).max(250), z.array(dnsLabel).min(1).max(250)]),
    /** Idle pods per node (a namespace with an address and no process), for scale. */
    podsPerNode: z.number().int().min(0).max(250).default(0),
    underlay: z
      .object({ mtu: z.number().int().min(1280).max(9000).default(1500) })
      .strict()
      .default({ mtu: 1500 }),
  })
  .strict();

/**
 * What a Service's pods run (services[].app): fortio (the default: an echo server, or fortio's -M
 * forwarder for a link of an HTTP call chain) or mb-grpc (apps/cmd/mb-grpc: the project's gRPC
 * chain services, each hop calling the next Service's VIP over gRPC with a 1 KB message).
 */
export const APP_KINDS = ['fortio', 'mb-grpc'] as const;
export type AppKind = (typeof APP_KINDS)[number];

/**
 * mb-grpc's roles, last hop first: a chain of mb-grpc services takes them from its end (the last
 * link is inventory, the one before it order, the one before that frontend), so a chain has at
 * most three links. Each role's gRPC service and methods, as apps/cmd/mb-grpc/main.go serves them.
 */
export const MB_GRPC_ROLES = [
  { role: 'inventory', service: 'inventory.v1.InventoryService', methods: ['CheckStock', 'Reserve'] },
  { role: 'order', service: 'order.v1.OrderService', methods: ['Create'] },
  { role: 'frontend', service: 'frontend.v1.FrontendService', methods: ['Get'] },
] as const;
export type MbGrpcRole = (typeof MB_GRPC_ROLES)[number];

/** The mb-grpc role of link `i` of a chain of `n` mb-grpc services (undefined past three links). */
export const mbGrpcRoleAt = (i: number, n: number): MbGrpcRole | undefined => MB_GRPC_ROLES[n - 1 - i];
/** Full method names (/pkg.Service/Method) a role serves. */
export const mbGrpcMethods = (r: MbGrpcRole): string[] => r.methods.map((m) => `/${r.service}/${m}`);

/** A gRPC full method name: /package.Service/Method. */
const GRPC_METHOD_RE = /^\/[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*\/[A-Za-z_][A-Za-z0-9_]*$/;
/** Request metadata keys: lowercase tokens, not gRPC's own (grpc-*) nor binary (-bin) ones (mb-load's -header). */
const METADATA_KEY_RE = /^(?!grpc-)(?!.*-bin$)[a-z0-9][a-z0-9._-]{0,63}$/;
export const MAX_METADATA = 16;

/**
 * The chain checks that need the services: a chain is all mb-grpc or none, at most three
 * mb-grpc links, and a workload into an mb-grpc chain is gRPC through engine openloop calling a
 * method its first link serves. `appOf` gives a service's app (fortio when it names none,
 * undefined when the service is not declared; an unknown app is the schema's to report).
 */
export function mbGrpcChainProblems(
  appOf: (service: string) => string | undefined,
  w: { chain?: unknown; protocol?: unknown; engine?: unknown; method?: unknown },
): { path: (string | number)[]; message: string }[] {
  const chain = Array.isArray(w.chain) ? w.chain.filter((x): x is string => typeof x === 'string') : [];
  const grpcLinks = chain.filter((n) => appOf(n) === 'mb-grpc');
  if (!grpcLinks.length) return [];
  const out: { path: (string | number)[]; message: string }[] = [];
  chain.forEach((n, j) => {
    if (appOf(n) === 'fortio')
      out.push({ path: ['chain', j], message: `service "${n}" runs fortio but ${grpcLinks[0]} runs mb-grpc: a call chain is all mb-grpc or all fortio` });
  });
  if (chain.length > MB_GRPC_ROLES.length)
    out.push({ path: ['chain'], message: `an mb-grpc chain has at most ${MB_GRPC_ROLES.length} links (frontend → order → inventory), not ${chain.length}` });
  if (w.protocol !== 'grpc') out.push({ path: ['protocol'], message: `service "${chain[0]}" runs mb-grpc: the workload's protocol must be grpc` });
  if (w.engine !== 'openloop')
    out.push({ path: ['engine'], message: "an mb-grpc chain is driven by engine openloop with a method (fortio's gRPC load calls fortio's own Ping service)" });
  const role = mbGrpcRoleAt(0, chain.length);
  if (role && typeof w.method === 'string' && !mbGrpcMethods(role).includes(w.method))
    out.push({
      path: ['method'],
      message: `service "${chain[0]}" is mb-grpc's ${role.role} here (link 1 of ${chain.length}); it serves ${mbGrpcMethods(role).join(', ')}, not ${w.method}`,
    });
  return out;
}

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
    nodes: z.array(dnsLabel).min(1).max(MAX_COUNT.nodesOfService).optional(),
    /** What the pods run: fortio (default) or mb-grpc (the gRPC chain services; needs protocol grpc). */
    app: z.enum(APP_KINDS).optional(),
  })
  .strict()
  .refine((svc) => svc.app !== 'mb-grpc' || svc.protocol === 'grpc', {
    message: 'app mb-grpc serves gRPC: set protocol: grpc',
    path: ['protocol'],
  });

export const WorkloadSchema = z
  .object({
    name: dnsLabel.default('default'),
    protocol: z.enum(['http1', 'http2', 'grpc']),
    /** Requests per second over all connections, or "max" for a closed loop as fast as it goes. */
    qps: z.union([z.number().positive().max(1_000_000), z.literal('max')]),
    connections: z.number().int().min(1).max(1024).default(4),
    duration: duration,
    warmup: warmupDuration.default('3s'),
    /** Request body bytes (POST when > 0). */
    payloadBytes: z.number().int().min(0).max(1_048_576).default(0),
    /** Response body bytes asked of the echo server. */
    responseBytes: z.number().int().min(0).max(1_048_576).default(0),
    /** Time the echo server waits before each response (fortio's `delay`): an app's think time, e.g. 2ms; at most 10s; HTTP only. */
    serverDelay: durationUpTo(10).optional(),
    /** Services called in turn for each request: the client calls chain[0], which calls chain[1] … */
    chain: z.array(dnsLabel).min(1).max(8),
    /**
     * Load engine (docs/load.md): fortio (the default: fixed rate paced per connection with
     * catch-up, or closed loop) or openloop (mb-load: sends on a schedule whatever the responses,
     * latency timed from each request's intended send time). Absent means fortio.
     */
    engine: z.enum(['fortio', 'openloop']).optional(),
    /** engine openloop only: gaps between intended send times, uniform (1/qps, the default) or poisson (exponential). */
    arrival: z.enum(['uniform', 'poisson']).optional(),
    /** engine openloop, protocol grpc: the full method each request calls, /package.Service/Method. */
    method: z.string().max(256).regex(GRPC_METHOD_RE, 'must be a gRPC full method name such as /frontend.v1.FrontendService/Get').optional(),
    /** engine openloop, protocol grpc: request metadata sent with every call (e.g. x-inventory-method: Reserve). */
    metadata: z
      .record(
        z.string().regex(METADATA_KEY_RE, 'metadata keys are lowercase letters, digits, ".", "_", "-" (at most 64), not grpc-* or *-bin'),
        z
          .string()
          .max(256)
          .regex(/^[\x20-\x7e]*$/, 'must be printable ASCII'),
      )
      .refine((m) => Object.keys(m).length <= MAX_METADATA, `at most ${MAX_METADATA} entries`)
      .optional(),
  })
  .strict()
  .refine((w) => w.serverDelay === undefined || w.protocol !== 'grpc', {
    message: "serverDelay is for http1 and http2 workloads (the echo server's delay)",
    path: ['serverDelay'],
  })
  .superRefine((w, ctx) => {
    for (const k of ['method', 'metadata'] as const)
      if (w[k] !== undefined && (w.engine !== 'openloop' || w.protocol !== 'grpc'))
        ctx.addIssue({
          code: 'custom',
          path: [k],
          message: `${k} is for protocol grpc with engine openloop (fortio's gRPC load calls fortio's own Ping service)`,
        });
    if (w.engine !== 'openloop') {
      if (w.arrival !== undefined)
        ctx.addIssue({ code: 'custom', path: ['arrival'], message: 'arrival is for engine openloop (fortio paces each connection at a uniform rate)' });
      return;
    }
    if (w.qps === 'max')
      ctx.addIssue({
        code: 'custom',
        path: ['qps'],
        message: 'engine openloop sends on a fixed schedule: qps must be a rate in requests per second (> 0), not max',
      });
    else if (w.qps > OPENLOOP_MAX_QPS) ctx.addIssue({ code: 'custom', path: ['qps'], message: `engine openloop sends at most ${OPENLOOP_MAX_QPS} qps` });
    if (w.protocol === 'grpc' && w.method === undefined)
      ctx.addIssue({
        code: 'custom',
        path: ['method'],
        message: 'engine openloop over grpc calls one method: add method: /package.Service/Method (e.g. /frontend.v1.FrontendService/Get)',
      });
  });

export const ScenarioSchema = z
  .object({
    kind: z.literal('Scenario'),
    name: dnsLabel,
    description: text.optional(),
    /** Path to a topology file (.yaml), relative to this file, or an inline topology. */
    topology: z.union([FileRefSchema, TopologySchema]),
    services: z.array(ServiceSchema).min(1).max(MAX_COUNT.services),
    client: z.object({ name: dnsLabel.default('client'), namespace: dnsLabel.default('default'), node: dnsLabel, labels: labelMap.optional() }).strict(),
    workloads: z.array(WorkloadSchema).min(1).max(MAX_COUNT.workloads),
    dataplanes: z
      .array(
        z
          .string()
          .regex(
            /^[a-z0-9][a-z0-9-]{0,31}(\[[a-z0-9=,. -]{1,120}\])?$/,
            'must be a dataplane name (lowercase letters, digits, "-"), optionally with [key=value,…]',
          ),
      )
      .min(1)
      .max(MAX_COUNT.dataplanes),
    /** Who may talk to whom (the lab's own format, shared by every dataplane). */
    policies: z.array(PolicySchema).max(MAX_COUNT.policies).default([]),
    /** CiliumNetworkPolicy files (the subset the source documents use, .yaml), relative to this file. */
    policyFiles: z.array(FileRefSchema).max(MAX_COUNT.policyFiles).default([]),
    /** L7 traffic routing (canary): header matches and weighted splits, done by the client-side proxy. */
    routes: z.array(RouteSchema).max(MAX_COUNT.routes).default([]),
    repeats: z.number().int().min(1).max(MAX_REPEATS).default(1),
    /**
     * The source document's table this scenario reproduces: an id in reference/claims.yaml, other
     * tables its cases also measure (`also`), what was scaled to fit this machine
     * ("<what>": "<document> → <lab>"), and a free note.
     */
    reference: z
      .object({
        table: shortText(),
        also: z.array(shortText()).max(MAX_COUNT.also).optional(),
        scaling: z
          .record(shortText(), text)
          .refine((m) => Object.keys(m).length <= MAX_COUNT.scaling, `at most ${MAX_COUNT.scaling} entries`)
          .optional(),
        note: text.optional(),
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
        warmup: warmupDuration.optional(),
        repeats: z.number().int().min(1).max(MAX_REPEATS).optional(),
        topology: z.union([FileRefSchema, TopologySchema]).optional(),
        replicas: z
          .record(shortText(63), z.number().int().min(1).max(64))
          .refine((m) => Object.keys(m).length <= MAX_COUNT.services, `at most ${MAX_COUNT.services} entries`)
          .optional(),
      })
      .strict()
      .optional(),
    /** CPUs to pin the load generator and the app servers to; "auto" splits the host's CPUs. */
    pinning: z.union([z.literal('auto'), z.literal('none'), z.object({ load: cpuList, apps: cpuList }).strict()]).default('auto'),
    /**
     * When a case counts as valid (harness/run): errors at most `maxErrorRate` of the requests,
     * for fixed-rate loads an achieved rate at least `minRateRatio` of the requested one, and the
     * load generator's CPU at most `maxGeneratorCpu` of the CPUs it may use.
     */
    validity: z
      .object({
        maxErrorRate: z.number().min(0).max(1).default(VALIDITY_DEFAULTS.maxErrorRate),
        minRateRatio: z.number().gt(0).max(1).default(VALIDITY_DEFAULTS.minRateRatio),
        /** Most CPU the load generator may use over the window, as a fraction of the CPUs it may run on (default 0.9). */
        maxGeneratorCpu: z.number().gt(0).max(1).optional(),
      })
      .strict()
      .default({ ...VALIDITY_DEFAULTS }),
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
