// Claim verdicts: how a measured figure (a median with its bootstrap interval, from stats.ts)
// stands against a figure a source document publishes. Pure; the mapping of each claims table
// to lab metrics builds on these rules.
//
// The four verdicts (issue 6):
//   reproduced                       the measured interval meets the document's value or range
//   same direction, different size   it does not, but it lies on the same side of zero (a cost is a
//                                    cost), or a ratio/order holds in direction but not in size
//   contradicted                     it lies on the other side (the claimed cost is not there, or
//                                    the claimed order is reversed beyond the intervals)
//   not measurable here              nothing was measured, or the intervals cannot tell; always
//                                    with the reason
import type { Interval } from './stats.js';

export type VerdictWord = 'reproduced' | 'same direction, different size' | 'contradicted' | 'not measurable here';

export interface ClaimVerdict {
  verdict: VerdictWord;
  /** One sentence: which figures were compared and how. */
  why: string;
}

/** A published figure: one value or a [low, high] range; `approx` ("~" in the source) widens it. */
export interface PublishedFigure {
  value: number | [number, number];
  approx?: boolean;
}

/** How far "~v" reaches either side, as a fraction of v. */
export const APPROX_TOLERANCE = 0.25;

/** The document's figure as an interval: a range as given; a single value exact, or ±25 % when approximate. */
export function publishedRange(f: PublishedFigure): [number, number] {
  const [lo, hi] = Array.isArray(f.value) ? f.value : [f.value, f.value];
  if (!f.approx) return [lo, hi];
  const t = APPROX_TOLERANCE;
  return [Math.min(lo * (1 - t), lo * (1 + t)), Math.max(hi * (1 - t), hi * (1 + t))];
}

const fmt = (x: number) => {
  const t = Math.abs(x) >= 100 ? x.toFixed(0) : Math.abs(x) >= 10 ? x.toFixed(1) : x.toFixed(2);
  return /^-0(\.0+)?$/.test(t) ? t.slice(1) : t; // no "-0.00" for a tiny negative
};
/** "estimate [low, high]" with 3 significant figures or so; one figure when the interval is a point. */
export function showInterval(m: Interval): string {
  return m.low === m.high && m.low === m.estimate ? fmt(m.estimate) : `${fmt(m.estimate)} [${fmt(m.low)}, ${fmt(m.high)}]`;
}
const show = showInterval;

/**
 * A measured figure (in the document's unit) against a published one. Reproduced when the
 * measured interval overlaps the published range; otherwise the same direction when the measured
 * estimate has the published figure's sign (both costs, say), and contradicted when the measured
 * interval lies wholly on the other side of zero. An interval that straddles zero while the
 * published figure is not zero cannot tell the direction: not measurable here. `shown` replaces
 * the published figure's text in the reason (when `doc` is a reading of it, e.g. "0 s" as ±0.5 s).
 */
export function judgeFigure(
  doc: PublishedFigure,
  measured: Interval | undefined,
  unit: string,
  missing = 'not measured in this run',
  shown?: string,
): ClaimVerdict {
  if (!measured || !Number.isFinite(measured.estimate)) return { verdict: 'not measurable here', why: missing };
  const [lo, hi] = publishedRange(doc);
  const docText = shown ?? `${Array.isArray(doc.value) ? `${doc.value[0]}–${doc.value[1]}` : doc.value} ${unit}${doc.approx ? ' (approx., ±25 %)' : ''}`;
  const m = `measured ${show(measured)} ${unit} (${measured.n > 1 ? 'median, 95 % interval, ' : ''}n = ${measured.n})`;
  if (measured.high >= lo && measured.low <= hi) return { verdict: 'reproduced', why: `${m} meets the document's ${docText}` };
  const docSign = Math.sign((lo + hi) / 2);
  if (docSign !== 0 && measured.low <= 0 && measured.high >= 0)
    return { verdict: 'not measurable here', why: `${m} includes zero, so it cannot say whether there is the document's ${docText}` };
  if (Math.sign(measured.estimate) === docSign || docSign === 0)
    return { verdict: 'same direction, different size', why: `${m} is ${measured.estimate > hi ? 'above' : 'below'} the document's ${docText}` };
  return { verdict: 'contradicted', why: `${m} is on the other side of zero from the document's ${docText}` };
}

/**
 * "A is k₁–k₂ times B" (e.g. sidecar overhead / eBPF overhead in [3, 10]). The ratio is taken of
 * the estimates and bounded with the intervals (lowest: A.low / B.high; highest: A.high / B.low),
 * for positive figures only. Reproduced when that span meets the band; same direction when A is
 * larger than B beyond the intervals but outside the band; contradicted when A is smaller than B
 * beyond the intervals; otherwise (overlapping intervals, figures at or below zero) not measurable.
 */
export function judgeRatio(band: [number, number], a: Interval | undefined, b: Interval | undefined, what: string): ClaimVerdict {
  if (!a || !b) return { verdict: 'not measurable here', why: `${what}: one side was not measured in this run` };
  const ratio = a.estimate / b.estimate;
  const bandText = band[0] === band[1] ? fmt(band[0]) : `${fmt(band[0])}–${fmt(band[1])}`;
  const text = `${what}: ratio ${Number.isFinite(ratio) ? fmt(ratio) : '∞'} (${show(a)} / ${show(b)}), document ${bandText}×`;
  if (b.low <= 0 || a.low <= 0) {
    if (a.low > b.high)
      return { verdict: 'same direction, different size', why: `${text}; the denominator's interval reaches zero, so only the direction is known` };
    return { verdict: 'not measurable here', why: `${text}; an interval reaches zero, so the ratio is unbounded` };
  }
  const [rlo, rhi] = [a.low / b.high, a.high / b.low];
  if (rhi >= band[0] && rlo <= band[1]) return { verdict: 'reproduced', why: `${text}; the ratio's span ${fmt(rlo)}–${fmt(rhi)} meets it` };
  if (a.low > b.high) return { verdict: 'same direction, different size', why: `${text}; larger, but outside the band (span ${fmt(rlo)}–${fmt(rhi)})` };
  if (a.high < b.low) return { verdict: 'contradicted', why: `${text}; the first is smaller, beyond the intervals` };
  return { verdict: 'not measurable here', why: `${text}; the intervals overlap` };
}

/**
 * "Latency rises in this order": each neighbouring pair must rise. Reproduced when every step
 * rises beyond the intervals; contradicted when some step falls beyond them; same direction when
 * the estimates rise but some step is within the intervals; otherwise not measurable.
 */
export function judgeOrdering(order: string[], measured: Record<string, Interval | undefined>, unit: string): ClaimVerdict {
  const missing = order.filter((k) => !measured[k]);
  if (missing.length) return { verdict: 'not measurable here', why: `not measured in this run: ${missing.join(', ')}` };
  const m = order.map((k) => measured[k]!);
  const text = order.map((k, i) => `${k} ${show(m[i])} ${unit}`).join(' < ');
  const steps = m.slice(1).map((x, i) => ({ prev: m[i], x }));
  if (steps.some(({ prev, x }) => x.high < prev.low)) return { verdict: 'contradicted', why: `${text}: some step falls beyond the intervals` };
  if (steps.every(({ prev, x }) => x.low > prev.high)) return { verdict: 'reproduced', why: `${text}: every step rises beyond the intervals` };
  if (steps.every(({ prev, x }) => x.estimate > prev.estimate))
    return { verdict: 'same direction, different size', why: `${text}: the medians rise in order, but some step is within the intervals` };
  return { verdict: 'not measurable here', why: `${text}: the medians are not in order and the intervals overlap` };
}
