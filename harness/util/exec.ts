// Running host commands. Every kernel change the lab makes goes through here, so a failing
// command always reports what it ran and what it printed.
import { spawn } from 'node:child_process';
import { runError } from '../errors.js';

export interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface ExecOptions {
  input?: string;
  /** Run inside this network namespace (`ip netns exec`). */
  netns?: string;
  /** Resolve instead of throwing when the command exits non-zero. */
  allowFail?: boolean;
  env?: NodeJS.ProcessEnv;
  timeoutMs?: number;
  /** Join this cgroup v2 directory before running (a lab process's cgroup: the eBPF socket LB acts there). */
  cgroup?: string;
}

/**
 * Run `cmd` inside a named network namespace. nsenter joins only the network namespace; `ip netns
 * exec` would also unshare the mount namespace and remount /sys, which costs time in proportion
 * to the number of lab namespaces (one bind mount each) and buys nothing for the lab's tools.
 */
export function nsCommand(netns: string | undefined, cmd: string, args: string[]): [string, string[]] {
  return netns ? ['nsenter', [`--net=/run/netns/${netns}`, '--', cmd, ...args]] : [cmd, args];
}

export function exec(cmd: string, args: string[], opts: ExecOptions = {}): Promise<ExecResult> {
  let [file, argv] = nsCommand(opts.netns, cmd, args);
  if (opts.cgroup) [file, argv] = ['sh', ['-c', 'echo $$ > "$0/cgroup.procs" && exec "$@"', opts.cgroup, file, ...argv]];
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

/** Feed many iproute2 commands at once; far faster than one process per object. */
export async function ipBatch(lines: string[], opts: { force?: boolean } = {}): Promise<void> {
  if (lines.length === 0) return;
  await exec('ip', [...(opts.force ? ['-force'] : []), '-batch', '-'], { input: lines.join('\n') + '\n', allowFail: !!opts.force });
}

/** True when `cmd` resolves on PATH (or is an executable path). */
export async function which(cmd: string): Promise<string | undefined> {
  const r = await exec('sh', ['-c', `command -v "$1"`, 'sh', cmd], { allowFail: true });
  return r.code === 0 ? r.stdout.trim() : undefined;
}
