// ProcessGroup on another machine, here stood in for by a place that runs real processes on this
// host but has its own cgroup2 mount (a temporary directory), /proc/meminfo and STATE_DIR: the
// memory floor is asked of it, the cgroup made under its mount, the pid and start time written
// to ITS state file (this host's lists only this host's processes), stop goes through its kill
// (TERM, then KILL, start-time guarded), close() removes its tree and state file with one script
// (run by a real `sh`). Rootless except the ProcessGroup test (it makes the run cgroup here, as a
// run does).
import test from 'ava';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

// STATE_DIR is read when util/host.ts loads: point it at a temporary directory first.
const tmp = mkdtempSync(join(tmpdir(), 'mb-procs-test-'));
const stateDir = join(tmp, 'state-here');
process.env.MESHBENCH_STATE_DIR = stateDir;
const { MeshbenchError } = await import('../../harness/errors.js');
const { localPlace } = await import('../../harness/place/index.js');
const { isRoot, STATE_DIR } = await import('../../harness/util/host.js');
const { checkMemory, ProcessGroup, REMOVE_REMOTE_SCRIPT, stateFileText } = await import('../../harness/util/procs.js');
import { NullPlace } from '../fake-place.js';

test.after.always(() => rmSync(tmp, { recursive: true, force: true }));

/** The pid the started shell wrote into cgroup.procs (it does so as it starts, after the spawn returned). */
async function joined(file: string): Promise<string | undefined> {
  for (let i = 0; i < 100 && !existsSync(file); i++) await new Promise((r) => setTimeout(r, 20));
  return existsSync(file) ? readFileSync(file, 'utf8').trim() : undefined;
}

const meminfo = (totalKb: number, availKb: number) => `MemTotal:       ${totalKb} kB\nMemFree:          1 kB\nMemAvailable:   ${availKb} kB\n`;

test('state file text: prefix, run dir, pid, start time and name of each process given', (t) => {
  const procs = [
    { pid: 12, startTime: 345, name: 'app-0' },
    { pid: 13, name: 'load' },
  ] as never[];
  t.deepEqual(JSON.parse(stateFileText('mbabcd', '/r/x', procs)), {
    prefix: 'mbabcd',
    runDir: '/r/x',
    pids: [
      { pid: 12, startTime: 345, name: 'app-0' },
      { pid: 13, name: 'load' },
    ],
  });
});

test('memory floor of another machine: its name in the message', (t) => {
  const total = 2 * 2 ** 20;
  t.notThrows(() => checkMemory('app-0', 3, meminfo(total, 1.5 * 2 ** 20), 'node2'));
  const e = t.throws(() => checkMemory('app-1', 4, meminfo(total, 200 * 1024), 'node2'), { instanceOf: MeshbenchError });
  t.is(e?.code, 'E_RUN');
  t.regex(
    e!.message,
    /^host memory nearly exhausted on node2: 200 MiB available of 2048 MiB \(meshbench keeps 1024 MiB free\) after starting 4 process\(es\) in this case on node2; not starting app-1\. The scenario does not fit in node2's memory/,
  );
});

test('the remote clean-up script: empty cgroup dirs deepest first, a busy one (and its parents) kept, the state file, never failing', async (t) => {
  const { exec } = await import('../../harness/util/exec.js');
  const base = join(tmp, 'cg-clean', 'mbabcd');
  for (const d of ['a/x/y', 'b', 'busy/inner']) mkdirSync(join(base, d), { recursive: true });
  writeFileSync(join(base, 'busy', 'keep'), ''); // a cgroup with a process cannot be removed: nor can a dir with a file
  const state = join(tmp, 'cg-clean', 'mbabcd.json');
  writeFileSync(state, '{}');
  const run = (...a: string[]) => exec('sh', ['-c', REMOVE_REMOTE_SCRIPT, 'sh', ...a], { allowFail: true });
  t.is((await run(base, state)).code, 0);
  for (const gone of ['a', 'b', 'busy/inner']) t.false(existsSync(join(base, gone)), gone);
  t.true(existsSync(join(base, 'busy', 'keep')));
  t.false(existsSync(state));
  rmSync(join(base, 'busy', 'keep'));
  t.is((await run(base, state)).code, 0);
  t.false(existsSync(base));
  t.is((await run(base, state)).code, 0, 'nothing left: still fine');
  t.is((await run('', state)).code, 0, 'no cgroup v2 there');
});

/**
 * Another machine, played by this host: real processes (localPlace.start), but its own cgroup2
 * mount, meminfo and STATE_DIR. It records what it is asked.
 */
class OtherPlace extends NullPlace {
  readonly name = 'other';
  readonly root = '/opt/meshbench';
  readonly cgroupRoot = join(tmp, 'other-cgroup2');
  readonly stateDir = join(tmp, 'state-other');
  calls: string[] = [];
  meminfo?: string;
  /** Where a path of that machine is on this host: its STATE_DIR is its own. */
  at = (p: string) => (p.startsWith(`${STATE_DIR}/`) || p === STATE_DIR ? this.stateDir + p.slice(STATE_DIR.length) : p);
  async exec(cmd: string, args: string[], opts = {}) {
    this.calls.push(`exec ${cmd}`);
    return localPlace.exec(cmd, args.map(this.at), opts);
  }
  async start(spec: import('../../harness/place/index.js').PlaceStartSpec) {
    this.calls.push(`start ${spec.name}`);
    const p = await localPlace.start(spec);
    delete p.child; // no child handle from another machine
    return p;
  }
  alive(pid: number, st?: number) {
    return localPlace.alive(pid, st);
  }
  async kill(pid: number, o: { signal?: NodeJS.Signals; startTime?: number } = {}) {
    this.calls.push(`kill ${o.signal} ${o.startTime !== undefined}`);
    return localPlace.kill(pid, o);
  }
  async readFile(p: string) {
    this.calls.push(`readFile ${p}`);
    return p === '/proc/meminfo' && this.meminfo ? this.meminfo : localPlace.readFile(this.at(p));
  }
  async readFiles(ps: string[]) {
    return localPlace.readFiles(ps.map(this.at));
  }
  private writes = 0;
  async writeFile(p: string, text: string) {
    // Each write slower than the next one asked for: unordered writes would land oldest last.
    await new Promise((r) => setTimeout(r, Math.max(0, 100 - 25 * this.writes++)));
    return localPlace.writeFile(this.at(p), text);
  }
  async mkdir(p: string) {
    this.calls.push(`mkdir ${p}`);
    return localPlace.mkdir(this.at(p));
  }
  exists(p: string) {
    return localPlace.exists(this.at(p));
  }
  list(p: string) {
    return localPlace.list(this.at(p));
  }
  async mounts() {
    this.calls.push('mounts');
    return [{ source: 'cgroup2', target: this.cgroupRoot, fstype: 'cgroup2' }];
  }
  findTool(n: string) {
    return localPlace.findTool(n);
  }
}

(isRoot() ? test.serial : test.skip)('ProcessGroup on another place: floor, cgroup, state file and stop there; close() cleans there', async (t) => {
  const other = new OtherPlace();
  const prefix = `mbq${Math.random().toString(36).slice(2, 5).padEnd(3, '0')}`;
  const g = new ProcessGroup(prefix, '/results/x');
  const stateThere = () => JSON.parse(readFileSync(join(other.stateDir, `${prefix}.json`), 'utf8'));
  try {
    t.deepEqual(g.places(), [localPlace]);
    // the sync start cannot wait for another machine
    const e = t.throws(() => g.start({ name: 'x', role: 'app', cmd: 'true', args: [], place: other })) as InstanceType<typeof MeshbenchError>;
    t.regex(e.message, /x is on other: start it with startAsync/);
    // five at once (as startApps does): every one recorded in that machine's state file
    const started = await Promise.all(
      [0, 1, 2, 3, 4].map((i) =>
        g.startAsync({
          name: `srv-${i}`,
          role: 'app',
          cmd: 'sh',
          args: ['-c', i === 0 ? 'trap "" TERM; while :; do sleep 0.05; done' : 'exec sleep 600'],
          place: other,
        }),
      ),
    );
    t.deepEqual(g.places(), [localPlace, other]);
    t.is(other.calls.filter((c) => c === 'mounts').length, 1, 'its cgroup2 mount asked once');
    t.is(other.calls.filter((c) => c === 'readFile /proc/meminfo').length, 5, 'its memory asked before each start');
    const base = join(other.cgroupRoot, prefix);
    t.is(await g.cgroupBaseOn(other), base);
    t.is(await g.cgroupBaseOn(localPlace), g.cgroupBase);
    for (const p of started) {
      t.is(p.place, other);
      t.is(p.cgroup, join(base, p.name));
      t.is(await joined(join(p.cgroup!, 'cgroup.procs')), String(p.pid), 'joined before exec');
      t.true(typeof p.startTime === 'number');
    }
    t.deepEqual(
      stateThere().pids,
      started.map((p) => ({ pid: p.pid, startTime: p.startTime, name: p.name })),
    );
    // this host's state file: this host's processes only
    const here = await g.startAsync({ name: 'here', role: 'load', cmd: 'sleep', args: ['600'] });
    t.is(here.place, localPlace);
    t.truthy(here.child);
    t.deepEqual(
      JSON.parse(readFileSync(join(stateDir, `${prefix}.json`), 'utf8')).pids.map((p: { name: string }) => p.name),
      ['here'],
    );
    t.is(stateThere().pids.length, 5);
    // a probe cgroup there: made once
    const probe = await g.cgroupForOn(other, 'probe');
    t.is(probe, join(base, 'probe'));
    t.is(await g.cgroupForOn(other, 'probe'), probe);
    t.is(other.calls.filter((c) => c === `mkdir ${probe}`).length, 1);
    // the floor is that machine's
    other.meminfo = meminfo(4 * 2 ** 20, 100 * 1024);
    const low = (await t.throwsAsync(g.startAsync({ name: 'srv-9', role: 'app', cmd: 'true', args: [], place: other }))) as InstanceType<typeof MeshbenchError>;
    t.regex(low.message, /on other: 100 MiB available .* after starting 5 process\(es\) in this case on other; not starting srv-9/);
    other.meminfo = undefined;
    await t.throwsAsync(g.startAsync({ name: 'srv-1', role: 'app', cmd: 'true', args: [], place: other }), { message: /used twice/ });

    // stop: TERM through its place; srv-0 ignores it, so KILL after the grace
    const calls0 = other.calls.length;
    const t0 = performance.now();
    await g.stop(started[0], 300);
    t.true(performance.now() - t0 >= 300);
    t.deepEqual(other.calls.slice(calls0), ['kill SIGTERM true', 'kill SIGKILL true']);
    t.is(started[0].exitCode, 128);
    t.is(started[0].exitSignal, 'SIGKILL');
    await g.stopAll();
    for (const p of [...started, here]) t.not(p.exitCode, undefined, p.name);
    t.deepEqual(stateThere().pids, [], 'stopAll: its state file saved empty');
    t.true(existsSync(base));
    // A real cgroup's interface files go with its directory; these are plain files.
    for (const p of started) rmSync(join(p.cgroup!, 'cgroup.procs'));
    await g.close();
    t.false(existsSync(base), 'its cgroup tree removed');
    t.false(existsSync(join(other.stateDir, `${prefix}.json`)), 'its state file removed');
    t.false(existsSync(join(stateDir, `${prefix}.json`)));
    t.false(existsSync(g.cgroupBase!));
  } finally {
    await g.stopAll();
    await g.close();
  }
});
