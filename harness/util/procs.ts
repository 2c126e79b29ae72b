// The processes a run starts. Each one is recorded (pid + start time) in the run's state file
// before anything else happens, runs in its own cgroup v2 directory named after the run prefix
// (so its CPU time stays countable after it exits), and is stopped by pid at teardown.
// Processes are started detached: a Ctrl-C on the terminal reaches meshbench, which then tears
// down in order, instead of killing the lab's servers under a still-running measurement.
// A process starts on the place that owns its network namespace (place/index.ts placeOf); the
// group's cgroups, state file and memory floor are still this host's (docs/hosts.md, step 5).
import type { ChildProcess } from 'node:child_process';
import { mkdirSync, rmdirSync, rmSync, readdirSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { runError } from '../errors.js';
import { LocalPlace, placeOf, type PlaceProcess, type PlaceStartSpec } from '../place/index.js';
import { writeFileAtomicRaw } from './atomic.js';
import { STATE_DIR, cgroup2Root, pidAlive, pidStartTime, readText } from './host.js';

export interface StartSpec {
  /** Unique within the run; names the cgroup and the log file. */
  name: string;
  /** Resource role in results: app, load, proxy, node-proxy, agent … */
  role: string;
  cmd: string;
  args: string[];
  netns?: string;
  /** CPU list for taskset, e.g. "1" or "0-1". */
  cpus?: string;
  /** Where stdout/stderr go. */
  logFile?: string;
  cwd?: string;
  env?: NodeJS.ProcessEnv;
}

/**
 * Memory the host must keep available for a process to be started: max(1 GiB, 5 % of RAM).
 * Below it, starting one more sidecar or server risks the kernel's OOM killer picking meshbench
 * itself (then nothing tears the lab down); refusing fails the case cleanly instead, and its
 * teardown frees what it built.
 */
export function memoryFloorBytes(totalBytes: number): number {
  return Math.max(2 ** 30, 0.05 * totalBytes);
}

/** MemTotal and MemAvailable from /proc/meminfo (bytes), or undefined where it cannot be read. */
export function readMemInfo(text = readText('/proc/meminfo')): { totalBytes: number; availableBytes: number } | undefined {
  const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(text ?? '')?.[1]);
  const totalBytes = kb('MemTotal') * 1024;
  const availableBytes = kb('MemAvailable') * 1024;
  return Number.isFinite(totalBytes) && Number.isFinite(availableBytes) ? { totalBytes, availableBytes } : undefined;
}

/** Throws E_RUN when the host is below the memory floor (the meminfo text is for tests). */
export function checkMemory(name: string, started: number, meminfo?: string): void {
  const m = readMemInfo(meminfo);
  if (!m || m.availableBytes >= memoryFloorBytes(m.totalBytes)) return;
  const mib = (b: number) => Math.round(b / 2 ** 20);
  throw runError(
    `host memory nearly exhausted: ${mib(m.availableBytes)} MiB available of ${mib(m.totalBytes)} MiB (meshbench keeps ${mib(memoryFloorBytes(m.totalBytes))} MiB free) after starting ${started} process(es) in this case; not starting ${name}. The scenario does not fit in this host's memory: use fewer pods (services[].replicas) or nodes, or a host with more memory`,
  );
}

export interface LabProcess {
  name: string;
  role: string;
  pid: number;
  startTime?: number;
  cgroup?: string;
  logFile?: string;
  netns?: string;
  /** Only for a process on this host (a remote place has no child handle). */
  child?: ChildProcess;
  /** Resolves with the exit code when the process ends. */
  exited: Promise<number>;
  exitCode?: number;
  /** The signal that ended it, when one did. */
  exitSignal?: NodeJS.Signals;
  /** performance.now() when its exit was seen; case validity compares it with the measured window. */
  exitedAt?: number;
}

interface StateFile {
  prefix: string;
  runDir?: string;
  pids: { pid: number; startTime?: number; name: string }[];
}

export function stateFilePath(prefix: string): string {
  return join(STATE_DIR, `${prefix}.json`);
}

export function readStateFiles(): StateFile[] {
  if (!existsSync(STATE_DIR)) return [];
  const out: StateFile[] = [];
  for (const f of readdirSync(STATE_DIR)) {
    if (!f.endsWith('.json')) continue;
    try {
      out.push(JSON.parse(readText(join(STATE_DIR, f)) ?? ''));
    } catch {
      /* a torn file: the netns sweep still finds its processes */
    }
  }
  return out;
}

export class ProcessGroup {
  readonly procs: LabProcess[] = [];
  readonly cgroupBase?: string;

  constructor(
    readonly prefix: string,
    readonly runDir?: string,
  ) {
    const root = cgroup2Root();
    if (root) {
      this.cgroupBase = join(root, prefix);
      mkdirSync(this.cgroupBase, { recursive: true });
    }
    mkdirSync(STATE_DIR, { recursive: true });
    this.saveState();
  }

  private saveState(): void {
    const st: StateFile = {
      prefix: this.prefix,
      runDir: this.runDir,
      pids: this.procs.map((p) => ({ pid: p.pid, startTime: p.startTime, name: p.name })),
    };
    const f = stateFilePath(this.prefix);
    writeFileAtomicRaw(f, JSON.stringify(st, null, 1));
  }

  /**
   * A cgroup under the run's for short commands (probes, test requests), so they see the same
   * cgroup-attached programs as the lab's processes. Undefined without cgroup v2.
   */
  cgroupFor(name: string): string | undefined {
    if (!this.cgroupBase) return undefined;
    const dir = join(this.cgroupBase, name);
    mkdirSync(dir, { recursive: true });
    return dir;
  }

  start(spec: StartSpec): LabProcess {
    const [placeSpec, place] = this.prepare(spec);
    // Synchronous on this host (callers use the pid at once); another place answers over the wire.
    if (!(place instanceof LocalPlace)) throw runError(`${spec.name} is in ${spec.netns}, on ${place.name}: start it with startAsync`);
    return this.record(spec, placeSpec, place.spawn(placeSpec));
  }

  /** start() on whichever place owns the process's namespace (the only way onto another machine). */
  async startAsync(spec: StartSpec): Promise<LabProcess> {
    const [placeSpec, place] = this.prepare(spec);
    return this.record(spec, placeSpec, await place.start(placeSpec));
  }

  private prepare(spec: StartSpec) {
    if (this.procs.some((p) => p.name === spec.name)) throw runError(`process name ${spec.name} used twice in one run`);
    checkMemory(spec.name, this.procs.length);
    let cgroup: string | undefined;
    if (this.cgroupBase) {
      cgroup = join(this.cgroupBase, spec.name);
      mkdirSync(cgroup, { recursive: true });
    }
    const { name, cmd, args, netns, cpus, logFile, cwd, env } = spec;
    const placeSpec: PlaceStartSpec = { name, cmd, args, netns, cpus, logFile, cwd, env, cgroup };
    return [placeSpec, placeOf(spec.netns)] as const;
  }

  private record(spec: StartSpec, placeSpec: PlaceStartSpec, started: PlaceProcess): LabProcess {
    // The same object the place fills in at exit: exitCode/exitedAt appear on it as they did.
    const proc = Object.assign(started, { name: spec.name, role: spec.role, cgroup: placeSpec.cgroup, logFile: spec.logFile, netns: spec.netns });
    this.procs.push(proc);
    this.saveState();
    return proc;
  }

  /** Stop one process: SIGTERM, then SIGKILL after `graceMs`. */
  async stop(p: LabProcess, graceMs = 2000): Promise<void> {
    if (p.exitCode !== undefined) return;
    try {
      process.kill(p.pid, 'SIGTERM');
    } catch {
      return;
    }
    const done = await Promise.race([p.exited.then(() => true), sleep(graceMs).then(() => false)]);
    if (!done) {
      try {
        process.kill(p.pid, 'SIGKILL');
      } catch {
        /* already gone */
      }
      await Promise.race([p.exited, sleep(1000)]);
    }
  }

  async stopAll(): Promise<void> {
    await Promise.all(this.procs.map((p) => this.stop(p)));
    this.procs.length = 0;
    this.saveState();
    // The run cgroup itself stays until close(): a dataplane's teardown detaches the BPF programs
    // attached to it first (a removed cgroup keeps its programs, unseen, for minutes).
  }

  /** After teardown: forget the state file. */
  close(): void {
    removeCgroupTree(this.cgroupBase);
    rmSync(stateFilePath(this.prefix), { force: true });
  }
}

/** Remove a cgroup directory and its children (deepest first); cgroups only go once empty. */
export function removeCgroupTree(dir: string | undefined): void {
  if (!dir || !existsSync(dir)) return;
  for (const e of readdirSync(dir, { withFileTypes: true })) if (e.isDirectory()) removeCgroupTree(join(dir, e.name));
  try {
    rmdirSync(dir);
  } catch {
    /* still has a process; `meshbench down` will try again */
  }
}

/** Kill a recorded pid only if it is still the process we started (same start time). */
export function killRecorded(pid: number, startTime: number | undefined): boolean {
  if (!pidAlive(pid)) return false;
  if (startTime !== undefined && pidStartTime(pid) !== startTime) return false;
  try {
    process.kill(pid, 'SIGKILL');
    return true;
  } catch {
    return false;
  }
}
