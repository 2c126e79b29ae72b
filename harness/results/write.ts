// Writing run records: always whole files (write to a temporary name, then rename), so a reader
// or a crash never sees half a run.json. A write that fails removes its temporary file, leaves
// the previous file as it was, and says which file and which errno (E_ENV: the disk or directory
// is the problem, not the run).
import { existsSync, mkdirSync, writeFileSync, readFileSync, rmSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { MeshbenchError, inputError } from '../errors.js';
import { RUN_SCHEMA, type RunRecord } from './types.js';
import { writeFileAtomicRaw } from '../util/atomic.js';

const ERRNO_WORDS: Record<string, string> = {
  ENOSPC: 'no space left on the device',
  EDQUOT: 'disk quota exceeded',
  EROFS: 'read-only file system',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EISDIR: 'is a directory',
  ENOTDIR: 'a part of the path is not a directory',
  ENOENT: 'no such file or directory',
  EIO: 'input/output error',
};

/** "ENOSPC (no space left on the device)" for an fs error, its message otherwise. */
export function errnoText(err: unknown): string {
  const code = (err as NodeJS.ErrnoException)?.code;
  if (code) return `${code} (${ERRNO_WORDS[code] ?? (err as Error).message})`;
  return err instanceof Error ? err.message : String(err);
}

/**
 * mkdir -p whose error is the real one: Node's recursive mkdir reports ENOENT on a read-only
 * file system; making the first missing component alone gives EROFS (or EACCES, ENOSPC …).
 */
export function makeDir(dir: string): void {
  try {
    mkdirSync(dir, { recursive: true });
  } catch (err) {
    let first = resolve(dir);
    while (!existsSync(dirname(first)) && dirname(first) !== first) first = dirname(first);
    if (!existsSync(first)) mkdirSync(first); // throws the real errno
    throw err;
  }
}

/** The error for a file or directory that cannot be written (exit 3). */
export function writeError(what: string, path: string, err: unknown, hint?: string): MeshbenchError {
  if (err instanceof MeshbenchError) return err;
  return new MeshbenchError('E_ENV', `cannot write ${what} ${path}: ${errnoText(err)}`, {
    hint: hint ?? 'free space on that file system or make it writable, or choose another directory (--results / --reports)',
    cause: err,
  });
}

/** Write `text` to `file` whole: a temporary file beside it, renamed over it; the temporary file never outlives a failure. */
export function writeFileAtomic(file: string, text: string, what = 'file'): void {
  try {
    makeDir(dirname(file));
    writeFileAtomicRaw(file, text);
  } catch (err) {
    throw writeError(what, file, err);
  }
}

export function writeJsonAtomic(file: string, data: unknown): void {
  writeFileAtomic(file, JSON.stringify(data, null, 2) + '\n', 'the run record');
}

/**
 * Make `dir` and prove a file can be written in it (a probe file, removed again), before
 * anything is built: a read-only or missing results directory is found at the start, not after
 * the run.
 */
export function ensureWritableDir(dir: string, what: string, hint: string): void {
  const probe = join(dir, `.meshbench-write-check.${process.pid}`);
  try {
    makeDir(dir);
    writeFileSync(probe, 'meshbench\n');
    rmSync(probe, { force: true });
  } catch (err) {
    try {
      rmSync(probe, { force: true });
    } catch {
      /* nothing to remove */
    }
    throw new MeshbenchError('E_ENV', `cannot write ${what} in ${dir}: ${errnoText(err)}`, { hint, cause: err });
  }
}

export function runDir(resultsRoot: string, scenario: string, runId: string): string {
  return resolve(resultsRoot, scenario, runId);
}

export function runFile(dir: string): string {
  return join(dir, 'run.json');
}

export function readRun(file: string): RunRecord {
  let j: RunRecord;
  try {
    j = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw inputError(`${file}:1: cannot read run record: ${(e as Error).message}`);
  }
  if (j.schema !== RUN_SCHEMA) throw inputError(`${file}:1: not a meshbench run record (schema ${String(j.schema)}, expected ${RUN_SCHEMA})`);
  return j;
}
