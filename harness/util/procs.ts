// The processes a run starts. Each one is recorded (pid + start time) in the run's state file
// before anything else happens, runs in its own cgroup v2 directory named after the run prefix
// (so its CPU time stays countable after it exits), and is stopped by pid at teardown.
// Processes are started detached: a Ctrl-C on the terminal reaches meshbench, which then tears
// down in order, instead of killing the lab's servers under a still-running measurement.
// A process starts on the place that owns its network namespace (place/index.ts placeOf) or the
// one its spec names. Everything else follows it there: the memory floor is that machine's, its
// cgroup is under that machine's `<cgroup2 root>/<prefix>`, and its pid is in that machine's state
// file (STATE_DIR/<prefix>.json there, listing only that machine's processes), so a sweep on that
// machine can kill it. On this host all of it stays synchronous (start()); another machine
// answers over SSH (startAsync()).
import type { ChildProcess } from 'node:child_process';
import { mkdirSync, rmdirSync, rmSync, readdirSync, existsSync, type Dirent } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { runError } from '../errors.js';
import { LocalPlace, localPlace, placeOf, type Place, type PlaceProcess, type PlaceStartSpec } from '../place/index.js';
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
  /** Run on this place although `netns` does not say so (e.g. a root-namespace agent of node i). */
  place?: Place;
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

/**
 * Throws E_RUN when the machine is below the memory floor. `meminfo` is that machine's
 * /proc/meminfo (this host's when omitted); `host` names another machine in the message.
 */
export function checkMemory(name: string, started: number, meminfo?: string, host?: string): void {
  const m = readMemInfo(meminfo);
  if (!m || m.availableBytes >= memoryFloorBytes(m.totalBytes)) return;
  const mib = (b: number) => Math.round(b / 2 ** 20);
  const where = host ? ` on ${host}` : '';
  throw runError(
    `host memory nearly exhausted${where}: ${mib(m.availableBytes)} MiB available of ${mib(m.totalBytes)} MiB (meshbench keeps ${mib(memoryFloorBytes(m.totalBytes))} MiB free) after starting ${started} process(es) in this case${where}; not starting ${name}. The scenario does not fit in ${host ? `${host}'s` : "this host's"} memory: use fewer pods (services[].replicas) or nodes, or a host with more memory`,
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
  /** The machine it runs on (its pid, cgroup and files are that machine's). */
  place: Place;
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

/** The state file's text for the processes of one machine. */
export function stateFileText(prefix: string, runDir: string | undefined, procs: readonly LabProcess[]): string {
  const st: StateFile = { prefix, runDir, pids: procs.map((p) => ({ pid: p.pid, startTime: p.startTime, name: p.name })) };
  return JSON.stringify(st, null, 1);
}

/**
 * The shell text close() runs on another machine: its cgroup tree removed deepest first (a cgroup
 * goes only once empty; one still holding a process stays for `meshbench down`), then the state file.
 * Never fails. Args: the run cgroup ('' without cgroup v2) and the state file.
 */
export const REMOVE_REMOTE_SCRIPT = '[ -n "$1" ] && [ -d "$1" ] && find "$1" -depth -type d -exec rmdir {} + 2>/dev/null; rm -f -- "$2"; exit 0';

/** This host's LocalPlace instances are one machine. */
const machineOf = (p: Place): Place => (p instanceof LocalPlace ? localPlace : p);

/** What the group keeps about another machine. */
interface Remote {
  /** `<cgroup2 root>/<prefix>` there, made (undefined without cgroup v2), with STATE_DIR made; unset until asked, or after a failure. */
  base?: Promise<string | undefined>;
  /** Sub-cgroups made there. */
  dirs: Map<string, Promise<string | undefined>>;
  /** State file writes: one at a time, each with the processes as they are when it starts. */
  saving?: Promise<void>;
  dirty: boolean;
}

export class ProcessGroup {
  readonly procs: LabProcess[] = [];
  readonly cgroupBase?: string;
  private readonly remotes = new Map<Place, Remote>();
  /** Names taken, including those of starts still on the wire. */
  private readonly names = new Set<string>();

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

  /** The places the group has used: this host first (its state file is always made), then others in order of use. */
  places(): Place[] {
    return [localPlace, ...this.remotes.keys()];
  }

  private procsOn(place: Place): LabProcess[] {
    return this.procs.filter((p) => machineOf(p.place) === place);
  }

  private saveState(): void {
    writeFileAtomicRaw(stateFilePath(this.prefix), stateFileText(this.prefix, this.runDir, this.procsOn(localPlace)));
  }

  private remote(place: Place): Remote {
    let r = this.remotes.get(place);
    if (!r) this.remotes.set(place, (r = { dirs: new Map(), dirty: false }));
    return r;
  }

  /** The run cgroup on another machine (its cgroup2 mount from that machine's mounts), made once; a failure is asked again next time. */
  private remoteBase(place: Place): Promise<string | undefined> {
    const r = this.remote(place);
    if (!r.base) {
      const base = (async () => {
        const root = (await place.mounts()).find((m) => m.fstype === 'cgroup2')?.target;
        const dir = root ? join(root, this.prefix) : undefined;
        await Promise.all([place.mkdir(STATE_DIR), dir ? place.mkdir(dir) : undefined]);
        return dir;
      })();
      r.base = base;
      base.catch(() => {
        if (r.base === base) r.base = undefined;
      });
    }
    return r.base;
  }

  /** Write `place`'s state file; resolves once a write that includes every process recorded so far is done. */
  private saveStateOn(place: Place): Promise<void> {
    if (place === localPlace) return Promise.resolve(this.saveState());
    const r = this.remote(place);
    r.dirty = true;
    r.saving ??= (async () => {
      try {
        while (r.dirty) {
          r.dirty = false;
          await place.writeFile(stateFilePath(this.prefix), stateFileText(this.prefix, this.runDir, this.procsOn(place)));
        }
      } finally {
        r.saving = undefined;
      }
    })();
    return r.saving;
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

  /** `<cgroup2 root>/<prefix>` on `place`, made there (once); undefined where it has no cgroup v2. */
  async cgroupBaseOn(place: Place): Promise<string | undefined> {
    place = machineOf(place);
    return place === localPlace ? this.cgroupBase : this.remoteBase(place);
  }

  /** cgroupFor on `place`: made there once, then answered from the cache. */
  async cgroupForOn(place: Place, name: string): Promise<string | undefined> {
    place = machineOf(place);
    if (place === localPlace) return this.cgroupFor(name);
    const r = this.remote(place);
    let dir = r.dirs.get(name);
    if (!dir) {
      dir = this.remoteBase(place).then(async (base) => {
        if (!base) return undefined;
        await place.mkdir(join(base, name));
        return join(base, name);
      });
      r.dirs.set(name, dir);
      dir.catch(() => r.dirs.delete(name));
    }
    return dir;
  }

  start(spec: StartSpec): LabProcess {
    const place = machineOf(spec.place ?? placeOf(spec.netns));
    // Synchronous on this host (callers use the pid at once); another place answers over the wire.
    if (place !== localPlace) throw runError(`${spec.name} is ${spec.netns ? `in ${spec.netns}, ` : ''}on ${place.name}: start it with startAsync`);
    this.claim(spec.name);
    try {
      const placeSpec = this.prepareLocal(spec);
      return this.record(spec, placeSpec, localPlace, localPlace.spawn(placeSpec));
    } catch (err) {
      this.names.delete(spec.name);
      throw err;
    }
  }

  /** start() on whichever place owns the process's namespace, or the one its spec names (the only way onto another machine). */
  async startAsync(spec: StartSpec): Promise<LabProcess> {
    const place = machineOf(spec.place ?? placeOf(spec.netns));
    this.claim(spec.name);
    let started: PlaceProcess;
    let placeSpec: PlaceStartSpec;
    try {
      if (place === localPlace) {
        placeSpec = this.prepareLocal(spec);
        started = await localPlace.start(placeSpec);
      } else {
        const [meminfo, base] = await Promise.all([place.readFile('/proc/meminfo'), this.remoteBase(place)]);
        // Unreadable there: no check (as here).
        if (meminfo !== undefined) checkMemory(spec.name, this.procsOn(place).length, meminfo, place.name);
        const cgroup = base ? join(base, spec.name) : undefined;
        if (cgroup) await place.mkdir(cgroup);
        placeSpec = this.placeSpec(spec, cgroup);
        started = await place.start(placeSpec);
      }
    } catch (err) {
      this.names.delete(spec.name);
      throw err;
    }
    const proc = this.record(spec, placeSpec, place, started, false);
    await this.saveStateOn(place);
    return proc;
  }

  private claim(name: string): void {
    if (this.names.has(name)) throw runError(`process name ${name} used twice in one run`);
    this.names.add(name);
  }

  private prepareLocal(spec: StartSpec): PlaceStartSpec {
    checkMemory(spec.name, this.procsOn(localPlace).length);
    let cgroup: string | undefined;
    if (this.cgroupBase) {
      cgroup = join(this.cgroupBase, spec.name);
      mkdirSync(cgroup, { recursive: true });
    }
    return this.placeSpec(spec, cgroup);
  }

  private placeSpec(spec: StartSpec, cgroup: string | undefined): PlaceStartSpec {
    const { name, cmd, args, netns, cpus, logFile, cwd, env } = spec;
    return { name, cmd, args, netns, cpus, logFile, cwd, env, cgroup };
  }

  private record(spec: StartSpec, placeSpec: PlaceStartSpec, place: Place, started: PlaceProcess, save = true): LabProcess {
    // The same object the place fills in at exit: exitCode/exitedAt appear on it as they did.
    const proc = Object.assign(started, { name: spec.name, role: spec.role, cgroup: placeSpec.cgroup, logFile: spec.logFile, netns: spec.netns, place });
    this.procs.push(proc);
    if (save) this.saveState();
    return proc;
  }

  /** Stop one process: SIGTERM, then SIGKILL after `graceMs` (on another machine: only if it is still the process started). */
  async stop(p: LabProcess, graceMs = 2000): Promise<void> {
    if (p.exitCode !== undefined) return;
    const place = machineOf(p.place ?? localPlace);
    if (place !== localPlace) return this.stopRemote(p, place, graceMs);
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

  /** Its exit is seen by the place's poll (up to one poll plus a round trip late): the waits are bounded, not skipped. */
  private async stopRemote(p: LabProcess, place: Place, graceMs: number): Promise<void> {
    const exitedWithin = (ms: number) => Promise.race([p.exited.then(() => true), sleep(ms).then(() => false)]);
    const termed = await place.kill(p.pid, { signal: 'SIGTERM', startTime: p.startTime }).catch(() => false);
    if (await exitedWithin(graceMs)) return;
    if (!termed && !(await place.alive(p.pid, p.startTime).catch(() => true))) return;
    await place.kill(p.pid, { signal: 'SIGKILL', startTime: p.startTime }).catch(() => false);
    await exitedWithin(5000);
  }

  async stopAll(): Promise<void> {
    await Promise.all(this.procs.map((p) => this.stop(p)));
    this.procs.length = 0;
    this.saveState();
    await Promise.all([...this.remotes.keys()].map((place) => this.saveStateOn(place)));
    // The run cgroup itself stays until close(): a dataplane's teardown detaches the BPF programs
    // attached to it first (a removed cgroup keeps its programs, unseen, for minutes).
  }

  /**
   * After teardown: the cgroup trees and state files of every place used. Never throws: what a
   * machine that did not answer keeps is removed by `meshbench down` (a sweep there).
   */
  async close(): Promise<void> {
    removeCgroupTree(this.cgroupBase);
    rmSync(stateFilePath(this.prefix), { force: true });
    await Promise.all(
      [...this.remotes].map(async ([place, r]) => {
        try {
          await r.saving?.catch(() => {}); // a write landing after the removal would bring the file back
          const base = await this.remoteBase(place).catch(() => undefined);
          await place.exec('sh', ['-c', REMOVE_REMOTE_SCRIPT, 'sh', base ?? '', stateFilePath(this.prefix)], { allowFail: true });
        } catch {
          /* unreachable: `meshbench down` */
        }
      }),
    );
    this.remotes.clear();
  }
}

/** Remove a cgroup directory and its children (deepest first); cgroups only go once empty. */
export function removeCgroupTree(dir: string | undefined): void {
  if (!dir || !existsSync(dir)) return;
  let entries: Dirent[];
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch (e) {
    // Gone between the check and the listing: a run tearing down while `down --force` sweeps (seen in CI).
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw e;
  }
  for (const e of entries) if (e.isDirectory()) removeCgroupTree(join(dir, e.name));
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
