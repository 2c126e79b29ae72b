// Resource probes over the measured window, for every process the lab started:
//  - CPU: user+system from the process's own cgroup v2 cpu.stat (usage_usec), read at the start
//    and end of the window. A cgroup keeps counting after its process exits, so the load
//    generator's whole life is counted even though it ends with the window.
//  - Memory: RSS and PSS from /proc/PID/smaps_rollup, sampled once a second; the record keeps the
//    last sample taken inside the window and the peak.
//  - Kernel: machine-wide softirq time from /proc/stat (no process owns it), summed over the
//    machines the processes run on.
// Each process is read on its own place (LabProcess.place). A sample is one readFiles per place
// (one SSH command for another machine, direct reads here) covering all of that place's
// processes and its /proc/stat; a sample still on the wire when the next tick comes makes it skip.
import { join } from 'node:path';
import { LocalPlace, localPlace, type Place } from '../place/index.js';
import { readText } from '../util/host.js';
import type { LabProcess } from '../util/procs.js';
import type { KernelResources, ProcessResources, Resources, RoleResources } from '../results/types.js';

const USER_HZ = 100; // /proc/stat unit on Linux (sysconf(_SC_CLK_TCK)), fixed by the kernel ABI

/** usage_usec of a cgroup v2 cpu.stat text, in seconds. */
export function parseCpuStat(text: string | undefined): number | undefined {
  const m = text?.match(/^usage_usec (\d+)$/m);
  return m ? Number(m[1]) / 1e6 : undefined;
}

/** utime+stime of a /proc/PID/stat text, in seconds. */
export function parseProcStatCpu(text: string | undefined): number | undefined {
  const at = text?.lastIndexOf(')') ?? -1;
  if (!text || at < 0) return undefined;
  const f = text.slice(at + 2).split(' ');
  const s = (Number(f[11]) + Number(f[12])) / USER_HZ;
  return Number.isFinite(s) ? s : undefined;
}

/** Rss and Pss of a /proc/PID/smaps_rollup text, in bytes. */
export function parseSmapsRollup(text: string | undefined): { rss: number; pss: number } | undefined {
  if (!text) return undefined;
  const kb = (k: string) => Number(text.match(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm'))?.[1] ?? 0) * 1024;
  return { rss: kb('Rss'), pss: kb('Pss') };
}

export function cgroupCpuSeconds(cgroup: string | undefined): number | undefined {
  return cgroup ? parseCpuStat(readText(join(cgroup, 'cpu.stat'))) : undefined;
}

/** /proc/PID/stat utime+stime, for hosts without cgroup v2. */
export function procCpuSeconds(pid: number): number | undefined {
  return parseProcStatCpu(readText(`/proc/${pid}/stat`));
}

export function smapsRollup(pid: number): { rss: number; pss: number } | undefined {
  return parseSmapsRollup(readText(`/proc/${pid}/smaps_rollup`));
}

export function softirqSeconds(procStat = readText('/proc/stat')): number {
  const cpu = procStat?.split('\n').find((l) => l.startsWith('cpu '));
  if (!cpu) return 0;
  // cpu user nice system idle iowait irq softirq …
  return Number(cpu.trim().split(/\s+/)[7]) / USER_HZ;
}

/** The CPU file of a process: its cgroup's cpu.stat, else (no cgroup v2) /proc/PID/stat. */
const cpuPath = (p: { pid: number; cgroup?: string }) => (p.cgroup ? join(p.cgroup, 'cpu.stat') : `/proc/${p.pid}/stat`);

/** The files of one sample on one place: /proc/stat (when asked), then each process's CPU file and smaps_rollup. */
export function samplePaths(procs: readonly { pid: number; cgroup?: string }[], withProcStat: boolean): string[] {
  return [...(withProcStat ? ['/proc/stat'] : []), ...procs.flatMap((p) => [cpuPath(p), `/proc/${p.pid}/smaps_rollup`])];
}

export interface ProcReading {
  cpu?: number;
  mem?: { rss: number; pss: number };
}

/** The texts readFiles gave for samplePaths, parsed (a file that could not be read gives undefined). */
export function parseSample(
  procs: readonly { pid: number; cgroup?: string }[],
  texts: readonly (string | undefined)[],
  withProcStat: boolean,
): { softirq?: number; procs: ProcReading[] } {
  const off = withProcStat ? 1 : 0;
  return {
    softirq: withProcStat && texts[0] !== undefined ? softirqSeconds(texts[0]) : undefined,
    procs: procs.map((p, i) => {
      const cpuText = texts[off + 2 * i];
      return { cpu: p.cgroup ? parseCpuStat(cpuText) : parseProcStatCpu(cpuText), mem: parseSmapsRollup(texts[off + 2 * i + 1]) };
    }),
  };
}

interface Track {
  proc: LabProcess;
  place: Place;
  /** CPU seconds when the window began (or the process was first watched). */
  cpu0?: number;
  /** The latest CPU figure read: the end's figure when the end cannot read it (no cgroup v2, process gone). */
  cpuLast?: number;
  /** Resolves when cpu0 is read. */
  ready: Promise<void>;
  last?: { rss: number; pss: number };
  peakRss: number;
}

/** Watches a set of processes across one measured window. */
export class ResourceProbe {
  private tracks = new Map<LabProcess, Track>();
  private timer?: NodeJS.Timeout;
  private t0 = 0;
  /** The machines the window counts, in the order first asked for their /proc/stat… */
  private machines: Place[] = [];
  /** …and their softirq seconds then. */
  private softirq0 = new Map<Place, number>();
  private sampling?: Promise<void>;

  constructor(private readonly sampleMs = 1000) {}

  /** Begin the window; processes started later are added with `watch`. */
  async begin(procs: LabProcess[]): Promise<void> {
    this.t0 = performance.now();
    const tracks = procs.filter((p) => !this.tracks.has(p)).map((p) => this.track(p));
    const places = new Set(tracks.map((t) => t.place));
    if (!places.size) places.add(localPlace);
    this.machines.push(...places);
    await Promise.all(
      [...places].map((place) =>
        this.read(
          place,
          tracks.filter((t) => t.place === place),
          true,
        ),
      ),
    );
    this.timer = setInterval(() => this.tick(), this.sampleMs);
    this.timer.unref();
  }

  /** Stop sampling without a result (the window was cut short). Safe to call twice. */
  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Add a process started inside the window (its first reading is on its way when this returns). */
  watch(p: LabProcess): void {
    if (this.tracks.has(p)) return;
    const t = this.track(p);
    const first = !this.machines.includes(t.place);
    if (first) this.machines.push(t.place);
    t.ready = this.read(t.place, [t], first).then(
      () => {},
      () => {}, // not read: the next sample tries again
    );
  }

  private track(p: LabProcess): Track {
    const t: Track = { proc: p, place: !p.place || p.place instanceof LocalPlace ? localPlace : p.place, ready: Promise.resolve(), peakRss: 0 };
    this.tracks.set(p, t);
    return t;
  }

  /**
   * One readFiles on `place` for `tracks` (and its /proc/stat when `procStat`): the first reading of
   * a track sets its cpu0 and of a place its softirq baseline; every reading updates memory.
   */
  private async read(place: Place, tracks: Track[], procStat: boolean): Promise<{ softirq?: number }> {
    const procs = tracks.map((t) => t.proc);
    const s = parseSample(procs, await place.readFiles(samplePaths(procs, procStat)), procStat);
    if (s.softirq !== undefined && !this.softirq0.has(place)) this.softirq0.set(place, s.softirq);
    tracks.forEach((t, i) => {
      const r = s.procs[i];
      t.cpu0 ??= r.cpu ?? 0;
      if (r.cpu !== undefined) t.cpuLast = r.cpu;
      if (t.proc.exitCode !== undefined || !r.mem) return;
      t.last = r.mem;
      t.peakRss = Math.max(t.peakRss, r.mem.rss);
    });
    return s;
  }

  /** A sample of every tracked process still running, per place; none while the previous one is on the wire. */
  private tick(): void {
    if (this.sampling) return;
    this.sampling = this.sampleAll(false)
      .then(() => {})
      .catch(() => {}) // a machine that did not answer: this sample is lost, the next asks again
      .finally(() => (this.sampling = undefined));
  }

  private async sampleAll(procStat: boolean): Promise<Map<Place, number | undefined>> {
    const byPlace = new Map<Place, Track[]>();
    for (const place of this.machines) byPlace.set(place, []);
    for (const t of this.tracks.values()) {
      if (!procStat && t.proc.exitCode !== undefined) continue;
      byPlace.set(t.place, [...(byPlace.get(t.place) ?? []), t]);
    }
    const res = new Map<Place, number | undefined>();
    await Promise.all(
      [...byPlace].map(async ([place, tracks]) => {
        if (tracks.length || procStat) res.set(place, (await this.read(place, tracks, procStat)).softirq);
      }),
    );
    return res;
  }

  /** End the window and total everything up by role. */
  async end(kernelExtra: Partial<KernelResources> = {}): Promise<Resources> {
    this.stop();
    await this.sampling;
    await Promise.all([...this.tracks.values()].map((t) => t.ready));
    const windowS = (performance.now() - this.t0) / 1000;
    // The end's reading: every process's CPU (cpuLast: an unreadable one keeps its latest figure), the places' /proc/stat.
    const softirq1 = await this.sampleAll(true);
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
        cpuSeconds: Math.max(0, (t.cpuLast ?? 0) - (t.cpu0 ?? 0)),
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
    let softirq = 0;
    for (const [place, s0] of this.softirq0) softirq += (softirq1.get(place) ?? s0) - s0;
    const m = this.machines;
    const over = m.length === 1 && m[0] === localPlace ? '' : `, summed over ${m.map((p) => p.name).join(', ')}`;
    return {
      windowS: Math.round(windowS * 1000) / 1000,
      byRole,
      processes,
      kernel: {
        bpfMapBytes: 0,
        bpfRunTimeNs: 0,
        softirqSeconds: Math.round(softirq * 100) / 100,
        ...kernelExtra,
      },
      method:
        'cpu: cgroup v2 cpu.stat usage_usec per process (user+system) over the window; memory: /proc/PID/smaps_rollup sampled every ' +
        `${this.sampleMs} ms (last sample in the window, and peak); softirq: /proc/stat, all CPUs, 10 ms ticks${over}`,
    };
  }
}
