// `meshbench down`: remove every lab object by prefix, whatever run made it and however that
// run ended (Mininet's `mn -c`). Safe to repeat; finding nothing is success.
// Order matters: processes first (a namespace with a live process outlives its deletion), then
// namespaces, then cgroups and state files.
import { readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { LAB_OBJECT_RE, PREFIX_RE, STATE_DIR, cgroup2Root, mounts, pidAlive } from '../util/host.js';
import { exec } from '../util/exec.js';
import { killRecorded, readStateFiles, removeCgroupTree } from '../util/procs.js';
import { deleteNetns, listNetns, netnsPids } from './netns.js';

/** Where wireguard-go puts its control sockets (/var/run/wireguard/<device>.sock). */
const WG_SOCKET_DIR = '/var/run/wireguard';

export interface DownReport {
  processes: number;
  namespaces: number;
  cgroups: number;
}

/** Remove lab objects. `prefix` limits it to one run; default is every lab prefix. */
export async function sweep(prefix?: string): Promise<DownReport> {
  const objRe = prefix ? new RegExp(`^${prefix}-`) : LAB_OBJECT_RE;
  const report: DownReport = { processes: 0, namespaces: 0, cgroups: 0 };
  const killed: number[] = [];

  for (const st of readStateFiles()) {
    if (prefix && st.prefix !== prefix) continue;
    for (const p of st.pids ?? []) if (killRecorded(p.pid, p.startTime)) killed.push(p.pid);
  }
  const namespaces = await listNetns(objRe);
  // Anything still running inside a lab namespace was started into it by the lab.
  for (const pid of netnsPids(namespaces)) {
    try {
      process.kill(pid, 'SIGKILL');
      killed.push(pid);
    } catch {
      /* gone */
    }
  }
  for (let i = 0; i < 50 && killed.some(pidAlive); i++) await sleep(20);
  report.processes = new Set(killed).size;

  await deleteNetns(namespaces);
  report.namespaces = namespaces.length;

  const cg = cgroup2Root();
  if (cg) {
    for (const e of readdirSync(cg, { withFileTypes: true })) {
      if (!e.isDirectory() || !PREFIX_RE.test(e.name) || (prefix && e.name !== prefix)) continue;
      removeCgroupTree(join(cg, e.name));
      report.cgroups++;
    }
  }
  // Filesystems a run mounted under its state directory (the eBPF dataplane's private bpffs).
  for (const m of mounts()) {
    const rel = m.target.startsWith(STATE_DIR + '/') ? m.target.slice(STATE_DIR.length + 1).split('/')[0] : '';
    if (PREFIX_RE.test(rel) && (!prefix || rel === prefix)) await exec('umount', ['-l', m.target], { allowFail: true });
  }
  // wireguard-go's control sockets, named after the lab's devices.
  try {
    for (const f of readdirSync(WG_SOCKET_DIR)) if (objRe.test(f)) rmSync(join(WG_SOCKET_DIR, f), { force: true });
  } catch {
    /* no such directory */
  }
  try {
    for (const f of readdirSync(STATE_DIR)) {
      // <prefix>.json state files and <prefix>/ directories (proxy admin sockets).
      const p = f.replace(/\.json(\.tmp)?$/, '');
      if (PREFIX_RE.test(p) && (!prefix || p === prefix)) rmSync(join(STATE_DIR, f), { force: true, recursive: true });
    }
  } catch {
    /* no state dir */
  }
  return report;
}
