// Small statistics for the change-point detector (changepoints.ts): Student's t quantiles for the
// change's interval, and the trend-net level shifts that tell a step from a drift. Pure.

// Student's t (regularised incomplete beta, Numerical Recipes' continued fraction)

function lnGamma(x: number): number {
  const c = [76.18009172947146, -86.5053203294168, 24.01409824083091, -1.231739572450155, 0.1208650973866179e-2, -0.5395239384953e-5];
  let y = x;
  const tmp = x + 5.5 - (x + 0.5) * Math.log(x + 5.5);
  let ser = 1.000000000190015;
  for (const v of c) ser += v / ++y;
  return -tmp + Math.log((2.506628274631 * ser) / x);
}

function betaCf(a: number, b: number, x: number): number {
  const tiny = 1e-300;
  let c = 1;
  let d = 1 - ((a + b) * x) / (a + 1);
  if (Math.abs(d) < tiny) d = tiny;
  d = 1 / d;
  let h = d;
  for (let m = 1; m <= 300; m++) {
    const m2 = 2 * m;
    let aa = (m * (b - m) * x) / ((a + m2 - 1) * (a + m2));
    d = 1 + aa * d;
    if (Math.abs(d) < tiny) d = tiny;
    c = 1 + aa / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    h *= d * c;
    aa = (-(a + m) * (a + b + m) * x) / ((a + m2) * (a + m2 + 1));
    d = 1 + aa * d;
    if (Math.abs(d) < tiny) d = tiny;
    c = 1 + aa / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    const del = d * c;
    h *= del;
    if (Math.abs(del - 1) < 1e-14) break;
  }
  return h;
}

/** Regularised incomplete beta I_x(a, b). */
function incBeta(x: number, a: number, b: number): number {
  if (x <= 0) return 0;
  if (x >= 1) return 1;
  const bt = Math.exp(lnGamma(a + b) - lnGamma(a) - lnGamma(b) + a * Math.log(x) + b * Math.log(1 - x));
  return x < (a + 1) / (a + b + 2) ? (bt * betaCf(a, b, x)) / a : 1 - (bt * betaCf(b, a, 1 - x)) / b;
}

/** Two-sided p-value of Student's t with df degrees of freedom. */
export function tTwoSided(t: number, df: number): number {
  if (!Number.isFinite(t)) return 0;
  return incBeta(df / (df + t * t), df / 2, 0.5);
}

/** t such that P(|T| > t) = p (bisection on tTwoSided). */
export function tCritical(p: number, df: number): number {
  let lo = 0;
  let hi = 1;
  while (tTwoSided(hi, df) > p) hi *= 2;
  for (let i = 0; i < 100; i++) {
    const mid = (lo + hi) / 2;
    if (tTwoSided(mid, df) > p) lo = mid;
    else hi = mid;
  }
  return (lo + hi) / 2;
}

// Step or drift

/**
 * Level shifts net of a common linear trend: the least-squares fit y = a + b·t + Σ c_k·[t ≥ at_k]
 * over the whole series, each c_k with its standard error (normal equations, Gauss–Jordan with
 * partial pivoting). at must be sorted, each ≥ 1 and < n, segments ≥ 2 points.
 */
export function trendNetShifts(values: ArrayLike<number>, at: readonly number[]): { shift: number; se: number }[] {
  const n = values.length;
  const p = 2 + at.length;
  const tMean = (n - 1) / 2;
  const row = (i: number): number[] => [1, i - tMean, ...at.map((k) => (i >= k ? 1 : 0))];
  // [X'X | I | X'y]
  const m = Array.from({ length: p }, () => new Float64Array(2 * p + 1));
  for (let i = 0; i < n; i++) {
    const r = row(i);
    for (let a = 0; a < p; a++) {
      for (let b = 0; b < p; b++) m[a][b] += r[a] * r[b];
      m[a][2 * p] += r[a] * values[i];
    }
  }
  for (let a = 0; a < p; a++) m[a][p + a] = 1;
  for (let c = 0; c < p; c++) {
    let piv = c;
    for (let r = c + 1; r < p; r++) if (Math.abs(m[r][c]) > Math.abs(m[piv][c])) piv = r;
    [m[c], m[piv]] = [m[piv], m[c]];
    const d = m[c][c];
    if (!(Math.abs(d) > 1e-12)) return at.map(() => ({ shift: Number.NaN, se: Number.NaN }));
    for (let k = 0; k < m[c].length; k++) m[c][k] /= d;
    for (let r = 0; r < p; r++) {
      if (r === c || m[r][c] === 0) continue;
      const f = m[r][c];
      for (let k = 0; k < m[r].length; k++) m[r][k] -= f * m[c][k];
    }
  }
  const coef = m.map((r) => r[2 * p]);
  let rss = 0;
  for (let i = 0; i < n; i++) {
    const r = row(i);
    let fit = 0;
    for (let a = 0; a < p; a++) fit += r[a] * coef[a];
    rss += (values[i] - fit) ** 2;
  }
  const s2 = n > p ? rss / (n - p) : 0;
  return at.map((_, k) => ({ shift: coef[2 + k], se: Math.sqrt(s2 * m[2 + k][p + 2 + k]) }));
}
