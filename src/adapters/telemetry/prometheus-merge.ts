// Merges the Prometheus text of several worker processes into one exposition
// for the primary's /metrics (serve --workers N). Counters, histogram buckets,
// sums and counts, and gauges of sizes add up across workers; `*_info` series
// (which carry their value in labels, always 1) are kept once, not summed.
// Policy reloads are the service's, not each worker's: the primary tells every
// worker to reload, so N workers count one reload N times. The merge keeps
// the largest count (that of the longest-lived worker), not their sum.

interface Family {
  readonly comments: string[];
  readonly series: Map<string, number>;
}

/** Series whose workers' values are copies of one service-wide value: merged by maximum. */
const SERVICE_WIDE = new Set(["hopwarden_policy_reloads_total"]);

function mergedByMaximum(sampleName: string): boolean {
  return sampleName.endsWith("_info") || SERVICE_WIDE.has(sampleName);
}

const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})?\s+(\S+)(?:\s+\d+)?$/;

function familyOf(sampleName: string, families: Map<string, Family>): string {
  for (const suffix of ["_bucket", "_sum", "_count", "_total"]) {
    if (sampleName.endsWith(suffix)) {
      const base = sampleName.slice(0, -suffix.length);
      if (families.has(base)) return base;
    }
  }
  return sampleName;
}

export function mergePrometheusTexts(texts: readonly string[]): string {
  const families = new Map<string, Family>();
  const family = (name: string): Family => {
    let f = families.get(name);
    if (f === undefined) {
      f = { comments: [], series: new Map() };
      families.set(name, f);
    }
    return f;
  };
  for (const text of texts) {
    const seenComments = new Set<string>();
    for (const line of text.split("\n")) {
      if (line.length === 0) continue;
      if (line.startsWith("#")) {
        const name = line.split(/\s+/)[2];
        if (name === undefined) continue;
        const f = family(name);
        if (!seenComments.has(line) && !f.comments.includes(line)) f.comments.push(line);
        seenComments.add(line);
        continue;
      }
      const m = SAMPLE.exec(line);
      if (!m) continue;
      const name = m[1]!;
      const key = `${name}${m[2] ?? ""}`;
      const value = Number(m[3]);
      const f = family(familyOf(name, families));
      const prior = f.series.get(key);
      if (prior === undefined) f.series.set(key, value);
      else f.series.set(key, mergedByMaximum(name) ? Math.max(prior, value) : prior + value);
    }
  }
  const out: string[] = [];
  for (const f of families.values()) {
    out.push(...f.comments);
    for (const [key, value] of f.series) out.push(`${key} ${String(value)}`);
  }
  return `${out.join("\n")}\n`;
}
