// Where each dataplane's time and memory go, from one interleaved run: every registered kind and,
// for each of its options, the variant with every other value (ebpf[encryption=none],
// istio-sidecar[mtls=off], istio-sidecar[mode=capture-only] …), on quick.yaml's shape, then the
// waterfall of each (p50, p99 and dataplane memory over baseline, per component) printed as text.
// Root; ~20 s per case: 12 dataplanes × 3 repeats ≈ 12 min.
// Usage: sudo npx tsx bench/waterfall.ts [repeats=3] [duration s=8] [scenario=scenarios/quick.yaml]
//        (MB_BENCH_KEEP=<dir>: keep the run record and report there)
//        npx tsx bench/waterfall.ts --record results/…/run.json   (print an existing run's)
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { attribution, type Waterfall } from '../harness/analysis/attribution.js';
import { allDataplanes } from '../harness/dataplanes/registry.js';
import type { RunRecord } from '../harness/results/types.js';

const f = (x: number, unit: string) => `${x >= 0 ? '+' : ''}${x.toFixed(unit === 'ms' ? 3 : 1)}`;
const iv = (i: { estimate: number; low: number; high: number }, unit: string) => `${f(i.estimate, unit)} [${f(i.low, unit)}, ${f(i.high, unit)}] ${unit}`;

function print(run: RunRecord): void {
  const ok = run.cases.filter((c) => c.status === 'ok').length;
  console.log(
    `run ${run.runId}: ${run.cases.length} cases, ${ok} ok${
      ok < run.cases.length
        ? ` (not ok: ${run.cases
            .filter((c) => c.status !== 'ok')
            .map((c) => `${c.dataplane} r${c.repeat} ${c.status}`)
            .join(', ')})`
        : ''
    }`,
  );
  const p99 = attribution(run.cases, 'p99');
  const mem = attribution(run.cases, 'memory');
  const same = (ws: Waterfall[], w: Waterfall) => ws.find((x) => x.dataplane === w.dataplane && x.workload === w.workload);
  for (const w of attribution(run.cases, 'p50')) {
    const [q, m] = [same(p99, w), same(mem, w)];
    console.log(`\n${w.dataplane} · ${w.workload} (n = ${w.total.n})`);
    console.log(`  ${'step'.padEnd(58)} ${'p50 added'.padEnd(30)} ${'p99 added'.padEnd(30)} memory added`);
    for (const s of w.steps) {
      const qs = q?.steps.find((x) => x.to === s.to && x.from === s.from);
      const ms = m?.steps.find((x) => x.to === s.to && x.from === s.from);
      console.log(
        `  + ${s.label.slice(0, 56).padEnd(56)} ${iv(s.added, 'ms').padEnd(30)} ${(qs ? iv(qs.added, 'ms') : '-').padEnd(30)} ${ms ? iv(ms.added, 'MiB') : '-'}`,
      );
      console.log(`      ${s.to} − ${s.from}${s.caveat ? ` · ${s.caveat.kind}: ${s.caveat.text}` : ''}`);
    }
    console.log(
      `  ${'= total over baseline'.padEnd(58)} ${iv(w.total, 'ms').padEnd(30)} ${(q ? iv(q.total, 'ms') : '-').padEnd(30)} ${m ? iv(m.total, 'MiB') : '-'}`,
    );
    console.log(`  ${w.agrees ? 'adds up' : 'DOES NOT ADD UP'}: ${w.note}`);
    for (const x of [w, m])
      if (x?.measured.length)
        console.log(
          `  measured ${x.metric === 'memory' ? 'memory by part' : 'CPU per request'}: ${x.measured.map((c) => `${c.part} ${c.value.estimate.toFixed(1)} [${c.value.low.toFixed(1)}, ${c.value.high.toFixed(1)}] ${c.unit}`).join(' · ')}`,
        );
  }
}

if (process.argv[2] === '--record') {
  print(JSON.parse(readFileSync(process.argv[3]!, 'utf8')) as RunRecord);
} else {
  const [repeats = '3', duration = '8', scenario = 'scenarios/quick.yaml'] = process.argv.slice(2);
  const dataplanes = allDataplanes().flatMap((d) => [
    d.name,
    ...(d.options ?? []).flatMap((o) => o.values.filter((v) => v !== o.default).map((v) => `${d.name}[${o.key}=${v}]`)),
  ]);
  const keep = process.env.MB_BENCH_KEEP;
  const dir = keep ?? mkdtempSync(join(tmpdir(), 'mb-bench-waterfall-'));
  try {
    console.log(`${dataplanes.length} dataplanes × ${repeats} repeats, ${duration} s windows: ${dataplanes.join(', ')}`);
    const t0 = performance.now();
    const r = spawnSync(
      process.execPath,
      [
        '--import',
        'tsx',
        'harness/cli/main.ts',
        'run',
        scenario,
        '--dataplanes',
        dataplanes.join(','),
        '--repeats',
        repeats,
        '--duration',
        duration,
        '--warmup',
        '2',
        '--results',
        dir,
        '--reports',
        join(dir, 'reports'),
      ],
      { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] },
    );
    console.log(`run exit ${r.status} in ${((performance.now() - t0) / 1000).toFixed(0)} s`);
    const record = /^run record: (.+)$/m.exec(r.stdout ?? '')?.[1];
    if (!record) {
      console.log(r.stdout);
      process.exit(1);
    }
    print(JSON.parse(readFileSync(record, 'utf8')) as RunRecord);
  } finally {
    if (!keep) rmSync(dir, { recursive: true, force: true });
  }
}
