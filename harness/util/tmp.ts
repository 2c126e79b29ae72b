// Temporary directories of the lab's own (VM exchange dirs, SSH control sockets, doctor's probe
// builds) carry an owner file with the creating process's pid and start time. A meshbench that
// was SIGKILLed cannot remove its own; `meshbench down` removes those whose owner is gone, and
// never one whose owner still runs.
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pidStartTime } from './host.js';

/** Name prefixes of the lab's temporary directories under the system temp dir. */
export const LAB_TMP_PREFIXES = ['mbvm-', 'mbssh-', 'mbdoc-'] as const;
const OWNER = '.meshbench-owner';

/** mkdtemp under the system temp dir, with this process recorded as its owner. */
export function ownedTmpDir(prefix: (typeof LAB_TMP_PREFIXES)[number]): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  writeFileSync(join(dir, OWNER), `${process.pid} ${pidStartTime(process.pid) ?? ''}\n`);
  return dir;
}

/** Whether the process recorded in `text` (pid and start time) still runs. */
export function ownerAlive(text: string, startTime: (pid: number) => number | undefined = pidStartTime): boolean {
  const [pid, start] = text.trim().split(/\s+/).map(Number);
  if (!Number.isInteger(pid) || pid <= 0) return false;
  const now = startTime(pid);
  return now !== undefined && (!Number.isFinite(start) || now === start);
}

/** Remove the lab's temporary directories whose owner is gone; their names. */
export function sweepOwnedTmpDirs(root = tmpdir()): string[] {
  const removed: string[] = [];
  let names: string[] = [];
  try {
    names = readdirSync(root);
  } catch {
    return removed;
  }
  for (const name of names) {
    if (!LAB_TMP_PREFIXES.some((p) => name.startsWith(p))) continue;
    let owner: string;
    try {
      owner = readFileSync(join(root, name, OWNER), 'utf8');
    } catch {
      continue; // not ours to judge: no owner file
    }
    if (ownerAlive(owner)) continue;
    rmSync(join(root, name), { recursive: true, force: true });
    removed.push(name);
  }
  return removed;
}
