// One inventory host as a Place (docs/hosts.md, refactor step 3): every method is one SSH command
// through the host's shared connection (hosts/ssh.ts), its argv quoted for the remote shell and run
// through `sudo -n` where the runner does. The command lines are pure functions (exported for the
// unit tests, which run them through a real local `sh`). What a remote place cannot know as a local
// one does, and why:
// - a started process has no child here: a small shell on the host waits for it and writes its exit
//   status to a file; `exited` resolves when a poll (one command for all watched processes of the
//   place, every `pollMs`) finds that file, so `exitedAt` is late by up to one poll plus a round
//   trip. Exit by signal N reads as status 128+N (the shell's convention: a program exiting 130 by
//   itself looks like SIGINT). If that shell was killed too, the status is unknown: `exited`
//   resolves -1 and `exitCode` stays undefined.
// - `env`: only the entries that differ from this process's environment are set there, on top of the
//   remote login's (this machine's PATH or HOME mean nothing on another); removed entries are not.
// - a timeout kills the remote command (coreutils `timeout -s KILL`): exit 137, not 128 as locally.
import { randomBytes } from 'node:crypto';
import { constants } from 'node:os';
import { envError, runError } from '../errors.js';
import { hostTarget, type InventoryHost, meshbenchDirOf } from '../hosts/inventory.js';
import { type RemoteHost, remoteCommand, type SshRunner, shq } from '../hosts/ssh.js';
import { nsCommand } from './local.js';
import type { ExecResult, Mount, Place, PlaceExecOptions, PlaceProcess, PlaceStartSpec } from './types.js';

/** dropbear and some sshd give a root command PATH=/usr/bin:/bin; the lab's tools (iptables, tc) are in sbin. */
export const PATH_PREAMBLE = 'PATH=$PATH:/usr/local/sbin:/usr/sbin:/sbin; export PATH; ';

/** Shell text: the start time of PID (field 22 of /proc/PID/stat, counted after the command name). */
const startTimeOf = (pid: string) => `$(sed 's/.*) //' /proc/${pid}/stat 2>/dev/null | cut -d' ' -f20)`;

/** `sh` joining a cgroup v2 directory, then exec: as place/local.ts, so not one instruction runs outside it. */
const cgroupJoin = (cgroup: string, argv: string[]): string[] => ['sh', '-c', 'echo $$ > "$0/cgroup.procs" && exec "$@"', cgroup, ...argv];

/** NAME=VALUE for the entries of `env` that differ from this process's environment. */
export function envAssignments(env: NodeJS.ProcessEnv | undefined, base: NodeJS.ProcessEnv = process.env): string[] {
  if (!env) return [];
  const out: string[] = [];
  for (const [k, v] of Object.entries(env)) {
    if (v === undefined || base[k] === v) continue;
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k)) throw runError(`environment variable name ${JSON.stringify(k)} cannot be passed to a remote host`);
    out.push(`${k}=${v}`);
  }
  return out;
}

/** The argv run there for exec/start (before sudo): [timeout] [cgroup join] [taskset] [nsenter] [env] cmd args. */
export function placeArgv(
  cmd: string,
  args: string[],
  o: { netns?: string; cgroup?: string; cpus?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number; defaultSignals?: boolean },
): string[] {
  const vars = envAssignments(o.env);
  // A process started in the background of a non-interactive shell ignores SIGINT and SIGQUIT;
  // GNU env (coreutils >= 8.31) gives them back, so a lab process stops on them as it does locally.
  const envPart = o.defaultSignals ? ['env', '--default-signal=INT,QUIT', '--', ...vars] : vars.length ? ['env', '--', ...vars] : [];
  let argv = nsCommand(o.netns, cmd, args).flat();
  if (envPart.length) argv = o.netns ? ['nsenter', argv[1], '--', ...envPart, cmd, ...args] : [...envPart, ...argv];
  if (o.cpus) argv = ['taskset', '-c', o.cpus, ...argv];
  if (o.cgroup) argv = cgroupJoin(o.cgroup, argv);
  if (o.timeoutMs) argv = ['timeout', '-s', 'KILL', `${Math.max(1, Math.ceil(o.timeoutMs / 1000))}`, ...argv];
  return argv;
}

/** The remote shell text of one command: the PATH preamble, then argv quoted (through sudo). */
export const remoteExecLine = (argv: string[], sudo: boolean): string => PATH_PREAMBLE + remoteCommand(argv, sudo);

/**
 * The remote shell text of start: a private directory (mktemp -d), a detached (setsid) shell there
 * that opens the log for appending, starts argv in the background, writes "<pid> <start time>" to
 * <dir>/pid, waits for it and writes its status to <dir>/exit. The outer shell prints
 * "<dir> <pid> <start time>" (or "<dir> E <why>") once the pid file is there.
 */
export function startLine(argv: string[], o: { sudo: boolean; log?: string; cwd?: string }): string {
  const wrapper = [
    'd=$1; l=$2; c=$3; shift 3',
    `fail() { printf 'E %s\\n' "$*" > "$d/p.tmp"; mv -f "$d/p.tmp" "$d/pid"; exit 1; }`,
    '[ -z "$c" ] || cd "$c" 2>/dev/null || fail "cannot cd to $c"',
    '{ : >>"$l"; } 2>/dev/null || fail "cannot open the log file $l"',
    '"$@" >>"$l" 2>&1 </dev/null &',
    'p=$!',
    `echo "$p ${startTimeOf('$p')}" > "$d/p.tmp"; mv -f "$d/p.tmp" "$d/pid"`,
    'wait $p; echo $? > "$d/x.tmp"; mv -f "$d/x.tmp" "$d/exit"',
  ].join('\n');
  const launch = `${remoteCommand(['setsid', 'sh', '-c', wrapper, 'sh'], o.sudo)} "$d" ${[o.log ?? '/dev/null', o.cwd ?? '', ...argv].map(shq).join(' ')}`;
  return (
    PATH_PREAMBLE +
    [
      'd=$(mktemp -d /tmp/mbproc.XXXXXX) || exit 1',
      `${launch} </dev/null >/dev/null 2>&1 &`,
      'i=0; while [ ! -s "$d/pid" ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done',
      `printf '%s ' "$d"; cat "$d/pid" 2>/dev/null || echo 'E no pid after 30 s'`,
    ].join('\n')
  );
}

/** Parse start's output: the directory, pid and start time (undefined when the program ended before it was read). */
export function parseStart(out: string): { dir: string; pid: number; startTime?: number } | { dir?: string; error: string } {
  const m = out.trim().match(/^(\/\S+) (\d+) ?(\d*)$/);
  if (m) return { dir: m[1], pid: Number(m[2]), startTime: m[3] ? Number(m[3]) : undefined };
  const e = out.trim().match(/^(\/\S+) E (.*)$/s);
  return e ? { dir: e[1], error: e[2] } : { error: out.trim() || 'no output' };
}

/**
 * The poll of watched processes: args are dir pid pairs. Prints "<status> <dir>" for each whose
 * exit file is there (and removes its directory), "- <dir>" for one whose pid is gone with no
 * status on two polls in a row (its waiting shell died too).
 */
export const POLL_SCRIPT = [
  'while [ $# -gt 1 ]; do d=$1; p=$2; shift 2',
  '  if [ -f "$d/exit" ]; then echo "$(cat "$d/exit") $d"; rm -rf -- "$d"',
  '  elif [ ! -e "/proc/$p" ]; then if [ -e "$d/gone" ]; then echo "- $d"; rm -rf -- "$d"; else : > "$d/gone"; fi',
  '  fi',
  'done',
].join('\n');

export function parsePoll(out: string): Map<string, number | undefined> {
  const res = new Map<string, number | undefined>();
  for (const l of out.split('\n')) {
    const m = l.match(/^(\d+|-) (\/\S+)$/);
    if (m) res.set(m[2], m[1] === '-' ? undefined : Number(m[1]));
  }
  return res;
}

/** A shell status as exit code and signal, as LocalPlace reports them (killed: 128 and the signal). */
export function statusToExit(status: number): { code: number; signal?: NodeJS.Signals } {
  if (status > 128 && status < 128 + 65) {
    const name = Object.entries(constants.signals).find(([, n]) => n === status - 128)?.[0];
    if (name) return { code: 128, signal: name as NodeJS.Signals };
  }
  return { code: status };
}

/**
 * readFiles as one script: each file's bytes, then "\n<nonce> <cat's exit>\n". The nonce is random
 * per call, so no file's content can pass for a separator.
 */
export function readFilesLine(paths: string[], nonce: string, sudo: boolean): string {
  const script = `n=$1; shift; for p do cat -- "$p" 2>/dev/null; r=$?; printf '\\n%s %d\\n' "$n" "$r"; done`;
  return remoteExecLine(['sh', '-c', script, 'sh', nonce, ...paths], sudo);
}

export function parseReadFiles(out: string, nonce: string, count: number): (string | undefined)[] {
  const res: (string | undefined)[] = [];
  let pos = 0;
  for (let i = 0; i < count; i++) {
    const sep = `\n${nonce} `;
    const at = out.indexOf(sep, pos);
    if (at < 0) throw runError(`reading ${count} files: the output stops after ${i}`);
    const nl = out.indexOf('\n', at + sep.length);
    const code = Number(out.slice(at + sep.length, nl < 0 ? undefined : nl));
    res.push(code === 0 ? out.slice(pos, at) : undefined);
    pos = nl < 0 ? out.length : nl + 1;
  }
  return res;
}

/** writeFile: stdin to a temp file beside the target (mode set before any byte, with a umask), renamed over it. */
export const WRITE_SCRIPT = [
  't="$1.$$.tmp"',
  '[ -z "$2" ] || umask 077',
  'if cat > "$t" && { [ -z "$2" ] || chmod "$2" "$t"; } && mv -f -- "$t" "$1"; then exit 0; fi',
  'rm -f -- "$t"; exit 1',
].join('\n');

/** mkdir -p with the mode, less the umask, on every directory it makes (as mkdirSync recursive). */
export const MKDIR_SCRIPT = '[ -z "$2" ] || umask "$(printf %o $(( $(umask) | (0$2 ^ 0777) )))"; mkdir -p -- "$1"';

/** findTool: PATH, then <root>/.tools/bin. */
export const FIND_TOOL_SCRIPT = 'command -v "$1" || { [ -x "$2/.tools/bin/$1" ] && printf "%s\\n" "$2/.tools/bin/$1"; }';

/** /proc/self/mounts lines, with the kernel's octal escapes (\040 space, \011 tab, \012, \134) decoded. */
export function parseMounts(text: string): Mount[] {
  const decode = (s: string) => s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(Number.parseInt(o, 8)));
  return text
    .split('\n')
    .filter(Boolean)
    .map((l) => {
      const [source, target, fstype] = l.split(' ');
      return { source: decode(source), target: decode(target ?? ''), fstype: fstype ?? '' };
    });
}

interface Watched {
  proc: PlaceProcess;
  dir: string;
  resolve: (code: number) => void;
}

export interface RemotePlaceOptions {
  /** The meshbench checkout there (inventory meshbenchDir). */
  root: string;
  /** How often started processes are polled for their exit; default 500 ms. */
  pollMs?: number;
}

export class RemotePlace implements Place {
  readonly name: string;
  readonly root: string;
  private readonly tools = new Map<string, string | undefined>();
  private readonly watched = new Map<string, Watched>();
  private readonly pollMs: number;
  private timer?: NodeJS.Timeout;
  private closed = false;

  constructor(
    readonly host: RemoteHost,
    o: RemotePlaceOptions,
  ) {
    this.name = host.target.name;
    this.root = o.root;
    this.pollMs = o.pollMs ?? 500;
  }

  /** The place of an inventory host, over `runner`'s connections. */
  static of(runner: SshRunner, h: InventoryHost, o: Omit<RemotePlaceOptions, 'root'> = {}): RemotePlace {
    return new RemotePlace(runner.host(hostTarget(h)), { ...o, root: meshbenchDirOf(h) });
  }

  private run(remote: string, o: { input?: string; timeoutMs?: number } = {}): Promise<ExecResult> {
    return this.host.sh(remote, { ...o, allowFail: true });
  }

  async exec(cmd: string, args: string[], opts: PlaceExecOptions = {}): Promise<ExecResult> {
    const argv = placeArgv(cmd, args, opts);
    // ssh's own deadline comes after the remote `timeout` has killed the command.
    const r = await this.run(remoteExecLine(argv, this.host.sudo), { input: opts.input, timeoutMs: opts.timeoutMs ? opts.timeoutMs + 15_000 : undefined });
    if (r.code !== 0 && !opts.allowFail) {
      if (/sudo: (a password is required|a terminal is required)/.test(r.stderr))
        throw envError(`host ${this.name}: sudo asks ${this.host.target.user} for a password`, `allow passwordless sudo there, or log in as root`);
      const timedOut = opts.timeoutMs && r.code === 137 ? `, killed after ${opts.timeoutMs} ms` : '';
      const input = opts.input ? `\n--- input (first lines) ---\n${opts.input.split('\n').slice(0, 20).join('\n')}` : '';
      throw runError(`command failed on ${this.name} (exit ${r.code}${timedOut}): ${argv.join(' ')}\n${r.stderr.trim() || r.stdout.trim()}${input}`);
    }
    return r;
  }

  async start(spec: PlaceStartSpec): Promise<PlaceProcess> {
    if (this.closed) throw runError(`the place ${this.name} is closed`);
    const argv = placeArgv(spec.cmd, spec.args, { ...spec, defaultSignals: true });
    const r = await this.run(startLine(argv, { sudo: this.host.sudo, log: spec.logFile, cwd: spec.cwd }), { timeoutMs: 60_000 });
    const s = parseStart(r.stdout);
    const what = `${spec.cmd}${spec.name ? ` for ${spec.name}` : ''} on ${this.name}`;
    if ('error' in s) {
      if (s.dir) await this.run(remoteExecLine(['rm', '-rf', '--', s.dir], this.host.sudo)).catch(() => {});
      throw runError(`could not start ${what}: ${s.error}${r.stderr.trim() ? `\n${r.stderr.trim()}` : ''}`);
    }
    let resolveExit!: (c: number) => void;
    const exited = new Promise<number>((res) => (resolveExit = res));
    const proc: PlaceProcess = { pid: s.pid, startTime: s.startTime, exited };
    this.watched.set(s.dir, { proc, dir: s.dir, resolve: resolveExit });
    this.schedule();
    return proc;
  }

  /** One poll for all watched processes while any is watched (the timer keeps Node up until they end or close()). */
  private schedule(): void {
    if (this.timer || this.closed || !this.watched.size) return;
    this.timer = setTimeout(async () => {
      const list = [...this.watched.values()];
      try {
        const args = list.flatMap((w) => [w.dir, String(w.proc.pid)]);
        const r = await this.run(remoteExecLine(['sh', '-c', POLL_SCRIPT, 'sh', ...args], this.host.sudo), { timeoutMs: 30_000 });
        const now = performance.now();
        for (const [dir, status] of parsePoll(r.stdout)) {
          const w = this.watched.get(dir);
          if (!w) continue;
          this.watched.delete(dir);
          w.proc.exitedAt ??= now;
          if (status === undefined) w.resolve(-1);
          else {
            const e = statusToExit(status);
            w.proc.exitCode = e.code;
            w.proc.exitSignal = e.signal;
            w.resolve(e.code);
          }
        }
      } catch {
        /* the host did not answer this time: the next poll asks again */
      }
      this.timer = undefined;
      this.schedule();
    }, this.pollMs);
  }

  /** Stop polling (the processes keep running there; their `exited` stays pending). */
  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  async alive(pid: number, startTime?: number): Promise<boolean> {
    return this.host.alive(startTime === undefined ? pid : { pid, startTime });
  }

  async kill(pid: number, opts: { signal?: NodeJS.Signals; startTime?: number } = {}): Promise<boolean> {
    const r = await this.run(killLine(pid, opts.signal ?? 'SIGKILL', opts.startTime, this.host.sudo, this.name));
    return r.code === 0;
  }

  async readFile(path: string): Promise<string | undefined> {
    return (await this.readFiles([path]))[0];
  }

  async readFiles(paths: string[]): Promise<(string | undefined)[]> {
    if (!paths.length) return [];
    // Far below ARG_MAX; beyond it, one command per chunk.
    const chunks: string[][] = [[]];
    let size = 0;
    for (const p of paths) {
      if (size + p.length > 96_000 && chunks[chunks.length - 1].length) chunks.push([]), (size = 0);
      chunks[chunks.length - 1].push(p);
      size += p.length + 3;
    }
    const out: (string | undefined)[] = [];
    for (const c of chunks) {
      const nonce = `MBREAD-${randomBytes(12).toString('hex')}`;
      const r = await this.run(readFilesLine(c, nonce, this.host.sudo));
      if (r.code !== 0) throw runError(`reading files on ${this.name} failed (exit ${r.code}): ${r.stderr.trim()}`);
      out.push(...parseReadFiles(r.stdout, nonce, c.length));
    }
    return out;
  }

  async writeFile(path: string, text: string, opts: { mode?: number } = {}): Promise<void> {
    const mode = opts.mode === undefined ? '' : opts.mode.toString(8);
    await this.exec('sh', ['-c', WRITE_SCRIPT, 'sh', path, mode], { input: text });
  }

  async mkdir(path: string, opts: { mode?: number } = {}): Promise<void> {
    await this.exec('sh', ['-c', MKDIR_SCRIPT, 'sh', path, opts.mode === undefined ? '' : opts.mode.toString(8)]);
  }

  async exists(path: string): Promise<boolean> {
    return (await this.exec('test', ['-e', path], { allowFail: true })).code === 0;
  }

  async list(dir: string): Promise<string[]> {
    const r = await this.exec('find', [dir, '-mindepth', '1', '-maxdepth', '1', '-printf', '%f\\0'], { allowFail: true });
    return r.code === 0 ? r.stdout.split('\0').filter(Boolean) : [];
  }

  async mounts(): Promise<Mount[]> {
    return parseMounts((await this.readFile('/proc/self/mounts')) ?? '');
  }

  async findTool(name: string): Promise<string | undefined> {
    if (this.tools.has(name)) return this.tools.get(name);
    const r = await this.exec('sh', ['-c', FIND_TOOL_SCRIPT, 'sh', name, this.root], { allowFail: true });
    const p = r.code === 0 ? r.stdout.trim().split('\n')[0] || undefined : undefined;
    this.tools.set(name, p);
    return p;
  }
}

/** kill: signal the pid unless it is gone or (with a start time) another process now; exit 3 then. */
export function killLine(pid: number, signal: NodeJS.Signals | string, startTime: number | undefined, sudo: boolean, host = 'the host'): string {
  if (!Number.isInteger(pid) || pid <= 1) throw runError(`refusing to kill pid ${pid} on ${host}`);
  const sig = signal.replace(/^SIG/, '');
  if (!/^[A-Z0-9]+$/.test(sig)) throw runError(`bad signal ${signal}`);
  const script = `t=${startTimeOf('$1')}; [ -n "$t" ] && { [ -z "$2" ] || [ "$t" = "$2" ]; } || exit 3; kill -s ${sig} "$1" 2>/dev/null || exit 3`;
  return remoteExecLine(['sh', '-c', script, 'sh', String(pid), startTime === undefined ? '' : String(startTime)], sudo);
}
