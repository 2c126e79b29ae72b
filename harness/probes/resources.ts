// Resource probes over the measured window, for every process the lab started:
//  - CPU: user+system from the process's own cgroup v2 cpu.stat (usage_usec), read at the start
//    and end of the window. A cgroup keeps counting after its process exits, so the load
//    generator's whole life is counted even though it ends with the window.
//  - Memory: RSS and PSS from /proc/PID/smaps_rollup, sampled once a second; the record keeps the
//    last sample taken inside the window and the peak.
//  - Kernel: system-wide softirq time from /proc/stat (no process owns it).
import { join } from 'node:path';
import { readText } from '../util/host.js';
import type { LabProcess } from '../util/procs.js';
import type { KernelResources, ProcessResources, Resources, RoleResources } from '../results/types.js';

const USER_HZ = 100; // /proc/stat unit on Linux (sysconf(_SC_CLK_TCK)), fixed by the kernel ABI

export function cgroupCpuSeconds(cgroup: string | undefined): number | undefined {
  if (!cgroup) return undefined;
  const t = readText(join(cgroup, 'cpu.stat'));
  const m = t?.match(/^usage_usec (\d+)$/m);
  return m ? Number(m[1]) / 1e6 : undefined;
}

/** /proc/PID/stat utime+stime, for hosts without cgroup v2. */
export function procCpuSeconds(pid: number): number | undefined {
  const s = readText(`/proc/${pid}/stat`);
  if (!s) return undefined;
  const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / USER_HZ;
}

export function smapsRollup(pid: number): { rss: number; pss: number } | undefined {
  const t = readText(`/proc/${pid}/smaps_rollup`);
  if (!t) return undefined;
  const kb = (k: string) => Number(t.match(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm'))?.[1] ?? 0) * 1024;
  return { rss: kb('Rss'), pss: kb('Pss') };
}

export function softirqSeconds(procStat = readText('/proc/stat')): number {
  const cpu = procStat?.split('\n').find((l) => l.startsWith('cpu '));
  if (!cpu) return 0;
  // cpu user nice system idle iowait irq softirq …
  return Number(cpu.trim().split(/\s+/)[7]) / USER_HZ;
}

interface Track {
  proc: LabProcess;
  cpu0: number;
  last?: { rss: number; pss: number };
  peakRss: number;
}

/** Watches a set of processes across one measured window. */
export class ResourceProbe {
  private tracks = new Map<LabProcess, Track>();
  private timer?: NodeJS.Timeout;
  private t0 = 0;
  private softirq0 = 0;

  constructor(private readonly sampleMs = 1000) {}

  private cpu(p: LabProcess): number {
    return cgroupCpuSeconds(p.cgroup) ?? procCpuSeconds(p.pid) ?? 0;
  }

  /** Begin the window; processes started later are added with `watch`. */
  begin(procs: LabProcess[]): void {
    this.t0 = performance.now();
    this.softirq0 = softirqSeconds();
    for (const p of procs) this.watch(p);
    this.timer = setInterval(() => this.sample(), this.sampleMs);
    this.timer.unref();
  }

  /** Stop sampling without a result (the window was cut short). Safe to call twice. */
  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  watch(p: LabProcess): void {
    if (!this.tracks.has(p)) this.tracks.set(p, { proc: p, cpu0: this.cpu(p), peakRss: 0 });
    this.sampleOne(this.tracks.get(p)!);
  }

  private sampleOne(t: Track): void {
    if (t.proc.exitCode !== undefined) return;
    const m = smapsRollup(t.proc.pid);
    if (!m) return;
    t.last = m;
    t.peakRss = Math.max(t.peakRss, m.rss);
  }

  private sample(): void {
    for (const t of this.tracks.values()) this.sampleOne(t);
  }

  /** End the window and total everything up by role. */
  end(kernelExtra: Partial<KernelResources> = {}): Resources {
    this.stop();
    this.sample();
    const windowS = (performance.now() - this.t0) / 1000;
    const processes: ProcessResources[] = [];
    const byRole: Record<string, RoleResources> = {};
    for (const t of this.tracks.values()) {
      const pr: ProcessResources = {
        name: t.proc.name,
        role: t.proc.role,
        pid: t.proc.pid,
        rssBytes: t.last?.rss ?? 0,
        pssBytes: t.last?.pss ?? 0,
        rssPeakBytes: t.peakRss,
        cpuSeconds: Math.max(0, this.cpu(t.proc) - t.cpu0),
      };
      processes.push(pr);
      const r = (byRole[pr.role] ??= { processes: 0, rssBytes: 0, pssBytes: 0, rssPeakBytes: 0, cpuSeconds: 0 });
      r.processes++;
      r.rssBytes += pr.rssBytes;
      r.pssBytes += pr.pssBytes;
      r.rssPeakBytes += pr.rssPeakBytes;
      r.cpuSeconds += pr.cpuSeconds;
    }
    for (const r of Object.values(byRole)) r.cpuSeconds = Math.round(r.cpuSeconds * 1e6) / 1e6;
    return {
      windowS: Math.round(windowS * 1000) / 1000,
      byRole,
      processes,
      kernel: {
        bpfMapBytes: 0,
        bpfRunTimeNs: 0,
        softirqSeconds: Math.round((softirqSeconds() - this.softirq0) * 100) / 100,
        ...kernelExtra,
      },
      method:
        'cpu: cgroup v2 cpu.stat usage_usec per process (user+system) over the window; memory: /proc/PID/smaps_rollup sampled every ' +
        `${this.sampleMs} ms (last sample in the window, and peak); softirq: /proc/stat, all CPUs, 10 ms ticks`,
    };
  }
}
