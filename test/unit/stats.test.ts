import test from 'ava';
import {
  bootstrapCI,
  choose,
  diffCI,
  hashSeed,
  mannWhitneyU,
  mean,
  median,
  midRanks,
  overhead,
  pairedDiffCI,
  percentile,
  permutationTest,
  rng,
  standardDeviation,
} from '../../harness/analysis/stats.js';
import * as ss from 'simple-statistics';
import type { CaseResult } from '../../harness/results/types.js';

const sample = (seed: string, n: number, centre: number, spread: number) => {
  const r = rng(seed);
  return Array.from({ length: n }, () => centre + spread * (r.next() - 0.5));
};

test('rng: the same seed gives the same stream, pinned so a change of generator is noticed', (t) => {
  const a = rng('meshbench');
  const b = rng('meshbench');
  const xs = Array.from({ length: 100 }, () => a.next());
  t.deepEqual(
    xs,
    Array.from({ length: 100 }, () => b.next()),
  );
  t.is(hashSeed('meshbench'), 2696070363);
  t.deepEqual(xs.slice(0, 3), [0.48248606198467314, 0.4541167749557644, 0.048335023457184434]);
  t.true(xs.every((x) => x >= 0 && x < 1));
  t.is(hashSeed(7), hashSeed('7'));
  const other = rng('meshbench2');
  t.notDeepEqual(
    Array.from({ length: 10 }, () => other.next()),
    xs.slice(0, 10),
  );
  const ints = rng('ints');
  for (let i = 0; i < 1000; i++) {
    const k = ints.int(6);
    t.true(Number.isInteger(k) && k >= 0 && k < 6);
  }
});

test('median, mean and type-7 percentile on known small samples', (t) => {
  t.is(median([3, 1, 2]), 2);
  t.is(median([4, 1, 3, 2]), 2.5);
  t.is(median([7]), 7);
  t.true(Number.isNaN(median([])));
  t.is(mean([1, 2, 3, 6]), 3);
  const xs = [1, 2, 3, 4];
  t.is(percentile(xs, 0), 1);
  t.is(percentile(xs, 100), 4);
  t.is(percentile(xs, 25), 1.75); // h = 3·0.25 = 0.75 → 1 + 0.75·(2 − 1)
  t.is(percentile(xs, 50), median(xs));
  t.is(percentile([10, 20, 30, 40, 50], 90), 46);
  t.is(percentile([5, 1, 3], 50), 3, 'sorts its input');
  t.true(Number.isNaN(percentile([], 50)));
  t.throws(() => percentile(xs, 101), { instanceOf: RangeError });
  t.throws(() => percentile(xs, -1), { instanceOf: RangeError });
  t.deepEqual(xs, [1, 2, 3, 4], 'input untouched');
});

test('bootstrapCI: deterministic for a seed, contains the estimate, degenerate cases', (t) => {
  const xs = [10, 12, 11, 15, 9, 30, 11];
  const ci = bootstrapCI(xs, median, { seed: 'x' });
  t.deepEqual(ci, { estimate: 11, low: 10, high: 15, n: 7, level: 0.95, resamples: 2000 });
  t.deepEqual(bootstrapCI(xs, median, { seed: 'x' }), ci);
  for (let i = 0; i < 30; i++) {
    const s = sample(`s${i}`, 3 + (i % 9), 100, 40);
    for (const stat of [median, mean]) {
      const c = bootstrapCI(s, stat, { seed: i, resamples: 500 });
      t.true(c.low <= c.estimate && c.estimate <= c.high, `sample ${i}: ${JSON.stringify(c)}`);
    }
  }
  const narrow = bootstrapCI(xs, median, { seed: 'x', level: 0.5 });
  t.true(narrow.high - narrow.low <= ci.high - ci.low);
  t.deepEqual(bootstrapCI([5, 5, 5, 5], median), { estimate: 5, low: 5, high: 5, n: 4, level: 0.95, resamples: 2000 });
  const one = bootstrapCI([42], median);
  t.is(one.low, 42);
  t.is(one.high, 42);
  const none = bootstrapCI([], median);
  t.true(Number.isNaN(none.estimate) && Number.isNaN(none.low));
  t.throws(() => bootstrapCI(xs, median, { level: 1 }), { instanceOf: RangeError });
  t.throws(() => bootstrapCI(xs, median, { resamples: 0 }), { instanceOf: RangeError });
});

test('diffCI: difference of medians b − a, interval around a clear shift excludes 0', (t) => {
  const a = sample('a', 8, 300, 20);
  const b = sample('b', 8, 400, 20);
  const d = diffCI(a, b, { seed: 'd' });
  t.is(d.estimate, median(b) - median(a));
  t.is(d.nA, 8);
  t.is(d.nB, 8);
  t.true(d.low <= d.estimate && d.estimate <= d.high);
  t.true(d.low > 60 && d.high < 140, JSON.stringify(d));
  t.deepEqual(diffCI(a, b, { seed: 'd' }), d);
  const same = diffCI(a, a, { seed: 'd' });
  t.is(same.estimate, 0);
  t.true(same.low < 0 && same.high > 0);
  t.true(Number.isNaN(diffCI([], b).estimate));
});

test('pairedDiffCI: median of per-pair differences, tuples or objects', (t) => {
  const pairs = [
    [100, 105],
    [200, 205],
    [50, 55],
  ] as const;
  t.deepEqual(pairedDiffCI(pairs), { estimate: 5, low: 5, high: 5, n: 3, level: 0.95, resamples: 2000 });
  // The pairs differ wildly in level but not in difference: the paired interval stays narrow
  // where the unpaired one does not.
  const objs = [
    { a: 100, b: 104 },
    { a: 900, b: 907 },
    { a: 300, b: 305 },
    { a: 600, b: 606 },
  ];
  const p = pairedDiffCI(objs, { seed: 1 });
  t.is(p.estimate, 5.5);
  t.true(p.low >= 4 && p.high <= 7);
  const u = diffCI(
    objs.map((o) => o.a),
    objs.map((o) => o.b),
    { seed: 1 },
  );
  t.true(u.high - u.low > 100);
});

test('permutationTest: small p for separated samples, 1 for identical ones, exact values', (t) => {
  t.is(choose(10, 5), 252);
  t.is(choose(6, 0), 1);
  const a = [1, 2, 3, 4, 5];
  const b = [6, 7, 8, 9, 10];
  const r = permutationTest(a, b);
  t.is(r.method, 'exact');
  t.is(r.permutations, 252);
  // A split reaches |Δmedian| = 5 when A holds 1, 2, 3 (or mirrored): 2·C(4,2) = 12 of 252.
  t.is(r.p, 12 / 252);
  t.is(r.statistic, 5);
  t.is(r.minP, 12 / 252);
  t.is(permutationTest(b, a).p, r.p, 'two-sided');
  t.is(permutationTest(b, a).statistic, -5);
  const id = permutationTest([3, 1, 2, 5], [3, 1, 2, 5]);
  t.is(id.p, 1);
  t.is(permutationTest([1, 2, 3], [4, 5, 6]).minP, 0.2);
  t.is(permutationTest([], [1]).p, 1);

  // Monte Carlo (C(40, 20) splits): deterministic for a seed, never 0.
  const big1 = sample('m1', 20, 100, 10);
  const big2 = sample('m2', 20, 150, 10);
  const mc = permutationTest(big1, big2, { seed: 's', permutations: 2000 });
  t.is(mc.method, 'monte-carlo');
  t.is(mc.p, 1 / 2001);
  t.is(mc.minP, 1 / 2001);
  const close = permutationTest(big1, sample('m3', 20, 100, 10), { seed: 's', permutations: 2000 });
  t.true(close.p > 0.2, `p ${close.p}`);
  t.deepEqual(permutationTest(big1, sample('m3', 20, 100, 10), { seed: 's', permutations: 2000 }), close);
  t.throws(() => permutationTest(a, b, { permutations: 0 }), { instanceOf: RangeError });
});

test('mannWhitneyU: U, mid-ranks for ties, and more power than the median test', (t) => {
  const r = mannWhitneyU([1, 2, 3, 4, 5], [6, 7, 8, 9, 10]);
  t.is(r.u, 25);
  t.is(r.p, 2 / 252);
  t.is(r.minP, 2 / 252);
  t.true(r.p < permutationTest([1, 2, 3, 4, 5], [6, 7, 8, 9, 10]).p);
  t.is(mannWhitneyU([6, 7, 8], [1, 2, 3]).u, 0);
  t.is(mannWhitneyU([1, 2, 3], [1, 2, 3]).p, 1);
  t.deepEqual(midRanks([1, 2], [2, 3]), { a: [1, 2.5], b: [2.5, 4] });
  t.is(mannWhitneyU([1, 2], [2, 3]).u, 3.5);
});

// ---------------------------------------------------------------------------------------------

function fakeCase(dataplane: string, repeat: number, p50: number, extra: Partial<CaseResult> = {}): CaseResult {
  return {
    index: 0,
    dataplane,
    workload: extra.workload ?? 'w',
    repeat,
    status: 'ok',
    load: { actual: { qps: 100, errors: 0 } },
    latencyUs: { p50, p90: p50 * 2 },
    provenance: {},
    startedAt: '',
    ...extra,
  } as unknown as CaseResult;
}

test('overhead: paired by (workload, repeat) within a run, median of the differences', (t) => {
  // Interleaved: repeats outer, dataplanes inner; repeat 2's host was slower for both.
  const cases = [
    fakeCase('baseline', 0, 300),
    fakeCase('ebpf', 0, 320),
    fakeCase('baseline', 1, 310),
    fakeCase('ebpf', 1, 328),
    fakeCase('baseline', 2, 500),
    fakeCase('ebpf', 2, 523),
    fakeCase('ebpf', 3, 999), // no baseline for repeat 3: left out of the pairs
    fakeCase('baseline', 4, 1, { status: 'failed' }),
  ];
  const [o, ...rest] = overhead(cases, 'ebpf', 'baseline', 'p50');
  t.is(rest.length, 0);
  t.truthy(o);
  t.true(o!.paired);
  t.deepEqual(
    o!.pairs.map((p) => p.diff),
    [20, 18, 23],
  );
  t.is(o!.estimate, 20);
  t.is(o!.n, 3);
  t.true(o!.low <= 20 && o!.high >= 20 && o!.low >= 18 && o!.high <= 23);
  t.is(o!.baselineMedian, 310);
  t.is(o!.dataplaneMedian, 328);
  t.deepEqual(overhead(cases, 'ebpf', 'baseline', 'p50'), [o], 'deterministic');

  // A metric given as a function, and unpaired when no repeat has both.
  const unpaired = overhead(
    [fakeCase('baseline', 0, 300), fakeCase('baseline', 1, 302), fakeCase('ebpf', 5, 350), fakeCase('ebpf', 6, 360)],
    'ebpf',
    'baseline',
    (c) => c.latencyUs?.p90,
  );
  t.is(unpaired.length, 1);
  t.false(unpaired[0]!.paired);
  t.is(unpaired[0]!.estimate, 2 * 355 - 2 * 301);

  // One result per workload in which both dataplanes ran.
  const two = overhead(
    [
      ...cases,
      fakeCase('baseline', 0, 100, { workload: 'grpc' }),
      fakeCase('ebpf', 0, 140, { workload: 'grpc' }),
      fakeCase('ebpf', 0, 1, { workload: 'only-ebpf' }),
    ],
    'ebpf',
    'baseline',
    'p50',
  );
  t.deepEqual(
    two.map((x) => [x.workload, x.estimate]),
    [
      ['w', 20],
      ['grpc', 40],
    ],
  );
  t.throws(() => overhead(cases, 'ebpf', 'baseline', 'p42'), { message: /unknown metric "p42"/ });
});

test("basic statistics are simple-statistics' (type-7 quantiles), with NaN for an empty sample instead of a throw", (t) => {
  const xs = [7, 1, 4, 4, 10, 2.5];
  t.is(median(xs), ss.median(xs));
  t.is(mean(xs), ss.mean(xs));
  t.is(standardDeviation(xs), ss.standardDeviation(xs));
  t.is(standardDeviation([2, 4, 4, 4, 5, 5, 7, 9]), 2, 'population standard deviation');
  for (const p of [0, 2.5, 25, 50, 90, 97.5, 100]) t.is(percentile(xs, p), ss.quantile(xs, p / 100), `p${p}`);
  // type 7 (numpy's default): h = (n − 1)·p
  t.is(percentile([1, 2, 3, 4], 25), 1.75);
  for (const f of [median, mean, standardDeviation]) t.true(Number.isNaN(f([])), f.name);
  t.true(Number.isNaN(percentile([], 50)));
  t.deepEqual(xs, [7, 1, 4, 4, 10, 2.5], 'the input is not reordered');
});
