// What every dataplane provides. Lifecycle per kind: needs (data, checked by doctor and run) →
// plan (every config rendered, no host touched) → deploy → teardown; essential steps throw,
// teardown is safe to run twice.
import type { Cluster } from '../topology/graph.js';
import type { Scenario } from '../scenario/schema.js';
import type { ProcessGroup } from '../util/procs.js';
import type { Need } from './needs.js';
import type { DataplanePath, KernelResources, Provenance } from '../results/types.js';

/** What plan() sees: the cluster as declared (nothing built) and the scenario. */
export interface PlanContext {
  cluster: Cluster;
  scenario: Scenario;
}

/** Every config the dataplane would write for the scenario, by a name for humans (pod, node, namespace). */
export interface Plan {
  configs: Record<string, string>;
}

export interface DataplaneContext {
  cluster: Cluster;
  /** The scenario being run (policies, routes, workloads). */
  scenario: Scenario;
  procs: ProcessGroup;
  /** Directory for this case's configs and logs. */
  caseDir: string;
  /** The Services one measured request passes, in order (the workload's chain), for the path record. */
  chain?: string[];
  log: (msg: string) => void;
}

/** Start-up phases a dataplane adds to one pod, each measured (ms). */
export interface PodStartup {
  certificateMs?: number;
  captureMs?: number;
  proxyMs?: number;
}

export interface Deployed {
  /** Per pod, what the dataplane added to its start-up. */
  startup?: Record<string, PodStartup>;
  /** Per pod, the proxy's admin socket (counters), for tests and probes. */
  adminSockets?: Record<string, string>;
  provenance: Record<string, Provenance>;
  path: DataplanePath;
  /** Kernel-side cost the dataplane can read at the end of the window (BPF run time, map memory). */
  kernelResources?: () => Promise<Partial<KernelResources>>;
  /**
   * Called once per case just before the lab's processes are stopped (after the measured window,
   * or after a failure): the dataplane's last look at its live processes, e.g. counters it writes
   * beside its logs. Must not fail for a process that is already gone.
   */
  beforeStop?: () => Promise<void>;
}

/**
 * One ablation switch of a dataplane kind, written `kind[key=value,…]` in scenarios and
 * `--dataplanes` (e.g. `ebpf[encryption=none]`); the case's `dataplane` is that string.
 */
export interface DataplaneOption {
  key: string;
  values: readonly string[];
  /** What the bare kind name runs. */
  default: string;
  /**
   * The value the real product runs out of the box, where it differs from the lab's default:
   * a claim is judged on the run's variant with every option at its product value, if it has one.
   */
  product?: string;
  /** One line: what the option changes (`dataplanes`, errors, docs). */
  summary: string;
}

/** Every option of a kind with its value (defaults filled in). */
export type Settings = Readonly<Record<string, string>>;

export interface Dataplane {
  /** The kind's registered name, or for a variant the string it was written as (`ebpf[encryption=none]`). */
  name: string;
  /** One line for `--help` and the report. */
  summary: string;
  /** What the source documents call what this dataplane models (claims tables' columns, e.g. `cilium-l7`). */
  standsFor?: string[];
  /** Tools, kernel features and engine build flags it needs (doctor's table and run's pre-flight). */
  needs: Need[];
  /**
   * Render and check every config the dataplane will write, without touching the host. Throws
   * E_INPUT for what the scenario asks that the dataplane cannot do; an engine ConfigWordError for
   * a string its engine cannot hold (the caller points it at the scenario's line).
   */
  plan(p: PlanContext): Plan;
  /** The kind's ablation switches (none: the kind has no variants). */
  options?: readonly DataplaneOption[];
  /** This dataplane's value of every option (the defaults for the bare kind). */
  settings?: Settings;
  /** The same kind with these settings (complete and checked by the registry) under this name. */
  configure?(settings: Settings, name: string): Dataplane;
  deploy(ctx: DataplaneContext): Promise<Deployed>;
  teardown(ctx: DataplaneContext): Promise<void>;
}
