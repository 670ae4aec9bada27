// `hopwarden trace`: reads decision spans back from Jaeger's query API and
// prints the whole delegation chain they belong to as a tree, person → agent
// → … → callee, with every decision on the way. Exit 0 found, 1 nothing
// found, 2 usage, 3 Jaeger could not be queried.

import { JAEGER_QUERY_ERROR_CODES, JaegerQueryClient, type TraceSearch } from "../../adapters/telemetry/jaeger-query-client.js";
import { CHECK_SPAN_NAME } from "../../adapters/telemetry/decision-span.js";
import {
  classifyId,
  decisionSearchWindow,
  parseDurationMs,
  parseTimeBound,
  workflowSearchWindow,
  ON_BEHALF_OF_DEFAULT_LOOKBACK_MS,
  type TimeWindow,
} from "../../adapters/telemetry/trace-query.js";
import {
  buildDelegationForest,
  decisionsFromSpans,
  renderDelegationForest,
  renderTransactionTable,
  workflowOf,
  type DecisionRecord,
} from "../../adapters/telemetry/trace-tree.js";
import { systemClock } from "../../adapters/clock/system-clock.js";
import { runCommand } from "../exit.js";
import { fromEnv, parseCommandArgs, UsageError } from "../options.js";
import type { Command } from "./index.js";

export const DEFAULT_JAEGER_URL = "http://127.0.0.1:16686";
const DEFAULT_LIMIT = 1000;
const DEFAULT_TIMEOUT_MS = 10_000;

export const EXIT = { found: 0, notFound: 1, usage: 2, jaegerFailed: 3 } as const;

const HELP = `Usage: hopwarden trace [options] <decision-id | trace-id>
       hopwarden trace [options] --on-behalf-of <person> [--since <when>] [--until <when>]
       hopwarden trace [options] --txn <transaction-id> [--since <when>] [--until <when>]

Rebuilds a delegation chain from hopwarden's decision spans (authz.check) in
Jaeger and prints it as a tree: the person at the root, then each agent in
the order the calls were delegated, and under every agent that was called
each decision on that call (allow/deny, reason, request, policy version,
time, latency, decision id, trace id) with the hops it evaluated:

  alice@example.com  (on behalf of)
  └─ spiffe://example.org/agent/orchestrator
     └─ spiffe://example.org/agent/research
        │ ALLOW allowed  GET /search  policy 2026-11-01.3  2026-11-23T10:51:44.139Z  0.84 ms  decision 01K…  trace 4bf9…
        │     hop spiffe://…/orchestrator -> spiffe://…/research: allow by hops[0]
        └─ spiffe://example.org/agent/db
             DENY hop_not_allowed  DELETE /query  …

What to look up:
  <decision-id>   the x-authz-decision-id of one call (a ULID): prints that
                  call with the calls that led to it and the calls it led to
                  (same on-behalf-of, chain prefix), looking around the time
                  in the id unless --since/--until say otherwise
  <trace-id>      32 (or 16) hex digits: every decision in that trace
  --on-behalf-of <person>
                  every decision made for this person between --since
                  (default 1h) and --until (default now), joined into one
                  tree per workflow
  --txn <id>      every hop of one transaction: the decisions whose
                  verified Txn-Token carried this txn (authz.txn, SPEC 8),
                  between --since (default 1h) and --until, as a table in
                  time order (caller, binding, callee, request, MCP method
                  and tool, decision, reason, ids)

Options:
  --on-behalf-of <person>  the agent.on_behalf_of value, exactly as recorded
  --txn <id>               the authz.txn value (the Txn-Token's txn claim)
  --since <when>           a duration back from now (90s, 15m, 2h, 7d, 1w) or
                           an ISO 8601 time (2026-11-23T10:00:00Z)
  --until <when>           same forms; default now
  --jaeger-url <url>       Jaeger's query service (default ${DEFAULT_JAEGER_URL};
                           env HOPWARDEN_JAEGER_URL)
  --service <name>         the service name hopwarden reports (default
                           "hopwarden", or OTEL_SERVICE_NAME when set)
  --limit <n>              at most this many traces per search (default ${DEFAULT_LIMIT})
  --timeout <duration>     deadline of each request to Jaeger (default 10s)
  --json                   print {query, decisions, tree} as JSON for machines
  -h, --help               show this help

Exit status: 0 found, 1 nothing found, 2 usage error, 3 Jaeger could not be
queried (unreachable, timed out or answered with an error).

Examples:
  hopwarden trace 01KAPQ3Z5B4X1S0M7Y6W2V8T9R
  hopwarden trace 4bf92f3577b34da6a3ce929d0e0e4736 --json
  hopwarden trace --on-behalf-of alice@example.com --since 30m
  hopwarden trace --txn 0b0f7c58-4b1e-4f7e-9a53-0f6d2c1b9e77 --since 2h
`;

const OPTIONS = {
  help: { type: "boolean", short: "h" },
  json: { type: "boolean" },
  "on-behalf-of": { type: "string" },
  txn: { type: "string" },
  since: { type: "string" },
  until: { type: "string" },
  "jaeger-url": { type: "string" },
  service: { type: "string" },
  limit: { type: "string" },
  timeout: { type: "string" },
} as const;

interface Settings {
  readonly jaegerUrl: string;
  readonly service: string;
  readonly limit: number;
  readonly timeoutMs: number;
  readonly json: boolean;
  readonly since: number | undefined;
  readonly until: number | undefined;
}

type Lookup =
  | { readonly kind: "trace"; readonly id: string }
  | { readonly kind: "decision"; readonly id: string }
  | { readonly kind: "on-behalf-of"; readonly person: string }
  | { readonly kind: "txn"; readonly txn: string };

const JAEGER_HINT = "(set --jaeger-url or HOPWARDEN_JAEGER_URL to Jaeger's query service, port 16686 by default)";

export const traceCommand: Command = {
  run: (argv) =>
    runCommand(
      "trace",
      async () => {
        const { values, positionals } = parseCommandArgs(argv, OPTIONS, true);
        if (values.help === true) {
          process.stdout.write(HELP);
          return EXIT.found;
        }
        const now = systemClock.nowMs();
        const lookup = readLookup(positionals, values["on-behalf-of"], values.txn);
        const settings = readSettings(values, now);
        const client = new JaegerQueryClient(settings.jaegerUrl, { timeoutMs: settings.timeoutMs });
        return await runLookup(client, lookup, settings, now);
      },
      // A JaegerQueryError: Jaeger could not be queried, exit 3 with a hint.
      {
        exits: Object.fromEntries(JAEGER_QUERY_ERROR_CODES.map((code) => [code, EXIT.jaegerFailed])),
        hints: Object.fromEntries(JAEGER_QUERY_ERROR_CODES.map((code) => [code, JAEGER_HINT])),
      },
    ),
};

function readLookup(positionals: readonly string[], person: string | undefined, txn: string | undefined): Lookup {
  if (txn !== undefined) {
    if (positionals.length > 0 || person !== undefined) throw new UsageError("give one of an id, --on-behalf-of or --txn");
    if (txn === "") throw new UsageError("--txn needs a value (the transaction id, the Txn-Token's txn claim)");
    return { kind: "txn", txn };
  }
  if (person !== undefined) {
    if (positionals.length > 0) throw new UsageError("give either an id or --on-behalf-of, not both");
    if (person === "") throw new UsageError("--on-behalf-of needs a value (the person, e.g. alice@example.com)");
    return { kind: "on-behalf-of", person };
  }
  if (positionals.length === 0) throw new UsageError("name a decision id or a trace id, or use --on-behalf-of <person>");
  if (positionals.length > 1) throw new UsageError("look up one id at a time");
  const id = positionals[0]!.trim();
  if (id === "") throw new UsageError("the id is empty");
  return classifyId(id) === "trace" ? { kind: "trace", id } : { kind: "decision", id };
}

function readSettings(values: { json?: boolean; since?: string; until?: string; "jaeger-url"?: string; service?: string; limit?: string; timeout?: string }, now: number): Settings {
  const jaegerUrl = values["jaeger-url"] ?? fromEnv("jaeger-url") ?? DEFAULT_JAEGER_URL;
  let parsedUrl: URL;
  try {
    parsedUrl = new URL(jaegerUrl);
  } catch {
    throw new UsageError(`--jaeger-url ${JSON.stringify(jaegerUrl)} is not a URL (e.g. ${DEFAULT_JAEGER_URL})`);
  }
  if (parsedUrl.protocol !== "http:" && parsedUrl.protocol !== "https:") throw new UsageError(`--jaeger-url must be http:// or https://, not ${parsedUrl.protocol}`);
  const time = (flag: "since" | "until"): number | undefined => {
    const raw = values[flag];
    if (raw === undefined) return undefined;
    const ms = parseTimeBound(raw, now);
    if (ms === undefined) throw new UsageError(`--${flag} ${JSON.stringify(raw)} is neither a duration (15m, 2h, 7d) nor an ISO 8601 time (2026-11-23T10:00:00Z)`);
    return ms;
  };
  const since = time("since");
  const until = time("until");
  if (since !== undefined && until !== undefined && since >= until) throw new UsageError("--since must be before --until");
  const limit = values.limit === undefined ? DEFAULT_LIMIT : Number(values.limit);
  if (!Number.isInteger(limit) || limit < 1) throw new UsageError(`--limit must be a positive whole number, not ${JSON.stringify(values.limit)}`);
  const timeoutMs = values.timeout === undefined ? DEFAULT_TIMEOUT_MS : parseTimeoutMs(values.timeout);
  return {
    jaegerUrl,
    service: values.service ?? (process.env.OTEL_SERVICE_NAME || "hopwarden"),
    limit,
    timeoutMs,
    json: values.json === true,
    since,
    until,
  };
}

function parseTimeoutMs(raw: string): number {
  const ms = parseDurationMs(raw);
  if (ms === undefined || ms <= 0) throw new UsageError(`--timeout ${JSON.stringify(raw)} is not a duration (e.g. 5s, 500ms)`);
  return ms;
}

function givenWindow(settings: Settings): Partial<TimeWindow> {
  return { ...(settings.since !== undefined && { startMs: settings.since }), ...(settings.until !== undefined && { endMs: settings.until }) };
}

async function runLookup(client: JaegerQueryClient, lookup: Lookup, settings: Settings, now: number): Promise<number> {
  const search = async (tags: Record<string, string>, window: TimeWindow): Promise<DecisionRecord[]> => {
    const query: TraceSearch = { service: settings.service, operation: CHECK_SPAN_NAME, tags, ...window, limit: settings.limit };
    const records = decisionsFromSpans(await client.search(query));
    if (new Set(records.map((r) => r.traceId)).size >= settings.limit) {
      process.stderr.write(`hopwarden trace: warning: ${settings.limit} traces returned, the result may be incomplete (raise --limit or narrow --since/--until)\n`);
    }
    return records;
  };

  if (lookup.kind === "trace") {
    const spans = await client.trace(lookup.id.toLowerCase());
    const records = spans === undefined ? [] : decisionsFromSpans(spans);
    if (records.length === 0) {
      process.stderr.write(
        spans === undefined
          ? `hopwarden trace: Jaeger at ${settings.jaegerUrl} has no trace ${lookup.id}\n`
          : `hopwarden trace: trace ${lookup.id} holds no ${CHECK_SPAN_NAME} span (no hopwarden decision in it)\n`,
      );
      return EXIT.notFound;
    }
    return print({ kind: "trace", traceId: lookup.id.toLowerCase() }, records, settings);
  }

  if (lookup.kind === "decision") {
    const window = decisionSearchWindow(lookup.id, now, givenWindow(settings));
    const target = (await search({ "authz.decision_id": lookup.id }, window)).find((r) => r.decisionId === lookup.id);
    if (target === undefined) {
      process.stderr.write(
        `hopwarden trace: no decision ${lookup.id} in service ${JSON.stringify(settings.service)} between ${iso(window.startMs)} and ${iso(window.endMs)} at ${settings.jaegerUrl}\n`,
      );
      return EXIT.notFound;
    }
    const atMs = Math.floor(target.startUs / 1000);
    const related = target.onBehalfOf === "" ? [] : await search({ "agent.on_behalf_of": target.onBehalfOf }, workflowSearchWindow(atMs, givenWindow(settings)));
    const sameTrace = decisionsFromSpans((await client.trace(target.traceId)) ?? []);
    const records = workflowOf(target, merge([target], related, sameTrace));
    return print({ kind: "decision", decisionId: lookup.id }, records, settings, lookup.id);
  }

  const window: TimeWindow = { startMs: settings.since ?? now - ON_BEHALF_OF_DEFAULT_LOOKBACK_MS, endMs: settings.until ?? now };
  if (lookup.kind === "txn") {
    // The tag search finds spans; only decisions that really carry this txn are listed.
    const records = (await search({ "authz.txn": lookup.txn }, window)).filter((r) => r.txn === lookup.txn);
    if (records.length === 0) {
      process.stderr.write(`hopwarden trace: no decision in transaction ${JSON.stringify(lookup.txn)} between ${iso(window.startMs)} and ${iso(window.endMs)} at ${settings.jaegerUrl}\n`);
      return EXIT.notFound;
    }
    if (settings.json) return print({ kind: "txn", txn: lookup.txn, since: iso(window.startMs), until: iso(window.endMs) }, records, settings);
    const traces = new Set(records.map((r) => r.traceId)).size;
    process.stdout.write(`${records.length} hop${records.length === 1 ? "" : "s"} in ${traces} trace${traces === 1 ? "" : "s"} (Jaeger ${settings.jaegerUrl})\n\n`);
    process.stdout.write(renderTransactionTable(lookup.txn, records));
    return EXIT.found;
  }
  const records = await search({ "agent.on_behalf_of": lookup.person }, window);
  if (records.length === 0) {
    process.stderr.write(`hopwarden trace: no decision on behalf of ${JSON.stringify(lookup.person)} between ${iso(window.startMs)} and ${iso(window.endMs)} at ${settings.jaegerUrl}\n`);
    return EXIT.notFound;
  }
  return print({ kind: "on-behalf-of", onBehalfOf: lookup.person, since: iso(window.startMs), until: iso(window.endMs) }, records, settings);
}

/** Decisions from several searches, each once, oldest first. */
function merge(...lists: DecisionRecord[][]): DecisionRecord[] {
  const byId = new Map<string, DecisionRecord>();
  for (const list of lists) for (const r of list) if (!byId.has(r.decisionId)) byId.set(r.decisionId, r);
  return [...byId.values()].sort((x, y) => x.startUs - y.startUs);
}

function print(query: Record<string, string>, records: readonly DecisionRecord[], settings: Settings, highlight?: string): number {
  const tree = buildDelegationForest(records);
  if (settings.json) {
    process.stdout.write(JSON.stringify({ query, decisions: records, tree }, null, 2) + "\n");
    return EXIT.found;
  }
  const traces = new Set(records.map((r) => r.traceId)).size;
  process.stdout.write(`${records.length} decision${records.length === 1 ? "" : "s"} in ${traces} trace${traces === 1 ? "" : "s"} (Jaeger ${settings.jaegerUrl})\n\n`);
  process.stdout.write(renderDelegationForest(tree, { highlight }));
  return EXIT.found;
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}
