// This host as a Place: the spawn code every lab command and process runs through (moved here
// from util/exec.ts and util/procs.ts, which keep their API as thin wrappers), plus the host's
// files, mounts and tools. A failing command always reports what it ran and what it printed.
import { spawn } from 'node:child_process';
import { chmodSync, closeSync, existsSync, mkdirSync, openSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { runError } from '../errors.js';
import { writeFileAtomicRaw } from '../util/atomic.js';
import { PROJECT_ROOT, mounts, pidAlive, pidStartTime, readText } from '../util/host.js';
import type { ExecResult, Mount, Place, PlaceExecOptions, PlaceProcess, PlaceStartSpec } from './types.js';

/**
 * Run `cmd` inside a named network namespace. nsenter joins only the network namespace; `ip netns
 * exec` would also unshare the mount namespace and remount /sys, which costs time in proportion
 * to the number of lab namespaces (one bind mount each) and buys nothing for the lab's tools.
 */
export function nsCommand(netns: string | undefined, cmd: string, args: string[]): [string, string[]] {
  return netns ? ['nsenter', [`--net=/run/netns/${netns}`, '--', cmd, ...args]] : [cmd, args];
}

/** `sh` joining a cgroup v2 directory before exec, so not one instruction of the program runs outside it. */
const cgroupJoin = (cgroup: string, argv: string[]): string[] => ['sh', '-c', 'echo $$ > "$0/cgroup.procs" && exec "$@"', cgroup, ...argv];

export class LocalPlace implements Place {
  readonly name = 'local';
  readonly root = PROJECT_ROOT;
  private readonly tools = new Map<string, string | undefined>();

  exec(cmd: string, args: string[], opts: PlaceExecOptions = {}): Promise<ExecResult> {
    let [file, argv] = nsCommand(opts.netns, cmd, args);
    if (opts.cgroup) [file, ...argv] = cgroupJoin(opts.cgroup, [file, ...argv]);
    return new Promise((resolve, reject) => {
      const child = spawn(file, argv, { stdio: ['pipe', 'pipe', 'pipe'], env: opts.env ?? process.env });
      let stdout = '';
      let stderr = '';
      let timer: NodeJS.Timeout | undefined;
      if (opts.timeoutMs) timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs);
      child.stdout.setEncoding('utf8').on('data', (d) => (stdout += d));
      child.stderr.setEncoding('utf8').on('data', (d) => (stderr += d));
      child.on('error', (err) => {
        if (timer) clearTimeout(timer);
        if (opts.allowFail) resolve({ code: 127, stdout, stderr: String(err) });
        else reject(runError(`cannot run ${file}: ${err.message}`, err));
      });
      child.on('close', (code, signal) => {
        if (timer) clearTimeout(timer);
        const res = { code: code ?? (signal ? 128 : 1), stdout, stderr };
        if (res.code !== 0 && !opts.allowFail) {
          const shown = [file, ...argv].join(' ');
          const input = opts.input ? `\n--- input (first lines) ---\n${opts.input.split('\n').slice(0, 20).join('\n')}` : '';
          reject(runError(`command failed (exit ${res.code}): ${shown}\n${stderr.trim() || stdout.trim()}${input}`));
        } else resolve(res);
      });
      child.stdin.on('error', () => {});
      child.stdin.end(opts.input ?? '');
    });
  }

  /**
   * start() without waiting: util/procs.ts ProcessGroup.start is synchronous (its callers use the
   * pid at once). Detached, so a Ctrl-C on the terminal reaches meshbench only, which then tears
   * down in order.
   */
  spawn(spec: PlaceStartSpec): PlaceProcess {
    let argv: string[] = nsCommand(spec.netns, spec.cmd, spec.args).flat();
    if (spec.cpus) argv = ['taskset', '-c', spec.cpus, ...argv];
    if (spec.cgroup) argv = cgroupJoin(spec.cgroup, argv);
    const fd = spec.logFile ? openSync(spec.logFile, 'a') : 'ignore';
    const child = spawn(argv[0], argv.slice(1), {
      stdio: ['ignore', fd, fd],
      detached: true,
      cwd: spec.cwd,
      env: spec.env ?? process.env,
    });
    if (typeof fd === 'number') closeSync(fd);
    if (child.pid === undefined) throw runError(`could not start ${spec.cmd}${spec.name ? ` for ${spec.name}` : ''}`);
    let resolveExit!: (c: number) => void;
    const exited = new Promise<number>((r) => (resolveExit = r));
    const proc: PlaceProcess = { pid: child.pid, startTime: pidStartTime(child.pid), child, exited };
    child.on('exit', (code, signal) => {
      proc.exitCode = code ?? (signal ? 128 : 1);
      proc.exitSignal = signal ?? undefined;
      proc.exitedAt ??= performance.now();
      resolveExit(proc.exitCode);
    });
    child.on('error', () => {
      proc.exitCode = 127;
      proc.exitedAt ??= performance.now();
      resolveExit(127);
    });
    return proc;
  }

  async start(spec: PlaceStartSpec): Promise<PlaceProcess> {
    return this.spawn(spec);
  }

  async alive(pid: number, startTime?: number): Promise<boolean> {
    return pidAlive(pid) && (startTime === undefined || pidStartTime(pid) === startTime);
  }

  async kill(pid: number, opts: { signal?: NodeJS.Signals; startTime?: number } = {}): Promise<boolean> {
    if (!(await this.alive(pid, opts.startTime))) return false;
    try {
      process.kill(pid, opts.signal ?? 'SIGKILL');
      return true;
    } catch {
      return false;
    }
  }

  async readFile(path: string): Promise<string | undefined> {
    return readText(path);
  }

  async readFiles(paths: string[]): Promise<(string | undefined)[]> {
    return paths.map(readText);
  }

  async writeFile(path: string, text: string, opts: { mode?: number } = {}): Promise<void> {
    if (opts.mode === undefined) return writeFileAtomicRaw(path, text);
    const tmp = `${path}.${process.pid}.tmp`;
    try {
      writeFileSync(tmp, text, { mode: opts.mode });
      chmodSync(tmp, opts.mode); // the umask does not decide a key file's mode
      renameSync(tmp, path);
    } catch (err) {
      rmSync(tmp, { force: true });
      throw err;
    }
  }

  async mkdir(path: string, opts: { mode?: number } = {}): Promise<void> {
    mkdirSync(path, { recursive: true, mode: opts.mode });
  }

  async exists(path: string): Promise<boolean> {
    return existsSync(path);
  }

  async list(dir: string): Promise<string[]> {
    return existsSync(dir) ? readdirSync(dir) : [];
  }

  async mounts(): Promise<Mount[]> {
    return mounts();
  }

  async findTool(name: string): Promise<string | undefined> {
    if (this.tools.has(name)) return this.tools.get(name);
    const r = await this.exec('sh', ['-c', `command -v "$1"`, 'sh', name], { allowFail: true });
    let p = r.code === 0 ? r.stdout.trim() : undefined;
    if (!p) {
      const local = resolve(this.root, '.tools/bin', name);
      if (existsSync(local)) p = local;
    }
    this.tools.set(name, p);
    return p;
  }
}

/** The host meshbench runs on: every node's place until an inventory registers others. */
export const localPlace = new LocalPlace();
