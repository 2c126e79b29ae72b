// RemotePlace's remote command lines (place/remote.ts), run by a real local `sh` exactly as the
// remote shell gets them from ssh: hostile arguments, paths and environment values arrive
// unchanged; a cgroup join, env, timeout, the detached start with its exit status, kill with the
// start-time guard, readFiles framing, writeFile's temp + rename and mode, mkdir's modes, findTool.
// Then the whole RemotePlace over a stand-in host whose `sh` is that local shell (no ssh, no
// root): every method works and readFiles of many files is one command.
import test from 'ava';
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { RemoteHost, RunOptions } from '../../harness/hosts/ssh.js';
import {
  envAssignments,
  FIND_TOOL_SCRIPT,
  killLine,
  MKDIR_SCRIPT,
  parseMounts,
  parsePoll,
  parseReadFiles,
  parseStart,
  placeArgv,
  POLL_SCRIPT,
  readFilesLine,
  RemotePlace,
  remoteExecLine,
  startLine,
  statusToExit,
  WRITE_SCRIPT,
} from '../../harness/place/remote.js';
import { exec } from '../../harness/util/exec.js';
import { pidAlive } from '../../harness/util/host.js';

const HOSTILE = ['a b', "it's", '$(id)', '`id`', '; rm -rf /', '"q"', '*', '', 'x\ny', '-n', '~', '\\'];
/** The remote shell: `sh -c <line>` as sshd runs it. */
const sh = (line: string, input?: string, env?: NodeJS.ProcessEnv) => exec('sh', ['-c', line], { allowFail: true, input, env });
const tmp = () => mkdtempSync(join(tmpdir(), "mbplace it's $x-"));

test('exec argv: every argument and env value reaches the remote program unchanged; sudo and PATH preamble', async (t) => {
  const line = remoteExecLine(placeArgv('printf', ['%s\\n', ...HOSTILE], {}), false);
  const r = await sh(line);
  t.is(r.code, 0, r.stderr);
  t.deepEqual(r.stdout.split('\n').slice(0, -1), ['a b', "it's", '$(id)', '`id`', '; rm -rf /', '"q"', '*', '', 'x', 'y', '-n', '~', '\\']);
  t.true(remoteExecLine(['id', '-u'], true).endsWith('sudo -n -- id -u'));
  t.regex(remoteExecLine(['true'], false), /^PATH=\$PATH:.*\/usr\/sbin.*; export PATH; true$/);

  // Only what differs from this process's environment is sent; a hostile value survives.
  t.deepEqual(envAssignments({ ...process.env, MB_X: "v $(id) 'q'" }), ["MB_X=v $(id) 'q'"]);
  t.throws(() => envAssignments({ 'A;B': '1' }), { message: /cannot be passed/ });
  const e = await sh(remoteExecLine(placeArgv('sh', ['-c', 'printf %s "$MB_X"'], { env: { ...process.env, MB_X: "v $(id) 'q'\n" } }), false));
  t.is(e.stdout, "v $(id) 'q'\n");
});

test('exec argv: nsenter, taskset, cgroup join and timeout wrap the program in that order', async (t) => {
  t.deepEqual(placeArgv('ip', ['-br', 'link'], { netns: 'mbab12-n1' }), ['nsenter', '--net=/run/netns/mbab12-n1', '--', 'ip', '-br', 'link']);
  t.deepEqual(placeArgv('ip', ['link'], { netns: 'mbab12-n1', env: { ...process.env, A: '1' } }), [
    'nsenter',
    '--net=/run/netns/mbab12-n1',
    '--',
    'env',
    '--',
    'A=1',
    'ip',
    'link',
  ]);
  t.deepEqual(placeArgv('x', [], { cpus: '1', cgroup: '/sys/fs/cgroup/mbab12/c', timeoutMs: 2500 }), [
    'timeout',
    '-s',
    'KILL',
    '3',
    'sh',
    '-c',
    'echo $$ > "$0/cgroup.procs" && exec "$@"',
    '/sys/fs/cgroup/mbab12/c',
    'taskset',
    '-c',
    '1',
    'x',
  ]);
  // The cgroup join, run: a plain directory stands in for the cgroup; the pid written is the program's.
  const dir = tmp();
  const r = await sh(remoteExecLine(placeArgv('sh', ['-c', 'echo $$'], { cgroup: dir }), false));
  t.is(r.code, 0, r.stderr);
  t.is(readFileSync(join(dir, 'cgroup.procs'), 'utf8').trim(), r.stdout.trim(), 'joined before exec: same pid');
  rmSync(dir, { recursive: true });
  const t0 = performance.now();
  const killed = await sh(remoteExecLine(placeArgv('sleep', ['10'], { timeoutMs: 500 }), false));
  t.is(killed.code, 137);
  t.true(performance.now() - t0 < 5000);
});

test('start: detached with cwd, env and an appended log; pid and start time; the exit status polled; kill by pid with the start-time guard', async (t) => {
  const dir = tmp();
  const log = join(dir, 'lo g');
  writeFileSync(log, 'before\n');
  const argv = placeArgv('sh', ['-c', 'pwd; echo "$MB_Y"; kill -0 $$ && exit 7'], { env: { ...process.env, MB_Y: '$(id) y' }, defaultSignals: true });
  const r = await sh(startLine(argv, { sudo: false, log, cwd: dir }));
  const s = parseStart(r.stdout);
  if ('error' in s) return t.fail(s.error);
  t.true(s.pid > 1);
  // The waiting shell writes the status; one poll reports it and removes the directory.
  let polled = new Map<string, number | undefined>();
  for (let i = 0; i < 50 && !polled.size; i++) {
    await sleep(50);
    polled = parsePoll((await sh(remoteExecLine(['sh', '-c', POLL_SCRIPT, 'sh', s.dir, String(s.pid)], false))).stdout);
  }
  t.deepEqual([...polled], [[s.dir, 7]]);
  t.is(readFileSync(log, 'utf8'), `before\n${dir}\n$(id) y\n`, 'appended, in cwd, env set');
  t.throws(() => statSync(s.dir), undefined, 'its directory removed');

  const long = parseStart((await sh(startLine(placeArgv('sleep', ['30'], { defaultSignals: true }), { sudo: false }))).stdout);
  if ('error' in long) return t.fail(long.error);
  t.true(pidAlive(long.pid));
  t.regex(readFileSync(`/proc/${long.pid}/status`, 'utf8'), /^SigIgn:\s+0+$/m, 'SIGINT and SIGQUIT not ignored');
  t.is((await sh(killLine(long.pid, 'SIGKILL', (long.startTime ?? 0) + 1, false))).code, 3, 'another start time: left alone');
  t.true(pidAlive(long.pid));
  t.is((await sh(killLine(long.pid, 'SIGKILL', long.startTime, false))).code, 0);
  let st = new Map<string, number | undefined>();
  for (let i = 0; i < 50 && !st.size; i++) {
    await sleep(50);
    st = parsePoll((await sh(remoteExecLine(['sh', '-c', POLL_SCRIPT, 'sh', long.dir, String(long.pid)], false))).stdout);
  }
  t.deepEqual(statusToExit(st.get(long.dir) ?? 0), { code: 128, signal: 'SIGKILL' });
  t.is((await sh(killLine(long.pid, 'SIGTERM', undefined, false))).code, 3, 'gone: nothing to kill');
  t.throws(() => killLine(1, 'SIGKILL', undefined, false), { message: /refusing to kill pid 1/ });
  t.throws(() => killLine(5, 'KILL; reboot' as NodeJS.Signals, undefined, false), { message: /bad signal/ });

  // A cwd that does not exist: the start fails with the reason, nothing runs.
  const bad = parseStart((await sh(startLine(['true'], { sudo: false, cwd: join(dir, 'nope') }))).stdout);
  t.true('error' in bad && /cannot cd to/.test(bad.error));
  if (bad.dir) rmSync(bad.dir, { recursive: true });
  rmSync(dir, { recursive: true });
  t.deepEqual(statusToExit(0), { code: 0 });
  t.deepEqual(statusToExit(143), { code: 128, signal: 'SIGTERM' });
  t.deepEqual(parseStart('/tmp/mbproc.ab 12 '), { dir: '/tmp/mbproc.ab', pid: 12, startTime: undefined });
});

test('readFiles: one command for many files, exact bytes (trailing newlines, none, empty), missing ones undefined', async (t) => {
  const dir = tmp();
  const texts = ['one\n\n\n', 'no newline', '', `fake separator\nMBREAD-${'0'.repeat(24)} 0\nrest\n`];
  const paths = texts.map((_, i) => join(dir, `f ${i}'$(id)`));
  texts.forEach((x, i) => writeFileSync(paths[i], x));
  const all = [...paths.slice(0, 2), join(dir, 'missing'), ...paths.slice(2), dir];
  const nonce = `MBREAD-${'a'.repeat(24)}`;
  const line = readFilesLine(all, nonce, false);
  const r = await sh(line);
  t.is(r.code, 0);
  t.deepEqual(parseReadFiles(r.stdout, nonce, all.length), [texts[0], texts[1], undefined, texts[2], texts[3], undefined]);
  t.throws(() => parseReadFiles(r.stdout, nonce, all.length + 1), { message: /stops after 6/ });
  rmSync(dir, { recursive: true });
});

test('writeFile: temp + rename with the mode, hostile path and content; mkdir -p modes; findTool PATH then <root>/.tools/bin', async (t) => {
  const dir = tmp();
  const p = join(dir, "k'ey $(id)");
  const text = "secret\n'$(id)'\n\0not\n";
  t.is((await sh(remoteExecLine(['sh', '-c', WRITE_SCRIPT, 'sh', p, '600'], false), text)).code, 0);
  t.is(readFileSync(p, 'utf8'), text);
  t.is(statSync(p).mode & 0o777, 0o600);
  t.is((await sh(remoteExecLine(['sh', '-c', WRITE_SCRIPT, 'sh', p, ''], false), 'b')).code, 0);
  t.is(readFileSync(p, 'utf8'), 'b');
  t.is((await sh(remoteExecLine(['sh', '-c', WRITE_SCRIPT, 'sh', join(dir, 'no/such/f'), ''], false), 'x')).code, 1);
  t.deepEqual(readdirSync(dir), ["k'ey $(id)"], 'no temp file left');

  const deep = join(dir, 'a b/c/d');
  t.is((await sh(remoteExecLine(['sh', '-c', MKDIR_SCRIPT, 'sh', deep, '700'], false))).code, 0);
  t.is(statSync(join(dir, 'a b')).mode & 0o777, 0o700, 'every directory made gets the mode');
  t.is(statSync(deep).mode & 0o777, 0o700);
  t.is((await sh(remoteExecLine(['sh', '-c', MKDIR_SCRIPT, 'sh', deep, ''], false))).code, 0, 'exists: fine');

  const root = join(dir, 'root');
  mkdirSync(join(root, '.tools/bin'), { recursive: true });
  writeFileSync(join(root, '.tools/bin/mbtool'), '#!/bin/sh\n');
  chmodSync(join(root, '.tools/bin/mbtool'), 0o755);
  const find = async (name: string) => (await sh(remoteExecLine(['sh', '-c', FIND_TOOL_SCRIPT, 'sh', name, root], false))).stdout.trim();
  t.regex(await find('sh'), /\/sh$/);
  t.is(await find('mbtool'), join(root, '.tools/bin/mbtool'));
  t.is(await find('mb-no-such-tool'), '');
  rmSync(dir, { recursive: true });
});

test('mounts: /proc/self/mounts with octal escapes decoded', (t) => {
  t.deepEqual(parseMounts('proc /proc proc rw 0 0\n/dev/sda1 /mnt/a\\040b\\011c ext4 rw 0 0\n'), [
    { source: 'proc', target: '/proc', fstype: 'proc' },
    { source: '/dev/sda1', target: '/mnt/a b\tc', fstype: 'ext4' },
  ]);
  const real = parseMounts(execFileSync('cat', ['/proc/self/mounts'], { encoding: 'utf8' }));
  t.true(real.some((m) => m.target === '/proc' && m.fstype === 'proc'));
});

/** A host whose remote shell is this machine's `sh` (what sshd would run), counting the commands it gets. */
function localShellHost() {
  const lines: string[] = [];
  const host = {
    target: { name: 'stand-in', address: '127.0.0.1', user: 'root', port: 22 },
    sudo: false,
    sh: async (remote: string, o: RunOptions = {}) => {
      lines.push(remote);
      return exec('sh', ['-c', remote], { input: o.input, allowFail: true, timeoutMs: o.timeoutMs });
    },
    alive: async (p: { pid: number; startTime?: number } | number) => {
      const { pid, startTime } = typeof p === 'number' ? { pid: p, startTime: undefined } : p;
      const r = await exec(
        'sh',
        [
          '-c',
          `t=$(sed 's/.*) //' /proc/$1/stat 2>/dev/null | cut -d' ' -f20); [ -n "$t" ] && { [ -z "$2" ] || [ "$t" = "$2" ]; }`,
          'sh',
          String(pid),
          String(startTime ?? ''),
        ],
        {
          allowFail: true,
        },
      );
      return r.code === 0;
    },
  };
  return { host: host as unknown as RemoteHost, lines };
}

test.serial('RemotePlace over a stand-in host: exec errors name the host; start → exited; readFiles is one command; findTool cached', async (t) => {
  const { host, lines } = localShellHost();
  const procDirs = () => readdirSync('/tmp').filter((f) => f.startsWith('mbproc.'));
  const dirsBefore = procDirs();
  const place = new RemotePlace(host, { root: '/nonexistent-root', pollMs: 100 });
  t.is(place.name, 'stand-in');
  t.is((await place.exec('cat', [], { input: 'in put' })).stdout, 'in put');
  const err = await t.throwsAsync(place.exec('sh', ['-c', 'echo bad >&2; exit 3']));
  t.is(err?.message, 'command failed on stand-in (exit 3): sh -c echo bad >&2; exit 3\nbad');
  t.is((await place.exec('false', [], { allowFail: true })).code, 1);

  const dir = tmp();
  const log = join(dir, 'p.log');
  const p = await place.start({ cmd: 'sh', args: ['-c', 'echo started; exec sleep 30'], logFile: log, cwd: dir });
  t.true(await place.alive(p.pid, p.startTime));
  t.false(await place.alive(p.pid, (p.startTime ?? 0) + 1));
  t.true(await place.kill(p.pid, { signal: 'SIGTERM', startTime: p.startTime }));
  t.is(await p.exited, 128);
  t.is(p.exitSignal, 'SIGTERM');
  t.true(typeof p.exitedAt === 'number');
  t.false(await place.alive(p.pid));
  t.false(await place.kill(p.pid));
  t.is(readFileSync(log, 'utf8'), 'started\n');
  const quick = await place.start({ cmd: 'sh', args: ['-c', 'exit 5'] });
  t.is(await quick.exited, 5);
  await t.throwsAsync(place.start({ cmd: 'true', args: [], cwd: join(dir, 'nope'), name: 'x' }), {
    message: /could not start true for x on stand-in: cannot cd to/,
  });
  t.deepEqual(procDirs(), dirsBefore, 'no process directory left');

  await place.mkdir(join(dir, 'a/b'), { mode: 0o750 });
  await place.writeFile(join(dir, 'a/b/f'), 'hello', { mode: 0o640 });
  t.is(statSync(join(dir, 'a/b/f')).mode & 0o777, 0o640);
  t.true(await place.exists(join(dir, 'a/b/f')));
  t.false(await place.exists(join(dir, 'a/b/g')));
  t.deepEqual(await place.list(join(dir, 'a/b')), ['f']);
  t.deepEqual(await place.list(join(dir, 'nope')), []);

  const before = lines.length;
  const many = Array.from({ length: 50 }, (_, i) => join(dir, `r${i}`));
  many.forEach((f, i) => writeFileSync(f, `${i}\n`));
  const got = await place.readFiles([...many, join(dir, 'missing')]);
  t.is(lines.length - before, 1, 'one command for 51 files');
  t.deepEqual(got, [...many.map((_, i) => `${i}\n`), undefined]);
  t.is(await place.readFile(join(dir, 'r3')), '3\n');

  t.true((await place.mounts()).some((m) => m.target === '/proc'));
  const n = lines.length;
  t.regex((await place.findTool('sh')) ?? '', /\/sh$/);
  t.regex((await place.findTool('sh')) ?? '', /\/sh$/);
  t.is(await place.findTool('mb-no-such-tool'), undefined);
  t.is(lines.length - n, 2, 'cached per place');
  place.close();
  rmSync(dir, { recursive: true });
});
