// The lab's temporary directories carry their owner; `down` removes those whose owner is gone,
// never a live owner's, never a directory without an owner file or of another name.
import test from 'ava';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pidStartTime } from '../../harness/util/host.js';
import { ownedTmpDir, ownerAlive, sweepOwnedTmpDirs } from '../../harness/util/tmp.js';

test('an owner is alive only with the same pid and start time', (t) => {
  const me = `${process.pid} ${pidStartTime(process.pid)}`;
  t.true(ownerAlive(me));
  t.false(ownerAlive(`${process.pid} 1`), 'pid reused by another process');
  t.false(ownerAlive('2147483646 5'), 'no such pid');
  t.false(ownerAlive('garbage'));
});

test('the sweep removes dead owners’ directories only', (t) => {
  const root = mkdtempSync(join(tmpdir(), 'mbtmp-test-'));
  try {
    const mk = (name: string, owner?: string) => {
      mkdirSync(join(root, name));
      if (owner !== undefined) writeFileSync(join(root, name, '.meshbench-owner'), owner);
    };
    mk('mbvm-dead', '2147483646 5\n');
    mk('mbssh-dead', '2147483646\n');
    mk('mbvm-live', `${process.pid} ${pidStartTime(process.pid)}\n`);
    mk('mbvm-noowner');
    mk('other-dead', '2147483646 5\n');
    t.deepEqual(sweepOwnedTmpDirs(root).sort(), ['mbssh-dead', 'mbvm-dead']);
    for (const kept of ['mbvm-live', 'mbvm-noowner', 'other-dead']) t.true(existsSync(join(root, kept)), kept);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('ownedTmpDir records this process', (t) => {
  const dir = ownedTmpDir('mbdoc-');
  try {
    t.true(ownerAlive(readFileSync(join(dir, '.meshbench-owner'), 'utf8')));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
