// `run --kernel` without a VM: the guest's command line (quoting, the host's overrides, results
// into the exchange directory, MESHBENCH_VM), the kernel argument's check, and the report's
// kernels-side-by-side section and TCG warning from recorded runs.
import test from 'ava';
import { readFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { MeshbenchError } from '../../harness/errors.js';
import { renderReport } from '../../harness/report/report.js';
import type { RunRecord } from '../../harness/results/types.js';
import { GUEST_IO } from '../../harness/vm/initrd.js';
import { KERNELS } from '../../harness/vm/kernels.js';
import { checkKernelArg, guestCommand, guestEntry, shq } from '../../harness/vm/lab.js';

test('shq quotes anything for sh, quotes included', (t) => {
  for (const s of ['plain', "it's", 'a b;c $(x) `y` "z"', '']) t.is(execFileSync('sh', ['-c', `printf %s ${shq(s)}`], { encoding: 'utf8' }), s);
});

test("the guest runs the host's CLI with the host's overrides, its results in the exchange directory, and knows its kernel", (t) => {
  const vm = { kernel: 'debian-6.1', package: 'linux-image-6.1.0-50-amd64', version: '6.1.176-1', release: '6.1.0-50-amd64', accel: 'tcg' as const };
  const cmd = guestCommand('scenarios/quick.yaml', { dataplanes: ['baseline', 'ebpf'], durationS: 2, warmupS: 1, quick: true, repeats: 3 }, vm, [
    '/usr/bin/node',
    '/p/dist/harness/cli/main.js',
  ]);
  const lines = cmd.split('\n');
  t.regex(lines[0], /^export MESHBENCH_VM='\{"kernel":"debian-6\.1",.*"accel":"tcg"\}'$/);
  const exec = lines.at(-1)!;
  t.true(exec.startsWith("exec '/usr/bin/node' '/p/dist/harness/cli/main.js' 'run' '/"), exec);
  t.true(exec.includes(`'--results' '${GUEST_IO}/results' '--no-report'`));
  for (const part of ["'--dataplanes' 'baseline,ebpf'", "'--duration' '2'", "'--warmup' '1'", "'--quick'", "'--repeats' '3'"])
    t.true(exec.includes(part), part);
  t.false(exec.includes('--kernel'), 'the guest runs locally: no VM inside the VM');
});

test('the guest entry is the code the host runs: dist when run from dist, the sources through tsx otherwise', (t) => {
  t.deepEqual(guestEntry('/p/dist/harness/cli/main.js', []), [process.execPath, '/p/dist/harness/cli/main.js']);
  t.deepEqual(guestEntry('/p/harness/cli/main.ts', ['--import', 'tsx']), [process.execPath, '--import', 'tsx', '/p/harness/cli/main.ts']);
  const fromTest = guestEntry('/p/node_modules/ava/worker.js', []);
  t.is(fromTest[1], '--import');
  t.regex(fromTest.at(-1)!, /harness\/cli\/main\.ts$/);
});

test('a kernel argument is a registered name or a kernel directory; else E_INPUT listing the names', (t) => {
  for (const k of Object.keys(KERNELS)) t.notThrows(() => checkKernelArg(k));
  t.throws(() => checkKernelArg('/tmp'), { message: /kernel directory \/tmp: / });
  for (const bad of ['debian-4.19', 'linux', 'toString', '/nonexistent/kernel', '/tmp', '']) {
    const e = t.throws(() => checkKernelArg(bad), { instanceOf: MeshbenchError });
    t.is(e!.code, 'E_INPUT');
    for (const k of Object.keys(KERNELS)) t.true(`${e!.message} ${e!.hint}`.includes(k));
  }
});

const fixture = () => JSON.parse(readFileSync('test/fixtures/runs/quick-seven.json', 'utf8')) as RunRecord;
function onKernel(run: RunRecord, release: string, id: string, tcg: boolean): RunRecord {
  return {
    ...run,
    runId: id,
    environment: {
      ...run.environment,
      kernel: release,
      kernelFacts: { release, virtualisation: tcg ? 'tcg' : 'none', functionalOnly: tcg, package: { name: `linux-image-${release}`, version: '1' } },
    },
  };
}

test('two runs on two kernels: the report puts them side by side, names each run by its kernel, and warns that TCG figures are functional only', async (t) => {
  const a = onKernel(fixture(), '6.1.0-50-amd64', '20261129T000000Z-aaaa', true);
  const b = onKernel(fixture(), '6.12.95+deb12-amd64', '20261129T000100Z-bbbb', true);
  const { html } = await renderReport([a, b]);
  const section = html.match(/<section id="kernels">[\s\S]*?<\/section>/)?.[0];
  t.truthy(section);
  t.true(section!.includes('6.1.0-50-amd64') && section!.includes('6.12.95+deb12-amd64'));
  for (const d of new Set(a.cases.map((c) => c.dataplane))) t.true(section!.includes(`<code>${d}</code>`), d);
  t.regex(html, /Functional only:<\/strong> every run on this page ran in a VM under TCG/);
  t.regex(html, /class="run-head">Run <code>20261129T000000Z-aaaa<\/code> · kernel <code>6\.1\.0-50-amd64<\/code>/);
});

test('one run, or runs on one kernel: no kernels section; a bare-metal run gets no TCG warning', async (t) => {
  const a = fixture();
  t.false((await renderReport([a])).html.includes('id="kernels"'));
  const b = { ...fixture(), runId: '20990101T000000Z-zzzz' };
  const { html } = await renderReport([a, b]);
  t.false(html.includes('id="kernels"'));
  t.false(html.includes('Functional only:'));
});
