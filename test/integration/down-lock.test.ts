// Safety of `down` and the run lock on the real host (issue 12, items 1, 7, 8): `down` leaves
// what is not the lab's alone; one run at a time, `down` refuses to destroy a live run unless
// forced; an interrupted or killed eBPF run leaves no BPF program or map behind.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { rootTest, cleanAround, cli, labNetns, hostSnapshot, quickArgs } from '../helpers.js';
import { exec } from '../../harness/util/exec.js';
import { cgroup2Root, pidAlive } from '../../harness/util/host.js';
import { readHolder } from '../../harness/util/lock.js';
import type { RunRecord } from '../../harness/results/types.js';

cleanAround();

const tmp = () => mkdtempSync(join(tmpdir(), 'mb-downlock-'));
const VICTIM = 'zzmbtest-victim';

/** Ids of every BPF program and map on the host. */
async function bpfIds(): Promise<string[]> {
  const ids = async (kind: 'prog' | 'map') => {
    const r = await exec('bpftool', ['-j', kind, 'show'], { allowFail: true });
    return (JSON.parse(r.stdout || '[]') as { id: number; name?: string }[]).map((x) => `${kind} ${x.id} ${x.name ?? ''}`);
  };
  return [...(await ids('prog')), ...(await ids('map'))].sort();
}

/**
 * BPF programs and maps present now that were not before. The kernel frees them asynchronously:
 * wait up to `ms` for none. (Objects that went away meanwhile, someone else's, do not count.)
 */
async function newBpfObjects(before: string[], ms = 8000): Promise<string[]> {
  const fresh = async () => (await bpfIds()).filter((x) => !before.includes(x));
  let now = await fresh();
  for (const t0 = Date.now(); now.length && Date.now() - t0 < ms; now = await fresh()) await sleep(250);
  return now;
}

/** hostSnapshot without its BPF sections (checked above, as a difference). */
const snapshot = async () => (await hostSnapshot()).replace(/## bpf programs[\s\S]*?(?=## lab-named cgroups)/, '');

/**
 * A socket made inside the run's cgroup by a process that then leaves it: as a lab connection
 * still closing (FIN_WAIT, up to minutes) does, it keeps a removed cgroup, and any BPF program
 * still attached to it, alive. The programs go only if they were detached before the cgroup was
 * removed, which is what this makes observable at once instead of by chance.
 */
async function pinCgroupWithSocket(prefix: string): Promise<ChildProcess> {
  const root = cgroup2Root()!;
  const code = [
    'import os, socket, sys, time',
    `open(${JSON.stringify(join(root, prefix, 'cgroup.procs'))}, 'w').write(str(os.getpid()))`,
    's = socket.socket(socket.AF_INET, socket.SOCK_STREAM)',
    `open(${JSON.stringify(join(root, 'cgroup.procs'))}, 'w').write(str(os.getpid()))`,
    "print('ready', flush=True)",
    'time.sleep(600)',
  ].join('\n');
  const child = spawn('python3', ['-c', code], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((ok, fail) => {
    child.stdout!.on('data', (d) => String(d).includes('ready') && ok());
    child.once('exit', (c) => fail(new Error(`socket holder exited ${c}`)));
  });
  return child;
}

const runArgs = (dir: string, ...more: string[]) => quickArgs(join(dir, 'results'), join(dir, 'reports'), ...more);

/** Start a run; `at` resolves with its process once stderr matches `re`. */
function startRun(args: string[], re: RegExp) {
  let resolveAt!: (c: ChildProcess) => void;
  const at = new Promise<ChildProcess>((r) => (resolveAt = r));
  let seen = false;
  let stderr = '';
  const done = cli(args, {
    onStderr: (chunk, child) => {
      stderr += chunk;
      if (!seen && re.test(chunk)) {
        seen = true;
        resolveAt(child);
      }
    },
  });
  return { at: Promise.race([at, done.then(() => undefined)]), done, prefix: () => /prefix (mb[0-9a-z]{4})/.exec(stderr)?.[1] };
}

rootTest('down --prefix with a name that is not a lab prefix: exit 2, the foreign namespace and its process untouched', async (t) => {
  execFileSync('ip', ['netns', 'add', VICTIM]);
  const victim = spawn('ip', ['netns', 'exec', VICTIM, 'sleep', '600'], { stdio: 'ignore', detached: true });
  t.teardown(() => {
    try {
      process.kill(victim.pid!, 'SIGKILL');
    } catch {
      /* gone */
    }
    execFileSync('ip', ['netns', 'del', VICTIM], { stdio: 'ignore' });
  });
  await sleep(200);
  for (const prefix of ['zzmbtest', '.*', 'zz.*']) {
    const r = await cli(['down', '--prefix', prefix]);
    t.is(r.code, 2, `${prefix}: ${r.stderr}`);
    t.regex(r.stderr, /is not a meshbench run prefix/);
  }
  const all = await cli(['down']);
  t.is(all.code, 0, all.stderr);
  t.true(
    (await exec('ip', ['netns', 'list'])).stdout.split('\n').some((l) => l.split(' ')[0] === VICTIM),
    'victim namespace still there',
  );
  t.true(pidAlive(victim.pid!), 'victim process still alive');
});

rootTest(
  'two concurrent runs: the second exits 3 naming the first and writes nothing; down refuses while it runs; the first completes with its own report',
  async (t) => {
    const a = tmp();
    const b = tmp();
    // Long enough that B's start-up (Node, tsx, pre-flight) on a busy machine still finds A running.
    const runA = startRun(runArgs(a, '--duration', '10'), /prefix mb[0-9a-z]{4}/);
    const childA = await runA.at;
    t.truthy(childA, 'run A started');
    const holder = readHolder();
    t.like(holder, { command: 'run', pid: childA!.pid, scenario: 'quick' });

    const runB = await cli(runArgs(b, '--duration', '2'));
    t.is(runB.code, 3, runB.stderr);
    t.regex(runB.stderr, new RegExp(`another run \\(pid ${childA!.pid}, scenario quick, since [^)]+\\) is in progress`));
    t.false(existsSync(join(b, 'results')), 'the second run wrote no record');
    t.false(existsSync(join(b, 'reports')));

    const d = await cli(['down']);
    t.is(d.code, 3, d.stderr);
    t.regex(d.stderr, new RegExp(`another run \\(pid ${childA!.pid}, scenario quick`));
    t.regex(d.stderr, /--force/);
    t.true((await labNetns()).length > 0 || pidAlive(childA!.pid!), 'run A unharmed');

    const r = await runA.done;
    t.is(r.code, 0, r.stderr);
    const file = r.stdout.match(/run record: (\S+)/)![1];
    const report = r.stdout.match(/report: (\S+)/)![1];
    const rec: RunRecord = JSON.parse(readFileSync(file, 'utf8'));
    t.is(rec.status, 'complete');
    t.true(file.startsWith(a) && report.startsWith(a));
    t.true(readFileSync(report, 'utf8').includes(rec.runId), "the printed report is this run's");
    t.is(readHolder(), undefined, 'lock released');
    const again = await cli(['down']);
    t.is(again.code, 0, again.stderr);
  },
);

rootTest('down --force removes a live run anyway; the run ends without hanging and nothing is left', async (t) => {
  const dir = tmp();
  const run = startRun(runArgs(dir, '--duration', '8'), /measuring/);
  t.truthy(await run.at, 'run reached its measured window');
  const d = await cli(['down', '--force']);
  t.is(d.code, 0, d.stderr);
  t.regex(d.stderr, /--force: another run \(pid \d+, scenario quick/);
  t.regex(d.stdout, /removed [1-9]\d* namespace/);
  const r = await run.done;
  t.not(r.code, 0, 'the destroyed run does not claim success');
  t.deepEqual(await labNetns(), []);
  t.is((await cli(['down'])).code, 0, 'the lock is free afterwards');
});

for (const sig of ['SIGINT', 'SIGKILL'] as const) {
  rootTest(
    `an ebpf run stopped by ${sig}${sig === 'SIGKILL' ? ' then down' : ''} leaves the host's BPF programs and maps (and root namespace) as before`,
    async (t) => {
      const beforeBpf = await bpfIds();
      const before = await snapshot();
      const dir = tmp();
      const run = startRun(runArgs(dir, '--dataplanes', 'ebpf', '--duration', '20', '--no-report'), /measuring/);
      const child = await run.at;
      t.truthy(child, 'run reached its measured window');
      t.true(
        (await bpfIds()).some((x) => !beforeBpf.includes(x)),
        'the run loaded BPF programs',
      );
      const pin = await pinCgroupWithSocket(run.prefix()!);
      t.teardown(() => pin.kill('SIGKILL'));
      child!.kill(sig);
      const r = await run.done;
      if (sig === 'SIGINT') t.is(r.code, 130, r.stderr);
      else {
        // No stale lock: a plain `down` (no --force) cleans up after the killed run.
        const d = await cli(['down']);
        t.is(d.code, 0, d.stderr);
        t.regex(d.stdout, /[1-9]\d* BPF program attachment/);
      }
      t.deepEqual(await newBpfObjects(beforeBpf), [], 'no BPF program or map of the run is left');
      t.deepEqual(await labNetns(), []);
      t.is(await snapshot(), before);
    },
  );
}
