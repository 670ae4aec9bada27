// Reads spans back from Jaeger's query service through its HTTP JSON API
// (`/api/traces`, `/api/traces/<id>`), which Jaeger v1 and v2 both serve, so
// that `hopwarden trace` and the tests can rebuild delegation chains from what
// an auditor really sees. Every request has a deadline; every failure is a
// JaegerQueryError with a stable code and a message that names the URL.

import { HopwardenError } from "../../core/errors.js";

export type AttributeValue = string | number | boolean | readonly string[];

export interface SpanEventRecord {
  readonly name: string;
  /** Microseconds since the epoch. */
  readonly timeUs: number;
  readonly attributes: Readonly<Record<string, AttributeValue>>;
}

/** One span as Jaeger returns it, with tags flattened into attributes. */
export interface StoredSpan {
  readonly traceId: string;
  readonly spanId: string;
  /** The CHILD_OF reference within the same trace, when there is one. */
  readonly parentSpanId: string | undefined;
  readonly service: string;
  readonly name: string;
  /** Microseconds since the epoch. */
  readonly startUs: number;
  readonly durationUs: number;
  readonly attributes: Readonly<Record<string, AttributeValue>>;
  readonly events: readonly SpanEventRecord[];
}

export const JAEGER_QUERY_ERROR_CODES = ["unreachable", "timeout", "http_error", "bad_response"] as const;
export type JaegerQueryErrorCode = (typeof JAEGER_QUERY_ERROR_CODES)[number];

export class JaegerQueryError extends HopwardenError {
  constructor(
    readonly code: JaegerQueryErrorCode,
    message: string,
  ) {
    super(message);
  }
}

export interface TraceSearch {
  readonly service: string;
  readonly operation?: string;
  /** Exact attribute matches (Jaeger's `tags` parameter). */
  readonly tags?: Readonly<Record<string, string>>;
  /** Milliseconds since the epoch. */
  readonly startMs: number;
  readonly endMs: number;
  /** Maximum number of traces. */
  readonly limit: number;
}

export interface JaegerQueryClientOptions {
  /** Deadline of one HTTP request (default 10 s). */
  readonly timeoutMs?: number;
  readonly fetch?: typeof fetch;
}

export class JaegerQueryClient {
  private readonly base: string;
  private readonly timeoutMs: number;
  private readonly fetchImpl: typeof fetch;

  constructor(baseUrl: string, options: JaegerQueryClientOptions = {}) {
    this.base = baseUrl.replace(/\/+$/, "");
    this.timeoutMs = options.timeoutMs ?? 10_000;
    this.fetchImpl = options.fetch ?? fetch;
  }

  /** Every span of one trace; undefined when Jaeger does not know the trace. */
  async trace(traceId: string): Promise<StoredSpan[] | undefined> {
    const body = await this.get(`/api/traces/${encodeURIComponent(traceId)}`, true);
    return body === undefined ? undefined : decodeJaegerTraces(body);
  }

  /** Every span of every trace that has a span matching the search. */
  async search(search: TraceSearch): Promise<StoredSpan[]> {
    const params = new URLSearchParams({
      service: search.service,
      start: String(Math.floor(search.startMs * 1000)),
      end: String(Math.ceil(search.endMs * 1000)),
      limit: String(search.limit),
    });
    if (search.operation !== undefined) params.set("operation", search.operation);
    if (search.tags !== undefined && Object.keys(search.tags).length > 0) params.set("tags", JSON.stringify(search.tags));
    const body = await this.get(`/api/traces?${params.toString()}`, false);
    return decodeJaegerTraces(body);
  }

  /** Service names Jaeger has seen. */
  async services(): Promise<string[]> {
    const body = await this.get("/api/services", false);
    const data = isObject(body) ? body.data : undefined;
    return Array.isArray(data) ? data.filter((s): s is string => typeof s === "string") : [];
  }

  /** GET and parse JSON; a 404 is undefined when `notFoundIsEmpty`. */
  private async get(path: string, notFoundIsEmpty: boolean): Promise<unknown> {
    const url = this.base + path;
    let response: Response;
    try {
      response = await this.fetchImpl(url, { signal: AbortSignal.timeout(this.timeoutMs), headers: { accept: "application/json" } });
    } catch (err) {
      if (err instanceof Error && (err.name === "TimeoutError" || err.name === "AbortError")) {
        throw new JaegerQueryError("timeout", `Jaeger at ${this.base} did not answer within ${this.timeoutMs} ms (${url})`);
      }
      const cause = err instanceof Error && err.cause instanceof Error ? err.cause.message : err instanceof Error ? err.message : String(err);
      throw new JaegerQueryError("unreachable", `cannot reach Jaeger's query API at ${this.base}: ${cause}`);
    }
    let text: string;
    try {
      text = await response.text();
    } catch (err) {
      throw new JaegerQueryError("timeout", `reading Jaeger's answer from ${url} failed: ${err instanceof Error ? err.message : String(err)}`);
    }
    if (response.status === 404 && notFoundIsEmpty) return undefined;
    if (!response.ok) {
      throw new JaegerQueryError("http_error", `Jaeger answered ${response.status} for ${url}: ${text.slice(0, 300)}`);
    }
    try {
      return JSON.parse(text) as unknown;
    } catch {
      throw new JaegerQueryError("bad_response", `Jaeger's answer for ${url} is not JSON: ${text.slice(0, 120)}`);
    }
  }
}

/** The spans of a `/api/traces…` answer (`{data: [{traceID, spans, processes}]}`), tags flattened. */
export function decodeJaegerTraces(body: unknown): StoredSpan[] {
  if (!isObject(body) || !Array.isArray(body.data)) throw new JaegerQueryError("bad_response", "Jaeger's answer has no data array");
  const out: StoredSpan[] = [];
  for (const trace of body.data as unknown[]) {
    if (!isObject(trace) || !Array.isArray(trace.spans)) continue;
    const processes = isObject(trace.processes) ? trace.processes : {};
    for (const span of trace.spans as unknown[]) {
      if (!isObject(span) || typeof span.traceID !== "string" || typeof span.spanID !== "string") continue;
      const process = typeof span.processID === "string" ? processes[span.processID] : undefined;
      const references = Array.isArray(span.references) ? (span.references as unknown[]) : [];
      const parent = references.find((r) => isObject(r) && r.refType === "CHILD_OF" && r.traceID === span.traceID);
      out.push({
        traceId: span.traceID,
        spanId: span.spanID,
        parentSpanId: isObject(parent) && typeof parent.spanID === "string" ? parent.spanID : undefined,
        service: isObject(process) && typeof process.serviceName === "string" ? process.serviceName : "",
        name: typeof span.operationName === "string" ? span.operationName : "",
        startUs: typeof span.startTime === "number" ? span.startTime : 0,
        durationUs: typeof span.duration === "number" ? span.duration : 0,
        attributes: decodeTags(span.tags),
        events: (Array.isArray(span.logs) ? (span.logs as unknown[]) : []).filter(isObject).map((log) => {
          const fields = decodeTags(log.fields);
          const { event, ...attributes } = fields;
          return { name: typeof event === "string" ? event : "", timeUs: typeof log.timestamp === "number" ? log.timestamp : 0, attributes };
        }),
      });
    }
  }
  return out;
}

function decodeTags(tags: unknown): Record<string, AttributeValue> {
  const out: Record<string, AttributeValue> = {};
  if (!Array.isArray(tags)) return out;
  for (const tag of tags as unknown[]) {
    if (!isObject(tag) || typeof tag.key !== "string") continue;
    const value = tag.value;
    if (typeof value === "string" || typeof value === "number" || typeof value === "boolean") out[tag.key] = value;
    // Only primitives are read out of an array: a crafted object (one whose toString is not a function) must not throw.
    else if (Array.isArray(value)) out[tag.key] = (value as unknown[]).filter(isPrimitive).map((v) => String(v));
  }
  return out;
}

function isPrimitive(value: unknown): value is string | number | boolean {
  return typeof value === "string" || typeof value === "number" || typeof value === "boolean";
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
