// Writing run records when the disk says no (harness/results/write.ts): the temporary file never
// outlives a failed write, the previous record stays as it was, and the error names the file and
// the errno (E_ENV, exit 3) instead of crashing. The read-only and full file systems are real
// tmpfs mounts inside a temporary directory (root only; root ignores permission bits, so a
// chmod would prove nothing), always unmounted again.
import test from 'ava';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MeshbenchError } from '../../harness/errors.js';
import { ensureWritableDir, writeFileAtomic, writeJsonAtomic } from '../../harness/results/write.js';

const ROOT = process.getuid?.() === 0;
const rootOnly = ROOT ? test.serial : test.skip;

function tmp(t: import('ava').ExecutionContext): string {
  const d = mkdtempSync(join(tmpdir(), 'mb-write-'));
  t.teardown(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

/** A tmpfs mounted at <tmp>/mnt with these options, unmounted (lazily if busy) when the test ends. */
function tmpfs(t: import('ava').ExecutionContext, options: string): string {
  const mnt = join(tmp(t), 'mnt');
  mkdirSync(mnt);
  execFileSync('mount', ['-t', 'tmpfs', '-o', options, 'mb-write-test', mnt]);
  t.teardown(() => {
    try {
      execFileSync('umount', [mnt]);
    } catch {
      execFileSync('umount', ['-l', mnt]);
    }
  });
  return mnt;
}

const leftovers = (dir: string) => readdirSync(dir).filter((f) => f.endsWith('.tmp'));

test('a rename that fails removes the temporary file and says which file and errno', (t) => {
  const d = tmp(t);
  const file = join(d, 'run.json');
  mkdirSync(file); // a directory where the record should go: the rename fails with EISDIR
  const err = t.throws(() => writeJsonAtomic(file, { a: 1 }), { instanceOf: MeshbenchError })!;
  t.is(err.code, 'E_ENV');
  t.is(err.exitCode, 3);
  t.true(err.message.includes(file), err.message);
  t.regex(err.message, /EISDIR/);
  t.deepEqual(leftovers(d), [], 'no .tmp left beside it');
});

rootOnly('a full file system: ENOSPC named, no 0-byte .tmp left, the last good record intact', (t) => {
  const mnt = tmpfs(t, 'size=64k');
  const file = join(mnt, 'run.json');
  writeJsonAtomic(file, { status: 'incomplete', cases: [] });
  const good = readFileSync(file, 'utf8');
  // Fill what is left, then write a record bigger than any space that could remain.
  try {
    writeFileSync(join(mnt, 'filler'), Buffer.alloc(1 << 20));
  } catch {
    /* ENOSPC: full now */
  }
  const err = t.throws(() => writeJsonAtomic(file, { status: 'complete', cases: [{ blob: 'x'.repeat(200_000) }] }), { instanceOf: MeshbenchError })!;
  t.is(err.code, 'E_ENV');
  t.regex(err.message, new RegExp(`cannot write the run record ${file}: ENOSPC`));
  t.deepEqual(leftovers(mnt), [], 'the partial temporary file is removed');
  t.is(readFileSync(file, 'utf8'), good, 'the record on disk is the last one written whole');
});

rootOnly('a read-only file system: the results directory check fails first, naming the directory', (t) => {
  const mnt = tmpfs(t, 'ro,size=64k');
  const dir = join(mnt, 'results', 'quick', 'run-1');
  const err = t.throws(() => ensureWritableDir(dir, 'run records', 'use --results'), { instanceOf: MeshbenchError })!;
  t.is(err.code, 'E_ENV');
  t.regex(err.message, new RegExp(`cannot write run records in ${dir}: EROFS \\(read-only file system\\)`));
  t.is(err.hint, 'use --results');
  t.throws(() => writeFileAtomic(join(mnt, 'x.json'), '{}'), { instanceOf: MeshbenchError, message: /EROFS/ });
  t.false(existsSync(join(mnt, 'results')));
});

test('a writable directory passes the check and keeps no probe file', (t) => {
  const d = join(tmp(t), 'a', 'b');
  ensureWritableDir(d, 'run records', 'x');
  t.deepEqual(readdirSync(d), []);
  writeFileAtomic(join(d, 'f.txt'), 'hello');
  t.is(readFileSync(join(d, 'f.txt'), 'utf8'), 'hello');
  t.deepEqual(leftovers(d), []);
});
