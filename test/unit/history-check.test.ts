// `history check` over a history built from a recorded run whose figures are varied per run
// (seeded noise, CV 3 %): a 20 % p50 step at run 20 of 30 is a new regression named by its commit
// range; noise alone, an old regression (beyond --recent) and an improvement do not fail; the
// command line prints it and exits 1 only for the new one.
import test from 'ava';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkHistory, formatCheck, newRegressions } from '../../harness/history/check.js';
import { historyAdd, readHistory } from '../../harness/history/store.js';
import type { RunRecord } from '../../harness/results/types.js';
import { cli } from '../helpers.js';

const BASE = JSON.parse(readFileSync('test/fixtures/runs/quick-baseline.json', 'utf8')) as RunRecord;

/** Deterministic noise: a small LCG and Box–Muller. */
function gauss(seed: number): () => number {
  let s = seed >>> 0;
  const u = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) + 1) / 4294967297;
  return () => Math.sqrt(-2 * Math.log(u())) * Math.cos(2 * Math.PI * u());
}

/** A history of `n` runs of the baseline fixture, run i's p50 (and p90/p99) times factor(i) × noise. */
async function history(n: number, factor: (i: number) => number, seed = 7): Promise<{ dir: string; commits: string[] }> {
  const dir = mkdtempSync(join(tmpdir(), 'mb-history-check-'));
  const g = gauss(seed);
  const commits: string[] = [];
  const files: string[] = [];
  for (let i = 0; i < n; i++) {
    const run = structuredClone(BASE);
    const commit = (i + 1).toString(16).padStart(4, '0').repeat(10);
    commits.push(commit);
    run.runId = `20261101T${String(i).padStart(6, '0')}Z-h${String(i).padStart(3, '0')}`;
    run.startedAt = new Date(Date.UTC(2026, 10, 1, 0, i)).toISOString();
    run.environment.commit = commit;
    const k = factor(i) * (1 + 0.03 * g());
    for (const c of run.cases) for (const q of ['p50', 'p90', 'p99'] as const) if (c.latencyUs) c.latencyUs[q] = Math.round(c.latencyUs[q] * k);
    const f = join(dir, `run-${i}.json`);
    writeFileSync(f, JSON.stringify(run));
    files.push(f);
  }
  await historyAdd(join(dir, 'h'), files);
  return { dir, commits };
}

test('a 20 % p50 step at run 20 of 30 is a new regression, named by the commits either side of it; noise is quiet', async (t) => {
  const step = await history(30, (i) => (i >= 20 ? 1.2 : 1));
  const quiet = await history(30, () => 1, 11);
  try {
    const c = checkHistory(readHistory(join(step.dir, 'h')), { metrics: ['p50'] });
    const fresh = newRegressions(c);
    t.is(fresh.length, 1, formatCheck(c));
    const [s] = fresh;
    t.is(s.series.dataplane, 'baseline');
    t.true(Math.abs(s.open!.index - 20) <= 2, `found at ${s.open!.index}`);
    t.true(s.open!.relChange > 0.1 && s.open!.interval[0] > 0);
    const at = s.open!.index;
    t.deepEqual(
      [s.open!.range.from.commit, s.open!.range.to.commit],
      [step.commits[at - 1], step.commits[at]],
      'the commit range is the runs either side of the change',
    );
    t.regex(formatCheck(c), /^NEW REGRESSION: quick baseline http1-200qps p50 .* \+2\d\.\d %/m);

    const q = checkHistory(readHistory(join(quiet.dir, 'h')), { metrics: ['p50', 'p99'] });
    t.is(newRegressions(q).length, 0, formatCheck(q));
    t.is(q.series.length, 2);
  } finally {
    rmSync(step.dir, { recursive: true, force: true });
    rmSync(quiet.dir, { recursive: true, force: true });
  }
});

test('an old regression (before the last --recent runs) and an improvement do not fail the check', async (t) => {
  const old = await history(40, (i) => (i >= 12 ? 1.2 : 1));
  const better = await history(30, (i) => (i >= 20 ? 0.8 : 1));
  try {
    const o = checkHistory(readHistory(join(old.dir, 'h')), { metrics: ['p50'], recent: 10 });
    t.truthy(o.series[0].open, 'still open');
    t.false(o.series[0].isNew);
    t.is(newRegressions(o).length, 0);
    t.is(newRegressions(checkHistory(readHistory(join(old.dir, 'h')), { metrics: ['p50'], recent: 30 })).length, 1, 'new with a longer --recent');
    const b = checkHistory(readHistory(join(better.dir, 'h')), { metrics: ['p50'] });
    t.is(b.series[0].changePoints.length, 1);
    t.false(b.series[0].changePoints[0].regression);
    t.is(newRegressions(b).length, 0);
  } finally {
    rmSync(old.dir, { recursive: true, force: true });
    rmSync(better.dir, { recursive: true, force: true });
  }
});

test('meshbench history check: exit 1 and the regression on a new step, exit 0 and the count on a quiet history; too-short series are skipped', async (t) => {
  const step = await history(30, (i) => (i >= 20 ? 1.2 : 1));
  const short = await history(6, () => 1);
  try {
    const r = await cli(['history', 'check', '--history', join(step.dir, 'h'), '--metric', 'p50']);
    t.is(r.code, 1, r.stderr);
    t.regex(r.stdout, /^NEW REGRESSION: /m);
    t.regex(r.stdout, /1 new regression\(s\) beyond 5\.0 % in the last 10 runs$/m);
    const j = await cli(['history', 'check', '--history', join(step.dir, 'h'), '--metric', 'p50', '--json']);
    t.is(j.code, 1);
    t.is(JSON.parse(j.stdout).newRegressions.length, 1);
    const s = await cli(['history', 'check', '--history', join(short.dir, 'h')]);
    t.is(s.code, 0, s.stderr);
    t.regex(s.stdout, /^0 series checked, \d+ skipped; 0 change point\(s\); no new regression$/m);
    t.is((await cli(['history', 'check', '--history', join(short.dir, 'h'), '--min-effect', '2'])).code, 2, 'bad option: exit 2');
  } finally {
    rmSync(step.dir, { recursive: true, force: true });
    rmSync(short.dir, { recursive: true, force: true });
  }
});
