// Running commands on a lab host over SSH (the `hosts` backend's seam to a remote machine).
// The host's OpenSSH client is spawned directly with an argv (never through a local shell); the
// remote command is one string for the remote shell, built by quoting every argument. No user
// ssh_config (-F /dev/null), no agent, BatchMode: what runs is what the inventory says. One
// ControlMaster per host in a private temp directory makes repeated commands cheap; close()
// ends the masters. A host that cannot be reached is E_ENV (exit 3) naming it and what to check.
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { envError, runError } from '../errors.js';
import { exec, type ExecResult } from '../util/exec.js';
import { ownedTmpDir } from '../util/tmp.js';

export type HostKeyChecking = 'strict' | 'accept-new' | 'off';

/** Where and how to reach one host. */
export interface SshTarget {
  /** The host's name in messages (the inventory's node name). */
  name: string;
  address: string;
  user: string;
  port: number;
  identityFile?: string;
  /** known_hosts to check the host key against (and add to, with accept-new). */
  knownHostsFile?: string;
  /** Default strict: the host key must be in knownHostsFile already. */
  hostKeyChecking?: HostKeyChecking;
  /** Run the ssh client inside this local network namespace (the test fleet's lab namespace). */
  netns?: string;
  /** Run remote commands through `sudo -n` (a user other than root). Default: user !== 'root'. */
  sudo?: boolean;
}

export interface SshOptions {
  /** Seconds for the TCP connect and the SSH handshake (ConnectTimeout). */
  connectTimeoutS?: number;
  /** Share one connection per host (ControlMaster); default true. */
  multiplex?: boolean;
  /** Seconds an idle master stays up after its last command (a crashed run's master goes by itself). */
  persistS?: number;
}

/** `'…'` for a POSIX shell. */
export const shq = (s: string): string => (/^[A-Za-z0-9_@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`);

/** The remote command line for `argv`: each argument quoted, through `sudo -n` when asked. */
export function remoteCommand(argv: string[], sudo = false): string {
  if (!argv.length) throw runError('no remote command');
  return [...(sudo ? ['sudo', '-n', '--'] : []), ...argv].map(shq).join(' ');
}

const useSudo = (t: SshTarget) => t.sudo ?? t.user !== 'root';

/** ssh's arguments up to the destination (options only); pure, so tests can check them. */
export function sshOptions(t: SshTarget, o: { connectTimeoutS: number; controlPath?: string; persistS?: number }): string[] {
  const opt = (k: string, v: string | number) => ['-o', `${k}=${v}`];
  const checking = t.hostKeyChecking ?? 'strict';
  return [
    '-F',
    '/dev/null',
    '-p',
    String(t.port),
    '-l',
    t.user,
    ...(t.identityFile ? ['-i', t.identityFile, ...opt('IdentitiesOnly', 'yes')] : []),
    ...opt('BatchMode', 'yes'),
    ...opt('IdentityAgent', 'none'),
    ...opt('ForwardAgent', 'no'),
    ...opt('ForwardX11', 'no'),
    ...opt('ConnectTimeout', o.connectTimeoutS),
    ...opt('ServerAliveInterval', 5),
    ...opt('ServerAliveCountMax', 3),
    ...opt('StrictHostKeyChecking', checking === 'strict' ? 'yes' : checking === 'accept-new' ? 'accept-new' : 'no'),
    ...opt('UserKnownHostsFile', checking === 'off' ? '/dev/null' : (t.knownHostsFile ?? '~/.ssh/known_hosts')),
    ...opt('GlobalKnownHostsFile', '/dev/null'),
    ...opt('LogLevel', 'ERROR'),
    ...(o.controlPath
      ? [...opt('ControlMaster', 'auto'), ...opt('ControlPath', o.controlPath), ...opt('ControlPersist', o.persistS ?? 60)]
      : opt('ControlMaster', 'no')),
  ];
}

/** The whole argv of `ssh` running `remote` on `t`. */
export function sshArgv(t: SshTarget, remote: string, o: { connectTimeoutS: number; controlPath?: string; persistS?: number }): string[] {
  // `--` ends the options: an address can never be read as one (it is checked by the inventory too).
  return [...sshOptions(t, o), '--', t.address, remote];
}

/** What ssh's own failure (exit 255) says about the host, as an E_ENV error; undefined when it is the remote command's 255. */
export function sshFailure(t: SshTarget, stderr: string) {
  const line = stderr.trim().split('\n').filter(Boolean).pop() ?? '';
  const who = `${t.name} (${t.user}@${t.address}:${t.port}${t.netns ? ` from namespace ${t.netns}` : ''})`;
  if (/Permission denied|Too many authentication failures/.test(stderr))
    return envError(
      `host ${who} refused the SSH login: ${line}`,
      `check the inventory's user and identityFile, and that the key's public half is in ~${t.user}/.ssh/authorized_keys there`,
    );
  if (/Host key verification failed|REMOTE HOST IDENTIFICATION HAS CHANGED|No .* host key is known/.test(stderr))
    return envError(
      `host ${who}: its SSH host key is not the one expected: ${line}`,
      `add the host's key to ${t.knownHostsFile ?? '~/.ssh/known_hosts'} (ssh-keyscan -p ${t.port} ${t.address}), or set hostKeyChecking: accept-new in the inventory`,
    );
  if (
    /^ssh: |Connection (refused|timed out|closed|reset)|No route to host|Network is unreachable|kex_exchange_identification|Could not resolve|Broken pipe|Operation timed out/m.test(
      stderr,
    )
  )
    return envError(
      `host ${who} is unreachable over SSH: ${line}`,
      `check that the machine is up, that ${t.address} port ${t.port} is reachable from here (ping, nc -z), that sshd runs there, and the inventory's address and port`,
    );
  return undefined;
}

export interface RunOptions {
  input?: string;
  /** Resolve with the exit code instead of throwing on a non-zero one (ssh's own failures still throw E_ENV). */
  allowFail?: boolean;
  timeoutMs?: number;
}

/** A remote process started by `start`: its pid there and start time (field 22 of /proc/PID/stat, against pid reuse). */
export interface RemoteProcess {
  pid: number;
  startTime: number;
}

/** Shell text: the start time of PID (field 22 of /proc/PID/stat; fields counted after the command name). */
const startTimeOf = (pid: string) => `sed 's/.*) //' /proc/${pid}/stat 2>/dev/null | cut -d' ' -f20`;

/** One host, reached through its runner's connection settings. */
export class RemoteHost {
  constructor(
    readonly target: SshTarget,
    private readonly runner: SshRunner,
  ) {}

  /** Run argv there; throws E_ENV when the host cannot be reached, E_RUN when the command fails (unless allowFail). */
  async run(argv: string[], o: RunOptions = {}): Promise<ExecResult> {
    return this.runner.raw(this.target, remoteCommand(argv, useSudo(this.target)), o);
  }

  /** Whether commands there go through `sudo -n` (a user other than root, unless the inventory says). */
  get sudo(): boolean {
    return useSudo(this.target);
  }

  /** Run remote shell text as is: the caller quotes (remoteCommand, shq) and adds `sudo -n` itself (place/remote.ts). */
  async sh(remote: string, o: RunOptions = {}): Promise<ExecResult> {
    return this.runner.raw(this.target, remote, o);
  }

  /** True when a trivial command runs there (no error for an unreachable host). */
  async reachable(timeoutMs = 15_000): Promise<boolean> {
    try {
      return (await this.runner.raw(this.target, 'true', { allowFail: true, timeoutMs })).code === 0;
    } catch {
      return false;
    }
  }

  /**
   * Start argv there in its own session, detached from the SSH connection, output to `log`
   * (default /dev/null). Returns once it runs, with its pid there.
   */
  async start(argv: string[], o: { log?: string } = {}): Promise<RemoteProcess> {
    // The inner sh writes its pid and start time to a temp file, then execs the program (same
    // pid) with the log as its output; the outer shell waits for the file, so the pid comes back
    // even from servers (dropbear) that end the session as soon as the outer shell exits.
    const inner = `f=$1; l=$2; shift 2; echo "$$ $(${startTimeOf('$$')})" > "$f"; exec "$@" >"$l" 2>&1 </dev/null`;
    const launch = `${remoteCommand(['setsid', 'sh', '-c', inner, 'sh'], useSudo(this.target))} "$f" ${[o.log ?? '/dev/null', ...argv].map(shq).join(' ')}`;
    const cmd = [
      'f=$(mktemp) || exit 1',
      `${launch} </dev/null >/dev/null 2>&1 &`,
      'i=0; while [ ! -s "$f" ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done',
      'cat "$f"; rm -f "$f"',
    ].join('\n');
    const r = await this.runner.raw(this.target, cmd, { timeoutMs: 60_000 });
    const m = r.stdout.match(/^(\d+) (\d+)\s*$/m);
    if (!m) throw runError(`starting ${argv.join(' ')} on ${this.target.name} printed no pid: ${r.stdout.trim()} ${r.stderr.trim()}`);
    return { pid: Number(m[1]), startTime: Number(m[2]) };
  }

  /** A file's text there (e.g. /proc/<pid>/status), or undefined when it does not exist. */
  async readFile(path: string): Promise<string | undefined> {
    const r = await this.run(['cat', '--', path], { allowFail: true });
    if (r.code === 0) return r.stdout;
    if (/No such file|No such process/.test(r.stderr)) return undefined;
    throw runError(`reading ${path} on ${this.target.name} failed (exit ${r.code}): ${r.stderr.trim()}`);
  }

  /** Whether a process is alive there (and, with its start time, is still the one started). */
  async alive(p: RemoteProcess | number): Promise<boolean> {
    const { pid, startTime } = typeof p === 'number' ? { pid: p, startTime: undefined } : p;
    const r = await this.run(
      ['sh', '-c', `t=$(${startTimeOf('$1')}); [ -n "$t" ] && { [ -z "$2" ] || [ "$t" = "$2" ]; }`, 'sh', String(pid), String(startTime ?? '')],
      {
        allowFail: true,
      },
    );
    return r.code === 0;
  }

  /**
   * Stop a process there by pid: `signal` (TERM), then KILL once `graceMs` passed. With a start
   * time, a pid now used by another process is left alone. Returns whether it was running.
   */
  async kill(p: RemoteProcess | number, o: { signal?: string; graceMs?: number } = {}): Promise<boolean> {
    const { pid, startTime } = typeof p === 'number' ? { pid: p, startTime: undefined } : p;
    if (!Number.isInteger(pid) || pid <= 1) throw runError(`refusing to kill pid ${pid} on ${this.target.name}`);
    const signal = (o.signal ?? 'TERM').replace(/^SIG/, '');
    if (!/^[A-Z0-9]+$/.test(signal)) throw runError(`bad signal ${o.signal}`);
    const tenths = Math.ceil((o.graceMs ?? 5000) / 100);
    const script = [
      `pid=$1; want=$2; ours() { t=$(${startTimeOf('$pid')}); [ -n "$t" ] && { [ -z "$want" ] || [ "$t" = "$want" ]; }; }`,
      'ours || exit 3',
      `kill -${signal} "$pid" 2>/dev/null`,
      `i=0; while ours && [ $i -lt ${tenths} ]; do sleep 0.1; i=$((i+1)); done`,
      'ours && kill -KILL "$pid" 2>/dev/null',
      'exit 0',
    ].join('\n');
    const r = await this.run(['sh', '-c', script, 'sh', String(pid), String(startTime ?? '')], { allowFail: true, timeoutMs: (o.graceMs ?? 5000) + 30_000 });
    if (r.code === 3) return false;
    if (r.code !== 0) throw runError(`killing pid ${pid} on ${this.target.name} failed (exit ${r.code}): ${r.stderr.trim()}`);
    return true;
  }
}

/** Runs commands on hosts; holds one connection per host until close(). */
/**
 * Commands in flight per host over its shared connection: one. With more, about one in twenty
 * sessions failed here with a bare exit 255 (dropbear 2022.83 behind OpenSSH's multiplexing: 4 at
 * once lost 5 of 160, 40 at once 11 of 40; one at a time lost none of 200). A command takes
 * ~70 ms; lab processes run detached, so nothing long holds the connection.
 */
export const MAX_SESSIONS = 1;

export class SshRunner {
  private readonly connectTimeoutS: number;
  private readonly persistS: number;
  /** Where the control sockets are (removed by close()); undefined without multiplexing. */
  readonly controlDir?: string;
  /** Targets a master may have been started for (closed in close()). */
  private readonly used = new Map<string, SshTarget>();
  /** Per target: commands running, and those waiting for a session. */
  private readonly sessions = new Map<string, { running: number; waiting: (() => void)[] }>();
  private closed = false;

  constructor(o: SshOptions = {}) {
    this.connectTimeoutS = o.connectTimeoutS ?? 10;
    this.persistS = o.persistS ?? 60;
    // %C (a hash of host, port, user) keeps the socket path short (sun_path is 108 bytes).
    if (o.multiplex ?? true) this.controlDir = ownedTmpDir('mbssh-');
  }

  host(t: SshTarget): RemoteHost {
    return new RemoteHost(t, this);
  }

  private args(t: SshTarget, remote: string): string[] {
    return sshArgv(t, remote, { connectTimeoutS: this.connectTimeoutS, controlPath: this.controlDir && join(this.controlDir, '%C'), persistS: this.persistS });
  }

  /** At most MAX_SESSIONS commands at once per host, the others queued in order. */
  private async session<T>(key: string, fn: () => Promise<T>): Promise<T> {
    let s = this.sessions.get(key);
    if (!s) this.sessions.set(key, (s = { running: 0, waiting: [] }));
    const slot = s;
    if (slot.running >= MAX_SESSIONS) await new Promise<void>((r) => slot.waiting.push(r));
    else slot.running++;
    try {
      return await fn();
    } finally {
      const next = slot.waiting.shift();
      if (next) next();
      else slot.running--;
    }
  }

  /** Run remote shell text as is (callers quote; RemoteHost.run does). */
  async raw(t: SshTarget, remote: string, o: RunOptions = {}): Promise<ExecResult> {
    if (this.closed) throw runError('the SSH runner is closed');
    const key = `${t.netns ?? ''}|${t.user}@${t.address}:${t.port}`;
    this.used.set(key, t);
    const r = await this.session(key, () =>
      exec('ssh', this.args(t, remote), { netns: t.netns, input: o.input, allowFail: true, timeoutMs: o.timeoutMs ?? 300_000 }),
    );
    if (r.code === 255) {
      const e = sshFailure(t, r.stderr);
      if (e) throw e;
    }
    if (r.code === 127 && /cannot run|ENOENT|failed to execute ssh/.test(r.stderr))
      throw envError('ssh (the OpenSSH client) is not installed', 'install openssh-client');
    if (r.code !== 0 && !o.allowFail) {
      if (/sudo: (a password is required|a terminal is required)/.test(r.stderr))
        throw envError(`host ${t.name}: sudo asks ${t.user} for a password`, `allow ${t.user} passwordless sudo there, or log in as root`);
      throw runError(
        `command on ${t.name} failed (exit ${r.code}${r.code === 128 && o.timeoutMs ? `, timed out after ${o.timeoutMs} ms` : ''}): ${remote.slice(0, 300)}\n${r.stderr.trim() || r.stdout.trim()}`,
      );
    }
    return r;
  }

  /** End every master connection and remove the control directory; safe to repeat. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.controlDir) {
      const path = join(this.controlDir, '%C');
      await Promise.all(
        [...this.used.values()].map((t) =>
          exec('ssh', [...sshOptions(t, { connectTimeoutS: 2, controlPath: path }), '-O', 'exit', '--', t.address], {
            netns: t.netns,
            allowFail: true,
            timeoutMs: 10_000,
          }),
        ),
      );
      rmSync(this.controlDir, { recursive: true, force: true });
    }
  }
}
