// How the nightly job's time scales with repeats: scripts/nightly on a one-run suite (quick.yaml
// in its quick form, baseline and ebpf interleaved) with each repeat count given, timed end to end
// (runs, history add, trend page, check) in a fresh history. Root; takes minutes.
// Usage: sudo npx tsx bench/nightly.ts [repeats…=1,3]
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const counts = (process.argv[2] ?? '1,3').split(',').map(Number);
const rows: string[] = [];
for (const r of counts) {
  const dir = mkdtempSync(join(tmpdir(), 'mb-bench-nightly-'));
  try {
    const suite = join(dir, 'suite.yaml');
    writeFileSync(
      suite,
      `kind: Suite\nname: bench\nruns:\n  - scenario: ${join(process.cwd(), 'scenarios/quick.yaml')}\n    quick: true\n    dataplanes: [baseline, ebpf]\n    repeats: ${r}\n`,
    );
    const t0 = performance.now();
    const p = spawnSync('scripts/nightly', [suite, '--history', join(dir, 'h'), '--results', join(dir, 'results'), '--reports', join(dir, 'reports')], {
      encoding: 'utf8',
      env: { ...process.env, MESHBENCH: process.env.MESHBENCH ?? 'npx tsx harness/cli/main.ts' },
    });
    const s = (performance.now() - t0) / 1000;
    rows.push(`repeats ${r}: ${2 * r} case(s) in ${s.toFixed(1)} s (${(s / (2 * r)).toFixed(1)} s per case), exit ${p.status}`);
    console.log(rows.at(-1));
    if (p.status !== 0 && p.status !== 1) console.log(p.stderr.slice(-2000));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
