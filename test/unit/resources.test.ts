// ResourceProbe per place: the parsers over texts recorded on a host (cpu.stat, /proc/PID/stat
// with a ") " in the command name, smaps_rollup, /proc/stat), the files one sample asks for, and
// the probe over places that answer readFiles from scripted machine state: one readFiles per
// place per sample, no sample while the previous one is still on the wire, softirq summed over
// the machines, a process watched on a new machine counted from then. Then the probe over a real
// process here, as a local run uses it. Rootless.
import test from 'ava';
import { spawn } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { localPlace, type Place } from '../../harness/place/index.js';
import { parseCpuStat, parseProcStatCpu, parseSample, parseSmapsRollup, ResourceProbe, samplePaths, softirqSeconds } from '../../harness/probes/resources.js';
import type { LabProcess } from '../../harness/util/procs.js';
import { NullPlace } from '../fake-place.js';

const CPU_STAT = 'usage_usec 16139913972\nuser_usec 13367692254\nsystem_usec 2772221718\nnice_usec 42951622\n';
// comm "a) b": the fields are counted after the last ")"; utime 1234, stime 56 ticks.
const PROC_STAT = '6873 (a) b) S 6872 6865 3377 0 -1 4194304 133 0 0 0 1234 56 0 0 20 0 1 0 1931679 2990080 389 18446744073709551615 94583039803392 0\n';
const SMAPS = [
  '55a494e79000-7ffc86bb1000 ---p 00000000 00:00 0                          [rollup]',
  'Rss:                1668 kB',
  'Pss:                 461 kB',
  'Pss_Dirty:           112 kB',
  'Pss_Anon:            112 kB',
  'Shared_Clean:       1476 kB',
  'Swap:                  0 kB',
  'SwapPss:               0 kB',
  '',
].join('\n');
const procStat = (softirqTicks: number) =>
  `cpu  1332472 4295 268838 2201935 5531 0 ${softirqTicks} 815 0 0\ncpu0 617050 2231 127119 1158992 804 0 3234 397 0 0\nintr 1 2 3\n`;

test('parsers over recorded text: cgroup cpu.stat, /proc/PID/stat (odd name), smaps_rollup, /proc/stat', (t) => {
  t.is(parseCpuStat(CPU_STAT), 16139.913972);
  t.is(parseCpuStat('nr_periods 0\n'), undefined, 'a cgroup v1 cpu.stat has no usage_usec');
  t.is(parseCpuStat(undefined), undefined);
  t.is(parseProcStatCpu(PROC_STAT), 12.9);
  t.is(parseProcStatCpu(undefined), undefined);
  t.deepEqual(parseSmapsRollup(SMAPS), { rss: 1668 * 1024, pss: 461 * 1024 }, 'Rss, not Pss_Dirty or SwapPss');
  t.is(parseSmapsRollup(undefined), undefined);
  t.is(softirqSeconds(procStat(8378)), 83.78);
});

test('one sample: /proc/stat first when asked, then per process its CPU file (cgroup, else /proc/PID/stat) and smaps_rollup', (t) => {
  const procs = [
    { pid: 10, cgroup: '/sys/fs/cgroup/mbx/app-0' },
    { pid: 11, cgroup: undefined },
  ];
  t.deepEqual(samplePaths(procs, true), ['/proc/stat', '/sys/fs/cgroup/mbx/app-0/cpu.stat', '/proc/10/smaps_rollup', '/proc/11/stat', '/proc/11/smaps_rollup']);
  t.deepEqual(samplePaths(procs, false), samplePaths(procs, true).slice(1));
  t.deepEqual(parseSample(procs, [procStat(500), CPU_STAT, SMAPS, PROC_STAT, undefined], true), {
    softirq: 5,
    procs: [
      { cpu: 16139.913972, mem: { rss: 1668 * 1024, pss: 461 * 1024 } },
      { cpu: 12.9, mem: undefined },
    ],
  });
  // a cpu.stat text read for a process without a cgroup is not taken for /proc/PID/stat, nor the reverse
  t.deepEqual(parseSample(procs, [PROC_STAT, undefined, CPU_STAT, undefined], false), {
    softirq: undefined,
    procs: [
      { cpu: undefined, mem: undefined },
      { cpu: undefined, mem: undefined },
    ],
  });
});

/** A machine whose files are scripted: per pid usage_usec and Rss (kB), its softirq ticks; readFiles takes `delayMs`. */
class ScriptedPlace extends NullPlace {
  readonly root = '/opt/meshbench';
  readonly reads: string[][] = [];
  inFlight = 0;
  maxInFlight = 0;
  softirqTicks = 0;
  readonly usec = new Map<number, number>();
  readonly rssKb = new Map<number, number>();
  constructor(
    readonly name: string,
    readonly delayMs = 0,
  ) {
    super();
  }
  text(path: string): string | undefined {
    if (path === '/proc/stat') return procStat(this.softirqTicks);
    const pid = Number(path.match(/\/(\d+)(\/|$)/)?.[1]);
    if (path.endsWith('/cpu.stat')) return this.usec.has(pid) ? `usage_usec ${this.usec.get(pid)}\nuser_usec 0\n` : undefined;
    if (path.endsWith('/smaps_rollup')) return this.rssKb.has(pid) ? `Rss: ${this.rssKb.get(pid)} kB\nPss: ${this.rssKb.get(pid)! / 2} kB\n` : undefined;
    return undefined;
  }
  async readFiles(paths: string[]) {
    this.reads.push(paths);
    this.maxInFlight = Math.max(this.maxInFlight, ++this.inFlight);
    const snapshot = paths.map((p) => this.text(p)); // read as the command runs there
    await sleep(this.delayMs);
    this.inFlight--;
    return snapshot;
  }
  async readFile(p: string) {
    return (await this.readFiles([p]))[0];
  }
  exec(): never {
    throw new Error('not used');
  }
}

/** A process on `place` whose cgroup is named after its pid (ScriptedPlace finds it there). */
function proc(place: Place, pid: number, role: string, o: Partial<LabProcess> = {}): LabProcess {
  return { name: `${role}-${pid}`, role, pid, cgroup: `/sys/fs/cgroup/mbx/${pid}`, place, exited: new Promise(() => {}), ...o };
}

test('per place: one readFiles per sample, never two at once, softirq summed over machines, a late machine counted from its first process', async (t) => {
  const a = new ScriptedPlace('node1', 250); // slower than the 100 ms period: ticks are skipped, not stacked
  const b = new ScriptedPlace('node2');
  const c = new ScriptedPlace('node3');
  const pa = [proc(a, 100, 'app'), proc(a, 101, 'proxy')];
  const pb = proc(b, 200, 'app');
  for (const [place, pid, usec, rss] of [
    [a, 100, 1_000_000, 1000],
    [a, 101, 2_000_000, 2000],
    [b, 200, 500_000, 3000],
    [c, 300, 9_000_000, 4000],
  ] as const) {
    place.usec.set(pid, usec);
    place.rssKb.set(pid, rss);
  }
  a.softirqTicks = 100;
  b.softirqTicks = 1000;
  c.softirqTicks = 5000;

  const probe = new ResourceProbe(100);
  await probe.begin([...pa, pb]);
  t.deepEqual(a.reads, [
    ['/proc/stat', '/sys/fs/cgroup/mbx/100/cpu.stat', '/proc/100/smaps_rollup', '/sys/fs/cgroup/mbx/101/cpu.stat', '/proc/101/smaps_rollup'],
  ]);
  t.is(b.reads.length, 1);
  // the load generator starts on a third machine inside the window
  const load = proc(c, 300, 'load');
  probe.watch(load);
  t.is(c.reads.length, 1, 'watch asks at once');
  t.is(c.reads[0][0], '/proc/stat', "a new machine: its softirq baseline with the process's first reading");
  a.usec.set(100, 3_500_000);
  a.rssKb.set(100, 5000); // the peak, seen by a sample…
  await sleep(700);
  a.rssKb.set(100, 1500); // …then lower at the end
  b.usec.set(200, 750_000);
  c.usec.set(300, 9_250_000);
  a.softirqTicks += 30;
  b.softirqTicks += 20;
  c.softirqTicks += 7;
  pb.exitCode = 0; // node2's only process ended: samples leave it (and node2) out; the end still reads its cgroup
  const bBefore = b.reads.length;
  await sleep(300);
  t.is(b.reads.length, bBefore, 'no memory sample of an exited process');
  const r = await probe.end({ bpfMapBytes: 7 });

  t.is(a.maxInFlight, 1, 'a sample never overlaps the previous one');
  t.true(a.reads.length >= 3 && a.reads.length <= 6, `node1 samples in ~1 s at 250 ms each: ${a.reads.length}`);
  const sampledB = b.reads.slice(1, -1);
  t.true(
    sampledB.every((paths) => !paths.includes('/proc/stat')),
    'periodic samples read memory only',
  );
  t.deepEqual(b.reads.at(-1), ['/proc/stat', '/sys/fs/cgroup/mbx/200/cpu.stat', '/proc/200/smaps_rollup']);
  const by = Object.fromEntries(r.processes.map((p) => [p.name, p]));
  t.is(by['app-100'].cpuSeconds, 2.5);
  t.is(by['app-100'].rssBytes, 1500 * 1024);
  t.is(by['app-100'].pssBytes, 750 * 1024);
  t.is(by['app-100'].rssPeakBytes, 5000 * 1024);
  t.is(by['proxy-101'].cpuSeconds, 0);
  t.is(by['app-200'].cpuSeconds, 0.25);
  t.is(by['app-200'].rssBytes, 3000 * 1024, 'last sample before it exited');
  t.is(by['load-300'].cpuSeconds, 0.25);
  t.deepEqual(r.byRole.app, { processes: 2, rssBytes: 4500 * 1024, pssBytes: 2250 * 1024, rssPeakBytes: 8000 * 1024, cpuSeconds: 2.75 });
  t.is(r.kernel.softirqSeconds, 0.57, '0.30 + 0.20 + 0.07 s over the three machines');
  t.is(r.kernel.bpfMapBytes, 7);
  t.regex(r.method, /summed over node1, node2, node3$/);
  t.true(r.windowS >= 1 && r.windowS < 2, String(r.windowS));
  const n = a.reads.length + b.reads.length + c.reads.length;
  await sleep(300);
  t.is(a.reads.length + b.reads.length + c.reads.length, n, 'no sample after the end');
});

test('a machine that does not answer loses that sample only; stop() ends sampling without a result', async (t) => {
  const a = new ScriptedPlace('node1');
  const p = proc(a, 100, 'app');
  a.usec.set(100, 1_000_000);
  a.rssKb.set(100, 1000);
  const probe = new ResourceProbe(50);
  await probe.begin([p]);
  const good = a.readFiles.bind(a);
  let fails = 0;
  a.readFiles = async (paths: string[]) => {
    if (fails++ < 2) throw new Error('ssh: connection reset');
    return good(paths);
  };
  await sleep(300);
  t.true(fails > 2, 'it asked again after the failures');
  probe.stop();
  const after = a.reads.length;
  await sleep(200);
  t.is(a.reads.length, after);
});

test('here: a real process, read directly (cpu from /proc/PID/stat without a cgroup), as a local run sees it', async (t) => {
  const child = spawn('sh', ['-c', 'i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done; sleep 5'], { stdio: 'ignore' });
  const exited = new Promise<number>((r) => child.on('exit', (c) => r(c ?? 1)));
  const p: LabProcess = { name: 'busy', role: 'app', pid: child.pid!, place: localPlace, exited };
  try {
    const probe = new ResourceProbe(100);
    await probe.begin([p]);
    await sleep(600);
    const r = await probe.end();
    t.is(r.processes.length, 1);
    const pr = r.processes[0];
    t.true(pr.cpuSeconds > 0, `cpu ${pr.cpuSeconds}`);
    t.true(pr.rssBytes > 0 && pr.pssBytes > 0 && pr.rssPeakBytes >= pr.rssBytes);
    t.deepEqual(Object.keys(r.byRole), ['app']);
    t.true(r.kernel.softirqSeconds >= 0);
    t.regex(r.method, /softirq: \/proc\/stat, all CPUs, 10 ms ticks$/, 'this host only: the method says nothing of machines');
  } finally {
    child.kill('SIGKILL');
    await exited;
  }
});
