// The soak's pass rules, as pure functions of its samples (so
// test/soak-verdict.test.ts can hold them to flat, leaking and overflowing
// series). Each rule says exactly what it checked and what it saw.
//
//   RSS      warm-up is the first 20% of the run. Baseline B = the median RSS
//            (summed over the service's processes) of the first quarter of
//            the samples after warm-up. Every later sample must lie within
//            B ± 10%.
//   fds      after warm-up, (a) max − min of the open descriptors (summed
//            over the processes) ≤ 16, and (b) the median of the last
//            quarter of the samples exceeds the median of the first quarter
//            by at most 2: no monotonic growth, while a connection or a
//            rotated log file open at the moment of a sample is tolerated.
//   caches   every sample, warm-up included, at or below its configured
//            bound (per process, times the processes); and the hop and
//            certificate caches reach at least 90% of their entry or byte
//            bound after warm-up, or the run did not test the bounds.

export interface SoakSample {
  /** Seconds since the soak load started. */
  readonly atSeconds: number;
  readonly processes: number;
  readonly rssBytes: number;
  readonly fds: number;
  readonly hopEntries: number;
  readonly hopBytes: number;
  readonly certificateEntries: number;
  readonly certificateBytes: number;
  readonly auditDepth: number;
  readonly spanQueueBytes: number;
  /** hopwarden_decisions_total, all labels. */
  readonly decisions: number;
}

export interface SoakBounds {
  readonly hopEntries: number;
  readonly hopBytes: number;
  readonly certificateEntries: number;
  readonly certificateBytes: number;
  readonly auditDepth: number;
  readonly spanQueueBytes: number;
}

export interface RuleResult {
  readonly rule: string;
  readonly pass: boolean;
  readonly detail: string;
}

export const WARM_UP_FRACTION = 0.2;
export const RSS_TOLERANCE = 0.1;
export const FD_RANGE_MAX = 16;
export const FD_DRIFT_MAX = 2;
export const BOUND_REACHED_FRACTION = 0.9;
/** Fewer samples after warm-up than this cannot show a trend. */
export const MIN_SAMPLES_AFTER_WARM_UP = 8;

const MiB = 1024 * 1024;

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  if (sorted.length === 0) return NaN;
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

export function afterWarmUp(samples: readonly SoakSample[], runSeconds: number): SoakSample[] {
  return samples.filter((s) => s.atSeconds >= runSeconds * WARM_UP_FRACTION);
}

function quarters(samples: readonly SoakSample[]): { first: SoakSample[]; last: SoakSample[] } {
  const n = Math.max(1, Math.floor(samples.length / 4));
  return { first: samples.slice(0, n), last: samples.slice(samples.length - n) };
}

function tooFew(rule: string, post: readonly SoakSample[]): RuleResult | undefined {
  if (post.length >= MIN_SAMPLES_AFTER_WARM_UP) return undefined;
  return { rule, pass: false, detail: `only ${post.length} samples after warm-up (need ${MIN_SAMPLES_AFTER_WARM_UP}): run longer or sample more often` };
}

export function rssRule(samples: readonly SoakSample[], runSeconds: number): RuleResult {
  const rule = "RSS flat after warm-up (±10% of the baseline)";
  const post = afterWarmUp(samples, runSeconds);
  const few = tooFew(rule, post);
  if (few !== undefined) return few;
  const baseline = median(quarters(post).first.map((s) => s.rssBytes));
  const low = baseline * (1 - RSS_TOLERANCE);
  const high = baseline * (1 + RSS_TOLERANCE);
  const outside = post.filter((s) => s.rssBytes < low || s.rssBytes > high);
  const min = Math.min(...post.map((s) => s.rssBytes));
  const max = Math.max(...post.map((s) => s.rssBytes));
  const range = `baseline ${(baseline / MiB).toFixed(1)} MiB, allowed ${(low / MiB).toFixed(1)}–${(high / MiB).toFixed(1)}, seen ${(min / MiB).toFixed(1)}–${(max / MiB).toFixed(1)} MiB (${(((max - baseline) / baseline) * 100).toFixed(1)}% above, ${(((baseline - min) / baseline) * 100).toFixed(1)}% below)`;
  if (outside.length === 0) return { rule, pass: true, detail: range };
  const first = outside[0]!;
  return { rule, pass: false, detail: `${range}; ${outside.length} samples outside, first at ${first.atSeconds.toFixed(0)} s: ${(first.rssBytes / MiB).toFixed(1)} MiB` };
}

export function fdRule(samples: readonly SoakSample[], runSeconds: number): RuleResult {
  const rule = `open descriptors stable after warm-up (range ≤ ${FD_RANGE_MAX}, drift of the median ≤ ${FD_DRIFT_MAX})`;
  const post = afterWarmUp(samples, runSeconds);
  const few = tooFew(rule, post);
  if (few !== undefined) return few;
  const fds = post.map((s) => s.fds);
  const range = Math.max(...fds) - Math.min(...fds);
  const { first, last } = quarters(post);
  const drift = median(last.map((s) => s.fds)) - median(first.map((s) => s.fds));
  const detail = `${Math.min(...fds)}–${Math.max(...fds)} (range ${range}); median of the first quarter ${median(first.map((s) => s.fds))}, of the last ${median(last.map((s) => s.fds))} (drift ${drift})`;
  return { rule, pass: range <= FD_RANGE_MAX && drift <= FD_DRIFT_MAX, detail };
}

export function cacheRules(samples: readonly SoakSample[], bounds: SoakBounds, runSeconds: number): RuleResult[] {
  const results: RuleResult[] = [];
  const within = (rule: string, read: (s: SoakSample) => number, bound: number, unit: (n: number) => string) => {
    const max = Math.max(...samples.map(read));
    const over = samples.find((s) => read(s) > bound);
    results.push({
      rule,
      pass: over === undefined,
      detail: over === undefined ? `max ${unit(max)} of ${unit(bound)}` : `${unit(read(over))} at ${over.atSeconds.toFixed(0)} s, over its bound ${unit(bound)}`,
    });
  };
  const count = (n: number) => String(n);
  const kib = (n: number) => `${(n / 1024).toFixed(0)} KiB`;
  within("hop cache entries ≤ bound", (s) => s.hopEntries, bounds.hopEntries, count);
  within("hop cache bytes ≤ bound", (s) => s.hopBytes, bounds.hopBytes, kib);
  within("certificate cache entries ≤ bound", (s) => s.certificateEntries, bounds.certificateEntries, count);
  within("certificate cache bytes ≤ bound", (s) => s.certificateBytes, bounds.certificateBytes, kib);
  within("audit buffer depth ≤ bound", (s) => s.auditDepth, bounds.auditDepth, count);
  within("span queue bytes ≤ bound", (s) => s.spanQueueBytes, bounds.spanQueueBytes, kib);
  const post = afterWarmUp(samples, runSeconds);
  const reached = (rule: string, entries: (s: SoakSample) => number, entryBound: number, bytes: (s: SoakSample) => number, byteBound: number) => {
    const e = Math.max(0, ...post.map(entries));
    const b = Math.max(0, ...post.map(bytes));
    const pass = e >= entryBound * BOUND_REACHED_FRACTION || b >= byteBound * BOUND_REACHED_FRACTION;
    results.push({ rule, pass, detail: `after warm-up up to ${e} of ${entryBound} entries, ${kib(b)} of ${kib(byteBound)}` });
  };
  reached("hop cache reached its bound (the churn tested it)", (s) => s.hopEntries, bounds.hopEntries, (s) => s.hopBytes, bounds.hopBytes);
  reached("certificate cache reached its bound", (s) => s.certificateEntries, bounds.certificateEntries, (s) => s.certificateBytes, bounds.certificateBytes);
  return results;
}
