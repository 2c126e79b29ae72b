// The seam every command, process, probe and file of a case goes through: a Place is one machine
// the lab runs on (DESIGN.md "Where the lab runs"). Dataplanes never know which place they are on;
// util/exec.ts and util/procs.ts pick it from the network namespace (place/index.ts placeOf).
// Every method is async because a remote place answers over SSH (docs/hosts.md, refactor step 3).
import type { ChildProcess } from 'node:child_process';

export interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface PlaceExecOptions {
  input?: string;
  /** Run inside this network namespace (nsenter --net). */
  netns?: string;
  /** Resolve instead of throwing when the command exits non-zero. */
  allowFail?: boolean;
  env?: NodeJS.ProcessEnv;
  timeoutMs?: number;
  /** Join this cgroup v2 directory before running (a lab process's cgroup: the eBPF socket LB acts there). */
  cgroup?: string;
}

export interface PlaceStartSpec {
  cmd: string;
  args: string[];
  /** Only for messages (the lab process's name). */
  name?: string;
  netns?: string;
  /** A cgroup v2 directory (already made) the process joins before its program runs. */
  cgroup?: string;
  /** CPU list for taskset, e.g. "1" or "0-1". */
  cpus?: string;
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** stdout and stderr are appended here; otherwise discarded. */
  logFile?: string;
}

/** A started, detached process; the exit fields are filled in when its end is seen. */
export interface PlaceProcess {
  pid: number;
  /** Clock ticks since boot (/proc/PID/stat field 22): guards kill and alive against pid reuse. */
  startTime?: number;
  /** Only on the local place. */
  child?: ChildProcess;
  /** Resolves with the exit code when the process ends. */
  exited: Promise<number>;
  exitCode?: number;
  exitSignal?: NodeJS.Signals;
  /** performance.now() of this controller when the exit was seen. */
  exitedAt?: number;
}

export interface Mount {
  source: string;
  target: string;
  fstype: string;
}

export interface Place {
  /** For messages: "local", or the inventory's host name. */
  readonly name: string;
  /** The meshbench checkout on this place (tools in <root>/.tools/bin, bpf objects, dist/). */
  readonly root: string;
  exec(cmd: string, args: string[], opts?: PlaceExecOptions): Promise<ExecResult>;
  /** Start a detached, tracked process (the caller records pid + start time before anything else). */
  start(spec: PlaceStartSpec): Promise<PlaceProcess>;
  /** The pid runs, and is the same process when `startTime` is given. */
  alive(pid: number, startTime?: number): Promise<boolean>;
  /** Signal a pid (default SIGKILL) unless it is gone or, with `startTime`, another process now. */
  kill(pid: number, opts?: { signal?: NodeJS.Signals; startTime?: number }): Promise<boolean>;
  /** A file's text, or undefined where it cannot be read. */
  readFile(path: string): Promise<string | undefined>;
  /** Several files at once (one round trip on a remote place). */
  readFiles(paths: string[]): Promise<(string | undefined)[]>;
  /** Whole-file write: a temporary file beside the target, renamed over it. */
  writeFile(path: string, text: string, opts?: { mode?: number }): Promise<void>;
  /** mkdir -p (mode, less the umask, for the directories it makes). */
  mkdir(path: string, opts?: { mode?: number }): Promise<void>;
  exists(path: string): Promise<boolean>;
  /** Entry names of a directory; [] when it does not exist. */
  list(dir: string): Promise<string[]>;
  /** /proc/mounts of this place ([] where unreadable). */
  mounts(): Promise<Mount[]>;
  /** A tool's path: PATH first, then <root>/.tools/bin; cached per place. */
  findTool(name: string): Promise<string | undefined>;
}
