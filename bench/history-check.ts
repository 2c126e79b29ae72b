// `history check`'s detection cost: a synthetic history of 1000 runs × 50 series (flat noise,
// steps up and down, slow drifts, CV 1–5 %), every series through detectChangePoints (defaults:
// 199 permutations, p ≤ 0.01, minEffect 5 %) and attribute(). Goal: ≤ 5 s here. Also prints how
// many injected steps were found at the right run (±2) and how many points were reported where
// nothing was injected. Reading the history file is not timed (that is the store's part).
// Usage: npx tsx bench/history-check.ts [runs=1000] [series=50]
import { attribute, detectChangePoints } from '../harness/history/changepoints.js';

const [runs = 1000, count = 50] = process.argv.slice(2).map(Number);

function gaussian(seed: number): () => number {
  let a = seed >>> 0;
  const u = () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return () => Math.sqrt(-2 * Math.log(1 - u())) * Math.cos(2 * Math.PI * u());
}

interface Synthetic {
  values: number[];
  steps: number[];
}

/** Series k: a third flat, a third with 1–3 steps of ±8–20 %, a third steps plus a slow drift. */
function synthetic(k: number): Synthetic {
  const g = gaussian(1000 + k);
  const cv = 0.01 + 0.01 * (k % 5);
  const steps: number[] = [];
  const sizes: number[] = [];
  if (k % 3 !== 0) {
    const nSteps = 1 + (k % 3);
    for (let i = 0; i < nSteps; i++) {
      steps.push(Math.round(((i + 1) * runs) / (nSteps + 1) + ((k * 37) % 50) - 25));
      sizes.push((k + i) % 2 ? 0.08 + 0.04 * (i % 3) : -(0.08 + 0.04 * ((i + 1) % 3)));
    }
  }
  const drift = k % 3 === 2 ? 0.1 / runs : 0; // +10 % over the whole history
  const values: number[] = [];
  let level = 100;
  for (let i = 0; i < runs; i++) {
    const j = steps.indexOf(i);
    if (j >= 0) level *= 1 + sizes[j];
    values.push(level * (1 + drift * i) * (1 + cv * g()));
  }
  return { values, steps };
}

const all = Array.from({ length: count }, (_, k) => synthetic(k));
const commits = Array.from({ length: runs }, (_, i) => ({
  commit: i.toString(16).padStart(40, '0'),
  at: new Date(Date.UTC(2025, 0, 1) + i * 86_400_000).toISOString(),
}));

const t0 = performance.now();
let reported = 0;
let found = 0;
let injected = 0;
let spurious = 0;
for (const s of all) {
  const points = attribute(detectChangePoints(s.values), commits);
  reported += points.length;
  injected += s.steps.length;
  found += s.steps.filter((at) => points.some((p) => Math.abs(p.index - at) <= 2)).length;
  spurious += points.filter((p) => !s.steps.some((at) => Math.abs(p.index - at) <= 2)).length;
}
const seconds = (performance.now() - t0) / 1000;
console.log(`history check over ${runs} runs × ${count} series: ${seconds.toFixed(1)} s`);
console.log(`  change points reported: ${reported}; injected steps found at ±2 runs: ${found}/${injected}; reported elsewhere: ${spurious}`);
