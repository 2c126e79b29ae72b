// The tree's formatting and lint rules (biome.json) and the types of the tests and benches
// (tsconfig.test.json; tsx runs them without checking), so CI fails on a violation.
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { PROJECT_ROOT } from '../../harness/util/tools.js';

const bin = (name: string) => join(PROJECT_ROOT, 'node_modules', '.bin', name);
const run = (cmd: string, args: string[]) => spawnSync(cmd, args, { cwd: PROJECT_ROOT, encoding: 'utf8', timeout: 120_000 });

test('biome ci: every source file is formatted and passes the lint rules', (t) => {
  const r = run(bin('biome'), ['ci', '--colors=off', '.']);
  t.is(r.status, 0, `${r.stdout}\n${r.stderr}\nfix with: npx biome check --write .`);
});

test('tsc: the tests and benches type-check', (t) => {
  const r = run(bin('tsc'), ['-p', 'tsconfig.test.json']);
  t.is(r.status, 0, r.stdout + r.stderr);
});
