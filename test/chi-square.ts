/** Pearson's chi-square test of homogeneity for two samples of categories, with its p-value. */

/** ln Γ(x) for x > 0 (Lanczos approximation, g = 7, nine coefficients). */
function logGamma(x: number): number {
  const c = [0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059, 12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7];
  if (x < 0.5) return Math.log(Math.PI / Math.sin(Math.PI * x)) - logGamma(1 - x);
  const z = x - 1;
  let sum = c[0]!;
  for (let i = 1; i < 9; i++) sum += c[i]! / (z + i);
  const t = z + 7.5;
  return 0.5 * Math.log(2 * Math.PI) + (z + 0.5) * Math.log(t) - t + Math.log(sum);
}

/** The regularized upper incomplete gamma function Q(a, x): a series below a + 1, a continued fraction above. */
function upperGamma(a: number, x: number): number {
  if (x <= 0) return 1;
  const front = Math.exp(-x + a * Math.log(x) - logGamma(a));
  if (x < a + 1) {
    let term = 1 / a;
    let sum = term;
    for (let n = 1; n < 1000 && Math.abs(term) > 1e-15 * Math.abs(sum); n++) {
      term *= x / (a + n);
      sum += term;
    }
    return 1 - front * sum;
  }
  // Lentz's method for the continued fraction 1 / (x + 1 - a - 1(1 - a) / (x + 3 - a - ...)).
  const tiny = 1e-300;
  let b = x + 1 - a;
  let c = 1 / tiny;
  let d = 1 / b;
  let h = d;
  for (let i = 1; i < 1000; i++) {
    const an = -i * (i - a);
    b += 2;
    d = an * d + b;
    if (Math.abs(d) < tiny) d = tiny;
    c = b + an / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    const delta = d * c;
    h *= delta;
    if (Math.abs(delta - 1) < 1e-15) break;
  }
  return front * h;
}

export interface ChiSquare {
  statistic: number;
  degreesOfFreedom: number;
  pValue: number;
}

/**
 * Are two samples (category -> count) drawn from one distribution? Categories whose expected count is
 * below 5 in either sample are pooled into one cell, as the test's approximation needs.
 */
export function chiSquareHomogeneity(a: ReadonlyMap<number, number>, b: ReadonlyMap<number, number>): ChiSquare {
  const na = [...a.values()].reduce((s, v) => s + v, 0);
  const nb = [...b.values()].reduce((s, v) => s + v, 0);
  const keys = [...new Set([...a.keys(), ...b.keys()])];
  const cells: [number, number][] = [];
  const pooled: [number, number] = [0, 0];
  for (const k of keys) {
    const ca = a.get(k) ?? 0;
    const cb = b.get(k) ?? 0;
    const total = ca + cb;
    if (Math.min((total * na) / (na + nb), (total * nb) / (na + nb)) < 5) {
      pooled[0] += ca;
      pooled[1] += cb;
    } else {
      cells.push([ca, cb]);
    }
  }
  if (pooled[0] + pooled[1] > 0) cells.push(pooled);
  let statistic = 0;
  for (const [ca, cb] of cells) {
    const total = ca + cb;
    const ea = (total * na) / (na + nb);
    const eb = (total * nb) / (na + nb);
    statistic += (ca - ea) ** 2 / ea + (cb - eb) ** 2 / eb;
  }
  const degreesOfFreedom = Math.max(1, cells.length - 1);
  return { statistic, degreesOfFreedom, pValue: upperGamma(degreesOfFreedom / 2, statistic / 2) };
}
