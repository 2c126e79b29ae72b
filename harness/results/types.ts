// The run record, schema `meshbench/run/v1` (docs/results.md). Fields may be added; the meaning of
// these never changes. Figures are what was measured on this host in this run, nothing else.

export const RUN_SCHEMA = 'meshbench/run/v1';

export type RunStatus = 'complete' | 'incomplete' | 'failed';

export interface Histogram {
  /** Width of every bucket in microseconds. */
  resolutionUs: number;
  /** Sparse [bucket start µs, count] pairs, ascending; a request of latency L µs falls in floor(L/res)*res. */
  buckets: [number, number][];
  count: number;
}

export interface LatencyUs {
  p50: number;
  p90: number;
  /** Records from before P95 was recorded lack it; metrics take it from the histogram then. */
  p95?: number;
  p99: number;
  p999: number;
  max: number;
  min: number;
  mean: number;
  count: number;
  histogram: Histogram;
  /** How these figures were computed. */
  source: string;
  /** fortio's own percentiles from its bucketed histogram, for cross-checking. */
  fortio?: { p50: number; p90: number; p99: number; p999: number; max: number };
}

export interface RoleResources {
  processes: number;
  rssBytes: number;
  pssBytes: number;
  /** Peak RSS sum seen while sampling during the window. */
  rssPeakBytes: number;
  cpuSeconds: number;
}

export interface ProcessResources {
  name: string;
  role: string;
  pid: number;
  rssBytes: number;
  pssBytes: number;
  rssPeakBytes: number;
  cpuSeconds: number;
}

export interface KernelResources {
  bpfMapBytes: number;
  /** Run time of the run's BPF programs over the measured window (kernel.bpf_stats_enabled). */
  bpfRunTimeNs: number;
  /** Program runs over the measured window. */
  bpfRunCount?: number;
  /**
   * Bytes WireGuard encrypted over the window, all nodes. Its CPU is the `wireguard` role's when
   * it is wireguard-go; the kernel module's is in softirq and kworker time, owned by no process.
   */
  wireguardTxBytes?: number;
  /** System-wide softirq time over the window, all CPUs: no process owns it. */
  softirqSeconds: number;
}

export interface Normalized {
  rssBytes: number;
  pssBytes: number;
  cpuSeconds: number;
}

export interface Resources {
  windowS: number;
  /** Each role's totals divided by the meshed pods and by the nodes of the case's cluster. */
  normalized?: { pods: number; nodes: number; perPod: Record<string, Normalized>; perNode: Record<string, Normalized> };
  byRole: Record<string, RoleResources>;
  processes: ProcessResources[];
  kernel: KernelResources;
  method: string;
}

export interface Provenance {
  engine: string;
  version?: string;
  configBytes?: number;
  mechanism?: string;
  /** Set when the engine plays another component's role (HAProxy in an Envoy role). */
  standInFor?: string;
  /** Engine-specific facts (instances, threads, config scope …). */
  [extra: string]: unknown;
}

export interface DataplanePath {
  userSpaceHops: number;
  /**
   * Proxy traversals of one measured request (its whole chain) per resource role, e.g. a sidecar
   * mesh {proxy: 2} per hop: what cost per 1000 rps divides a role's CPU by.
   */
  traversalsByRole?: Record<string, number>;
  loopbackLegs: number;
  redirect: string;
  encryption: string;
  serviceRouting: string;
}

/** A workload of the flow map: a Service's pods, a reserved identity (world, host …) or an address. */
export interface FlowWorkload {
  /** `namespace/name` for pods, the reserved name (`world`, `host`, `remote-node`) or the IP address. */
  id: string;
  /** service: a Service VIP the flow kept (routed Services go to the node L7 proxy by VIP). */
  kind: 'workload' | 'service' | 'reserved' | 'address';
  name: string;
  namespace?: string;
  /** Pods of the workload seen in the flow log. */
  pods?: number;
  /** Security identities seen for it. */
  identities: number[];
}

/** Traffic from one workload to another on one destination port, from the flow log. */
export interface FlowEdge {
  from: string;
  to: string;
  /** Destination port as the datapath saw it (the pod's port once the Service was resolved). */
  port: number;
  /** TCP, UDP, ICMPv4 …; L7 requests are counted on their TCP edge. */
  protocol: string;
  /** Distinct connections (5-tuples). */
  connections: number;
  /** Connections let through, directly or by way of the L7 proxy. */
  forwarded: number;
  /** Connections the datapath sent to the node's L7 proxy. */
  redirected: number;
  /** Connections whose last packet seen was dropped, by drop reason. */
  dropped: Record<string, number>;
  /** Connections dropped first (AUTH_REQUIRED until the handshake completes) and then forwarded, by reason. */
  droppedThenForwarded?: Record<string, number>;
  /** Requests seen by the L7 proxy: forwarded, denied by policy (403), dropped for other reasons. */
  l7?: { forwarded: number; denied: number; dropped?: Record<string, number> };
}

/** A case's flow log summarized into a service dependency map (no per-flow data). */
export interface FlowSummary {
  method: string;
  /**
   * Records read: from the datapath (l3), from the L7 proxy (l7), and lines that were not JSON;
   * l7Dropped: request records the L7 proxies counted but could not write (so l7 counts are lower
   * bounds by that much), when they said.
   */
  records: { l3: number; l7: number; unreadable: number; l7Dropped?: number };
  /** Nodes whose records were read. */
  nodes: string[];
  workloads: FlowWorkload[];
  edges: FlowEdge[];
}

/**
 * ok: measured within the scenario's validity bounds, a result. degraded: measured, every process
 * up, but errors or achieved rate outside the bounds. failed: an error, no figures, or a lab
 * process down before the end of the measured window. interrupted: stopped by a signal.
 * Only ok cases are results (docs/case-status.md).
 */
export type CaseStatus = 'ok' | 'degraded' | 'failed' | 'interrupted';

/** A lab process that was down before the measured window ended. */
export interface ProcessDown {
  name: string;
  role: string;
  pid: number;
  exitCode?: number;
  signal?: string;
  /** When it was seen to end: before the measured window began, or during it. */
  when: 'before-window' | 'during-window';
}

/** Why a case is (not) a result; the bounds come from the scenario's `validity`. */
export interface CaseValidity {
  ok: boolean;
  /** Empty when ok; otherwise each reason in words. */
  reasons: string[];
  /** errors ÷ requests of the measured window (undefined without a measurement). */
  errorRate?: number;
  /** Achieved ÷ requested qps (fixed-rate loads only; closed loop has no requested rate). */
  rateRatio?: number;
  processesDown: ProcessDown[];
  limits: { maxErrorRate: number; minRateRatio: number };
  /**
   * The load generator's CPU, set when it was at or above the bound (the case is then degraded):
   * cpuSeconds over windowS, as a fraction of the `cpus` it may run on.
   */
  generatorCpu?: GeneratorCpu;
}

/** The load generator's CPU over the measured window, judged against the CPUs it may use. */
export interface GeneratorCpu {
  cpuSeconds: number;
  windowS: number;
  /** CPUs it may run on (GOMAXPROCS, or its pinned CPUs). */
  cpus: number;
  /** cpuSeconds ÷ windowS ÷ cpus. */
  utilisation: number;
  /** The bound it was judged against (scenario validity.maxGeneratorCpu). */
  maxGeneratorCpu: number;
  /** Where cpuSeconds came from. */
  source: string;
}

export interface CaseResult {
  index: number;
  dataplane: string;
  workload: string;
  repeat: number;
  status: CaseStatus;
  error?: string;
  /** Set by runs that judge validity; latency of a case that is not ok is kept for diagnosis only. */
  validity?: CaseValidity;
  load: {
    requested: {
      qps: number | 'max';
      connections: number;
      durationS: number;
      warmupS: number;
      payloadBytes: number;
      responseBytes: number;
      /** The echo server's wait before each response (workload serverDelay), when set. */
      serverDelayS?: number;
      protocol: string;
      chain: string[];
      /** Set for the open-loop engine only (absent: fortio). */
      engine?: 'openloop';
      /** Open-loop engine: gaps between intended send times. */
      arrival?: 'uniform' | 'poisson';
    };
    actual: { qps: number; requests: number; errors: number; durationS: number; retCodes: Record<string, number> };
    /** In words; an open-loop case's starts with "open-loop". */
    model: string;
    target: string;
    pinnedCpus?: string;
    /** Open-loop engine: how late requests went out against their intended send times (all requests). */
    sendLagUs?: { p50: number; p99: number; max: number };
    /** Open-loop engine: the generator's own CPU over its run (what validity's generator rule judges). */
    generator?: { engine: string; cpuSeconds: number; wallSeconds: number; cpuUtilisation: number; cpus?: number; source: string };
  };
  /**
   * Successful requests' latency. fortio: from the actual send (its access log). Open-loop engine:
   * the response time, from the intended send time (coordinated-omission free).
   */
  latencyUs?: LatencyUs;
  /** Open-loop engine: service time, completion − actual send time, beside latencyUs (docs/load.md). */
  serviceTimeUs?: LatencyUs;
  resources?: Resources;
  startup?: {
    podReadyMs: Record<string, number>;
    /** Per pod, each measured start-up phase in ms (namespaceMs, certificateMs, captureMs, proxyMs, appMs). */
    phases?: Record<string, Record<string, number>>;
    topologyUpMs: number;
    dataplaneDeployMs: number;
    firstRequestMs: number;
    /** How the phases were timed when that is not plain (run --hosts: this controller's clock, SSH round trips included). */
    clock?: string;
  };
  provenance: Record<string, Provenance>;
  path?: DataplanePath;
  topology?: { nodes: number; pods: number; services: number };
  /** The eBPF dataplanes' flow log as a service dependency map (cases that wrote one). */
  flows?: FlowSummary;
  startedAt: string;
  finishedAt?: string;
}

export interface Environment {
  kernel: string;
  cpuModel: string;
  cores: number;
  memoryBytes: number;
  tools: Record<string, string>;
  commit: string;
  hostname: string;
  node: string;
  pinning: { load?: string; apps?: string; note: string };
  /** What the kernel is and can do, and how it ran (bare metal, KVM, TCG): harness/probes/kernel.ts. */
  kernelFacts?: KernelFactsRecord;
  /**
   * `run --hosts`: the machines the nodes ran on (the fields above then describe the controller,
   * where meshbench ran, not the lab's kernels).
   */
  hosts?: HostRecord[];
  /** `run --target kubernetes`: the cluster (server version, nodes and the lab node each played, the meshes found installed). */
  kubernetes?: {
    server: string;
    context?: string;
    nodes: { name: string; labNode?: string; kernel?: string; osImage?: string; kubelet?: string; runtime?: string; cpu?: string; memory?: string }[];
    meshes: Record<string, Provenance>;
  };
}

/** One machine of a `run --hosts`: the node it played and what it is. */
export interface HostRecord {
  /** The topology node (inventory host name). */
  name: string;
  address: string;
  kernel: string;
  cpus: number;
  memoryBytes: number;
  labInterface: string;
  /** As KernelFactsRecord's: bare metal, KVM, TCG (emulated) or another VM. */
  virtualisation: KernelFactsRecord['virtualisation'];
  hypervisor?: string;
  /** Emulated (TCG): its figures say what works, not what it costs. */
  functionalOnly: boolean;
}

/** The part of harness/probes/kernel.ts's KernelFacts that readers of a record rely on; the record holds all of it (config options, modules, BTF). */
export interface KernelFactsRecord {
  release: string;
  virtualisation: 'none' | 'kvm' | 'tcg' | 'vm';
  /** TCG: timings are emulation, figures functional only. */
  functionalOnly: boolean;
  /** The kernel package when meshbench booted it (debian-6.1 …). */
  package?: { name: string; version?: string };
}

/** A table of reference/claims.yaml as the claims file had it when the run started: published figures, never measured ones. */
export interface ClaimsTable {
  id: string;
  source?: string;
  title?: string;
  [field: string]: unknown;
}

/** The source document's tables the scenario reproduces (scenario `reference`), with the tables copied in. */
export interface RunReference {
  table: string;
  also?: string[];
  /** "<what>": "<document> → <lab>". */
  scaling?: Record<string, string>;
  note?: string;
  /** The claims file the tables were read from, and the tables (`table` first, then `also`). */
  claimsFile: string;
  tables: ClaimsTable[];
}

export interface RunRecord {
  schema: typeof RUN_SCHEMA;
  runId: string;
  prefix: string;
  scenario: string;
  scenarioFile: string;
  description?: string;
  status: RunStatus;
  error?: string;
  startedAt: string;
  finishedAt?: string;
  options: { dataplanes: string[]; repeats: number; quick: boolean; durationS?: number };
  environment: Environment;
  /** Set when the scenario names a source document's table (scenario `reference`). */
  reference?: RunReference;
  cases: CaseResult[];
}

/** `run --find-capacity`'s objective: `metric` of the response time at or below `maxUs`, errors at most `maxErrorRate`. */
export interface CapacityObjective {
  metric: 'p50' | 'p90' | 'p99' | 'p999';
  maxUs: number;
  /** Errors ÷ requests (0.001 = 0.1 %). */
  maxErrorRate: number;
  /** Normalised, e.g. "p99<=5ms,errors<=0.1%". */
  text: string;
}

/** meets / misses the objective; invalid: not a measurement of the dataplane (generator saturated, rate not reached), so it counts as missing. */
export type CapacityStepStatus = 'meets' | 'misses' | 'invalid';

/** One fixed-rate step of a capacity search (open-loop response times, µs). */
export interface CapacityStep {
  offeredRps: number;
  achievedRps?: number;
  requests?: number;
  errors?: number;
  errorRate?: number;
  p50Us?: number;
  p99Us?: number;
  maxUs?: number;
  /** The objective's metric (p50/p90/p99/p999) of this step. */
  metricUs?: number;
  /** Service time p99 (from the actual send), beside the response time. */
  serviceP99Us?: number;
  generatorCpu?: number;
  /** 2 for the repeat of a rate whose first attempt did not meet the objective (absent for the first). */
  attempt?: number;
  status: CapacityStepStatus;
  reasons: string[];
}

/**
 * One search, per dataplane × workload. found: `foundRps` met the objective (`capped` when that is
 * the search's cap); none: no rate met it, even the lowest tried (a finding); failed/interrupted:
 * the search could not finish (`error`), which fails the run.
 */
export interface CapacitySearch {
  dataplane: string;
  workload: string;
  objective: CapacityObjective;
  foundRps: number | null;
  outcome: 'found' | 'none' | 'failed' | 'interrupted';
  capped?: boolean;
  /** Set when the step just above the rate found was invalid (e.g. the load generator's limit, not the dataplane's): its capacity is at least foundRps. */
  lowerBound?: string;
  why: string;
  error?: string;
  steps: CapacityStep[];
  stepDurationS: number;
  stepWarmupS: number;
  /** Share of the host's CPU time idle over 1 s before the lab was built: other work on the host (below 0.8 the log warns) lowers what a search finds. */
  hostIdleBefore?: number;
  /** Always openloop: the search forces it whatever the workload's engine (`engineNote` says so). */
  engine: 'openloop';
  engineNote: string;
  arrival: 'uniform' | 'poisson';
  connections: number;
  limits: { startRps: number; maxRps: number; minRps: number; maxSteps: number; tolerance: number; maxGeneratorCpu: number; retriesOnMiss: number };
  startedAt: string;
  finishedAt?: string;
}

// Declaration merging keeps the record's interface above untouched (several features add fields).
export interface RunRecord {
  /** `run --find-capacity` only: one search per dataplane × workload; such a run has no cases. */
  capacity?: CapacitySearch[];
}
