// Faults on the real kernel (issue 12), with the ebpf dataplane (bpffs mount, cgroup and tc BPF,
// wireguard-go: the most kernel objects). A run interrupted by SIGINT at each phase exits 130
// with its record marked incomplete; a run killed outright is cleaned by `meshbench down`. After
// each: no process the run recorded, no lab namespace, cgroup or state file, and the root
// namespace (hostSnapshot) byte-identical to before.
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ExecutionContext } from 'ava';
import { rootTest, cleanAround, cli, hostSnapshot, labCgroups, labNetns, type CliResult } from '../helpers.js';
import { STATE_DIR, cgroup2Root, pidStartTime } from '../../harness/util/host.js';
import { readStateFiles } from '../../harness/util/procs.js';

cleanAround();

const SCENARIO = 'test/fixtures/scenarios/ebpf-policy.yaml';
const runArgs = (results: string) => ['run', SCENARIO, '--dataplanes', 'ebpf', '--duration', '2', '--warmup', '1', '--no-report', '--results', results];

interface Watched {
  res: CliResult;
  prefix?: string;
  recordFile?: string;
  /** Every process the run's state file listed while it ran (pid → start time). */
  pids: Map<number, number | undefined>;
  /** Whether `at` was seen (the fault was delivered). */
  hit: boolean;
  /** The run's --results directory (temporary). */
  results: string;
}

/**
 * `meshbench run` on the small ebpf scenario; when a progress line matches `at`, `fault` runs
 * (it signals the process). The run's state file is read every 50 ms so every recorded pid is
 * known afterwards, even those the run's own teardown removes from it.
 */
async function runWithFault(at: RegExp, fault: (child: { kill: (s: NodeJS.Signals) => boolean; pid?: number }) => void | Promise<void>): Promise<Watched> {
  const results = mkdtempSync(join(tmpdir(), 'mb-faults-'));
  const w: Partial<Watched> & { pids: Watched['pids']; hit: boolean } = { pids: new Map(), hit: false, results };
  let err = '';
  const collect = () => {
    if (!w.prefix) return;
    for (const st of readStateFiles()) if (st.prefix === w.prefix) for (const p of st.pids ?? []) w.pids.set(p.pid, p.startTime);
  };
  const poll = setInterval(collect, 50);
  try {
    w.res = await cli(runArgs(results), {
      timeoutMs: 90_000,
      onStderr: (chunk, child) => {
        err += chunk;
        const m = err.match(/prefix (mb[0-9a-z]{4}), record (\S+)/);
        if (m) [w.prefix, w.recordFile] = [m[1], m[2]];
        collect();
        if (!w.hit && at.test(err)) {
          w.hit = true;
          void fault(child as { kill: (s: NodeJS.Signals) => boolean; pid?: number });
        }
      },
    });
  } finally {
    clearInterval(poll);
  }
  return w as Watched;
}

const cmdline = (pid: number) => {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
  } catch {
    return '(gone)';
  }
};

const gone = (pid: number, start: number | undefined) => {
  const now = pidStartTime(pid);
  return now === undefined || (start !== undefined && now !== start);
};

/** Nothing of the run is left, and the root namespace is as it was (BPF objects are freed asynchronously: a few seconds' grace). */
async function assertNothingLeft(t: ExecutionContext, w: Watched, before: string): Promise<void> {
  t.truthy(w.prefix, 'the run printed its prefix');
  const alive = [...w.pids].filter(([pid, start]) => !gone(pid, start)).map(([pid]) => pid);
  t.deepEqual(alive, [], `processes of the run still alive: ${alive.map((p) => `${p} ${cmdline(p)}`).join('; ')}`);
  t.deepEqual(await labNetns(), [], 'lab network namespaces left');
  t.deepEqual(labCgroups(), [], 'lab cgroups left');
  const state = existsSync(STATE_DIR) ? readdirSync(STATE_DIR).filter((f) => w.prefix && f.startsWith(w.prefix)) : [];
  t.deepEqual(state, [], `state files of ${w.prefix} left in ${STATE_DIR}`);
  const t0 = Date.now();
  let after = await hostSnapshot();
  for (let i = 0; i < 40 && after !== before; i++) {
    await sleep(250);
    after = await hostSnapshot();
  }
  if (after === before && Date.now() - t0 > 100) t.log(`root namespace back as before after ${Date.now() - t0} ms`);
  t.is(after, before, 'the root namespace differs from before the run');
}

function record(w: Watched): { status: string; cases: { status: string }[]; error?: string } {
  return JSON.parse(readFileSync(w.recordFile!, 'utf8'));
}

rootTest('hostSnapshot: stable on an idle host, and it sees a lab-named cgroup', async (t) => {
  const a = await hostSnapshot();
  for (const section of [
    'iptables-save',
    'ip6tables-save',
    'links',
    'routes v4',
    'routes v6',
    'rules v4',
    'rules v6',
    'net.* sysctls',
    'mounts',
    'bpf programs',
    'bpf maps',
    'lab-named cgroups',
  ])
    t.true(a.includes(`## ${section}`), section);
  t.regex(a, /^net\.ipv4\.ip_forward = [01]$/m);
  await sleep(2000);
  t.is(await hostSnapshot(), a);
  const root = cgroup2Root();
  if (!root) return;
  const dir = join(root, 'mbsnap');
  mkdirSync(dir);
  try {
    const b = await hostSnapshot();
    t.not(b, a);
    t.true(b.includes(dir));
  } finally {
    rmdirSync(dir);
  }
});

// SIGINT as each phase starts (progress lines of harness/run/run.ts). During teardown the
// signal must not cut the teardown short.
const PHASES: [string, RegExp][] = [
  ['building topology', /: building topology/],
  ['deploying dataplane', /: deploying dataplane/],
  ['starting workloads', /: starting workloads/],
  ['warm-up', /: warm-up \d/],
  ['measuring', /: measuring \d/],
  ['tearing down', /: tearing down/],
];

for (const [phase, at] of PHASES)
  rootTest(`SIGINT while ${phase}: exit 130, record incomplete, nothing left, root namespace unchanged`, async (t) => {
    const before = await hostSnapshot();
    let w = await runWithFault(at, (child) => {
      child.kill('SIGINT');
    });
    t.teardown(() => rmSync(w.results, { recursive: true, force: true }));
    if (!w.hit) {
      // The run failed before the phase (another bug, logged): it must still leave nothing, and the fault gets one more try.
      t.log(`first attempt ended before "${phase}" (exit ${w.res.code}): ${w.res.stderr.match(/case 1 failed: .*/)?.[0] ?? w.res.stderr.slice(-500)}`);
      await assertNothingLeft(t, w, before);
      rmSync(w.results, { recursive: true, force: true });
      w = await runWithFault(at, (child) => {
        child.kill('SIGINT');
      });
    }
    t.true(w.hit, `the run never reached "${phase}": ${w.res.stderr.slice(-1500)}`);
    t.is(w.res.code, 130, w.res.stdout + w.res.stderr.slice(-2000));
    t.regex(w.res.stderr, /SIGINT received/);
    t.log(
      w.res.stderr
        .split('\n')
        .filter((l) => /case 1\/1|SIGINT|warning/.test(l))
        .join('\n'),
    );
    if (phase !== 'building topology') t.true(w.pids.size > 0, 'the run had started processes (read from its state file)');
    t.truthy(w.recordFile, 'the run printed its record path');
    if (w.recordFile) t.is(record(w).status, 'incomplete');
    await assertNothingLeft(t, w, before);
  });

rootTest('SIGKILL mid-measure, then `meshbench down`: nothing left, root namespace unchanged', async (t) => {
  const before = await hostSnapshot();
  let during = '';
  const w = await runWithFault(/: measuring \d/, async (child) => {
    // While it runs, the snapshot does see the lab (proof that it can tell).
    during = await hostSnapshot();
    child.kill('SIGKILL');
  });
  t.teardown(() => rmSync(w.results, { recursive: true, force: true }));
  t.true(w.hit, w.res.stderr.slice(-1500));
  t.not(during, before, 'a live ebpf run shows in the snapshot (bpffs mount, BPF programs, cgroups)');
  t.regex(during, / - bpf mb[0-9a-z]{4}-bpffs /, "the run's bpffs mount");
  t.regex(during, /## lab-named cgroups\n\/.*\/mb[0-9a-z]{4}/, "the run's cgroups");
  t.true(w.pids.size > 0);
  t.is(record(w).status, 'incomplete', 'the record a killed run leaves says incomplete');
  t.log(`after SIGKILL: ${[...w.pids].filter(([p, s]) => !gone(p, s)).length} of ${w.pids.size} recorded processes still running`);
  let down = await cli(['down'], { timeoutMs: 60_000 });
  t.is(down.code, 0, `plain down after a SIGKILLed run: ${down.stdout}${down.stderr}`);
  if (down.code !== 0) {
    t.log(`plain down refused (exit ${down.code}); cleaning with --force so the rest can be checked`);
    down = await cli(['down', '--force'], { timeoutMs: 60_000 });
    t.is(down.code, 0, down.stdout + down.stderr);
  }
  await assertNothingLeft(t, w, before);
});
