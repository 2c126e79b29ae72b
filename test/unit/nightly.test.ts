// The nightly job (docs/nightly.md): the workflow passes the real actionlint (installed by
// scripts/setup.sh) and a broken copy does not; the nightly suite loads; a bad suite is exit 2
// with file:line before anything runs; scripts/nightly adds a failed run's record and says so.
import test from 'ava';
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { loadSuite, runArgs } from '../../harness/history/suite.js';
import { MeshbenchError } from '../../harness/errors.js';
import { which } from '../../harness/util/exec.js';
import { rootTest } from '../helpers.js';

const WORKFLOW = '.github/workflows/nightly.yml';
const CONFIG = '.github/actionlint.yaml';
const SUITE = 'scenarios/suites/nightly.yaml';

function sh(cmd: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((res) => {
    const c = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    c.stdout.setEncoding('utf8').on('data', (d) => (stdout += d));
    c.stderr.setEncoding('utf8').on('data', (d) => (stderr += d));
    c.on('close', (code) => res({ code: code ?? 1, stdout, stderr }));
  });
}

/** actionlint as the lab finds its tools: PATH, then the checkout's .tools/bin (setup puts it there). */
async function actionlint(): Promise<string | undefined> {
  const local = resolve('.tools/bin/actionlint');
  return (await which('actionlint')) ?? (existsSync(local) ? local : undefined);
}

test('the nightly workflow passes actionlint; broken copies of it do not', async (t) => {
  const bin = await actionlint();
  if (!bin) return t.fail("actionlint is not installed: run the README's set-up (bash scripts/setup.sh), which installs it into .tools/bin");
  const ok = await sh(bin, ['-no-color', WORKFLOW]);
  t.is(ok.code, 0, ok.stdout + ok.stderr);

  // Copies outside the checkout, so the project's config is named explicitly.
  const dir = mkdtempSync(join(tmpdir(), 'mb-actionlint-'));
  try {
    const text = readFileSync(WORKFLOW, 'utf8');
    const lint = (name: string, body: string, config = true) => {
      const f = join(dir, `${name}.yml`);
      writeFileSync(f, body);
      return sh(bin, ['-no-color', '-oneline', ...(config ? ['-config-file', CONFIG] : []), f]);
    };
    const same = await lint('same', text);
    t.is(same.code, 0, `the unchanged copy lints clean: ${same.stdout}`);

    const runsOn = /runs-on: \[self-hosted, linux, x64, meshbench\]/;
    t.regex(text, runsOn);
    // biome-ignore lint/suspicious/noTemplateCurlyInString: a GitHub Actions expression, not a template
    const badExpr = await lint('bad-runs-on', text.replace(runsOn, 'runs-on: ${{ matrix.os }}'));
    t.is(badExpr.code, 1, badExpr.stdout);
    t.regex(badExpr.stdout, /property "os" is not defined/);

    const badKey = await lint('bad-key', text.replace('    timeout-minutes: 120', '    timeout-minute: 120'));
    t.is(badKey.code, 1, badKey.stdout);
    t.regex(badKey.stdout, /unexpected key "timeout-minute"/);

    // Without the config, the runner's custom label is unknown: the config is what lets it pass.
    const noConfig = await lint('no-config', text, false);
    t.is(noConfig.code, 1, noConfig.stdout);
    t.regex(noConfig.stdout, /label "meshbench" is unknown/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the nightly suite: every seed scenario in its quick form, and baseline vs ebpf interleaved with repeats', (t) => {
  const s = loadSuite(SUITE);
  const seeds = readdirSync('scenarios')
    .filter((f) => /^seed-.*\.yaml$/.test(f))
    .map((f) => `scenarios/${f}`);
  for (const seed of seeds) {
    const run = s.runs.find((r) => r.scenarioPath === seed);
    t.truthy(run, `${seed} is in the suite`);
    t.true(run?.quick, `${seed} runs in its quick form`);
  }
  const overhead = s.runs.find((r) => r.name === 'quick-overhead');
  t.deepEqual(overhead && runArgs(overhead), ['scenarios/quick.yaml', '--quick', '--dataplanes', 'baseline,ebpf', '--repeats', '5']);
  t.is(overhead?.cases, 10, 'two dataplanes × one workload × 5 repeats');
  // Keep it a nightly: each case is ~15-25 s here (docs/nightly.md).
  const cases = s.runs.reduce((a, r) => a + r.cases, 0);
  t.true(cases <= 40, `${cases} cases`);
});

test('scripts/nightly --dry-run prints each run as a meshbench command, then add, report and check', async (t) => {
  const r = await sh('bash', ['scripts/nightly', SUITE, '--dry-run', '--history', '/tmp/h', '--results', '/tmp/r', '--reports', '/tmp/p']);
  t.is(r.code, 0, r.stderr);
  const lines = r.stdout.trim().split('\n');
  t.regex(
    lines[0],
    /^seed-000-cluster-memory \(5 cases\): npx meshbench run scenarios\/seed-000-cluster-memory\.yaml --quick --results \/tmp\/r --reports \/tmp\/p$/,
  );
  t.true(lines.some((l) => l.includes('run scenarios/quick.yaml --quick --dataplanes baseline,ebpf --repeats 5 ')));
  t.deepEqual(lines.slice(-3), [
    'then: npx meshbench history add <run records> --history /tmp/h',
    'then: npx meshbench history report --history /tmp/h --reports /tmp/p',
    'then: npx meshbench history check --history /tmp/h',
  ]);
});

test('a bad suite is exit 2 with file:line, before anything runs', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'mb-suite-'));
  try {
    const bad = join(dir, 'bad.yaml');
    writeFileSync(
      bad,
      [
        'kind: Suite',
        'name: bad',
        'runs:',
        `  - scenario: ${resolve('scenarios/quick.yaml')}`,
        '    quick: true',
        '    repeatz: 3',
        '  - scenario: ../no-such.yaml',
        `  - scenario: ${resolve('scenarios/quick.yaml')}`,
        '    name: other',
        '    dataplanes: [baseline, envoy]',
        '    kernels: [debian-9]',
        '',
      ].join('\n'),
    );
    const r = await sh('bash', ['scripts/nightly', bad, '--results', join(dir, 'r'), '--reports', join(dir, 'p'), '--history', join(dir, 'h')]);
    t.is(r.code, 2, r.stderr);
    t.regex(r.stderr, /bad\.yaml:6: runs\.0\.repeatz: unknown key\(s\) "repeatz"/);
    t.false(existsSync(join(dir, 'r')) || existsSync(join(dir, 'p')) || existsSync(join(dir, 'h')), 'nothing ran, nothing written');

    // Past the schema: each run's scenario, dataplanes and kernels, at their lines.
    writeFileSync(bad, readFileSync(bad, 'utf8').replace('    repeatz: 3\n', ''));
    const e = t.throws(() => loadSuite(bad), { instanceOf: MeshbenchError });
    t.is(e?.code, 'E_INPUT');
    t.true(
      e?.details.some((d) => /bad\.yaml:6: runs\.1\.scenario: .*no-such\.yaml is not a valid scenario/.test(d)),
      e?.details.join('\n'),
    );
    t.true(e?.details.some((d) => /no-such\.yaml:1: file not found/.test(d)));
    t.true(e?.details.some((d) => /bad\.yaml:9: runs\.2\.dataplanes\.1: unknown dataplane "envoy"/.test(d)));
    t.true(e?.details.some((d) => /bad\.yaml:10: runs\.2\.kernels\.0: unknown kernel "debian-9"/.test(d)));

    const usage = await sh('bash', ['scripts/nightly', SUITE, '--bogus']);
    t.is(usage.code, 2);
    t.regex(usage.stderr, /unknown option --bogus/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

// The runs stand in for `meshbench run` (which needs minutes and a lab): a run that fails, exit 1,
// having written its record. Everything after it is the real CLI: history add, report, check.
rootTest("scripts/nightly adds a failed run's record, writes the report and the check, and exits 1 saying which run failed", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'mb-nightly-'));
  try {
    const suite = join(dir, 'suite.yaml');
    writeFileSync(suite, `kind: Suite\nname: one\nruns:\n  - scenario: ${resolve('scenarios/seed-001-mesh-comparison.yaml')}\n    quick: true\n`);
    const fake = join(dir, 'meshbench');
    writeFileSync(
      fake,
      [
        '#!/usr/bin/env bash',
        'if [ "$1" = run ]; then',
        '  shift; while [ "$1" != --results ]; do shift; done',
        '  mkdir -p "$2/x" && cp test/fixtures/runs/seed-001-quick.json "$2/x/run.json"',
        '  echo "run record: $2/x/run.json"; echo "meshbench: run failed: stand-in" >&2; exit 1',
        'fi',
        `exec "${process.execPath}" --import tsx harness/cli/main.ts "$@"`,
        '',
      ].join('\n'),
    );
    chmodSync(fake, 0o755);
    const [h, res, rep] = ['h', 'r', 'p'].map((d) => join(dir, d));
    mkdirSync(res);
    const r = await sh('bash', ['scripts/nightly', suite, '--history', h, '--results', res, '--reports', rep], { MESHBENCH: fake });
    t.is(r.code, 1, r.stderr);
    t.regex(r.stderr, /run\(s\) that failed: seed-001-mesh-comparison \(exit 1\)/);
    t.is(readdirSync(h, { recursive: true }).filter((f) => String(f).endsWith('.jsonl')).length, 1, "the failed run's record is in the history");
    t.true(existsSync(join(rep, 'history/index.html')), 'the trend report');
    t.regex(readFileSync(join(rep, 'nightly/check.txt'), 'utf8'), /series checked/);
    const summary = readFileSync(join(rep, 'nightly/summary.md'), 'utf8');
    t.regex(summary, /\| seed-001-mesh-comparison \| 7 \| 1 \| \d+ \| .*run\.json \|/);
    t.regex(summary, /## history check \(exit 0\)/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
