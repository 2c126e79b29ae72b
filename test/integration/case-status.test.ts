// Honest case status and write failures under real faults (issue 12, items 2 and 9): a lab
// process killed mid-measurement makes its case not ok, the run failed and the exit code 1;
// a read-only or full results directory and a read-only reports directory end in a clear
// message and a non-zero exit, never a stack trace, with the lab torn down and the root
// namespace as found. The tmpfs mounts live inside a temporary directory and are always removed.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import type { ExecutionContext } from 'ava';
import { rootTest, cleanAround, cli, labNetns, hostSnapshot, quickArgs } from '../helpers.js';
import { pidAlive, STATE_DIR } from '../../harness/util/host.js';
import type { RunRecord } from '../../harness/results/types.js';

cleanAround();

function tmp(t: ExecutionContext): string {
  const d = mkdtempSync(join(tmpdir(), 'mb-status-'));
  t.teardown(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

/** A tmpfs at <dir>/<name>, unmounted when the test ends (before tmp's removal: teardowns run last-in first-out). */
function tmpfs(t: ExecutionContext, dir: string, name: string, options: string): string {
  const mnt = join(dir, name);
  mkdirSync(mnt);
  execFileSync('mount', ['-t', 'tmpfs', '-o', options, 'mb-status-test', mnt]);
  t.teardown(() => {
    if (mounted(mnt)) execFileSync('umount', ['-l', mnt]);
  });
  return mnt;
}

const mounted = (mnt: string) =>
  readFileSync('/proc/self/mounts', 'utf8')
    .split('\n')
    .some((l) => l.split(' ')[1] === mnt);
const unmount = (mnt: string) => execFileSync('umount', [mnt]);
const stateFiles = () => (existsSync(STATE_DIR) ? readdirSync(STATE_DIR).filter((f) => /^mb[0-9a-z]{4}\.json$/.test(f)) : []);
const recordPath = (stdout: string) => stdout.match(/run record: (\S+)/)?.[1];

/**
 * Run the quick scenario with one sidecar dataplane and, one second into the measured window,
 * SIGKILL the process of this run (from its state file) whose name `pick` chooses.
 */
async function killDuringWindow(t: ExecutionContext, pick: (name: string) => boolean) {
  const dir = tmp(t);
  let stderr = '';
  let killed: { name: string; pid: number } | undefined;
  let all: number[] = [];
  const r = await cli(quickArgs(join(dir, 'results'), join(dir, 'reports'), '--dataplanes', 'istio-sidecar', '--duration', '4'), {
    onStderr: (chunk) => {
      stderr += chunk;
      if (killed || !/measuring/.test(stderr)) return;
      const prefix = stderr.match(/prefix (mb[0-9a-z]{4})/)?.[1];
      if (!prefix) return;
      const st = JSON.parse(readFileSync(join(STATE_DIR, `${prefix}.json`), 'utf8')) as { pids: { name: string; pid: number }[] };
      all = st.pids.map((p) => p.pid);
      const victim = st.pids.find((p) => pick(p.name));
      if (!victim) return;
      killed = victim;
      setTimeout(() => process.kill(victim.pid, 'SIGKILL'), 1000);
    },
  });
  return { r, killed, all };
}

async function assertKilledCase(t: ExecutionContext, pick: (name: string) => boolean) {
  const before = await hostSnapshot();
  const { r, killed, all } = await killDuringWindow(t, pick);
  t.truthy(killed, `a process to kill was found in the state file:\n${r.stderr}`);
  t.is(r.code, 1, `exit 1 for a failed run\n${r.stdout}\n${r.stderr}`);
  t.notRegex(r.stderr, /internal error/);
  const file = recordPath(r.stdout);
  t.truthy(file, r.stdout);
  const rec: RunRecord = JSON.parse(readFileSync(file!, 'utf8'));
  const c = rec.cases[0]!;
  t.not(c.status, 'ok');
  t.is(c.status, 'failed', JSON.stringify(c.validity));
  t.false(c.validity!.ok);
  const down = c.validity!.processesDown.find((p) => p.name === killed!.name);
  t.truthy(down, JSON.stringify(c.validity));
  t.is(down!.signal, 'SIGKILL');
  t.is(down!.when, 'during-window');
  t.true(
    c.validity!.reasons.some((x) => x.includes(`process ${killed!.name}`) && x.includes('killed by SIGKILL during the measured window')),
    c.validity!.reasons.join('\n'),
  );
  t.is(rec.status, 'failed');
  t.regex(rec.error ?? '', new RegExp(`case 0 \\(istio-sidecar http1-200qps r0\\) failed: .*process ${killed!.name}`));
  // The summary says why instead of showing figures as results.
  t.regex(r.stdout, /istio-sidecar\s+http1-200qps\s+r0\s+failed\s+not a result/);
  t.regex(r.stdout, new RegExp(`process ${killed!.name} \\(role proxy`));
  // Torn down: every process of the run gone, no namespace, no state file, the host as found.
  for (const pid of all) t.false(pidAlive(pid), `process ${pid} still alive`);
  t.deepEqual(await labNetns(), []);
  t.deepEqual(stateFiles(), []);
  t.is(await hostSnapshot(), before);
  return c;
}

rootTest("the client's sidecar killed mid-measurement: the case failed with its reasons, the run failed, exit 1, all torn down", async (t) => {
  const c = await assertKilledCase(t, (n) => n === 'proxy-client');
  t.true(c.load.actual.errors > 0, 'requests failed once the client sidecar was gone');
  t.true(
    c.validity!.reasons.some((x) => /requests failed/.test(x)),
    c.validity!.reasons.join('\n'),
  );
});

rootTest("the server's sidecar killed mid-measurement: the case failed, the run failed, exit 1, all torn down", async (t) => {
  await assertKilledCase(t, (n) => n.startsWith('proxy-') && n !== 'proxy-client');
});

rootTest('a read-only --results: exit 3 naming the directory, nothing built, no stack trace', async (t) => {
  const dir = tmp(t);
  const before = await hostSnapshot();
  const ro = tmpfs(t, dir, 'ro', 'ro,size=64k');
  const r = await cli(quickArgs(join(ro, 'results'), join(dir, 'reports'), '--duration', '1'));
  t.is(r.code, 3, r.stderr);
  t.regex(r.stderr, new RegExp(`cannot write run records in ${ro}/results/quick/\\S+: EROFS \\(read-only file system\\)`));
  t.regex(r.stderr, /--results/);
  t.notRegex(r.stderr, /internal error|\n\s+at /);
  t.notRegex(r.stderr, /building topology/, 'stopped before anything was built');
  t.deepEqual(await labNetns(), []);
  t.deepEqual(stateFiles(), []);
  unmount(ro);
  t.is(await hostSnapshot(), before);
});

rootTest(
  'a --results file system that fills up mid-run: the run is torn down, the error names run.json and ENOSPC, the last good record stays, no .tmp',
  async (t) => {
    const dir = tmp(t);
    const before = await hostSnapshot();
    const mnt = tmpfs(t, dir, 'small', 'size=1m');
    let filled = false;
    const r = await cli(quickArgs(mnt, join(dir, 'reports')), {
      onStderr: (chunk) => {
        if (filled || !/measuring/.test(chunk)) return;
        filled = true;
        // Fill the file system as another writer on the host would.
        try {
          writeFileSync(join(mnt, 'filler'), Buffer.alloc(2 << 20));
        } catch {
          /* ENOSPC: it is full */
        }
      },
    });
    t.true(filled, r.stderr);
    t.not(r.code, 0);
    t.is(r.code, 3, r.stderr);
    t.notRegex(r.stderr, /internal error|\n\s+at /);
    const m = r.stderr.match(/cannot write the run record (\S+run\.json): ENOSPC/);
    t.truthy(m, r.stderr);
    t.regex(r.stderr, /holds the last record written whole \(before the first case, with no case in it\)/);
    const rec: RunRecord = JSON.parse(readFileSync(m![1]!, 'utf8'));
    t.is(rec.status, 'incomplete');
    t.deepEqual(rec.cases, []);
    const tmps = (readdirSync(mnt, { recursive: true }) as string[]).filter((f) => f.endsWith('.tmp'));
    t.deepEqual(tmps, [], 'no temporary file left');
    t.deepEqual(await labNetns(), []);
    t.deepEqual(stateFiles(), []);
    unmount(mnt);
    t.is(await hostSnapshot(), before);
  },
);

rootTest('a read-only --reports: the run record path is printed, then the report error, exit 3', async (t) => {
  const dir = tmp(t);
  const before = await hostSnapshot();
  const ro = tmpfs(t, dir, 'ro', 'ro,size=64k');
  const r = await cli(quickArgs(join(dir, 'results'), join(ro, 'reports')));
  t.is(r.code, 3, r.stderr);
  const file = recordPath(r.stdout);
  t.truthy(file, r.stdout);
  const rec: RunRecord = JSON.parse(readFileSync(file!, 'utf8'));
  t.is(rec.status, 'complete');
  t.is(rec.cases[0]!.status, 'ok');
  t.regex(r.stdout, /report: not written/);
  t.regex(r.stderr, new RegExp(`cannot write the report directory ${ro}/reports/quick: EROFS`));
  t.true(r.stderr.includes(`meshbench report ${file} --reports <dir>`), r.stderr);
  t.notRegex(r.stderr, /internal error|\n\s+at /);
  t.deepEqual(await labNetns(), []);
  unmount(ro);
  t.is(await hostSnapshot(), before);
});
