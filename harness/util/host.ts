// Facts about the host the lab needs in several stages: where cgroup v2 and bpffs are mounted,
// where run state lives, clock ticks, where this checkout is. Read-only; the local place
// (place/local.ts) answers from these.
import { readFileSync, existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root (works from sources under tsx and from dist/). */
export const PROJECT_ROOT = (() => {
  let d = dirname(fileURLToPath(import.meta.url));
  while (d !== '/' && !existsSync(join(d, 'package.json'))) d = dirname(d);
  return d;
})();

/** Every lab prefix matches this: "mb" + 4 base36 characters. `meshbench down` removes by it. */
export const PREFIX_RE = /^mb[0-9a-z]{4}$/;
export const LAB_OBJECT_RE = /^mb[0-9a-z]{4}-/;

/** A string as a RegExp matching exactly it: nothing a user passes may widen what a pattern matches. */
export function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\/-]/g, '\\$&');
}

/** Where wireguard-go puts its control sockets (<device>.sock). */
export const WG_SOCKET_DIR = '/var/run/wireguard';

/** Run state (pids, objects) for `meshbench down`; tmpfs, so it vanishes on reboot like netns do. */
export const STATE_DIR = process.env.MESHBENCH_STATE_DIR ?? '/run/meshbench';

export function isRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

export function mounts(): { source: string; target: string; fstype: string }[] {
  try {
    return readFileSync('/proc/mounts', 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => {
        const [source, target, fstype] = l.split(' ');
        return { source, target: target.replace(/\\040/g, ' '), fstype };
      });
  } catch {
    return [];
  }
}

/** The cgroup v2 mount point (/sys/fs/cgroup on unified hosts, /sys/fs/cgroup/unified on hybrid ones). */
export function cgroup2Root(): string | undefined {
  return mounts().find((m) => m.fstype === 'cgroup2')?.target;
}

export function bpffsRoot(): string | undefined {
  return mounts().find((m) => m.fstype === 'bpf')?.target;
}

export function readText(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

export function pidAlive(pid: number): boolean {
  return existsSync(`/proc/${pid}`);
}

/** Field 22 of /proc/PID/stat: start time in clock ticks since boot. Guards against pid reuse. */
export function pidStartTime(pid: number): number | undefined {
  const s = readText(`/proc/${pid}/stat`);
  if (!s) return undefined;
  const fields = s.slice(s.lastIndexOf(')') + 2).split(' ');
  return Number(fields[19]);
}
