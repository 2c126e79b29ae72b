// The HTML report: files written, figures shown, nothing fetched from the network, output
// byte-identical across renders and processes, stand-ins named, status and errors shown, input
// text escaped, scenarios never mixed.
//
// Fixtures: test/fixtures/runs/quick-baseline.json is a real run record from this lab;
// test/fixtures/report/synthetic-quick-incomplete.json is a hand-edited copy for tests only (its
// istio-sidecar and linkerd-sidecar cases are invented, not measurements).
import test from 'ava';
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { MeshbenchError } from '../../harness/errors.js';
import type { RunRecord } from '../../harness/results/types.js';
import { cdfPoints, writeReport } from '../../harness/report/report.js';
import { renderChart } from '../../harness/report/charts.js';
import { summarizeCaseFlows } from '../../harness/probes/flows.js';

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, '..', '..');
const REAL = join(repo, 'test/fixtures/runs/quick-baseline.json');
const SYNTH = join(repo, 'test/fixtures/report/synthetic-quick-incomplete.json');
// Flow logs (test/unit/flows.test.ts says what each holds), summarized as `meshbench run` does.
const FLOWS_RECORDED = join(repo, 'test/fixtures/flows/001-ebpf-products-r0');
const FLOWS_L7 = join(repo, 'test/fixtures/flows/002-ebpf-l7-products-r0');

function tmp(): string {
  return mkdtempSync(join(os.tmpdir(), 'meshbench-report-'));
}

/** Copy a fixture into dir, optionally editing it, and return the copy's path. */
function fixture(dir: string, src: string, name: string, edit?: (r: RunRecord) => void): string {
  const dst = join(dir, name);
  if (!edit) {
    copyFileSync(src, dst);
  } else {
    const r = JSON.parse(readFileSync(src, 'utf8')) as RunRecord;
    edit(r);
    writeFileSync(dst, JSON.stringify(r, null, 2));
  }
  return dst;
}

const load = (f: string) => JSON.parse(readFileSync(f, 'utf8')) as RunRecord;

/** Every http(s):// in text that is not the value of an xmlns / xmlns:* attribute. */
function strayUrls(text: string): string[] {
  const out: string[] = [];
  for (const m of text.matchAll(/https?:\/\//gi)) {
    const before = text.slice(Math.max(0, m.index! - 30), m.index!);
    if (!/xmlns(:[\w-]+)?="$/.test(before)) out.push(text.slice(Math.max(0, m.index! - 40), m.index! + 40));
  }
  return out;
}

function filesOf(dir: string): Map<string, Buffer> {
  return new Map(
    readdirSync(dir)
      .sort()
      .map((f) => [f, readFileSync(join(dir, f))]),
  );
}

test('real run: writes index.html and chart SVGs with the measured figures', async (t) => {
  const dir = tmp();
  const run = fixture(dir, REAL, 'run.json');
  const out = join(dir, 'out');
  const res = await writeReport([run], { outDir: out });
  t.is(res.html, join(out, 'index.html'));
  t.true(existsSync(res.html));
  t.true(res.svgs.length >= 2, `svgs: ${res.svgs.join(', ')}`);
  for (const f of res.svgs) {
    t.true(existsSync(f), f);
    t.true(f.endsWith('.svg'));
    t.regex(readFileSync(f, 'utf8'), /^<svg [^>]*xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
  }
  const html = readFileSync(res.html, 'utf8');
  const c = load(REAL).cases[0]!;
  // p50 / p99 in µs with 1 decimal, in their own cells
  t.true(html.includes(`<td class="num">${c.latencyUs!.p50.toFixed(1)}</td>`), `p50 ${c.latencyUs!.p50}`);
  t.true(html.includes(`<td class="num">${c.latencyUs!.p99.toLocaleString('en-US', { minimumFractionDigits: 1, maximumFractionDigits: 1 })}</td>`));
  // every chart file is also inlined, with its compiled spec embedded as JSON
  for (const f of res.svgs) t.true(html.includes(readFileSync(f, 'utf8').trim()), `inlined ${f}`);
  const specs = [...html.matchAll(/<script type="application\/json" class="vega-spec" data-chart="([^"]+)">([\s\S]*?)<\/script>/g)];
  t.is(specs.length, res.svgs.length);
  for (const [, name, json] of specs) {
    const spec = JSON.parse(json!);
    t.truthy(spec.marks, `${name} is a compiled Vega spec`);
    t.is(spec.$schema, undefined);
  }
  // sections in the required order
  const order = [
    '<header>',
    'id="latency"',
    'id="chart-latency-percentiles"',
    'id="chart-latency-cdf"',
    'id="resources"',
    'id="chart-memory-pss-by-role"',
    'id="kernel"',
    'id="startup"',
    'id="path"',
    'id="provenance"',
    'id="environment"',
    'id="method"',
  ];
  const at = order.map((s) => html.indexOf(s));
  t.false(at.includes(-1), `all sections present: ${order.filter((_, i) => at[i] === -1).join(', ')}`);
  t.deepEqual(
    [...at].sort((a, b) => a - b),
    at,
  );
  t.regex(html, /Softirq time is system-wide/);
  t.true(html.includes(c.resources!.method.split(';')[0]!.replace(/&/g, '&amp;')), 'resources method shown');
  t.true(html.includes(c.latencyUs!.source), 'latency source shown');
  t.true(html.includes(load(REAL).environment.kernel));
  t.regex(html, /<span class="badge status-complete">complete<\/span>/);
  // resources: PSS of the app role in MiB with 1 decimal
  t.true(html.includes(`<td class="num">${(c.resources!.byRole.app!.pssBytes / 1048576).toFixed(1)}</td>`));
});

test('no network references: no http(s):// outside xmlns, no external resources', async (t) => {
  const dir = tmp();
  const res = await writeReport([fixture(dir, REAL, 'a.json'), fixture(dir, SYNTH, 'b.json')], { outDir: join(dir, 'out') });
  // the record itself carries a URL (haproxy's version string): it must not come through as one
  t.true(readFileSync(REAL, 'utf8').includes('https://haproxy.org/'));
  for (const f of [res.html, ...res.svgs]) {
    const text = readFileSync(f, 'utf8');
    t.deepEqual(strayUrls(text), [], f);
    t.notRegex(text, /<link\b|<img\b|<iframe\b|@import|\bsrc=|<script(?![^>]*type="application\/json")/i, f);
    t.notRegex(text, /url\((?!#)/, `${f}: url() only to local ids`);
    t.notRegex(text, /href="(?!#)/, `${f}: href only to local ids`);
  }
  const html = readFileSync(res.html, 'utf8');
  t.true(html.includes('https&#58;//haproxy.org/'), 'version text still readable');
  t.regex(html, /Content-Security-Policy" content="default-src 'none'/);
});

test('deterministic: byte-identical across renders in one process and across processes', async (t) => {
  const dir = tmp();
  const files = [fixture(dir, SYNTH, 'synthetic.json'), fixture(dir, REAL, 'real.json')];
  const a = join(dir, 'a');
  const b = join(dir, 'b');
  await writeReport(files, { outDir: a });
  const first = filesOf(a);
  await writeReport([...files].reverse(), { outDir: a }); // argument order does not matter either
  await writeReport(files, { outDir: b });
  t.true(first.size >= 3);
  for (const other of [filesOf(a), filesOf(b)]) {
    t.deepEqual([...other.keys()], [...first.keys()]);
    for (const [name, buf] of first) t.true(buf.equals(other.get(name)!), `${name} identical`);
  }
  // a fresh process (fresh vega id counters, fresh module state)
  const c = join(dir, 'c');
  const mod = pathToFileURL(join(repo, 'harness/report/report.ts')).href;
  const code = `const { writeReport } = await import(${JSON.stringify(mod)}); await writeReport(${JSON.stringify(files)}, { outDir: ${JSON.stringify(c)} });`;
  execFileSync(process.execPath, ['--import=tsx', '--input-type=module', '-e', code], { cwd: repo, stdio: 'pipe' });
  const third = filesOf(c);
  t.deepEqual([...third.keys()], [...first.keys()]);
  for (const [name, buf] of first) t.true(buf.equals(third.get(name)!), `${name} identical across processes`);
});

test('synthetic run: stand-in named, incomplete status, failed case error, added over baseline', async (t) => {
  const dir = tmp();
  const res = await writeReport([fixture(dir, SYNTH, 'run.json')], { outDir: join(dir, 'out') });
  const html = readFileSync(res.html, 'utf8');
  t.true(html.includes("haproxy standing in for Envoy — figures are the stand-in's, not Envoy's"));
  // shown prominently in the header, and again in the provenance table with version and config size
  const header = html.slice(0, html.indexOf('</header>'));
  t.true(header.includes('standing in for Envoy'));
  t.true(header.includes('HAProxy 2.6.12'));
  t.true(header.includes('12,345 bytes'));
  t.regex(html, /<tr class="standin"><td>sidecar<\/td><td>haproxy<\/td><td>HAProxy 2\.6\.12<\/td><td class="num">12,345<\/td>/);
  t.regex(header, /<span class="badge status-incomplete">incomplete<\/span>/);
  t.true(header.includes('interrupted by SIGINT'));
  // the failed case and its error, escaped
  t.regex(html, /<span class="badge status-failed">failed<\/span> <strong>linkerd-sidecar/);
  t.true(html.includes('bind 198.18.5.1:4143 &lt;refused&gt; &amp; &quot;quoted&quot;'));
  t.regex(html, /<span class="badge status-interrupted">interrupted<\/span>/);
  // istio-sidecar p50 385 vs baseline 327 in the same run, same workload and repeat
  const istioRow = html.split('\n').find((l) => l.startsWith('<tr><td>istio-sidecar</td><td>http1-200qps</td>') && l.includes('added'))!;
  t.truthy(istioRow);
  t.regex(istioRow, /<td class="num">385\.0<\/td>.*<td class="num">1,117\.0<\/td>.*<td class="num added">\+58\.0<\/td><td class="num added">\+58\.0<\/td>/);
  const baseRow = html.split('\n').find((l) => l.startsWith('<tr><td>baseline</td><td>http1-200qps</td>') && l.includes('added'))!;
  t.regex(baseRow, /<td class="num added">—<\/td><td class="num added">—<\/td>/);
  // charts leave out the failed case instead of breaking
  t.true(res.svgs.length >= 2);
  const percentiles = readFileSync(res.svgs.find((f) => f.endsWith('latency-percentiles.svg'))!, 'utf8');
  t.true(percentiles.includes('istio-sidecar'));
  t.false(percentiles.includes('linkerd-sidecar'));
  // path per dataplane
  t.regex(html, /<td>istio-sidecar<\/td><td class="num">2<\/td><td class="num">4<\/td><td>iptables REDIRECT/);
});

test('runs of different scenarios are refused, naming both files', async (t) => {
  const dir = tmp();
  const a = fixture(dir, REAL, 'quick-run.json');
  const b = fixture(dir, REAL, 'other-run.json', (r) => {
    r.scenario = 'other';
    r.runId = 'other-run';
  });
  const err = await t.throwsAsync(writeReport([a, b], { outDir: join(dir, 'out') }), { instanceOf: MeshbenchError });
  t.is(err!.code, 'E_INPUT');
  t.true(err!.message.includes(a), err!.message);
  t.true(err!.message.includes(b), err!.message);
  t.false(existsSync(join(dir, 'out', 'index.html')));
  // the same run twice is refused too
  await t.throwsAsync(writeReport([a, a], { outDir: join(dir, 'out') }), { instanceOf: MeshbenchError, message: /given twice/ });
  await t.throwsAsync(writeReport([], {}), { instanceOf: MeshbenchError });
});

test('record text is escaped in the page, the charts and the embedded specs', async (t) => {
  const dir = tmp();
  const evil = '<script>alert("x")</script> & \'q\'';
  const run = fixture(dir, SYNTH, 'run.json', (r) => {
    r.description = evil;
    r.cases[1]!.dataplane = 'istio</script><script>alert(1)</script>';
    r.cases[1]!.resources!.byRole['<b>role</b>'] = r.cases[1]!.resources!.byRole.sidecar!;
  });
  const res = await writeReport([run], { outDir: join(dir, 'out') });
  const html = readFileSync(res.html, 'utf8');
  t.false(html.includes('<script>alert'));
  t.false(html.includes('<b>role</b>'));
  t.true(html.includes('&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;q&#39;'));
  // the only <script> elements are the JSON specs, one per chart, and they parse back to the text
  const scripts = html.match(/<script\b[^>]*>/g) ?? [];
  t.is(scripts.length, res.svgs.length);
  t.true(scripts.every((s) => s.includes('type="application/json"')));
  const spec = [...html.matchAll(/class="vega-spec" data-chart="latency-percentiles">([\s\S]*?)<\/script>/g)][0]![1]!;
  t.true(JSON.stringify(JSON.parse(spec)).includes('istio</script><script>alert(1)</script>'));
  for (const f of res.svgs) {
    const svg = readFileSync(f, 'utf8');
    t.false(svg.includes('<script'), f);
    t.false(svg.includes('<b>'), f);
  }
});

test('a run where every case failed renders without charts and removes stale chart files', async (t) => {
  const dir = tmp();
  const out = join(dir, 'out');
  const good = await writeReport([fixture(dir, REAL, 'good.json')], { outDir: out });
  t.true(good.svgs.length >= 2);
  const run = fixture(dir, REAL, 'failed.json', (r) => {
    r.status = 'failed';
    r.error = 'case 0 (baseline): topology did not come up';
    for (const c of r.cases) {
      c.status = 'failed';
      c.error = 'topology did not come up';
      delete c.latencyUs;
      delete c.resources;
    }
  });
  const res = await writeReport([run], { outDir: out });
  t.deepEqual(res.svgs, []);
  t.deepEqual(readdirSync(out), ['index.html']);
  const html = readFileSync(res.html, 'utf8');
  t.regex(html, /<span class="badge status-failed">failed<\/span>/);
  t.true(html.includes('case 0 (baseline): topology did not come up'));
  t.true(html.includes('No case produced latency figures.'));
});

test('default location is <reportsRoot>/<scenario>/index.html', async (t) => {
  const dir = tmp();
  const res = await writeReport([fixture(dir, REAL, 'run.json')], { reportsRoot: join(dir, 'reports') });
  t.is(res.html, join(dir, 'reports', 'quick', 'index.html'));
  t.true(res.svgs.length > 0, 'the run has charts to place');
  t.true(res.svgs.every((f) => dirname(f) === join(dir, 'reports', 'quick')));
  const bad = fixture(dir, REAL, 'bad.json', (r) => {
    r.scenario = '../escape';
  });
  await t.throwsAsync(writeReport([bad], { reportsRoot: join(dir, 'reports') }), { instanceOf: MeshbenchError, message: /directory name/ });
});

test('CDF points end at 1 and are thinned for fine histograms', (t) => {
  const h = load(REAL).cases[0]!.latencyUs!.histogram;
  const pts = cdfPoints(h, 'x');
  t.is(pts.at(-1)!.fraction, 1);
  t.is(pts[0]!.fraction, 0);
  t.true(pts.every((p, i) => i === 0 || (p.us > pts[i - 1]!.us && p.fraction >= pts[i - 1]!.fraction)));
  const fine = { resolutionUs: 1, count: 5000, buckets: Array.from({ length: 5000 }, (_, i) => [100 + i, 1] as [number, number]) };
  const thin = cdfPoints(fine, 'y');
  t.true(thin.length <= 301, `${thin.length}`);
  t.is(thin.at(-1)!.fraction, 1);
  t.is(thin.at(-1)!.us, 5100);
  t.deepEqual(cdfPoints(undefined, 'z'), []);
});

test('vega ids (clip paths) are renumbered per chart, so renders match and inlined charts do not clash', async (t) => {
  const spec = {
    width: 200,
    height: 100,
    data: {
      values: [
        { x: 1, y: 2 },
        { x: 2, y: 5 },
      ],
    },
    mark: { type: 'line', clip: true },
    encoding: { x: { field: 'x', type: 'quantitative' }, y: { field: 'y', type: 'quantitative', scale: { domain: [0, 3] } } },
  };
  const a = await renderChart('clipped', 'title', 'caption', spec);
  const b = await renderChart('clipped', 'title', 'caption', spec); // vega's own counter has moved on
  t.is(a.svg, b.svg);
  t.regex(a.svg, /id="mb-clipped-1"/);
  t.regex(a.svg, /clip-path="url\(#mb-clipped-1\)"/);
  const other = await renderChart('other', 'title', 'caption', spec);
  t.false(other.svg.includes('mb-clipped-'));
});

test('service dependency map: drawn from the flow summary in run.json alone, after the path section, byte-identical', async (t) => {
  const dir = tmp();
  const summary = summarizeCaseFlows(FLOWS_L7)!;
  const run = fixture(dir, REAL, 'run.json', (r) => {
    r.cases[0]!.dataplane = 'ebpf-l7';
    r.cases[0]!.flows = summary;
  });
  const a = await writeReport([run], { outDir: join(dir, 'a') });
  const b = await writeReport([run], { outDir: join(dir, 'b') });
  const html = readFileSync(a.html, 'utf8');
  t.true(readFileSync(b.html).equals(readFileSync(a.html)), 'same run.json, same page');
  // and in a fresh process (no state carried between renders)
  const fresh = join(dir, 'fresh');
  const mod = pathToFileURL(join(repo, 'harness/report/report.ts')).href;
  execFileSync(
    process.execPath,
    [
      '--import=tsx',
      '--input-type=module',
      '-e',
      `const { writeReport } = await import(${JSON.stringify(mod)}); await writeReport([${JSON.stringify(run)}], { outDir: ${JSON.stringify(fresh)} });`,
    ],
    { cwd: repo, stdio: 'pipe' },
  );
  t.true(readFileSync(join(fresh, 'index.html')).equals(readFileSync(a.html)), 'same page from a fresh process');
  // The map is inline only: no extra file beside the page.
  t.deepEqual(
    a.svgs.map((f) => f.slice(f.lastIndexOf('/') + 1)).filter((f) => f.includes('flow')),
    [],
  );

  const section = html.slice(html.indexOf('<section id="flows">'), html.indexOf('</section>', html.indexOf('<section id="flows">')));
  t.true(section.length > 0, 'section present');
  t.true(section.includes('<h2>Service dependency map</h2>'));
  t.true(html.indexOf('id="path"') < html.indexOf('id="flows"') && html.indexOf('id="flows"') < html.indexOf('id="provenance"'));
  const svgs = section.match(/<svg [\s\S]*?<\/svg>/g) ?? [];
  t.is(svgs.length, 1);
  const svg = svgs[0]!;
  t.regex(svg, /class="flowmap"/);
  t.true(svg.includes('>public-api</text>'));
  t.is((svg.match(/<path class="edge /g) ?? []).length, summary.edges.length);
  t.true(svg.includes('dropped POLICY_DENIED ×1'));
  t.true(svg.includes('stroke-dasharray="6 4"'), 'edges through the L7 proxy are dashed');
  // The edge table: one row per edge, drops by reason, L7 requests.
  const rows = section.match(/<tr class="edge-(ok|bad|warn)">/g) ?? [];
  t.is(rows.length, summary.edges.length);
  t.regex(
    section,
    /<tr class="edge-bad"><td><code>production\/frontend<\/code><\/td><td><code>production\/public-api<\/code><\/td><td class="num">8080\/TCP<\/td><td class="num">2<\/td><td class="num">2<\/td><td class="num">2<\/td><td>—<\/td><td>—<\/td><td class="num">2<\/td><td class="num bad">1<\/td><\/tr>/,
  );
  t.regex(section, /<td class="bad">POLICY_DENIED 1<\/td>/);
  t.regex(section, /<td>AUTH_REQUIRED 1<\/td>/);
  // Still a page that fetches nothing and runs nothing.
  t.deepEqual(strayUrls(html), []);
  t.is((html.match(/<script\b/g) ?? []).length, a.svgs.length, 'only the vega spec elements');
  t.notRegex(section, /\son[a-z]+=|<script|href="(?!#)/i);

  // The summary is data: a changed count changes the page (the map is not drawn from anything else).
  const changed = fixture(dir, run, 'changed.json', (r) => {
    r.cases[0]!.flows!.edges[2]!.dropped = { POLICY_DENIED: 7 };
  });
  const c = await writeReport([changed], { outDir: join(dir, 'c') });
  const other = readFileSync(c.html, 'utf8');
  t.not(other, html);
  t.true(other.includes('dropped POLICY_DENIED ×7'));
});

test('service dependency map: one per case with a flow summary, ids unique in the page; none without', async (t) => {
  const dir = tmp();
  const plain = await writeReport([fixture(dir, REAL, 'plain.json')], { outDir: join(dir, 'plain') });
  t.false(readFileSync(plain.html, 'utf8').includes('id="flows"'), 'no section when no case has a flow log');

  const run = fixture(dir, SYNTH, 'run.json', (r) => {
    r.cases[0]!.flows = summarizeCaseFlows(FLOWS_RECORDED)!;
    r.cases[1]!.flows = summarizeCaseFlows(FLOWS_L7)!;
    r.cases[1]!.flows.workloads.push({ id: 'x/<img src=x>', kind: 'workload', name: '<img src=x>', namespace: 'x', pods: 1, identities: [] });
    r.cases[1]!.flows.edges.push({ from: 'world', to: 'x/<img src=x>', port: 1, protocol: 'TCP', connections: 1, forwarded: 1, redirected: 0, dropped: {} });
  });
  const res = await writeReport([run], { outDir: join(dir, 'out') });
  const html = readFileSync(res.html, 'utf8');
  t.is((html.match(/<figure class="chart flowmap"/g) ?? []).length, 2);
  t.is((html.match(/<svg [^>]*class="flowmap"/g) ?? []).length, 2);
  const ids = [...html.matchAll(/\bid="([^"]+)"/g)].map((m) => m[1]!);
  t.deepEqual(
    ids.filter((id, i) => ids.indexOf(id) !== i),
    [],
    'no id twice',
  );
  t.true(ids.includes('mb-flowmap-0-arrow-bad') && ids.includes('mb-flowmap-1-arrow-bad'));
  t.false(html.includes('<img'));
  t.true(html.includes('&lt;img src=x&gt;'));
  t.deepEqual(strayUrls(html), []);
});

test('a degraded case is no result: out of the figures tables, charts and baseline differences, listed with its reasons', async (t) => {
  const dir = tmp();
  const run = fixture(dir, SYNTH, 'degraded.json', (r) => {
    r.status = 'failed';
    const c = r.cases[1]!;
    c.status = 'degraded';
    c.load.actual.errors = 1564;
    c.validity = {
      ok: false,
      reasons: ['1564 of 2000 requests failed (78.2 %, more than the 0.1 % allowed)'],
      errorRate: 0.782,
      rateRatio: 1,
      processesDown: [],
      limits: { maxErrorRate: 0.001, minRateRatio: 0.95 },
    };
  });
  const res = await writeReport([run], { outDir: join(dir, 'out') });
  const html = readFileSync(res.html, 'utf8');
  const latencyTable = html.slice(html.indexOf('<section id="latency">'), html.indexOf('</table>', html.indexOf('<section id="latency">')));
  t.false(latencyTable.includes('<td>istio-sidecar</td>'), 'not in the latency table');
  t.true(latencyTable.includes('<td>baseline</td>'));
  t.false(latencyTable.includes('added over baseline'), 'no ok case to take a difference from the baseline');
  const resources = html.slice(html.indexOf('<section id="resources">'), html.indexOf('</section>', html.indexOf('<section id="resources">')));
  t.false(resources.includes('<td rowspan="3">istio-sidecar</td>') || resources.includes('>istio-sidecar</td>'), 'not in the resources tables');
  for (const f of res.svgs) t.false(readFileSync(f, 'utf8').includes('istio-sidecar'), `${f} leaves it out`);
  t.regex(html, /<h3 id="not-results">Cases that are not results<\/h3>/);
  t.regex(
    html,
    /<span class="badge status-degraded">degraded<\/span> <strong>istio-sidecar · http1-200qps · r0<\/strong>: <span class="error-text">1564 of 2000 requests failed \(78\.2 %, more than the 0\.1 % allowed\)<\/span> <span class="meta diagnosis">Measured, for diagnosis only: [^<]*p50 385\.0 µs/,
  );
});
