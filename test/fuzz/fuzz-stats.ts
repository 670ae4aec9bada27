// Counts of a fuzz run: runs, allows, denies by reason, cases by kind,
// disagreements with the reference, and the decision-time distribution
// (every sample kept, so p99.9 is exact), printed as progress lines and a
// final summary.

export interface KindCount {
  runs: number;
  allows: number;
}

export class FuzzStats {
  runs = 0;
  allows = 0;
  readonly deniesByReason = new Map<string, number>();
  readonly byKind = new Map<string, KindCount>();
  readonly disagreements = new Map<string, { count: number; example: string }>();
  private times = new Float64Array(1 << 16);
  /** The slowest case seen, for the summary (a slow decision may be an input that costs more than linear time). */
  slowest = { ms: 0, what: "" };
  private readonly started = performance.now();
  private lastProgress = performance.now();
  private lastProgressRuns = 0;

  constructor(
    readonly name: string,
    private readonly log: (line: string) => void,
    private readonly progressEveryMs = 5000,
  ) {}

  record(kind: string, allowed: boolean, reason: string | undefined, ms: number, what?: () => string): void {
    if (ms > this.slowest.ms) this.slowest = { ms, what: what?.() ?? kind };
    if (this.runs === this.times.length) {
      const bigger = new Float64Array(this.times.length * 2);
      bigger.set(this.times);
      this.times = bigger;
    }
    this.times[this.runs] = ms;
    this.runs++;
    let k = this.byKind.get(kind);
    if (k === undefined) this.byKind.set(kind, (k = { runs: 0, allows: 0 }));
    k.runs++;
    if (allowed) {
      this.allows++;
      k.allows++;
    } else {
      const r = reason ?? "(none)";
      this.deniesByReason.set(r, (this.deniesByReason.get(r) ?? 0) + 1);
    }
  }

  disagree(key: string, example: string): void {
    const d = this.disagreements.get(key);
    if (d === undefined) this.disagreements.set(key, { count: 1, example });
    else d.count++;
  }

  get denies(): number {
    return this.runs - this.allows;
  }

  elapsedMs(): number {
    return performance.now() - this.started;
  }

  /** Prints a progress line when one is due. */
  tick(extra = ""): void {
    const now = performance.now();
    if (now - this.lastProgress < this.progressEveryMs) return;
    const rate = ((this.runs - this.lastProgressRuns) * 1000) / (now - this.lastProgress);
    this.lastProgress = now;
    this.lastProgressRuns = this.runs;
    this.log(`[fuzz ${this.name}] ${fmt(this.runs)} runs, ${fmt(Math.round(rate))}/s, ${fmt(this.allows)} allows, ${fmt(this.denies)} denies, ${(this.elapsedMs() / 1000).toFixed(0)} s${extra}`);
  }

  percentileMs(p: number): number {
    if (this.runs === 0) return 0;
    const sorted = this.times.slice(0, this.runs).sort();
    return sorted[Math.min(this.runs - 1, Math.ceil((p / 100) * this.runs) - 1)]!;
  }

  maxMs(): number {
    let max = 0;
    for (let i = 0; i < this.runs; i++) if (this.times[i]! > max) max = this.times[i]!;
    return max;
  }

  summary(what = "decision time"): string[] {
    const lines: string[] = [];
    const secs = this.elapsedMs() / 1000;
    lines.push(`[fuzz ${this.name}] ${fmt(this.runs)} runs in ${secs.toFixed(1)} s (${fmt(Math.round(this.runs / secs))}/s): ${fmt(this.allows)} allows, ${fmt(this.denies)} denies`);
    lines.push(`  ${what}: p50 ${us(this.percentileMs(50))}, p99 ${us(this.percentileMs(99))}, p99.9 ${us(this.percentileMs(99.9))}, max ${us(this.maxMs())}`);
    if (this.slowest.what !== "") lines.push(`  slowest: ${this.slowest.what}`);
    lines.push("  cases by kind (runs / allows):");
    for (const [kind, k] of [...this.byKind].sort((a, b) => b[1].runs - a[1].runs)) lines.push(`    ${kind.padEnd(16)} ${fmt(k.runs).padStart(11)} / ${fmt(k.allows)}`);
    lines.push("  denies by reason:");
    for (const [reason, n] of [...this.deniesByReason].sort((a, b) => b[1] - a[1])) lines.push(`    ${reason.padEnd(26)} ${fmt(n).padStart(11)}`);
    if (this.disagreements.size === 0) lines.push("  disagreements with the reference decider: none");
    else {
      lines.push("  disagreements with the reference decider (not unsafe; see --strict):");
      for (const [key, d] of [...this.disagreements].sort((a, b) => b[1].count - a[1].count)) lines.push(`    ${fmt(d.count).padStart(9)}  ${key}  e.g. ${d.example}`);
    }
    return lines;
  }
}

export function fmt(n: number): string {
  return n.toLocaleString("en-US");
}

export function us(ms: number): string {
  return ms >= 10 ? `${ms.toFixed(1)} ms` : `${(ms * 1000).toFixed(0)} µs`;
}
