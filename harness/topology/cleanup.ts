// `meshbench down`: remove every lab object, whatever run made it and however that run ended
// (Mininet's `mn -c`). Safe to repeat; finding nothing is success.
// Only what carries the lab's mark is touched: a name matching the lab prefix pattern (PREFIX_RE,
// "mb" + 4 base36 characters), a pid recorded in a lab state file (with its start time), or a
// process inside a lab namespace or lab cgroup. A --prefix that is not a lab prefix is bad input.
// Order matters: processes first (a namespace with a live process outlives its deletion), then
// namespaces, then BPF programs attached to lab cgroups and the lab's bpffs (a cgroup removed with
// programs attached keeps them, unseen, until the kernel frees the dying cgroup: minutes), then
// cgroups and state files.
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { MeshbenchError, inputError } from '../errors.js';
import { LAB_OBJECT_RE, PREFIX_RE, STATE_DIR, WG_SOCKET_DIR, cgroup2Root, escapeRegExp, mounts, pidAlive, readText } from '../util/host.js';
import { exec } from '../util/exec.js';
import { RunLockBusy, acquireRunLock, type RunLock } from '../util/lock.js';
import { killRecorded, readStateFiles, removeCgroupTree } from '../util/procs.js';
import { deleteNetns, listNetns, netnsPids } from './netns.js';
import { sweepOwnedTmpDirs } from '../util/tmp.js';

export interface DownReport {
  processes: number;
  namespaces: number;
  cgroups: number;
  bpfPrograms: number;
  /** Temporary directories (VM exchange, SSH control, doctor) left by a meshbench that was killed. */
  tmpDirs: number;
}

/** Throws E_INPUT unless `prefix` is a lab prefix: a user string never widens what `down` removes. */
export function checkPrefix(prefix: string): void {
  if (!PREFIX_RE.test(prefix))
    throw inputError(
      `--prefix: ${JSON.stringify(prefix.slice(0, 40))} is not a meshbench run prefix`,
      [],
      'a run prefix is "mb" and 4 characters of 0-9 a-z (e.g. mbk3f9), as printed by `meshbench run`; without --prefix, `down` removes every lab object',
    );
}

/** The cgroup directory and all below it, deepest first. */
function cgroupDirs(dir: string): string[] {
  const out: string[] = [];
  try {
    for (const e of readdirSync(dir, { withFileTypes: true })) if (e.isDirectory()) out.push(...cgroupDirs(join(dir, e.name)));
  } catch {
    return out;
  }
  out.push(dir);
  return out;
}

/** Pids in a cgroup tree (cgroup.procs of each directory). */
function cgroupPids(dir: string): number[] {
  return cgroupDirs(dir).flatMap((d) => (readText(join(d, 'cgroup.procs')) ?? '').split('\n').filter(Boolean).map(Number));
}

/**
 * Detach every BPF program attached to a cgroup directory or below it, by id (works when the
 * pins are gone). Returns how many were detached. Call while the directory still exists.
 */
export async function detachCgroupPrograms(dir: string): Promise<number> {
  let n = 0;
  for (const d of cgroupDirs(dir)) {
    const r = await exec('bpftool', ['-j', 'cgroup', 'show', d], { allowFail: true });
    if (r.code !== 0 || !r.stdout.trim()) continue;
    let progs: { id: number; attach_type: string }[] = [];
    try {
      progs = JSON.parse(r.stdout);
    } catch {
      continue;
    }
    for (const p of progs) {
      const x = await exec('bpftool', ['cgroup', 'detach', d, p.attach_type, 'id', String(p.id)], { allowFail: true });
      if (x.code === 0) n++;
    }
  }
  return n;
}

/** Remove lab objects. `prefix` (a lab prefix, else E_INPUT) limits it to one run; default is every lab prefix. */
export async function sweep(prefix?: string): Promise<DownReport> {
  if (prefix !== undefined) checkPrefix(prefix);
  const ours = (p: unknown) => typeof p === 'string' && PREFIX_RE.test(p) && (prefix === undefined || p === prefix);
  const objRe = prefix ? new RegExp(`^${escapeRegExp(prefix)}-`) : LAB_OBJECT_RE;
  const report: DownReport = { processes: 0, namespaces: 0, cgroups: 0, bpfPrograms: 0, tmpDirs: 0 };
  const killed: number[] = [];
  const kill = (pid: number) => {
    try {
      process.kill(pid, 'SIGKILL');
      killed.push(pid);
    } catch {
      /* gone */
    }
  };

  for (const st of readStateFiles()) {
    if (!ours(st?.prefix)) continue;
    for (const p of st.pids ?? []) if (killRecorded(p.pid, p.startTime)) killed.push(p.pid);
  }
  const namespaces = await listNetns(objRe);
  // Anything still running inside a lab namespace or a lab cgroup was started there by the lab.
  for (const pid of netnsPids(namespaces)) kill(pid);
  const cg = cgroup2Root();
  const labCgroups =
    cg && existsSync(cg)
      ? readdirSync(cg, { withFileTypes: true })
          .filter((e) => e.isDirectory() && ours(e.name))
          .map((e) => join(cg, e.name))
      : [];
  for (const dir of labCgroups) for (const pid of cgroupPids(dir)) if (pid !== process.pid) kill(pid);
  for (let i = 0; i < 50 && killed.some(pidAlive); i++) await sleep(20);
  report.processes = new Set(killed).size;

  await deleteNetns(namespaces);
  report.namespaces = namespaces.length;

  for (const dir of labCgroups) report.bpfPrograms += await detachCgroupPrograms(dir);
  // Filesystems a run mounted under its state directory (the eBPF dataplane's private bpffs):
  // unmounting drops the pins, so its maps go once no program uses them. Deepest first.
  const labMounts = mounts()
    .filter((m) => m.target.startsWith(STATE_DIR + '/') && ours(m.target.slice(STATE_DIR.length + 1).split('/')[0]))
    .map((m) => m.target)
    .sort((a, b) => b.length - a.length);
  for (const target of labMounts) await exec('umount', ['-l', target], { allowFail: true });

  for (const dir of labCgroups) {
    removeCgroupTree(dir);
    report.cgroups++;
  }
  // wireguard-go's control sockets, named after the lab's devices.
  try {
    for (const f of readdirSync(WG_SOCKET_DIR)) if (objRe.test(f)) rmSync(join(WG_SOCKET_DIR, f), { force: true });
  } catch {
    /* no such directory */
  }
  try {
    for (const f of readdirSync(STATE_DIR)) {
      // <prefix>.json state files and <prefix>/ directories (proxy admin sockets, bpffs mount point).
      if (ours(f.replace(/\.json(\.tmp)?$/, ''))) rmSync(join(STATE_DIR, f), { force: true, recursive: true });
    }
  } catch {
    /* no state dir */
  }
  // Not tied to a prefix: only a sweep of everything takes them, and only those whose owner is gone.
  if (prefix === undefined) report.tmpDirs = sweepOwnedTmpDirs().length;
  return report;
}

export interface DownOptions {
  prefix?: string;
  /** Sweep even while a run holds the run lock (that run's objects go too). */
  force?: boolean;
  warn?: (m: string) => void;
}

/**
 * `meshbench down`: refuses (E_ENV, exit 3) while a live run holds the run lock unless forced,
 * and holds the lock itself while sweeping, so no run starts on a half-removed lab.
 */
export async function down(o: DownOptions = {}): Promise<DownReport> {
  if (o.prefix !== undefined) checkPrefix(o.prefix);
  let lock: RunLock | undefined;
  try {
    lock = await acquireRunLock({ command: 'down', prefix: o.prefix });
  } catch (err) {
    if (!(err instanceof RunLockBusy)) throw err;
    if (!o.force)
      throw new MeshbenchError('E_ENV', err.message, {
        hint: 'meshbench down would destroy it: wait for it to finish, or run `meshbench down --force` to remove its objects anyway',
      });
    o.warn?.(`--force: ${err.message}; removing its objects anyway`);
  }
  try {
    return await sweep(o.prefix);
  } finally {
    await lock?.release();
  }
}
