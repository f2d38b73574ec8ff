// Small, dependency-free statistics for the benchmark report.

/** Nearest-rank quantile of an ascending array (q in [0, 1]). With n < 100, p99 is the maximum. */
export function quantile(sorted, q) {
  if (sorted.length === 0) return NaN;
  const rank = Math.max(1, Math.ceil(q * sorted.length));
  return sorted[Math.min(rank, sorted.length) - 1];
}

export function median(values) {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

/** n, min, p50, p90, p99, max and mean of a list of numbers. */
export function summarize(values) {
  const s = [...values].sort((a, b) => a - b);
  const mean = s.reduce((a, b) => a + b, 0) / (s.length || 1);
  return { n: s.length, min: s[0] ?? NaN, p50: quantile(s, 0.5), p90: quantile(s, 0.9), p99: quantile(s, 0.99), max: s.at(-1) ?? NaN, mean };
}

/** A number for a table: fixed decimals, "–" for missing. */
export function fmt(value, decimals = 1) {
  return value === undefined || value === null || Number.isNaN(value) ? '–' : Number(value).toFixed(decimals);
}
