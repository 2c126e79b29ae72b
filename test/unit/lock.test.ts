// The run lock (harness/util/lock.ts), rootless on a lock file in a temporary directory: one
// holder at a time, a clear message naming the holder, and no stale lock after a SIGKILL.
import test from 'ava';
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { RunLockBusy, acquireRunLock, describeHolder, infoFile, readHolder } from '../../harness/util/lock.js';
import { pidAlive } from '../../harness/util/host.js';

const lockFile = () => join(mkdtempSync(join(tmpdir(), 'mb-lock-')), 'run.lock');

/** Another process holding the lock as `meshbench run` would; resolves once it holds it. */
async function holder(file: string, keepAlive = true) {
  const script = join(mkdtempSync(join(tmpdir(), 'mb-lock-holder-')), 'hold.mjs');
  writeFileSync(
    script,
    `import { acquireRunLock } from ${JSON.stringify(resolve('harness/util/lock.ts'))};\n` +
      `await acquireRunLock({ command: 'run', scenario: 'quick', prefix: 'mbab12' }, ${JSON.stringify(file)});\n` +
      `process.stdout.write('held\\n');\n${keepAlive ? 'setInterval(() => {}, 1000);' : ''}\n`,
  );
  const child = spawn(process.execPath, ['--import', 'tsx', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((ok, fail) => {
    child.stdout!.on('data', (d) => String(d).includes('held') && ok());
    child.on('exit', (c) => fail(new Error(`holder exited ${c}`)));
  });
  child.removeAllListeners('exit');
  return child;
}

test('one holder at a time; released, it can be taken again', async (t) => {
  const f = lockFile();
  const a = await acquireRunLock({ command: 'run', scenario: 'quick', prefix: 'mbaaaa' }, f);
  t.like(readHolder(f), { command: 'run', pid: process.pid, scenario: 'quick', prefix: 'mbaaaa' });
  const err = await t.throwsAsync(acquireRunLock({ command: 'run', scenario: 'other' }, f), { instanceOf: RunLockBusy });
  t.is(err!.exitCode, 3);
  t.regex(err!.message, new RegExp(`^another run \\(pid ${process.pid}, scenario quick, since \\d{4}-\\d\\d-\\d\\dT[^)]*\\) is in progress`));
  await a.release();
  t.is(readHolder(f), undefined, 'the holder information goes with the lock');
  const b = await acquireRunLock({ command: 'down' }, f);
  await b.release();
  await b.release(); // safe to repeat
});

test('another process holds it: exit 3 naming that pid, scenario and start time', async (t) => {
  const f = lockFile();
  const child = await holder(f);
  t.teardown(() => child.kill('SIGKILL'));
  const err = await t.throwsAsync(acquireRunLock({ command: 'down' }, f), { instanceOf: RunLockBusy });
  t.is(err!.code, 'E_ENV');
  t.regex(err!.message, new RegExp(`another run \\(pid ${child.pid}, scenario quick, since [^)]+, prefix mbab12\\) is in progress`));
  t.regex(err!.hint ?? '', new RegExp(`kill -INT ${child.pid}`));
});

test('a holder killed by SIGKILL leaves no stale lock, even with its information file still there', async (t) => {
  const f = lockFile();
  const child = await holder(f);
  child.kill('SIGKILL');
  await new Promise((r) => child.once('exit', r));
  t.is(readHolder(f)?.pid, child.pid, 'the dead holder could not remove its information');
  // The kernel releases the flock once the holder's `cat` sees its pipe close: moments.
  const lock = await acquireRunLock({ command: 'run', scenario: 'next' }, f);
  t.is(readHolder(f)?.pid, process.pid);
  await lock.release();
});

test('the holding child does not keep meshbench alive, and dies with it', async (t) => {
  const f = lockFile();
  // A process that took the lock and has nothing left to do exits (and so releases it).
  const idle = await holder(f, false);
  const code = await Promise.race([new Promise((r) => idle.once('exit', r)), sleep(10_000).then(() => 'still running')]);
  idle.kill('SIGKILL');
  t.is(code, 0);

  const child = await holder(f);
  // The holder's flock and cat processes are its children; SIGKILL of the holder must free them.
  const pids = (await import('node:child_process'))
    .execFileSync('pgrep', ['-f', `flock -n -E 75 ${f}`], { encoding: 'utf8' })
    .trim()
    .split('\n')
    .map(Number);
  t.true(pids.length >= 1);
  child.kill('SIGKILL');
  for (let i = 0; i < 100 && pids.some(pidAlive); i++) await sleep(20);
  t.false(pids.some(pidAlive), 'flock holder still alive after its parent died');
});

test('describeHolder: runs, down, unknown', (t) => {
  t.is(describeHolder({ command: 'run', pid: 7, scenario: 's', since: 'T' }), 'another run (pid 7, scenario s, since T) is in progress');
  t.regex(describeHolder({ command: 'down', pid: 7, since: 'T' }), /meshbench down` \(pid 7, since T\) is in progress/);
  t.regex(describeHolder(undefined), /another run \(pid unknown\) is in progress/);
  t.is(infoFile('/run/meshbench.lock'), '/run/meshbench.lock.json');
});
