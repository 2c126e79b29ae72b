// The trend report (harness/report/history.ts) over a synthetic history: run records made from the
// recorded quick run of all seven dataplanes (test/fixtures/runs/quick-seven.json), one per day and
// commit, their latencies scaled by seeded noise (CV ~2 %), an injected +30 % step in ebpf's
// latency, a run where ambient's case failed, other kernels and a TCG kernel. The rows come from
// the store's rowsOfRun and the verdict from checkHistory, as `meshbench history report` does.
import test from 'ava';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { checkHistory } from '../../harness/history/check.js';
import { rowsOfRun, type HistoryRow } from '../../harness/history/store.js';
import { renderHistoryReport, writeHistoryReport } from '../../harness/report/history.js';
import type { RunRecord } from '../../harness/results/types.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const SEVEN: RunRecord = JSON.parse(readFileSync(join(ROOT, 'test/fixtures/runs/quick-seven.json'), 'utf8'));

interface Build {
  runs: number;
  /** Day offset of the first run (histories of several kernels interleave by time). */
  start?: number;
  /** From this run on, ebpf's latencies are 30 % higher. */
  stepAt?: number;
  /** In this run, ambient's case failed (every repeat). */
  failAt?: number;
  kernel?: string;
  tcg?: boolean;
  dataplanes?: string[];
  rename?: Record<string, string>;
}

/** mulberry32: the same noise on every run of the tests. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const commitOf = (n: number) => `${String(n).padStart(4, '0')}${'5eed'.repeat(9)}`;

function history(b: Build): HistoryRow[] {
  const rnd = rng(b.start ?? 0);
  const rows: HistoryRow[] = [];
  for (let i = 0; i < b.runs; i++) {
    const n = (b.start ?? 0) + i;
    const r: RunRecord = structuredClone(SEVEN);
    const at = new Date(Date.UTC(2026, 10, 1) + n * 3_600_000);
    r.runId = `${at.toISOString().slice(0, 13).replace(/[-T]/g, '')}0000Z-t${String(n).padStart(3, '0')}`;
    r.startedAt = at.toISOString();
    r.environment.commit = commitOf(n);
    if (b.kernel) r.environment.kernel = b.kernel;
    if (b.tcg) r.environment.kernelFacts = { release: b.kernel ?? 'tcg-kernel', virtualisation: 'tcg', functionalOnly: true } as never;
    r.cases = r.cases.filter((c) => !b.dataplanes || b.dataplanes.includes(c.dataplane));
    for (const c of r.cases) {
      const f = (1 + (rnd() - 0.5) * 0.07) * (c.dataplane === 'ebpf' && b.stepAt !== undefined && i >= b.stepAt ? 1.3 : 1);
      const lat = c.latencyUs as unknown as Record<string, unknown>;
      for (const k of Object.keys(lat)) if (typeof lat[k] === 'number') lat[k] = (lat[k] as number) * f;
      if (c.dataplane === 'ambient' && i === b.failAt) c.status = 'failed';
      c.dataplane = b.rename?.[c.dataplane] ?? c.dataplane;
    }
    rows.push(...rowsOfRun(r));
  }
  return rows;
}

const LAT = ['p50', 'p99'];
const runIdOf = (rows: HistoryRow[], commit: string) => rows.find((r) => r.commit === commit)!.runId;

/** The HTML of one element with this id (figure or section), up to its closing tag. */
function element(html: string, tag: string, id: string): string {
  const i = html.indexOf(`<${tag} `, html.lastIndexOf(`<${tag}`, html.indexOf(`id="${id}"`)));
  const j = html.indexOf(`</${tag}>`, i);
  return i < 0 || j < 0 ? '' : html.slice(i, j);
}

function tmp(): string {
  return mkdtempSync(join(tmpdir(), 'mb-history-report-'));
}

test('the open regression comes first, marked new, with its size, p-value, commit range from..to and run', async (t) => {
  const rows = history({ runs: 24, stepAt: 14, failAt: 9 });
  const check = checkHistory(rows, { metrics: LAT });
  t.is(check.series.filter((s) => s.open).length, 2, 'ebpf p50 and p99');
  const { html } = await renderHistoryReport(check);
  const first = html.indexOf('<section');
  t.is(html.indexOf('<section id="regressions">'), first, 'the regressions section is the first section');
  t.true(first < html.indexOf('<figure'), 'before any chart');
  const sec = element(html, 'section', 'regressions');
  const trs = [...sec.matchAll(/<tr class="(new|open)" data-series="([^"]+)">([\s\S]*?)<\/tr>/g)];
  t.is(trs.length, 2);
  for (const [, cls, key, row] of trs) {
    t.is(cls, 'new');
    t.regex(key!, /\|quick\|ebpf\|http1-200qps\|p(50|99)$/);
    t.regex(row!, /status-failed">new</);
    // The step was injected at run 14: the range is run 13's commit .. run 14's, 12 characters each.
    t.true(row!.includes(`<code>${commitOf(13).slice(0, 12)}</code>..<code>${commitOf(14).slice(0, 12)}</code>`), row);
    t.true(row!.includes(`<code>${runIdOf(rows, commitOf(14))}</code>`), 'the first run after');
    t.regex(row!, /<strong>\+(2[6-9]|3[0-4])\.\d %<\/strong> <span class="ci">\[\+\d+\.\d %, \+\d+\.\d %\]<\/span>/, 'size and interval');
    t.regex(row!, /[\d,.]+ µs → [\d,.]+ µs/, 'before → after');
    t.regex(row!, /<td class="num">0\.0\d\d<\/td>/, 'p-value');
    t.regex(row!, /<a href="#trend-\d+">chart<\/a>/);
    t.false(row!.includes('href="http'), 'no commit link without a repository');
  }
  t.regex(sec, /2 open regressions, 2 new/);
});

test('an older step is open but not new; no regression says so', async (t) => {
  const rows = history({ runs: 24, stepAt: 14 });
  const { html } = await renderHistoryReport(checkHistory(rows, { metrics: ['p50'], recent: 5 }));
  const sec = element(html, 'section', 'regressions');
  t.regex(sec, /<tr class="open" data-series="[^"]*\|ebpf\|[^"]*">\n<td><span class="badge status-degraded">open</);
  t.regex(sec, /1 open regression, 0 new/);
  const quiet = await renderHistoryReport(checkHistory(history({ runs: 24 }), { metrics: ['p50'] }));
  t.regex(element(quiet.html, 'section', 'regressions'), /No open regression/);
  t.false(quiet.html.includes('<tr class="new"'));
});

test('one figure per scenario × workload × metric × testbed × kernel, a panel per dataplane; kernels never share one', async (t) => {
  const rows = [...history({ runs: 12, stepAt: 6 }), ...history({ runs: 12, start: 100, kernel: '6.1.0-other', dataplanes: ['baseline', 'ebpf'] })];
  const check = checkHistory(rows, { metrics: ['p50', 'qps'] });
  t.is(check.series.length, 7 * 2 + 2 * 2);
  const { html, charts } = await renderHistoryReport(check);
  const figures = [...html.matchAll(/<figure class="chart trend" id="(trend-\d+)" data-testbed="([^"]*)" data-kernel="([^"]*)">([\s\S]*?)<\/figure>/g)];
  t.is(figures.length, 4, 'p50 and qps on each of two kernels');
  t.is(charts.length, 4);
  const keysSeen: string[] = [];
  for (const [, id, testbed, kernel, body] of figures) {
    t.true(body!.includes('<svg'), `${id} has its chart inline`);
    const keys = [...body!.matchAll(/<li data-series="([^"]+)">/g)].map((m) => m[1]!);
    t.true(keys.length === 7 || keys.length === 2, `${id}: ${keys.length} panels`);
    for (const k of keys) t.true(k.startsWith(`${testbed}|${kernel}|`), `${k} belongs in ${id}`);
    t.is(new Set(keys.map((k) => k.split('|').at(-1))).size, 1, 'one metric per figure');
    keysSeen.push(...keys);
  }
  t.deepEqual(keysSeen.sort(), check.series.map((s) => s.key).sort(), 'every checked series has its panel, once');
  // Latency before qps in the section.
  t.true(html.indexOf('<h3>Latency p50</h3>') < html.indexOf('<h3>Achieved qps</h3>'));
  // Panels: baseline first, each dataplane's name drawn in the chart.
  const svg = charts[0]!.svg;
  t.true(svg.indexOf('>baseline<') < svg.indexOf('>ebpf<'), 'baseline panel first');
});

test('change points and gaps are marked in the chart and listed under it', async (t) => {
  const rows = history({ runs: 24, stepAt: 14, failAt: 9 });
  const check = checkHistory(rows, { metrics: ['p50'] });
  const { html, charts } = await renderHistoryReport(check);
  t.is(charts.length, 1);
  const svg = charts[0]!.svg;
  t.regex(svg, />\+(2[6-9]|3[0-4])\.\d % new regression</, 'the change point is labelled in the chart');
  t.regex(svg, />failed</, 'the gap is labelled in the chart');
  const fig = element(html, 'figure', 'trend-1');
  const ebpf = /<li data-series="[^"]*\|ebpf\|[^"]*">([\s\S]*?)<\/li>/.exec(fig)?.[1] ?? '';
  t.regex(ebpf, /change points: <span class="cp worse">/);
  t.true(ebpf.includes(`<code>${commitOf(13).slice(0, 12)}</code>..<code>${commitOf(14).slice(0, 12)}</code>`));
  const ambient = /<li data-series="[^"]*\|ambient\|[^"]*">([\s\S]*?)<\/li>/.exec(fig)?.[1] ?? '';
  t.true(ambient.includes(`not ok in 1 run:</span> <code>${runIdOf(rows, commitOf(9))}</code> (failed)`), ambient);
  t.regex(ambient, /^<code>ambient<\/code>: 23 runs/, 'the failed run is no point');
  const base = /<li data-series="[^"]*\|baseline\|[^"]*">([\s\S]*?)<\/li>/.exec(fig)?.[1] ?? '';
  t.regex(base, /no change point/);
  t.false(base.includes('not ok'));
});

test('names from the records are escaped; the page holds no script, no URL, and nothing from elsewhere', async (t) => {
  const evil = 'evil<script>alert("x")</script>&co';
  const rows = history({ runs: 12, stepAt: 6, rename: { ebpf: evil } });
  const { html, charts } = await renderHistoryReport(checkHistory(rows, { metrics: ['p50'] }));
  t.false(/<script/i.test(html), 'no script element at all');
  t.true(html.includes('evil&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;co'));
  t.true(charts[0]!.svg.includes('evil&lt;script&gt;'), 'escaped in the chart too');
  const urls = [...html.matchAll(/https?:\/\//gi)].filter((m) => !/xmlns(:[\w-]+)?="$/.test(html.slice(m.index! - 30, m.index!)));
  t.deepEqual(urls, [], 'no http(s):// outside xmlns');
  t.false(/\b(src|href)="(?!#)/.test(html.replace(/<svg[\s\S]*?<\/svg>/g, '')), 'no link or source but in-page anchors');
  t.regex(html, /content="default-src 'none'; style-src 'unsafe-inline'; img-src data:"/);
});

test('commits link to <repository>/commit/<sha> only when a repository is given, never a guessed one', async (t) => {
  const check = checkHistory(history({ runs: 24, stepAt: 14 }), { metrics: ['p50'] });
  const linked = (await renderHistoryReport(check, { repository: 'https://github.com/example/meshbench.git' })).html;
  const sec = element(linked, 'section', 'regressions');
  const link = (c: string) => `<a href="https&#58;//github.com/example/meshbench/commit/${c}"><code>${c.slice(0, 12)}</code></a>`;
  t.true(sec.includes(`<span class="range">${link(commitOf(13))}..${link(commitOf(14))}</span>`), sec);
  for (const bad of ['javascript:alert(1)', 'http://insecure.example/x', 'https://host/a b']) {
    const html = (await renderHistoryReport(check, { repository: bad })).html;
    t.false(html.includes('/commit/'), bad);
    t.false(/javascript:/.test(html), bad);
  }
  t.false((await renderHistoryReport(check)).html.includes('/commit/'));
});

test('TCG series: skipped by default and listed why; when included, the run report’s functional-only banner', async (t) => {
  const rows = [...history({ runs: 12 }), ...history({ runs: 10, start: 200, tcg: true, kernel: '6.12-tcg', dataplanes: ['baseline'] })];
  const skipped = await renderHistoryReport(checkHistory(rows, { metrics: ['p50'] }));
  const sec = element(skipped.html, 'section', 'skipped');
  t.regex(sec, /<strong>TCG-emulated kernel: functional only<\/strong>: 1 series/);
  t.true(sec.includes('<code>') && sec.includes('|6.12-tcg|tcg|quick|baseline|http1-200qps|p50</code>'));
  t.false(skipped.html.includes('Functional only:'));
  const included = await renderHistoryReport(checkHistory(rows, { metrics: ['p50'], includeFunctionalOnly: true }));
  t.regex(
    included.html,
    /<p class="run-error"><strong>Functional only:<\/strong> runs <code>.*?<\/code> ran in a VM under TCG \(CPU emulation, no KVM\): its latency, CPU and memory figures show what works on that kernel, not what it costs; compare them with nothing measured outside it\.<\/p>/,
  );
  const figs = [...included.html.matchAll(/<figure class="chart trend" id="[^"]+" data-testbed="[^"]*" data-kernel="([^"]*)">([\s\S]*?)<\/figure>/g)];
  t.is(figs.length, 2);
  for (const [, kernel, body] of figs) t.is(body!.includes('Functional only:'), kernel === '6.12-tcg', kernel);
  t.true(included.html.includes('6.12-tcg (TCG, emulated)'));
});

test('short series are drawn and listed as not checked; the check options are shown', async (t) => {
  const check = checkHistory(history({ runs: 6 }), { metrics: ['p50'], significance: 0.02, minEffect: 0.07, recent: 4 });
  const { html, charts } = await renderHistoryReport(check);
  t.true(charts.length > 0);
  const figs = [...html.matchAll(/<figure class="chart trend"[\s\S]*?<\/figure>/g)].map((m) => m[0]);
  t.is(figs.length, charts.length);
  for (const f of figs) {
    t.regex(f, /<svg /);
    t.regex(f, /6 runs, latest [^·]+ · not checked yet \(fewer than two segments of runs\)/);
  }
  t.regex(element(html, 'section', 'skipped'), /6 run\(s\): fewer than two segments of 5<\/strong>: 7 series/);
  const m = element(html, 'section', 'method');
  t.regex(m, /<th>significance<\/th><td class="num">0\.02<\/td>/);
  t.regex(m, /<th>minimum effect<\/th><td class="num">7\.0 %<\/td>/);
  t.regex(m, /<th>new = within the last<\/th><td class="num">4 runs<\/td>/);
  t.notRegex(html, /No series in the history yet/);
  t.regex(html, /No open regression/);
});

test('writeHistoryReport: <reports>/history/index.html and one SVG per figure, stale trend SVGs removed, byte-identical again', async (t) => {
  const root = tmp();
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  mkdirSync(join(root, 'history'), { recursive: true });
  writeFileSync(join(root, 'history', 'trend-99.svg'), '<svg/>');
  writeFileSync(join(root, 'history', 'notes.txt'), 'kept');
  const check = checkHistory(history({ runs: 12, stepAt: 6, failAt: 3 }), { metrics: LAT });
  const res = await writeHistoryReport(check, root);
  t.is(res.html, join(root, 'history', 'index.html'));
  t.deepEqual(readdirSync(join(root, 'history')).sort(), ['index.html', 'notes.txt', 'trend-1.svg', 'trend-2.svg']);
  for (const f of res.svgs) t.regex(readFileSync(f, 'utf8'), /^<svg [^>]*xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
  const first = readFileSync(res.html, 'utf8');
  t.true(first.startsWith('<!DOCTYPE html>'));
  await writeHistoryReport(check, root);
  t.is(readFileSync(res.html, 'utf8'), first, 'the same check gives the same bytes');
  t.true(existsSync(join(root, 'history', 'trend-2.svg')));
});
