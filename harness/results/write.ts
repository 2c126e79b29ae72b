// Writing run records: always whole files (write to a temporary name, then rename), so a reader
// or a crash never sees half a run.json.
import { mkdirSync, renameSync, writeFileSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { inputError } from '../errors.js';
import { RUN_SCHEMA, type RunRecord } from './types.js';

export function writeJsonAtomic(file: string, data: unknown): void {
  mkdirSync(dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(data, null, 2) + '\n');
  renameSync(tmp, file);
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
