// The report in a real browser: headless Chromium (Debian's package, driven by playwright-core)
// loads the self-contained HTML with the network cut off, and the page must render its sections
// and charts without a console error. The screenshot is kept as a test artifact.
import test from 'ava';
import { existsSync, mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { chromium } from 'playwright-core';
import { writeReport } from '../../harness/report/report.js';
import { which } from '../../harness/util/exec.js';

const ARTIFACTS = resolve('test-artifacts');
// Two dataplanes, five interleaved repeats each (made by test/fixtures/runs/make-compare.ts).
const RUN = 'test/fixtures/runs/compare-b.json';

test('the report renders in headless Chromium with no console or page error, offline; screenshot kept', async (t) => {
  const browserPath = (await which('chromium')) ?? (await which('chromium-browser'));
  if (!browserPath) return t.fail('chromium is not installed: run scripts/setup.sh (it installs Debian\'s chromium package)');
  const out = mkdtempSync(join(tmpdir(), 'mb-report-browser-'));
  const { html } = await writeReport([RUN], { outDir: out });
  const browser = await chromium.launch({ executablePath: browserPath, args: ['--no-sandbox'] });
  try {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    // Self-contained: any request that is not the file itself is a defect.
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
    await page.goto(`file://${resolve(html)}`, { waitUntil: 'load' });
    const sections = await page.locator('section h2').allTextContents();
    const charts = await page.locator('figure svg').count();
    mkdirSync(ARTIFACTS, { recursive: true });
    const shot = join(ARTIFACTS, 'report.png');
    await page.screenshot({ path: shot, fullPage: true });
    t.log(`screenshot: ${shot}; sections: ${sections.join(' | ')}; ${charts} charts`);
    t.deepEqual(errors, []);
    t.deepEqual(requests, [], 'no request leaves the page');
    t.true(sections.length >= 5, sections.join(' | '));
    t.true(charts >= 3, `${charts} charts drawn`);
    t.true(existsSync(shot));
  } finally {
    await browser.close();
  }
});
