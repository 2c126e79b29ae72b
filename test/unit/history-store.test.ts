// The history store (harness/history/store.ts) and its exports (export.ts), on run records made
// from the recorded fixtures in test/fixtures/runs: add, read back, idempotency, testbeds kept
// apart, not-ok cases as gaps, corrupt and foreign files (E_INPUT, nothing appended), concurrent
// appends in one process and across processes, and the shapes of both export formats.
import test, { type ExecutionContext } from 'ava';
import { execFile } from 'node:child_process';
import { appendFileSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { MeshbenchError } from '../../harness/errors.js';
import { exportFiles, exportHistory, writeExport } from '../../harness/history/export.js';
import { HISTORY_SCHEMA, historyAdd, kernelOf, readHistory, rowsOfRun, series, testbedOf, type HistoryRow } from '../../harness/history/store.js';
import type { RunRecord } from '../../harness/results/types.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const FIX = join(ROOT, 'test/fixtures/runs');
const fixture = (name: string): RunRecord => JSON.parse(readFileSync(join(FIX, `${name}.json`), 'utf8'));

function tmp(t: ExecutionContext): string {
  const d = mkdtempSync(join(tmpdir(), 'mb-history-'));
  t.teardown(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

/** A run record made from a fixture: its own run id, start time and commit, then `patch` applied. */
function variant(base: RunRecord, n: number, patch: (r: RunRecord) => void = () => {}): RunRecord {
  const r: RunRecord = structuredClone(base);
  const at = new Date(Date.UTC(2026, 10, 1) + n * 86_400_000);
  r.runId = `${at.toISOString().slice(0, 10).replaceAll('-', '')}T000000Z-t${String(n).padStart(3, '0')}`;
  r.startedAt = at.toISOString();
  r.environment.commit = `${String(n).padStart(4, '0')}${'c'.repeat(36)}`;
  patch(r);
  return r;
}

function writeRun(dir: string, r: RunRecord): string {
  const f = join(dir, `${r.runId}.json`);
  writeFileSync(f, JSON.stringify(r, null, 2) + '\n');
  return f;
}

/** Every file under dir, relative, with its bytes. */
function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const f of readdirSync(dir, { recursive: true }) as string[]) {
    try {
      out[f] = readFileSync(join(dir, f), 'utf8');
    } catch {
      /* a directory */
    }
  }
  return out;
}

const metrics = (rows: HistoryRow[]) => rows.filter((r) => r.kind === 'metric');

test('add then read back: a run row, then one row per ok case repeat and metric, with the record figures', async (t) => {
  const d = tmp(t);
  const hist = join(d, 'history');
  const seven = variant(fixture('quick-seven'), 1);
  const res = await historyAdd(hist, [writeRun(d, seven)]);
  const rows = readHistory(hist);
  t.deepEqual(res, { added: 1, rows: rows.length, skipped: [] });
  t.is(rows[0].kind, 'run');
  t.true(rows.every((r) => r.schema === HISTORY_SCHEMA && r.runId === seven.runId && r.commit === seven.environment.commit));
  const ms = metrics(rows);
  for (const c of seven.cases) {
    const of = (m: string) => ms.find((r) => r.kind === 'metric' && r.dataplane === c.dataplane && r.metric === m);
    t.is(of('p50')?.value, c.latencyUs!.p50);
    t.is(of('p99')?.value, c.latencyUs!.p99);
    t.is(of('qps')?.value, c.load.actual.qps);
    t.is(of('startup:firstRequestMs')?.value, c.startup!.firstRequestMs);
    t.is(of('startup:podReadyMs')?.value, Math.max(...Object.values(c.startup!.podReadyMs)));
    for (const [role, v] of Object.entries(c.resources!.byRole)) {
      t.is(of(`cpu:${role}`)?.value, v.cpuSeconds);
      t.is(of(`pss:${role}`)?.value, v.pssBytes);
    }
  }
  const p99 = ms.find((r) => r.kind === 'metric' && r.metric === 'p99')!;
  t.like(p99, { unit: 'us', direction: 'lower-is-better' });
  t.like(
    ms.find((r) => r.kind === 'metric' && r.metric === 'qps'),
    { unit: 'qps', direction: 'higher-is-better' },
  );
  // One file per run, under its month.
  const files = Object.keys(snapshot(hist)).filter((f) => f.endsWith('.jsonl'));
  t.deepEqual(files, [join('2026-11', `${seven.runId}.${rows[0].testbed}.jsonl`)]);
});

test('adding the same run again adds nothing and leaves every byte as it was', async (t) => {
  const d = tmp(t);
  const hist = join(d, 'history');
  const f = writeRun(d, variant(fixture('compare-a'), 2));
  const first = await historyAdd(hist, [f]);
  const before = snapshot(hist);
  const again = await historyAdd(hist, [f, f]);
  t.is(again.added, 0);
  t.is(again.rows, 0);
  t.is(again.skipped.length, 2);
  t.regex(again.skipped[0].reason, /already in the history/);
  t.deepEqual(snapshot(hist), before);
  t.is(readHistory(hist).length, first.rows);
  // The same run given twice in one call is added once.
  const hist2 = join(d, 'h2');
  const both = await historyAdd(hist2, [f, f]);
  t.is(both.added, 1);
  t.regex(both.skipped[0].reason, /given twice/);
  t.deepEqual(snapshot(hist2), before, 'a run gives the same bytes wherever it is added');
});

test('two testbeds never share a series; memory noise of a reboot keeps the testbed; a hosts run is its own testbed', async (t) => {
  const d = tmp(t);
  const hist = join(d, 'history');
  const base = fixture('quick-baseline');
  const a = variant(base, 1);
  const a2 = variant(base, 2, (r) => (r.environment.memoryBytes += 300 << 20));
  const b = variant(base, 3, (r) => (r.environment.hostname = 'other-box'));
  const c = variant(base, 4, (r) => (r.environment.cores = 8));
  const h = variant(base, 5, (r) => {
    r.environment.hosts = [
      {
        name: 'n1',
        address: '10.0.0.1',
        kernel: '6.1.0',
        cpus: 4,
        memoryBytes: 8 * 2 ** 30,
        labInterface: 'eth1',
        virtualisation: 'none',
        functionalOnly: false,
      },
      {
        name: 'n0',
        address: '10.0.0.2',
        kernel: '6.1.0',
        cpus: 4,
        memoryBytes: 8 * 2 ** 30,
        labInterface: 'eth1',
        virtualisation: 'none',
        functionalOnly: false,
      },
    ];
  });
  t.is(testbedOf(a.environment).id, testbedOf(a2.environment).id);
  const ids = new Set([a, b, c, h].map((r) => testbedOf(r.environment).id));
  t.is(ids.size, 4);
  t.regex(testbedOf(h.environment).id, /^hosts2-/);
  t.deepEqual(kernelOf(h.environment), { kernel: '6.1.0', virtualisation: 'none', functionalOnly: false });
  await historyAdd(
    hist,
    [a, a2, b, c, h].map((r) => writeRun(d, r)),
  );
  const s = series(readHistory(hist));
  const p99 = [...s.values()].filter((x) => x.metric === 'p99');
  t.is(p99.length, 4);
  t.deepEqual(p99.map((x) => x.points.length).sort(), [1, 1, 1, 2]);
  for (const x of s.values()) t.is(new Set(x.points.map((p) => p.runId)).size, x.points.length);
  for (const [key, x] of s) t.true(key.startsWith(`${x.testbed}|`));
});

test('a kernel under TCG is its own series and its rows are flagged functional only (left out of exports)', async (t) => {
  const d = tmp(t);
  const hist = join(d, 'history');
  const base = fixture('quick-baseline');
  const kf = (virtualisation: 'none' | 'tcg') => (r: RunRecord) => {
    r.environment.kernelFacts = { release: '6.1.0-tcgtest', virtualisation, functionalOnly: virtualisation === 'tcg' };
  };
  await historyAdd(hist, [writeRun(d, variant(base, 1, kf('none'))), writeRun(d, variant(base, 2, kf('tcg')))]);
  const rows = readHistory(hist);
  t.true(rows.filter((r) => r.virtualisation === 'tcg').every((r) => r.functionalOnly));
  t.true(rows.filter((r) => r.virtualisation === 'none').every((r) => !r.functionalOnly));
  const p99 = [...series(rows).values()].filter((x) => x.metric === 'p99');
  t.deepEqual(p99.map((x) => [x.virtualisation, x.functionalOnly, x.points.length]).sort(), [
    ['none', false, 1],
    ['tcg', true, 1],
  ]);
  t.deepEqual(
    exportHistory(rows, 'bmf').map((e) => e.virtualisation),
    ['none'],
  );
  t.is(exportHistory(rows, 'bmf', { includeFunctionalOnly: true }).length, 2);
});

test('a case that is not ok gives no figures (even with latency recorded), only a case row and a gap in its series', async (t) => {
  const d = tmp(t);
  const hist = join(d, 'history');
  const seven = fixture('quick-seven');
  const good = variant(seven, 1);
  const bad = variant(seven, 2, (r) => {
    const c = r.cases.find((x) => x.dataplane === 'istio-sidecar')!;
    c.status = 'degraded';
    c.validity = { ok: false, reasons: ['achieved 80% of the requested rate'], processesDown: [], limits: { maxErrorRate: 0.001, minRateRatio: 0.95 } };
    t.truthy(c.latencyUs, 'the degraded case still carries latency: it must not be used');
  });
  const later = variant(seven, 3);
  await historyAdd(
    hist,
    [later, bad, good].map((r) => writeRun(d, r)),
  );
  const rows = readHistory(hist);
  const ofBad = rows.filter((r) => r.runId === bad.runId && r.kind !== 'run' && r.dataplane === 'istio-sidecar');
  t.deepEqual(
    ofBad.map((r) => r.kind),
    ['case'],
  );
  t.like(ofBad[0], { kind: 'case', status: 'degraded', reasons: ['achieved 80% of the requested rate'] });
  const run = rows.find((r) => r.kind === 'run' && r.runId === bad.runId);
  t.like(run, { kind: 'run', cases: 7, okCases: 6 });
  const p99 = [...series(rows).values()].find((x) => x.metric === 'p99' && x.dataplane === 'istio-sidecar')!;
  t.deepEqual(
    p99.points.map((p) => p.runId),
    [good.runId, later.runId],
    'points in time order, the not-ok run left out',
  );
  t.deepEqual(p99.gaps, [{ commit: bad.environment.commit, at: bad.startedAt, runId: bad.runId, statuses: ['degraded'] }]);
  const base = [...series(rows).values()].find((x) => x.metric === 'p99' && x.dataplane === 'baseline')!;
  t.is(base.points.length, 3);
  t.deepEqual(base.gaps, []);
});

test('repeats are rows of their own; a series point is the median of the ok repeats, with each value; a failed repeat is counted', async (t) => {
  const d = tmp(t);
  const hist = join(d, 'history');
  const a = variant(fixture('compare-a'), 1, (r) => {
    const c = r.cases.find((x) => x.dataplane === 'baseline' && x.repeat === 4)!;
    c.status = 'failed';
    c.error = 'fortio exited 1';
  });
  await historyAdd(hist, [writeRun(d, a)]);
  const rows = readHistory(hist);
  const reps = metrics(rows).filter((r) => r.kind === 'metric' && r.metric === 'p99' && r.dataplane === 'baseline');
  t.deepEqual(
    reps.map((r) => r.kind === 'metric' && r.repeat),
    [0, 1, 2, 3],
  );
  const expected = a.cases.filter((c) => c.dataplane === 'baseline' && c.status === 'ok').map((c) => c.latencyUs!.p99);
  const p = [...series(rows).values()].find((x) => x.metric === 'p99' && x.dataplane === 'baseline')!.points[0];
  t.deepEqual(p.values, expected);
  const s = [...expected].sort((x, y) => x - y);
  t.is(p.value, (s[1] + s[2]) / 2);
  t.is(p.notOk, 1);
  t.like(
    rows.find((r) => r.kind === 'case'),
    { status: 'failed', reasons: ['fortio exited 1'], repeat: 4 },
  );
});

test('a corrupt line or a foreign file is E_INPUT naming file:line, and nothing is appended', async (t) => {
  const d = tmp(t);
  const hist = join(d, 'history');
  const base = fixture('quick-baseline');
  await historyAdd(hist, [writeRun(d, variant(base, 1))]);
  const [file] = (readdirSync(hist, { recursive: true }) as string[]).filter((f) => f.endsWith('.jsonl')).map((f) => join(hist, f));
  const lines = readFileSync(file, 'utf8').split('\n').length - 1;
  appendFileSync(file, '{"schema":"meshbench/history/v1","kind":"metric","runId":\n');
  const before = snapshot(hist);
  const next = writeRun(d, variant(base, 2));
  for (const act of [() => readHistory(hist), () => historyAdd(hist, [next])]) {
    const err = await t.throwsAsync(async () => act(), { instanceOf: MeshbenchError });
    t.is(err!.code, 'E_INPUT');
    t.is(err!.exitCode, 2);
    t.true(err!.message.includes(`${file}:${lines + 1}:`), err!.message);
    t.true(err!.details[0].startsWith(`${file}:${lines + 1}: not JSON`), err!.details[0]);
  }
  t.deepEqual(snapshot(hist), before, 'nothing appended');

  // A row of another schema, and a file that is no history file at all.
  writeFileSync(file, before[Object.keys(before).find((k) => k.endsWith('.jsonl'))!].split('\n').slice(0, lines).join('\n') + '\n');
  t.notThrows(() => readHistory(hist));
  mkdirSync(join(hist, 'other'));
  writeFileSync(join(hist, 'other', 'x.jsonl'), '{"schema":"meshbench/run/v1","runId":"x"}\n');
  const foreign = t.throws(() => readHistory(hist), { instanceOf: MeshbenchError })!;
  t.regex(foreign.message, /other\/x\.jsonl:1: not a meshbench\/history\/v1 row/);
  rmSync(join(hist, 'other'), { recursive: true });
  writeFileSync(join(hist, 'bench.json'), '{}\n');
  t.regex(t.throws(() => readHistory(hist), { instanceOf: MeshbenchError })!.message, /bench\.json:1: not a history file/);
  rmSync(join(hist, 'bench.json'));
  // A row whose field is wrong names its line and field.
  const good = readFileSync(file, 'utf8').split('\n');
  const row = JSON.parse(good[1]);
  row.value = 'fast';
  writeFileSync(file, [good[0], JSON.stringify(row), ...good.slice(2)].join('\n'));
  t.regex(t.throws(() => readHistory(hist), { instanceOf: MeshbenchError })!.message, new RegExp(`${file}:2: value: `));
});

test('a bad run.json among good ones is E_INPUT with file:line and nothing is appended; an incomplete run is skipped', async (t) => {
  const d = tmp(t);
  const hist = join(d, 'history');
  const base = fixture('quick-baseline');
  await historyAdd(hist, [writeRun(d, variant(base, 1))]);
  const before = snapshot(hist);
  const good = writeRun(d, variant(base, 2));
  const truncated = join(d, 'truncated.json');
  writeFileSync(truncated, readFileSync(good, 'utf8').slice(0, 400));
  const foreign = join(d, 'foreign.json');
  writeFileSync(foreign, JSON.stringify({ schema: 'something/else' }, null, 2));
  const noEnv = join(d, 'noenv.json');
  writeFileSync(
    noEnv,
    JSON.stringify(
      variant(base, 3, (r) => delete (r as Partial<RunRecord>).environment),
      null,
      2,
    ),
  );
  const err = await t.throwsAsync(historyAdd(hist, [good, truncated, foreign, noEnv]), { instanceOf: MeshbenchError });
  t.is(err!.code, 'E_INPUT');
  t.is(err!.details.length, 3);
  t.regex(err!.details[0], new RegExp(`^${truncated}:\\d+: not JSON`));
  t.regex(err!.details[1], new RegExp(`^${foreign}:2: not a meshbench run record`));
  t.regex(err!.details[2], new RegExp(`^${noEnv}:1: environment is missing`));
  t.deepEqual(snapshot(hist), before, 'nothing appended, not even the good run');
  const incomplete = writeRun(
    d,
    variant(base, 4, (r) => (r.status = 'incomplete')),
  );
  const res = await historyAdd(hist, [incomplete]);
  t.is(res.added, 0);
  t.regex(res.skipped[0].reason, /incomplete/);
});

test('appends at once lose no row and add each run once: in one process and across processes', async (t) => {
  const d = tmp(t);
  const hist = join(d, 'history');
  const base = fixture('quick-baseline');
  const perRun = rowsOfRun(base).length;
  const shared = [90, 91].map((n) => writeRun(d, variant(base, n)));
  // In one process: 8 adds started together, each its own run plus the two shared ones.
  const inProcess = await Promise.all(Array.from({ length: 8 }, (_, i) => historyAdd(hist, [writeRun(d, variant(base, i)), ...shared])));
  t.is(
    inProcess.reduce((s, r) => s + r.added, 0),
    10,
  );
  t.is(readHistory(hist).length, 10 * perRun);
  // Across processes: 4 children, 6 runs each, plus two more runs all of them add.
  const shared2 = [92, 93].map((n) => writeRun(d, variant(base, n)));
  const script = join(d, 'add.mts');
  writeFileSync(
    script,
    `import { historyAdd } from ${JSON.stringify(join(ROOT, 'harness/history/store.ts'))};\n` +
      'const [dir, ...files] = process.argv.slice(2);\nprocess.stdout.write(JSON.stringify(await historyAdd(dir, files)));\n',
  );
  const run = promisify(execFile);
  const children = await Promise.all(
    Array.from({ length: 4 }, (_, c) => {
      const own = Array.from({ length: 6 }, (_, i) => writeRun(d, variant(base, 10 + c * 6 + i)));
      // Shared runs first for half of them and last for the others, so they race on the same files.
      const files = c % 2 ? [...own, ...shared2] : [...shared2, ...own];
      return run(process.execPath, ['--import', 'tsx', script, hist, ...files], { cwd: ROOT });
    }),
  );
  const results = children.map((c) => JSON.parse(c.stdout) as { added: number; rows: number });
  t.is(
    results.reduce((s, r) => s + r.added, 0),
    4 * 6 + 2,
  );
  const rows = readHistory(hist);
  t.is(rows.length, (10 + 26) * perRun);
  t.is(new Set(rows.filter((r) => r.kind === 'run').map((r) => r.runId)).size, 36);
  t.deepEqual(
    (readdirSync(hist, { recursive: true }) as string[]).filter((f) => f.endsWith('.tmp')),
    [],
    'no temporary file left',
  );
});

test('bmf export: one document per commit and testbed, benchmark → measure → {value, lower_value, upper_value}', async (t) => {
  const d = tmp(t);
  const hist = join(d, 'history');
  const a = variant(fixture('compare-a'), 1);
  const b = variant(fixture('compare-b'), 2);
  const other = variant(fixture('compare-a'), 3, (r) => {
    r.environment.hostname = 'box2';
    r.environment.commit = a.environment.commit; // the same commit measured on another machine
  });
  await historyAdd(
    hist,
    [a, b, other].map((r) => writeRun(d, r)),
  );
  const rows = readHistory(hist);
  const ex = exportHistory(rows, 'bmf');
  t.deepEqual(
    ex.map((e) => e.runIds),
    [[a.runId], [b.runId], [other.runId]],
  );
  const doc = ex[0].document;
  for (const [bench, measures] of Object.entries(doc)) {
    t.regex(bench, /^quick\/(baseline|istio-sidecar)\/http1-100qps$/);
    for (const m of Object.values(measures)) {
      t.true(Object.keys(m).every((k) => ['value', 'lower_value', 'upper_value'].includes(k)));
      t.is(typeof m.value, 'number');
      t.true(m.lower_value! <= m.value && m.value <= m.upper_value!);
    }
  }
  const p99s = a.cases.filter((c) => c.dataplane === 'baseline').map((c) => c.latencyUs!.p99);
  t.deepEqual(doc['quick/baseline/http1-100qps']['p99 (us)'], {
    value: [...p99s].sort((x, y) => x - y)[2],
    lower_value: Math.min(...p99s),
    upper_value: Math.max(...p99s),
  });
  t.deepEqual(
    exportHistory(rows, 'bmf', { latest: true }).map((e) => e.runIds[0]),
    [b.runId, other.runId],
    'latest: the newest of each testbed',
  );
  t.deepEqual(
    exportHistory(rows, 'bmf', { commit: a.environment.commit.slice(0, 8) }).map((e) => e.runIds[0]),
    [a.runId, other.runId],
  );
  const files = writeExport(join(d, 'out'), ex);
  t.is(files.length, 3);
  t.deepEqual(JSON.parse(readFileSync(files[0], 'utf8')), doc);
});

test('gab export: customSmallerIsBetter and customBiggerIsBetter arrays of {name, unit, value, range?, extra?}', async (t) => {
  const d = tmp(t);
  const hist = join(d, 'history');
  await historyAdd(hist, [writeRun(d, variant(fixture('compare-a'), 1)), writeRun(d, variant(fixture('quick-baseline'), 2))]);
  const ex = exportHistory(readHistory(hist), 'gab');
  t.is(ex.length, 2);
  for (const e of ex) {
    for (const entry of [...e.customSmallerIsBetter, ...e.customBiggerIsBetter]) {
      t.true(Object.keys(entry).every((k) => ['name', 'unit', 'value', 'range', 'extra'].includes(k)));
      t.is(typeof entry.name, 'string');
      t.is(typeof entry.unit, 'string');
      t.is(typeof entry.value, 'number');
      if (entry.range !== undefined) t.regex(entry.range, /^± [\d.e+-]+$/);
      if (entry.extra !== undefined) t.is(typeof entry.extra, 'string');
    }
    t.true(e.customSmallerIsBetter.some((x) => x.name.endsWith(' p99') && x.unit === 'us'));
    t.deepEqual(
      e.customBiggerIsBetter.map((x) => x.name.split(' ')[1]),
      e.customBiggerIsBetter.map(() => 'qps'),
    );
  }
  const repeated = ex[0].customSmallerIsBetter.find((x) => x.name === 'quick/baseline/http1-100qps p99')!;
  t.truthy(repeated.range, 'five repeats give a range');
  t.regex(repeated.extra!, /^5 repeats/);
  t.is(ex[1].customSmallerIsBetter[0].range, undefined, 'one repeat: no range');
  const names = exportFiles(ex).map((f) => f.name);
  t.true(names.every((n) => /-(smaller|bigger)\.json$/.test(n)));
  t.is(names.length, 4);
  const bad = t.throws(() => exportHistory([], 'csv' as 'bmf'), { instanceOf: MeshbenchError })!;
  t.is(bad.code, 'E_INPUT');
});
