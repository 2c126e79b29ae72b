// The history end to end on this machine (root): twelve real runs of a tiny baseline scenario, the
// last six with a regression injected for real (the echo server waits 2 ms before answering:
// workload serverDelay, fortio's own delay), appended to a history; `history check` finds the
// regression at the seventh run and exits 1, `history report` writes the trend page naming it.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cli, cleanAround, quickScenarioCopy, rootTest } from '../helpers.js';

cleanAround();

const RUNS = 12;
const runJson = (stdout: string) => /^run record: (.+)$/m.exec(stdout)?.[1];

rootTest('12 real runs, a 2 ms server delay from the 7th: history check exits 1 naming that run; the trend page lists it', async (t) => {
  t.timeout(600_000);
  const dir = mkdtempSync(join(tmpdir(), 'mb-history-e2e-'));
  try {
    // One file per half (the scenario's name stays `tiny`, so both halves are one series).
    const plain = quickScenarioCopy(dir, 100, (x) => x.replace('name: quick', 'name: tiny'));
    const delayed = join(dir, 'tiny-delay.yaml');
    writeFileSync(delayed, readFileSync(plain, 'utf8').replace('    responseBytes: 128\n', '    responseBytes: 128\n    serverDelay: 2ms\n'));
    const files: string[] = [];
    for (let i = 0; i < RUNS; i++) {
      const r = await cli([
        'run',
        i >= RUNS / 2 ? delayed : plain,
        '--dataplanes',
        'baseline',
        '--duration',
        '1',
        '--warmup',
        '0.3',
        '--results',
        join(dir, 'results'),
        '--no-report',
      ]);
      t.is(r.code, 0, r.stderr.slice(-2000));
      files.push(runJson(r.stdout)!);
    }
    const runIds = files.map((f) => JSON.parse(readFileSync(f, 'utf8')).runId as string);
    const p50 = files.map((f) => JSON.parse(readFileSync(f, 'utf8')).cases[0].latencyUs.p50 as number);
    t.log(`p50 µs per run: ${p50.join(' ')}`);

    const h = join(dir, 'history');
    const add = await cli(['history', 'add', ...files, '--history', h]);
    t.is(add.code, 0, add.stderr);
    t.regex(add.stdout, new RegExp(`^added ${RUNS} run\\(s\\)`));

    const check = await cli(['history', 'check', '--history', h, '--metric', 'p50', '--json']);
    t.is(check.code, 1, `${check.stdout}\n${check.stderr}`);
    const j = JSON.parse(check.stdout);
    t.is(j.newRegressions.length, 1);
    const [s] = j.series;
    t.is(s.dataplane, 'baseline');
    t.is(s.openRegression.index, RUNS / 2, 'the change is at the first run with the delay');
    t.true(s.openRegression.relChange > 1, 'p50 more than doubled');
    const text = await cli(['history', 'check', '--history', h, '--metric', 'p50']);
    t.regex(text.stdout, new RegExp(`^NEW REGRESSION: tiny baseline http1-200qps p50 .*\\(run ${runIds[RUNS / 2]}\\)$`, 'm'));

    const rep = await cli(['history', 'report', '--history', h, '--reports', join(dir, 'reports')]);
    t.is(rep.code, 0, rep.stderr);
    t.regex(rep.stdout, /history\/index.html/);
    const page = readFileSync(join(dir, 'reports', 'history', 'index.html'), 'utf8');
    t.true(page.includes(runIds[RUNS / 2]), 'the trend page names the run where the regression starts');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
