// The report's claims section and start-up timeline, from real run records of the seed
// scenarios' quick forms (test/fixtures/runs/seed-*-quick.json, written by `meshbench run
// scenarios/<seed>.yaml --quick` on the 2-core VM; each carries its `reference` as run wrote it).
import test from 'ava';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { claimVerdicts, verdictCounts } from '../../harness/analysis/claims.js';
import { renderReport, writeReport } from '../../harness/report/report.js';
import type { RunRecord } from '../../harness/results/types.js';

const SEED_001 = resolve('test/fixtures/runs/seed-001-quick.json');
const SEED_000 = resolve('test/fixtures/runs/seed-000-quick.json');
const PLAIN = resolve('test/fixtures/runs/quick-baseline.json');
const load = (f: string) => JSON.parse(readFileSync(f, 'utf8')) as RunRecord;

test('the fixtures are real seed runs that carry their reference tables', (t) => {
  for (const [f, table] of [
    [SEED_001, 'mesh-comparison-grpc'],
    [SEED_000, 'cluster-memory-overhead'],
  ] as const) {
    const r = load(f);
    t.is(r.reference?.table, table);
    t.is(r.reference?.tables[0]?.id, table);
    t.true(r.options.quick);
    t.true(
      r.cases.every((c) => c.status === 'ok'),
      `${f}: every case ok`,
    );
  }
});

test('claims come first: a count of verdicts, a line per published figure, then each table with document and measured figures', async (t) => {
  const run = load(SEED_001);
  const { html } = await renderReport([run]);
  const at = ['<header>', 'id="claims"', 'id="latency"'].map((s) => html.indexOf(s));
  t.false(at.includes(-1));
  t.deepEqual(
    [...at].sort((a, b) => a - b),
    at,
    'header, claims, latency',
  );

  const tables = claimVerdicts(run);
  t.deepEqual(
    tables.map((x) => x.id),
    ['mesh-comparison-grpc', 'sidecar-cost-per-pod-001', 'sidecar-resource-sizing'],
  );
  const rows = tables.flatMap((x) => x.rows);
  const section = html.slice(html.indexOf('id="claims"'), html.indexOf('id="latency"'));
  // Summary: one badge per verdict with its count, and one line per row.
  for (const [word, n] of verdictCounts(tables)) t.true(section.includes(`>${word}</span> <strong>${n}</strong>`), `${word}: ${n}`);
  const summary = section.slice(section.indexOf('claims-summary'), section.indexOf('</table>', section.indexOf('claims-summary')));
  t.is(summary.match(/<tr>/g)?.length, rows.length + 1, 'header row + one per figure');
  // Each table: title, document figure, measured figure and reason, escaped as text.
  t.regex(section, /Performance comparison: Cilium vs Istio vs Linkerd/);
  t.true(section.includes('istio-sidecar → <code>istio-sidecar</code>'));
  t.true(section.includes('<td class="fig">~1 ms</td>'), 'the document figure as published');
  const istio = rows.find((r) => r.metric === 'p50_latency_overhead' && r.cells[0]!.column === 'istio-sidecar')!;
  t.true(section.includes(`<td class="fig">${istio.cells[0]!.measured}</td>`), istio.cells[0]!.measured);
  t.regex(istio.cells[0]!.measured!, /^\d+\.\d+ ms \(n = 1\)$/);
  t.regex(section, /Evidence: p50 latency of istio-sidecar minus baseline/);
  t.regex(section, /sizing guideline \(a Kubernetes resource request\), not a measurement/);
  t.regex(section, /One repeat per dataplane/);
  t.regex(section, /<li><strong>connections<\/strong>: 50 \(fortio -c 50\) → 10<\/li>/, 'the scaling is shown');
});

test('extrapolated rows are marked and the figures measured at the lab size are shown apart', async (t) => {
  const run = load(SEED_000);
  const { html } = await renderReport([run]);
  const section = html.slice(html.indexOf('id="claims"'), html.indexOf('id="latency"'));
  const v = claimVerdicts(run).find((x) => x.id === 'cluster-memory-overhead')!;
  t.true(v.rows.every((r) => r.extrapolated));
  t.is(section.match(/<tr class="extrapolated">/g)?.length, v.rows.length);
  t.regex(section, /<h4>Measured here<\/h4>/);
  const nodes = run.cases[0]!.topology!.nodes;
  const pods = run.cases[0]!.topology!.pods;
  t.true(section.includes(`<td>${nodes} / ${pods}</td>`), `${nodes} / ${pods}`);
  t.regex(section, /extrapolations, not measurements/);
  // sidecar-cost-per-pod (also) is judged on measured figures, not extrapolated ones.
  const perPod = claimVerdicts(run).find((x) => x.id === 'sidecar-cost-per-pod')!.rows;
  t.true(perPod.length > 0, 'sidecar-cost-per-pod has rows');
  t.true(perPod.every((r) => !r.extrapolated));
});

test('a run without a reference has no claims section; start-up timeline and per-pod / per-node charts are drawn', async (t) => {
  const plain = await renderReport([load(PLAIN)]);
  t.false(plain.html.includes('id="claims"'));
  const dir = mkdtempSync(join(tmpdir(), 'mb-claims-report-'));
  const res = await writeReport([SEED_001], { outDir: dir });
  for (const chart of ['startup-timeline', 'memory-pss-per-pod', 'memory-pss-per-node', 'cpu-per-pod', 'cpu-per-node'])
    t.true(
      res.svgs.some((f) => f.endsWith(`/${chart}.svg`)),
      `${chart}: ${res.svgs.join(', ')}`,
    );
  const html = readFileSync(res.html, 'utf8');
  t.regex(html, /id="chart-startup-timeline"/);
  t.true(html.indexOf('id="chart-startup-timeline"') > html.indexOf('id="startup"'));
});

test('the claims section is byte-identical across renders (seeded intervals)', async (t) => {
  const a = await renderReport([load(SEED_000)]);
  const b = await renderReport([load(SEED_000)]);
  t.is(a.html, b.html);
});

test('the dataplanes side by side come first, the claims right after (they judge with the same figures), then where the time goes', async (t) => {
  const { html } = await renderReport([load(SEED_001)]);
  const sections = [...html.matchAll(/<section id="([^"]+)"/g)].map((m) => m[1]);
  t.deepEqual(sections.slice(0, 4), ['comparison', 'claims', 'attribution', 'latency']);
});
