// `meshbench history add|export` from the command line (rootless): run records appended once,
// exported for github-action-benchmark, and bad input refused with exit 2 and nothing appended.
import test from 'ava';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cli } from '../helpers.js';

const RUNS = ['test/fixtures/runs/quick-seven.json', 'test/fixtures/runs/seed-001-quick.json'];

test('history add appends each run once; export writes gab files; bad input is exit 2 with nothing appended', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'mb-history-cli-'));
  try {
    const h = join(dir, 'h');
    const add = await cli(['history', 'add', ...RUNS, '--history', h]);
    t.is(add.code, 0, add.stderr);
    t.regex(add.stdout, /^added 2 run\(s\), \d+ row\(s\) to /);
    const again = await cli(['history', 'add', RUNS[0], '--history', h]);
    t.regex(again.stdout, /^added 0 run\(s\)/, 'a run added twice adds nothing');

    const out = join(dir, 'out');
    const ex = await cli(['history', 'export', '--format', 'gab', '--history', h, '--out', out, '--include-functional-only']);
    t.is(ex.code, 0, ex.stderr);
    const files = ex.stdout.trim().split('\n');
    t.true(files.length >= 2 && files.every((f) => f.startsWith(out) && /-(smaller|bigger)\.json$/.test(f)), ex.stdout);
    const first = JSON.parse(readFileSync(files[0], 'utf8'));
    t.true(Array.isArray(first) && first.every((e: { name?: string; unit?: string; value?: number }) => e.name && e.unit && typeof e.value === 'number'));

    t.is((await cli(['history', 'export', '--format', 'nope', '--history', h])).code, 2);
    const before = readdirSync(h, { recursive: true }).length;
    const bad = join(dir, 'bad.json');
    writeFileSync(bad, '{"schema": "something/else"}\n');
    const r = await cli(['history', 'add', bad, RUNS[1], '--history', h]);
    t.is(r.code, 2, r.stderr);
    t.regex(r.stderr, /bad\.json:1/);
    t.is(readdirSync(h, { recursive: true }).length, before, 'nothing appended');
    mkdirSync(join(h, '2026-01'), { recursive: true });
    writeFileSync(join(h, '2026-01', 'x.jsonl'), 'garbage\n');
    const corrupt = await cli(['history', 'export', '--format', 'bmf', '--history', h, '--out', out]);
    t.is(corrupt.code, 2);
    t.regex(corrupt.stderr, /x\.jsonl:1: not JSON/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
