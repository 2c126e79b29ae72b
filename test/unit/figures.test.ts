// One definition per figure (analysis/figures.ts): the report's "added over baseline" — in its
// opening comparison and in the latency table — and the claims' overhead are the same figure on
// the same run, read here from the rendered page; the comparison opens the quick report with all
// seven dataplanes, stand-ins named, non-ok cases named apart.
import test from 'ava';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { caseAddedOverBaseline, dataplaneSplit, overview } from '../../harness/analysis/figures.js';
import { showInterval } from '../../harness/analysis/verdicts.js';
import { renderReport } from '../../harness/report/report.js';
import type { RunRecord } from '../../harness/results/types.js';

// A real run of seed-001's quick form, with reference tables (a claims section).
const SEED_001 = resolve('test/fixtures/runs/seed-001-quick.json');
// A real `meshbench run scenarios/quick.yaml`: all seven dataplanes, every case ok (not trimmed).
const QUICK = resolve('test/fixtures/runs/quick-seven.json');
// Hand-edited: a failed and an interrupted case.
const SYNTH = resolve('test/fixtures/report/synthetic-quick-incomplete.json');

const load = (f: string) => JSON.parse(readFileSync(f, 'utf8')) as RunRecord;
const text = (html: string) =>
  html
    .replace(/<[^>]+>/g, ' ')
    .replace(/&#39;|&rsquo;/g, "'")
    .replace(/&amp;/g, '&')
    .replace(/\s+/g, ' ')
    .trim();

/** The opening comparison's rows: dataplane → cell texts (after the row header). */
function overviewRows(html: string): Map<string, string[]> {
  const sec = /<section id="comparison">([\s\S]*?)<\/section>/.exec(html)?.[1] ?? '';
  const rows = new Map<string, string[]>();
  for (const tr of sec.match(/<tr[^>]*>[\s\S]*?<\/tr>/g) ?? []) {
    const dp = /<th scope="row"><code>([^<]+)<\/code>/.exec(tr)?.[1];
    if (dp)
      rows.set(
        dp,
        [...tr.matchAll(/<td[^>]*>([\s\S]*?)<\/td>/g)].map((m) => text(m[1]!)),
      );
  }
  return rows;
}

/** The claims rows of one metric: lab dataplane → the "measured" cell's text. */
function claimsMeasured(html: string, metricWords: string): Map<string, string> {
  const sec = /<section id="claims">([\s\S]*?)<\/section>/.exec(html)?.[1] ?? '';
  const out = new Map<string, string>();
  for (const tr of sec.match(/<tr[^>]*>\s*<td>[\s\S]*?<\/tr>/g) ?? []) {
    const cells = [...tr.matchAll(/<td[^>]*>([\s\S]*?)<\/td>/g)].map((m) => m[1]!);
    if (cells.length < 4 || text(cells[0]!) !== metricWords) continue;
    const dp = /<code>([^<]+)<\/code>/.exec(cells[1]!)?.[1];
    if (dp) out.set(dp, text(cells[3]!));
  }
  return out;
}

/** seed-001 with three repeats per case, latencies shifted per repeat so the median of the
 * differences and the difference of the medians differ (a second definition would show). */
function threeRepeats(): RunRecord {
  const r = load(SEED_001);
  const shift: Record<string, number[]> = { baseline: [0, 400, -100], default: [0, 50, 900] };
  r.cases = [0, 1, 2].flatMap((rep) =>
    r.cases.map((c, i) => {
      const d = (shift[c.dataplane] ?? shift.default!)[rep]!;
      const k = structuredClone(c);
      k.repeat = rep;
      k.index = rep * r.cases.length + i;
      k.latencyUs = { ...k.latencyUs!, p50: k.latencyUs!.p50 + d, p99: k.latencyUs!.p99 + 2 * d };
      return k;
    }),
  );
  return r;
}

for (const [name, make] of [
  ['one repeat (the recorded run)', () => load(SEED_001)],
  ['three repeats', threeRepeats],
] as const) {
  test(`The report's "added over baseline" and the claims' overhead agree on the same run: ${name}`, async (t) => {
    const run = make();
    const { html } = await renderReport([run]);
    const rows = overviewRows(html);
    for (const [metric, col] of [
      ['p50 latency overhead', 0],
      ['p99 latency overhead', 1],
    ] as const) {
      const claims = claimsMeasured(html, metric);
      t.true(claims.size >= 3, `claims rows for ${metric}: ${[...claims.keys()].join(', ')}`);
      for (const [dp, measured] of claims) {
        const shown = rows.get(dp)?.[col];
        t.truthy(shown, `${dp} has a row in the comparison`);
        // The comparison shows µs with 1 decimal; the claims ms with 3 significant figures: the
        // same interval, formatted the claims' way from the comparison's figures, is the claims' text.
        const o = overview(run).rows.find((r) => r.dataplane === dp)![col === 0 ? 'addedP50' : 'addedP99']!;
        const ms = { ...o, estimate: o.estimate * 1e-3, low: o.low * 1e-3, high: o.high * 1e-3 }; // as claims.ts scales µs to ms
        t.is(measured, `${showInterval(ms)} ms (n = ${o.n})`, `${dp} ${metric}: claims ${measured}, comparison ${shown}`);
        const est = Number(shown!.split(' ')[0]!.replace(/,/g, '').replace('\u2212', '-'));
        t.true(Math.abs(est - o.estimate) <= 0.05 + 1e-9, `${dp} ${metric}: comparison shows ${shown}, figure ${o.estimate}`);
        if (o.n >= 2) t.regex(shown!, /\[.+, .+\]/, `${dp}: an interval with ${o.n} repeats`);
      }
    }
    // The latency table's per-case column is one pair of the same figure: its median is the comparison's.
    const lat = /<section id="latency">([\s\S]*?)<\/section>/.exec(html)![1]!;
    const perCase = new Map<string, number[]>();
    for (const tr of lat.match(/<tr>[\s\S]*?<\/tr>/g) ?? []) {
      const cells = [...tr.matchAll(/<td[^>]*>([\s\S]*?)<\/td>/g)].map((m) => text(m[1]!));
      const added = /class="num added">([^<]+)</.exec(tr)?.[1];
      if (!added || added === '—') continue;
      perCase.set(cells[0]!, [...(perCase.get(cells[0]!) ?? []), Number(added.replace(/,/g, '').replace('\u2212', '-'))]);
    }
    for (const [dp, xs] of perCase) {
      const s = [...xs].sort((a, b) => a - b);
      const med = s.length % 2 ? s[s.length >> 1]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
      const o = overview(run).rows.find((r) => r.dataplane === dp)!.addedP50!;
      t.true(Math.abs(med - o.estimate) <= 0.05 + 1e-9, `${dp}: latency table median ${med}, comparison ${o.estimate}`);
    }
    t.true(perCase.size >= 3);
  });
}

test('the quick report opens with the comparison: all seven dataplanes, baseline first, stand-ins named', async (t) => {
  const run = load(QUICK);
  const { html } = await renderReport([run]);
  const sections = [...html.matchAll(/<section id="([^"]+)"/g)].map((m) => m[1]);
  t.is(sections[0], 'comparison', sections.join(', '));
  t.true(html.indexOf('</header>') < html.indexOf('<section id="comparison">'));
  const rows = overviewRows(html);
  t.deepEqual([...rows.keys()], ['baseline', 'istio-sidecar', 'linkerd-sidecar', 'ambient', 'ambient-waypoint', 'ebpf', 'ebpf-l7']);
  t.regex(rows.get('istio-sidecar')!.at(-1)!, /haproxy standing in for Envoy/);
  t.regex(rows.get('ambient')!.at(-1)!, /haproxy standing in for ztunnel/);
  t.regex(rows.get('ambient-waypoint')!.at(-1)!, /standing in for ztunnel.*standing in for Envoy \(waypoint proxy\)/);
  // Memory and CPU: sidecars per meshed pod, node-level components per node, from the same split as the claims.
  const split = (dp: string) => dataplaneSplit(run.cases.find((c) => c.dataplane === dp)!)!;
  const [mPod, mNode, cPod, cNode] = rows.get('istio-sidecar')!.slice(4, 8).map(Number);
  t.is(mPod, Number((split('istio-sidecar').perPodBytes / 1048576).toFixed(1)));
  t.is(mNode, 0);
  t.is(cPod, Number((split('istio-sidecar').perPodCpuCores * 100).toFixed(2)));
  t.is(cNode, 0);
  t.true(Number(rows.get('ambient')![5]) > 0 && Number(rows.get('ambient')![4]) === 0, 'ambient: per node, not per pod');
  // Per case, the latency table's column is the same pair.
  const istio = run.cases.find((c) => c.dataplane === 'istio-sidecar')!;
  t.is(caseAddedOverBaseline(run.cases, istio, 'p50'), istio.latencyUs!.p50 - run.cases.find((c) => c.dataplane === 'baseline')!.latencyUs!.p50);
});

test('the comparison counts ok cases only and names the others apart', async (t) => {
  const run = load(SYNTH);
  const o = overview(run);
  t.deepEqual(
    o.notOk.map((c) => `${c.dataplane} r${c.repeat} ${c.status}`),
    ['linkerd-sidecar r0 failed', 'baseline r1 interrupted'],
  );
  t.is(o.rows.find((r) => r.dataplane === 'linkerd-sidecar')!.okCases, 0);
  t.is(o.rows.find((r) => r.dataplane === 'baseline')!.okCases, 1, 'the interrupted baseline repeat is not counted');
  const { html } = await renderReport([run]);
  const sec = /<section id="comparison">([\s\S]*?)<\/section>/.exec(html)![1]!;
  t.regex(sec, /<code>linkerd-sidecar<\/code>[\s\S]*?no ok case/);
  t.regex(text(sec), /Not results, left out of every figure above .*linkerd-sidecar · http1-200qps · r0 failed .*baseline · http1-200qps · r1 interrupted/);
});
