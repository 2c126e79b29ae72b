// The trend report in a real browser: headless Chromium (Debian's package, driven by
// playwright-core, as test/unit/report-browser.test.ts) loads <reports>/history/index.html with
// the network cut off; the page must render its charts with no console or page error, request
// nothing, and open with the open regressions, in view without scrolling. The screenshot is kept in
// test-artifacts/history-report.png.
//
// Without chromium this test fails (not skips) and says to run scripts/setup.sh, like the run
// report's browser test: set-up installs the browser.
import test from 'ava';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { chromium } from 'playwright-core';
import { checkHistory } from '../../harness/history/check.js';
import { rowsOfRun, type HistoryRow } from '../../harness/history/store.js';
import { writeHistoryReport } from '../../harness/report/history.js';
import type { RunRecord } from '../../harness/results/types.js';
import { which } from '../../harness/util/exec.js';

const ARTIFACTS = resolve('test-artifacts');
// A real run of scenarios/quick.yaml: all seven dataplanes, every case ok.
const SEVEN: RunRecord = JSON.parse(readFileSync(resolve('test/fixtures/runs/quick-seven.json'), 'utf8'));
const commitOf = (n: number) => `${String(n).padStart(4, '0')}${'5eed'.repeat(9)}`;

/** 24 runs, a run per commit, seeded noise; ebpf 30 % slower from run 14, ambient failed in run 9. */
function history(): HistoryRow[] {
  let a = 7;
  const rnd = () => {
    a = (a * 1103515245 + 12345) % 2147483648;
    return a / 2147483648;
  };
  const rows: HistoryRow[] = [];
  for (let n = 0; n < 24; n++) {
    const r: RunRecord = structuredClone(SEVEN);
    r.startedAt = new Date(Date.UTC(2026, 10, 1) + n * 86_400_000).toISOString();
    r.runId = `${r.startedAt.slice(0, 10).replaceAll('-', '')}T000000Z-t${String(n).padStart(3, '0')}`;
    r.environment.commit = commitOf(n);
    for (const c of r.cases) {
      const f = (1 + (rnd() - 0.5) * 0.07) * (c.dataplane === 'ebpf' && n >= 14 ? 1.3 : 1);
      const lat = c.latencyUs as unknown as Record<string, unknown>;
      for (const k of Object.keys(lat)) if (typeof lat[k] === 'number') lat[k] = (lat[k] as number) * f;
      if (c.dataplane === 'ambient' && n === 9) c.status = 'failed';
    }
    rows.push(...rowsOfRun(r));
  }
  return rows;
}

test('the trend page renders offline in headless Chromium with no error, open regressions first and in view; screenshot kept', async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'mb-history-browser-'));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  const check = checkHistory(history(), { metrics: ['p50', 'p99', 'qps', 'cpu:app'] });
  const { html } = await writeHistoryReport(check, root);

  mkdirSync(ARTIFACTS, { recursive: true });
  const shot = join(ARTIFACTS, 'history-report.png');
  rmSync(shot, { force: true });
  const browserPath = (await which('chromium')) ?? (await which('chromium-browser'));
  if (!browserPath) {
    t.fail("chromium is not installed: run scripts/setup.sh (as root; it installs Debian's chromium package, which this test drives with playwright-core)");
    return;
  }
  const browser = await chromium.launch({ executablePath: browserPath, args: ['--no-sandbox'] });
  try {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const requests: string[] = [];
    await context.route('**/*', (route) => {
      const url = route.request().url();
      if (url.startsWith('file://') || url.startsWith('data:')) return route.continue();
      requests.push(url);
      return route.abort();
    });
    const page = await context.newPage();
    const errors: string[] = [];
    page.on('console', (m) => {
      if (m.type() === 'error') errors.push(`console: ${m.text()}`);
    });
    page.on('pageerror', (e) => errors.push(`page: ${e.message}`));
    await page.goto(`file://${html}`, { waitUntil: 'load' });
    await page.waitForSelector('figure.chart svg', { state: 'visible', timeout: 10_000 });

    const sections = await page.locator('section h2').allTextContents();
    t.is(sections[0], 'Open regressions', sections.join(' | '));
    t.true(sections.includes('How change points are found'), sections.join(' | '));
    // In view on load, above everything else but the header.
    const box = await page.locator('#regressions').boundingBox();
    t.truthy(box);
    t.true(box!.y < 300 && box!.height > 100, `regressions at y ${box?.y}, ${box?.height} px high`);
    t.true(await page.locator('#regressions tr.new').first().isVisible());
    const rows = await page.locator('#regressions tbody tr').allInnerTexts();
    t.is(rows.length, 2, rows.join('\n'));
    for (const r of rows) {
      t.regex(r, /^new\b/);
      t.true(r.includes(`${commitOf(13).slice(0, 12)}..${commitOf(14).slice(0, 12)}`), r);
    }
    const charts = await page.locator('figure.chart').evaluateAll((els) =>
      els.map((f) => {
        const svg = f.querySelector('svg');
        const b = svg?.getBoundingClientRect();
        return {
          id: f.id,
          width: Math.round(b?.width ?? 0),
          height: Math.round(b?.height ?? 0),
          marks: svg ? svg.querySelectorAll('path, rect, line, text').length : 0,
        };
      }),
    );
    t.is(charts.length, 4, 'p50, p99, qps and app CPU');
    for (const c of charts) {
      t.true(c.width >= 600 && c.height >= 7 * 100, `${c.id} drawn with a panel per dataplane (${c.width}×${c.height})`);
      t.true(c.marks >= 50, `${c.id} has marks (${c.marks})`);
    }
    // The change point's label is laid out in the p50 chart.
    t.true(await page.locator('#trend-1 svg text', { hasText: 'new regression' }).first().isVisible());
    await page.screenshot({ path: shot, fullPage: true });
    t.log(`screenshot: ${shot}`);
    t.deepEqual(errors, [], 'no console or page error');
    t.deepEqual(requests, [], 'no request leaves the page');
    t.true(statSync(shot).size > 100_000, `screenshot ${statSync(shot).size} bytes`);
  } finally {
    await browser.close();
  }
});
