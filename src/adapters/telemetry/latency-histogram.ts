// Check latency as a Prometheus histogram, recorded on the hot path with no
// allocation and no attribute hashing: one bucket array per outcome (allow,
// deny), found by a short scan of fixed bounds. The OpenTelemetry SDK's
// histogram hashes its attribute set on every record, which costs more than
// the record itself; this one is rendered into the /metrics text directly.

/** Upper bounds, in seconds. */
export const LATENCY_BUCKETS_SECONDS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5] as const;
const BOUNDS_MS = LATENCY_BUCKETS_SECONDS.map((s) => s * 1000);

class Series {
  /** Non-cumulative counts per bucket; the last one is +Inf. */
  readonly counts = new Float64Array(BOUNDS_MS.length + 1);
  sumSeconds = 0;
  count = 0;

  record(ms: number): void {
    let i = 0;
    while (i < BOUNDS_MS.length && ms > BOUNDS_MS[i]!) i++;
    this.counts[i]!++;
    this.sumSeconds += ms / 1000;
    this.count++;
  }
}

export class LatencyHistogram {
  private readonly allow = new Series();
  private readonly deny = new Series();

  constructor(
    private readonly name: string,
    private readonly help: string,
  ) {}

  record(ms: number, allowed: boolean): void {
    (allowed ? this.allow : this.deny).record(ms);
  }

  /** The histogram in the Prometheus text format (cumulative buckets). */
  text(): string {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} histogram`];
    for (const [decision, series] of [["allow", this.allow], ["deny", this.deny]] as const) {
      if (series.count === 0) continue;
      let cumulative = 0;
      for (let i = 0; i < BOUNDS_MS.length; i++) {
        cumulative += series.counts[i]!;
        lines.push(`${this.name}_bucket{decision="${decision}",le="${LATENCY_BUCKETS_SECONDS[i]}"} ${cumulative}`);
      }
      lines.push(`${this.name}_bucket{decision="${decision}",le="+Inf"} ${series.count}`);
      lines.push(`${this.name}_sum{decision="${decision}"} ${series.sumSeconds}`);
      lines.push(`${this.name}_count{decision="${decision}"} ${series.count}`);
    }
    return `${lines.join("\n")}\n`;
  }
}
