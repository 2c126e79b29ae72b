// `meshbench down`: remove every lab object, whatever run made it and however that run ended
// (Mininet's `mn -c`). Safe to repeat; finding nothing is success.
// Only what carries the lab's mark is touched: a name matching the lab prefix pattern (PREFIX_RE,
// "mb" + 4 base36 characters), a pid recorded in a lab state file (with its start time), or a
// process inside a lab namespace or lab cgroup. A --prefix that is not a lab prefix is bad input.
// Order matters: processes first (a namespace with a live process outlives its deletion), then
// namespaces, then BPF programs attached to lab cgroups and the lab's bpffs (a cgroup removed with
// programs attached keeps them, unseen, until the kernel frees the dying cgroup: minutes), then
// cgroups and state files. On another machine (the hosts backend) the same happens through one
// shell script run there (sweepPlace), which also gives back the lab interface a run moved into
// its node namespace.
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { MeshbenchError, inputError, runError } from '../errors.js';
import { isLocal, localPlace, type Place } from '../place/index.js';
import { LAB_OBJECT_RE, PREFIX_RE, STATE_DIR, WG_SOCKET_DIR, cgroup2Root, escapeRegExp, mounts, pidAlive, readText } from '../util/host.js';
import { exec } from '../util/exec.js';
import { RunLockBusy, acquireRunLock, type RunLock } from '../util/lock.js';
import { killRecorded, readStateFiles, removeCgroupTree, stateFilePath } from '../util/procs.js';
import { deleteNetns, listNetns, netnsPids } from './netns.js';
import { sweepOwnedTmpDirs } from '../util/tmp.js';

export interface DownReport {
  processes: number;
  namespaces: number;
  cgroups: number;
  bpfPrograms: number;
  /** Temporary directories (VM exchange, SSH control, doctor) left by a meshbench that was killed. */
  tmpDirs: number;
  /** Lab interfaces given back to their machine's root namespace (sweepPlace, hosts backend). */
  interfaces?: number;
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
 * pins are gone), on `place` (one command there for another machine). Returns how many were
 * detached. Call while the directory still exists.
 */
export async function detachCgroupPrograms(dir: string, place: Place = localPlace): Promise<number> {
  if (!isLocal(place)) {
    const r = await place.exec('sh', ['-c', `R=$2\n${PATH_LINE}\n${DETACH_FN}\ndetach "$1"`, 'sh', dir, place.root], { allowFail: true });
    return r.stdout.split('\n').filter((l) => l.startsWith('D ')).length;
  }
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

/** sbin and the checkout's tools ($R: the place's root) on PATH: dropbear gives root only /usr/bin:/bin. */
const PATH_LINE = 'PATH=$PATH:/usr/local/sbin:/usr/sbin:/sbin:$R/.tools/bin; export PATH';

/** Shell: detach(dir) prints "D <id>" for each program it detached from dir and below (bpftool -j: id, then attach_type). */
const DETACH_FN = [
  'detach() {',
  '  find "$1" -depth -type d 2>/dev/null | while IFS= read -r d; do',
  `    bpftool -j cgroup show "$d" 2>/dev/null | tr '{' '\\n' | sed -n 's/.*"id":\\([0-9]*\\),"attach_type":"\\([a-z0-9_]*\\)".*/\\1 \\2/p' |`,
  '      while read -r id at; do bpftool cgroup detach "$d" "$at" id "$id" >/dev/null 2>&1 && echo "D $id"; done',
  '  done',
  '}',
].join('\n');

/**
 * `sweep(prefix)` for one machine, as one script run there. Arguments, never spliced into the
 * text: prefix, state dir, wireguard socket dir, meshbench root, mode ("all", or "iface": only
 * give the lab interface back), cgroup2 root ('' = from its mounts), then pid and start time of each
 * process its state file records. Prints one line per object: K pid killed, N namespace
 * deleted, D program detached, M unmounted, C cgroup tree removed, I ok|missing|stuck|bad for
 * the lab interface.
 */
export const SWEEP_SCRIPT = [
  'P=$1 S=$2 W=$3 R=$4 MODE=$5 CG=$6',
  'case "$P" in mb[0-9a-z][0-9a-z][0-9a-z][0-9a-z]) ;; *) echo "meshbench: not a lab prefix: $P" >&2; exit 2 ;; esac',
  PATH_LINE,
  'shift 6',
  `[ -n "$CG" ] || CG=$(awk '$3 == "cgroup2" { print $2; exit }' /proc/self/mounts)`,
  'UL=$P-ul',
  'NSL=$(ip netns list 2>/dev/null | while read -r n _; do case "$n" in "$P"-*) echo "$n" ;; esac; done)',
  DETACH_FN,
  // The lab interface back: out of its node namespace (or found in the root one, where deleting
  // the namespace left it), then its recorded name, MTU and state.
  'restore() {',
  '  rec=$S/$P/underlay.json',
  '  [ -f "$rec" ] || return 0',
  `  name=$(sed -n 's/.*"name": *"\\([A-Za-z0-9_.-]*\\)".*/\\1/p' "$rec")`,
  `  mtu=$(sed -n 's/.*"mtu": *\\([0-9][0-9]*\\).*/\\1/p' "$rec")`,
  `  up=$(sed -n 's/.*"up": *true.*/up/p' "$rec")`,
  '  [ -n "$name" ] || { echo "I bad"; return 0; }',
  '  for n in $NSL; do',
  '    case "$n" in "$P"-n | "$P"-n*[!0-9]*) continue ;; "$P"-n*) ;; *) continue ;; esac',
  '    for d in "$UL" "$name"; do ip -n "$n" link set dev "$d" netns $$ 2>/dev/null; done',
  '  done',
  '  k=0',
  '  while :; do',
  '    if ip link show dev "$UL" >/dev/null 2>&1; then cur=$UL; break; fi',
  '    if ip link show dev "$name" >/dev/null 2>&1; then cur=$name; break; fi',
  '    [ "$k" -lt 50 ] || { echo "I missing $name"; return 0; }',
  '    sleep 0.1; k=$((k+1))',
  '  done',
  '  if [ "$cur" != "$name" ]; then',
  '    { ip link set dev "$cur" down && ip link set dev "$cur" name "$name"; } || { echo "I stuck $cur $name"; return 0; }',
  '  fi',
  '  [ -z "$mtu" ] || ip link set dev "$name" mtu "$mtu"',
  '  [ -z "$up" ] || ip link set dev "$name" up',
  '  echo "I ok $name"',
  '}',
  'if [ "$MODE" = iface ]; then restore; exit 0; fi',
  'KILLED=',
  'kill9() {',
  '  for p do',
  `    case "$p" in ''|*[!0-9]*) continue ;; esac`,
  '    [ "$p" -gt 1 ] && [ "$p" != $$ ] || continue',
  '    kill -9 "$p" 2>/dev/null && { KILLED="$KILLED $p"; echo "K $p"; }',
  '  done',
  '}',
  // Recorded pids, only while they are still the process recorded (start time, /proc/PID/stat field 22).
  'while [ $# -gt 1 ]; do',
  '  pid=$1 st=$2; shift 2',
  `  case "$pid" in ''|*[!0-9]*) continue ;; esac`,
  `  t=$(sed 's/.*) //' /proc/$pid/stat 2>/dev/null | cut -d' ' -f20)`,
  '  [ -n "$t" ] && [ "$t" = "$st" ] && kill9 "$pid"',
  'done',
  // Anything in a lab namespace (by its inode) or a lab cgroup was started there by the lab.
  'INOS=',
  'for n in $NSL; do i=$(stat -L -c %i "/run/netns/$n" 2>/dev/null) && INOS="$INOS $i"; done',
  'if [ -n "$INOS" ]; then',
  `  kill9 $(find /proc/[0-9]*/ns -maxdepth 1 -name net -printf '%h %l\\n' 2>/dev/null |`,
  `    awk -v inos="$INOS" 'BEGIN { n = split(inos, a, " "); for (i = 1; i <= n; i++) s["net:[" a[i] "]"] = 1 } ($2 in s) { split($1, q, "/"); print q[3] }')`,
  'fi',
  '[ -z "$CG" ] || [ ! -d "$CG/$P" ] || kill9 $(find "$CG/$P" -name cgroup.procs -exec cat {} + 2>/dev/null)',
  'j=0',
  'while [ "$j" -lt 50 ]; do',
  '  left=; for p in $KILLED; do [ -e "/proc/$p" ] && left=1; done',
  '  [ -n "$left" ] || break',
  '  sleep 0.02; j=$((j+1))',
  'done',
  'restore',
  'for n in $NSL; do echo "netns del $n"; done | ip -force -batch - >/dev/null 2>&1',
  'for n in $NSL; do echo "N $n"; done',
  '[ -z "$CG" ] || [ ! -d "$CG/$P" ] || detach "$CG/$P"',
  // Mounts a run made under its state directory (the eBPF dataplane's bpffs), deepest first.
  `awk -v a="$S/$P" '$2 == a || index($2, a "/") == 1 { print length($2), $2 }' /proc/self/mounts | sort -rn | cut -d' ' -f2- |`,
  '  while IFS= read -r m; do umount -l "$m" 2>/dev/null && echo "M $m"; done',
  'if [ -n "$CG" ] && [ -d "$CG/$P" ]; then find "$CG/$P" -depth -type d -exec rmdir {} + 2>/dev/null; echo "C $CG/$P"; fi',
  'rm -f -- "$W/$P"-* 2>/dev/null',
  'rm -rf -- "$S/$P" "$S/$P.json" "$S/$P".json.* 2>/dev/null',
  'exit 0',
].join('\n');

export interface SweepScriptOptions {
  stateDir?: string;
  wgDir?: string;
  /** The meshbench checkout there (its .tools/bin joins PATH). */
  root: string;
  mode?: 'all' | 'iface';
  /** The cgroup2 mount point; default: found from that machine's mounts. */
  cgroupRoot?: string;
  /** Processes its state file records: killed only while their start time matches. */
  pids?: { pid: number; startTime?: number }[];
}

/** The argv of the sweep script (`sh` and these): the prefix an argument like the rest, never in the text. */
export function sweepScriptArgs(prefix: string, o: SweepScriptOptions): string[] {
  const pids = (o.pids ?? [])
    .filter((p) => Number.isInteger(p.pid) && p.pid > 1 && Number.isInteger(p.startTime))
    .flatMap((p) => [String(p.pid), String(p.startTime)]);
  return ['-c', SWEEP_SCRIPT, 'sh', prefix, o.stateDir ?? STATE_DIR, o.wgDir ?? WG_SOCKET_DIR, o.root, o.mode ?? 'all', o.cgroupRoot ?? '', ...pids];
}

/** The sweep script's output as a report, and what went wrong with the lab interface (if anything). */
export function parseSweepOutput(out: string): { report: DownReport; problem?: string } {
  const report: DownReport = { processes: 0, namespaces: 0, cgroups: 0, bpfPrograms: 0, tmpDirs: 0, interfaces: 0 };
  const killed = new Set<string>();
  let problem: string | undefined;
  for (const l of out.split('\n')) {
    const [k, a, ...rest] = l.split(' ');
    if (k === 'K') killed.add(a);
    else if (k === 'N') report.namespaces++;
    else if (k === 'D') report.bpfPrograms++;
    else if (k === 'C') report.cgroups++;
    else if (k === 'I' && a === 'ok') report.interfaces!++;
    else if (k === 'I') problem = [a, ...rest].join(' ');
  }
  report.processes = killed.size;
  return { report, problem };
}

/** The pids a machine's state file for `prefix` records (with start times), from its text. */
function recordedPids(text: string | undefined, prefix: string): { pid: number; startTime?: number }[] {
  try {
    const st = JSON.parse(text ?? '');
    return st?.prefix === prefix && Array.isArray(st.pids) ? st.pids : [];
  } catch {
    return []; // torn or absent: the namespace and cgroup passes still find its processes
  }
}

/**
 * `sweep(prefix)` on another machine (the hosts backend), in two round trips (its state file, then
 * one script): its recorded processes, processes in the lab's namespaces and cgroups, the
 * namespaces, BPF programs on the lab cgroups, mounts under its state directory, cgroups,
 * wireguard-go sockets and state files; and the lab interface back in its root namespace with its
 * original name and MTU. On this host: the lab interface, then sweep(prefix).
 */
export async function sweepPlace(prefix: string, place: Place): Promise<DownReport> {
  checkPrefix(prefix);
  const fail = (why: string) =>
    runError(
      `host ${place.name}: the lab interface was not given back (${why}); look for it with \`ip link\` there (named ${prefix}-ul, or in a ${prefix}-n<i> namespace) and rename it`,
    );
  if (isLocal(place)) {
    const r = await place.exec('sh', sweepScriptArgs(prefix, { root: place.root, mode: 'iface' }));
    const iface = parseSweepOutput(r.stdout);
    if (iface.problem) throw fail(iface.problem);
    return { ...(await sweep(prefix)), interfaces: iface.report.interfaces };
  }
  const pids = recordedPids(await place.readFile(stateFilePath(prefix)), prefix);
  const r = await place.exec('sh', sweepScriptArgs(prefix, { root: place.root, pids }), { timeoutMs: 120_000 });
  const { report, problem } = parseSweepOutput(r.stdout);
  if (problem) throw fail(problem);
  return report;
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
