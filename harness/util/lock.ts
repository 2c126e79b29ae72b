// The run lock: one `meshbench run` (or `down`) at a time per host, so two runs never share CPUs,
// prefixes' cgroups or a results path, and `down` never destroys a live run unasked.
// Node has no flock(2), so a child `flock -n <file> cat` holds it, reading a pipe from this
// process: when meshbench ends in any way (even SIGKILL) the pipe closes, cat exits and the kernel
// drops the lock. Nothing is ever "stale": a lock file nobody holds is free, whatever it says.
// The lock file sits beside the state directory, not in it: that directory holds per-run entries
// only, which `down` removes. The holder describes itself in <lock>.json.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { dirname } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { MeshbenchError, envError } from '../errors.js';
import { STATE_DIR, pidAlive, pidStartTime } from './host.js';
import { writeFileAtomicRaw } from './atomic.js';

export const RUN_LOCK_FILE = `${STATE_DIR.replace(/\/+$/, '')}.lock`;
const BUSY = 75;

export interface LockHolder {
  command: 'run' | 'down';
  pid: number;
  /** Of `pid`, to tell a live holder from a reused pid. */
  startTime?: number;
  since: string;
  scenario?: string;
  prefix?: string;
}

export const infoFile = (lockFile: string) => `${lockFile}.json`;

/** "another run (pid P, scenario S, since T) is in progress", or what else holds it. */
export function describeHolder(h: LockHolder | undefined): string {
  if (!h) return 'another run (pid unknown) is in progress';
  if (h.command === 'down') return `\`meshbench down\` (pid ${h.pid}, since ${h.since}) is in progress`;
  return `another run (pid ${h.pid}, scenario ${h.scenario ?? '?'}, since ${h.since}${h.prefix ? `, prefix ${h.prefix}` : ''}) is in progress`;
}

export function readHolder(lockFile = RUN_LOCK_FILE): LockHolder | undefined {
  try {
    const h = JSON.parse(readFileSync(infoFile(lockFile), 'utf8')) as LockHolder;
    return typeof h?.pid === 'number' ? h : undefined;
  } catch {
    return undefined;
  }
}

/** The lock is held by a live holder (exit 3). */
export class RunLockBusy extends MeshbenchError {
  constructor(
    readonly holder: LockHolder | undefined,
    hint?: string,
  ) {
    super('E_ENV', describeHolder(holder), { hint });
  }
}

const holderAlive = (h: LockHolder) => pidAlive(h.pid) && (h.startTime === undefined || pidStartTime(h.pid) === h.startTime);

export class RunLock {
  private released?: Promise<void>;

  constructor(
    private readonly child: ChildProcess,
    readonly file: string,
  ) {}

  /** Drop the lock; resolves once the holder process is gone (so a next acquire succeeds). */
  release(): Promise<void> {
    this.released ??= (async () => {
      if (readHolder(this.file)?.pid === process.pid) rmSync(infoFile(this.file), { force: true });
      const gone = new Promise<void>((r) => (this.child.exitCode !== null || this.child.signalCode !== null ? r() : this.child.once('exit', () => r())));
      this.child.stdin?.destroy();
      const t = await Promise.race([gone.then(() => true), sleep(2000).then(() => false)]);
      if (!t) this.child.kill('SIGKILL');
    })();
    return this.released;
  }
}

/** One non-blocking attempt: the holding child, or undefined when someone else holds the lock. */
function tryFlock(file: string): Promise<ChildProcess | undefined> {
  return new Promise((resolve, reject) => {
    // Detached: a terminal's Ctrl-C goes to meshbench (which tears down, then releases), not to the holder.
    const child = spawn('flock', ['-n', '-E', String(BUSY), file, '-c', 'echo locked; exec cat >/dev/null'], {
      stdio: ['pipe', 'pipe', 'pipe'],
      detached: true,
    });
    let out = '';
    let err = '';
    const done = (v: ChildProcess | undefined | Error) => {
      child.stdout!.removeAllListeners('data');
      child.removeAllListeners('exit');
      if (v instanceof Error) reject(v);
      else resolve(v);
    };
    child.on('error', (e: NodeJS.ErrnoException) =>
      done(e.code === 'ENOENT' ? envError('flock not found: meshbench needs it for its run lock', 'apt-get install util-linux') : e),
    );
    child.stderr!.setEncoding('utf8').on('data', (d) => (err += d));
    child.stdout!.setEncoding('utf8').on('data', (d) => {
      out += d;
      if (!out.includes('locked')) return;
      child.stdout!.destroy();
      child.stderr!.destroy();
      // Neither the holder nor its pipe keeps meshbench alive; ending meshbench releases the lock.
      child.unref();
      (child.stdin as unknown as { unref?: () => void }).unref?.();
      done(child);
    });
    child.on('exit', (code) =>
      done(code === BUSY ? undefined : envError(`could not take the run lock ${file}: flock exited with ${code}${err ? `: ${err.trim()}` : ''}`)),
    );
  });
}

/**
 * Take the host's run lock or throw E_ENV (exit 3) naming the holder. A lock whose holder is
 * just starting or just ending is retried for a moment, so the message names a live holder.
 */
export async function acquireRunLock(who: Pick<LockHolder, 'command' | 'scenario' | 'prefix'>, file = RUN_LOCK_FILE): Promise<RunLock> {
  mkdirSync(dirname(file), { recursive: true });
  let holder: LockHolder | undefined;
  for (let attempt = 0; attempt < 20; attempt++) {
    const child = await tryFlock(file);
    if (child) {
      const me: LockHolder = { ...who, pid: process.pid, startTime: pidStartTime(process.pid), since: new Date().toISOString() };
      const info = infoFile(file);
      writeFileAtomicRaw(info, JSON.stringify(me) + '\n');
      return new RunLock(child, file);
    }
    holder = readHolder(file);
    if (holder && holderAlive(holder)) break;
    await sleep(50);
  }
  throw new RunLockBusy(holder, holder ? `wait for it to finish, or stop it (Ctrl-C in its terminal, or kill -INT ${holder.pid})` : `the lock is ${file}`);
}
