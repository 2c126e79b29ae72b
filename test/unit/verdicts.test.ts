// The rules that turn a measured median and interval into a verdict on a published figure.
import test from 'ava';
import { judgeFigure, judgeOrdering, judgeRatio, publishedRange } from '../../harness/analysis/verdicts.js';
import type { Interval } from '../../harness/analysis/stats.js';

const iv = (estimate: number, low: number, high: number, n = 5): Interval => ({ estimate, low, high, n, level: 0.95, resamples: 2000 });

test('a published figure as a range: exact, a range, or ±25 % when approximate', (t) => {
  t.deepEqual(publishedRange({ value: 1 }), [1, 1]);
  t.deepEqual(publishedRange({ value: [50, 100] }), [50, 100]);
  t.deepEqual(publishedRange({ value: 1, approx: true }), [0.75, 1.25]);
  t.deepEqual(publishedRange({ value: [2, 5], approx: true }), [1.5, 6.25]);
});

test('figures: reproduced, same direction, contradicted, not measurable', (t) => {
  t.is(judgeFigure({ value: 1, approx: true }, iv(1.1, 0.9, 1.3), 'ms').verdict, 'reproduced');
  t.is(judgeFigure({ value: [50, 100] }, iv(20, 19, 21), 'MB').verdict, 'same direction, different size');
  t.regex(judgeFigure({ value: [50, 100] }, iv(20, 19, 21), 'MB').why, /below the document's 50–100 MB/);
  t.is(judgeFigure({ value: 0.1 }, iv(-0.05, -0.08, -0.02), 'ms').verdict, 'contradicted');
  t.is(judgeFigure({ value: 0.3 }, iv(0.01, -0.2, 0.3), 'ms').verdict, 'reproduced', 'the interval reaches 0.3');
  t.is(judgeFigure({ value: 3 }, iv(0.01, -0.2, 0.3), 'ms').verdict, 'not measurable here', 'straddles zero, far from 3');
  const none = judgeFigure({ value: [2, 5] }, undefined, 's', 'no image pulls in this lab');
  t.deepEqual(none, { verdict: 'not measurable here', why: 'no image pulls in this lab' });
});

test('ratios: within the band, outside it, reversed, unbounded', (t) => {
  t.is(judgeRatio([3, 10], iv(1.0, 0.9, 1.1), iv(0.2, 0.18, 0.22), 'p50 overhead istio / cilium').verdict, 'reproduced');
  t.is(judgeRatio([3, 10], iv(1.0, 0.9, 1.1), iv(0.6, 0.55, 0.65), 'x').verdict, 'same direction, different size');
  t.is(judgeRatio([3, 10], iv(0.2, 0.18, 0.22), iv(1.0, 0.9, 1.1), 'x').verdict, 'contradicted');
  t.is(judgeRatio([3, 10], iv(1.0, 0.9, 1.1), iv(0.01, -0.05, 0.05), 'x').verdict, 'same direction, different size');
  t.is(judgeRatio([3, 10], iv(0.01, -0.05, 0.05), iv(0.01, -0.05, 0.05), 'x').verdict, 'not measurable here');
  t.is(judgeRatio([3, 10], undefined, iv(1, 1, 1), 'x').verdict, 'not measurable here');
});

test('orderings: every step rises, some step falls, within the intervals, missing', (t) => {
  const order = ['ebpf', 'ebpf-l7', 'istio-sidecar'];
  t.is(judgeOrdering(order, { ebpf: iv(300, 290, 310), 'ebpf-l7': iv(700, 650, 750), 'istio-sidecar': iv(1000, 950, 1100) }, 'µs').verdict, 'reproduced');
  t.is(judgeOrdering(order, { ebpf: iv(300, 290, 310), 'ebpf-l7': iv(1200, 1150, 1250), 'istio-sidecar': iv(1000, 950, 1100) }, 'µs').verdict, 'contradicted');
  t.is(
    judgeOrdering(order, { ebpf: iv(300, 290, 310), 'ebpf-l7': iv(980, 900, 1050), 'istio-sidecar': iv(1000, 950, 1100) }, 'µs').verdict,
    'same direction, different size',
  );
  t.is(
    judgeOrdering(order, { ebpf: iv(300, 290, 310), 'ebpf-l7': iv(1010, 900, 1050), 'istio-sidecar': iv(1000, 950, 1100) }, 'µs').verdict,
    'not measurable here',
  );
  t.regex(judgeOrdering(order, { ebpf: iv(1, 1, 1) }, 'µs').why, /not measured in this run: ebpf-l7, istio-sidecar/);
});
