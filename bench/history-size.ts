// History size per run: recorded runs (test/fixtures/runs) appended to a fresh history, the bytes
// each adds on disk and gzip-compressed (what a git branch stores), and how long reading back
// and grouping into series takes as the history grows to `copies` × those runs.
// Usage: npx tsx bench/history-size.ts [copies=200]
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { historyAdd, readHistory, series } from '../harness/history/store.js';

const copies = Number(process.argv[2] ?? 200);
const FIXTURES = ['quick-seven.json', 'seed-001-quick.json', 'quick-baseline.json'];
const dir = mkdtempSync(join(tmpdir(), 'mb-history-size-'));
const files = (d: string): string[] =>
  !existsSync(d)
    ? []
    : readdirSync(d, { recursive: true, encoding: 'utf8' })
        .map((f) => join(d, f))
        .filter((f) => f.endsWith('.jsonl'));
try {
  const h = join(dir, 'history');
  for (const f of FIXTURES) {
    const before = new Set(files(h));
    const r = await historyAdd(h, [join('test/fixtures/runs', f)]);
    const added = files(h).filter((x) => !before.has(x));
    const bytes = added.reduce((a, x) => a + statSync(x).size, 0);
    const gz = added.reduce((a, x) => a + gzipSync(readFileSync(x)).length, 0);
    const run = JSON.parse(readFileSync(join('test/fixtures/runs', f), 'utf8'));
    console.log(
      `${f}: ${run.cases.length} case(s), ${r.rows} rows, ${(bytes / 1024).toFixed(1)} KiB (${(gz / 1024).toFixed(1)} KiB gzip), ${Math.round(bytes / Math.max(1, r.rows))} B/row`,
    );
  }
  // Grow: the same runs again under new run ids and commits.
  const base = JSON.parse(readFileSync('test/fixtures/runs/quick-seven.json', 'utf8'));
  const batch: string[] = [];
  for (let i = 0; i < copies; i++) {
    const run = {
      ...base,
      runId: `20260101T${String(i).padStart(6, '0')}Z-s${String(i % 1000).padStart(3, '0')}`,
      startedAt: new Date(Date.UTC(2026, 0, 1) + i * 86_400_000).toISOString(),
    };
    run.environment = { ...base.environment, commit: i.toString(16).padStart(40, '0') };
    const f = join(dir, `run-${i}.json`);
    writeFileSync(f, JSON.stringify(run));
    batch.push(f);
  }
  await historyAdd(h, batch);
  const total = files(h).reduce((a, x) => a + statSync(x).size, 0);
  let t0 = performance.now();
  const rows = readHistory(h);
  const readMs = performance.now() - t0;
  t0 = performance.now();
  const s = series(rows);
  const seriesMs = performance.now() - t0;
  console.log(
    `${copies + FIXTURES.length} runs: ${(total / 2 ** 20).toFixed(1)} MiB, ${rows.length} rows; read ${readMs.toFixed(0)} ms, ${s.size} series in ${seriesMs.toFixed(0)} ms`,
  );
} finally {
  rmSync(dir, { recursive: true, force: true });
}
