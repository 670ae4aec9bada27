// What the soak sends: thirteen agents with certificates of their own (the
// certificate cache churns through more than it may hold), a policy with
// chains of one to four agents, and thousands of distinct CheckRequests for
// ghz's data file (ghz sends an array's messages in turn). People and query
// strings vary per message, and a quarter of the messages name a person and
// a query string made unique per call by ghz's {{.RequestNumber}} template,
// so the hop cache keeps missing and evicting while the rest hit it.

import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { create } from "@bufbuild/protobuf";
import { CheckRequestSchema, type CheckRequest } from "../../src/gen/envoy/service/auth/v3/external_auth_pb.js";
import { createCertificateAuthority, spiffe, type IssuedCertificate } from "../support/pki.js";

export const SOAK_POLICY_VERSION = "soak-1";

const TOOLS = Array.from({ length: 8 }, (_, i) => `tool-${String(i + 1).padStart(2, "0")}`);
const AGENTS = ["orchestrator", "planner", "worker", "research", "db", ...TOOLS] as const;

/** The bounds the soak configures (per process), small enough that the churn fills them. */
export const SOAK_CACHE = { hopDecisions: 4000, hopDecisionBytes: 1024 * 1024, certificates: 8, certificateBytes: 64 * 1024 } as const;
export const SOAK_AUDIT = { rotateBytes: 32 * 1024 * 1024, bufferRecords: 10_000, bufferBytes: 16 * 1024 * 1024 } as const;
/** The span queue's bound (not configurable: DecisionTracing's default), plus one span that may land on a full queue. */
export const SPAN_QUEUE_BOUND_BYTES = 16 * 1024 * 1024 + 64 * 1024;

function policyYaml(): string {
  return `version: "${SOAK_POLICY_VERSION}"
trustDomains: [example.org]
maxChainLength: 5
requireOnBehalfOf: true
onBehalfOf: ["*@example.com", "*@partner.example"]
agents:
${["orchestrator", "planner", "worker", "research", "db"].map((a) => `  ${a}: ${spiffe(a)}`).join("\n")}
hops:
  - from: orchestrator
    to: research
    onBehalfOf: ["*@example.com"]
  - from: orchestrator
    to: planner
  - from: planner
    to: worker
  - from: worker
    to: research
    methods: [GET, POST]
  - from: research
    to: db
    methods: [GET, POST]
    paths: ["/query", "/schema/*", "/reports/**"]
  - from: orchestrator
    to: spiffe://example.org/agent/tool-*
  - from: spiffe://example.org/agent/tool-*
    to: research
    methods: [GET]
    paths: ["/v1/search/*"]
requireVia:
  - to: db
    via: [research]
revoked:
  identities: [spiffe://example.org/agent/retired]
`;
}

function configYaml(): string {
  return `cache:
  hopDecisions: ${SOAK_CACHE.hopDecisions}
  hopDecisionBytes: ${SOAK_CACHE.hopDecisionBytes}
  certificates: ${SOAK_CACHE.certificates}
  certificateBytes: ${SOAK_CACHE.certificateBytes}
audit:
  rotateBytes: ${SOAK_AUDIT.rotateBytes}
  checkpointEvery: { records: 100, interval: 1s }
  bufferRecords: ${SOAK_AUDIT.bufferRecords}
  bufferBytes: ${SOAK_AUDIT.bufferBytes}
`;
}

/** One request shape: the chain (caller last), the callee, method and path; `n` makes it distinct. */
interface Shape {
  readonly chain: readonly string[];
  readonly callee: string;
  readonly method: string;
  readonly path: (n: number) => string;
  /** Headers that differ from what an honest agent sends (the deny cases). */
  readonly spoof?: "subject" | "cycle";
}

const tool = (n: number) => TOOLS[n % TOOLS.length]!;

/** Mostly allowed calls of every chain length, and the usual denials. */
function shapes(n: number): Shape[] {
  return [
    { chain: ["orchestrator"], callee: "research", method: "POST", path: (i) => `/v1/summarize/${i % 97}` },
    { chain: ["orchestrator", "research"], callee: "db", method: "GET", path: () => "/query" },
    { chain: ["orchestrator", "research"], callee: "db", method: "GET", path: (i) => `/schema/t${i % 211}` },
    { chain: ["orchestrator", "research"], callee: "db", method: "POST", path: (i) => `/reports/${2020 + (i % 7)}/${i % 12}/r${i % 389}` },
    { chain: ["orchestrator", "planner", "worker"], callee: "research", method: "POST", path: (i) => `/v1/summarize/${i % 53}` },
    { chain: ["orchestrator", "planner", "worker", "research"], callee: "db", method: "GET", path: (i) => `/schema/t${i % 101}` },
    { chain: ["orchestrator", tool(n)], callee: "research", method: "GET", path: (i) => `/v1/search/term${i % 499}` },
    { chain: [tool(n + 3)], callee: "research", method: "GET", path: (i) => `/v1/search/q${i % 157}` },
    // Denials: a method or path no rule admits, a hop with no rule, requireVia, a cycle, a lying subject.
    { chain: ["orchestrator", "research"], callee: "db", method: "DELETE", path: () => "/query" },
    { chain: ["orchestrator", "research"], callee: "db", method: "GET", path: (i) => `/admin/${i % 31}` },
    { chain: ["orchestrator"], callee: "db", method: "GET", path: () => "/query" },
    { chain: ["orchestrator", "research"], callee: "db", method: "GET", path: () => "/query", spoof: "cycle" },
    { chain: [tool(n)], callee: "research", method: "GET", path: () => "/v1/search/x", spoof: "subject" },
  ];
}

/** Who the request is for: repeated people (cache hits), a person unique per call, partners and strangers. */
function person(i: number, unique: string): string {
  const r = i % 20;
  if (r < 12) return `user${i % 2500}@example.com`;
  if (r < 17) return `u${unique}@example.com`;
  if (r < 19) return `p${i % 700}@partner.example`;
  return `x${i}@evil.example`;
}

interface Variant {
  readonly caller: string;
  readonly callee: string;
  readonly method: string;
  readonly path: string;
  readonly headers: Record<string, string>;
}

/** Variant `i`; `unique` is spliced into the per-call parts ({{.RequestNumber}} for ghz, a counter otherwise). */
function variant(i: number, unique: string): Variant {
  const all = shapes(i);
  const shape = all[i % all.length]!;
  const caller = shape.chain.at(-1)!;
  const chain = shape.spoof === "cycle" ? ["research", ...shape.chain] : shape.chain;
  const query = `?q=${(i * 2654435761 % 4294967296).toString(16)}&page=${i % 50}${i % 4 === 0 ? `&r=${unique}` : ""}`;
  return {
    caller,
    callee: shape.callee,
    method: shape.method,
    path: shape.path(i) + query,
    headers: {
      "content-type": "application/json",
      "user-agent": "agent-sdk/1.4",
      "x-request-id": `req-${i}`,
      "x-agent-subject": spiffe(shape.spoof === "subject" ? "orchestrator" : caller),
      "x-agent-on-behalf-of": person(i, unique),
      "x-agent-delegation-chain": chain.map((a) => spiffe(a)).join(", "),
    },
  };
}

/** The CheckRequest as ghz's JSON (proto3 JSON names). */
function asGhzJson(v: Variant, certificates: ReadonlyMap<string, IssuedCertificate>): unknown {
  return {
    attributes: {
      source: { certificate: certificates.get(v.caller)!.urlEncodedPem, address: { socketAddress: { address: "10.0.0.7", portValue: 43512 } } },
      destination: { address: { socketAddress: { address: "10.0.0.9", portValue: 8443 } } },
      contextExtensions: { agent: v.callee },
      request: { http: { method: v.method, path: v.path, host: `${v.callee}.agents.example.org`, scheme: "https", protocol: "HTTP/2", headers: { ":path": v.path, ":method": v.method, ...v.headers } } },
    },
  };
}

function asCheckRequest(v: Variant, certificates: ReadonlyMap<string, IssuedCertificate>): CheckRequest {
  return create(CheckRequestSchema, {
    attributes: {
      source: { certificate: certificates.get(v.caller)!.urlEncodedPem },
      contextExtensions: { agent: v.callee },
      request: { http: { method: v.method, path: v.path, protocol: "HTTP/2", headers: { ":path": v.path, ":method": v.method, ...v.headers } } },
    },
  });
}

export interface SoakWorkload {
  readonly policyFile: string;
  readonly configFile: string;
  /** ghz's --data-file: an array of `variants` CheckRequests. */
  readonly dataFile: string;
  readonly variants: number;
  readonly agents: number;
  /** For the connection-churn client: `count` concrete requests from the same mix. */
  churnRequests(count: number, offset: number): CheckRequest[];
}

export async function writeSoakWorkload(dir: string, variants: number): Promise<SoakWorkload> {
  const ca = await createCertificateAuthority("hopwarden soak CA");
  const issued = await Promise.all(AGENTS.map((name) => ca.issue({ name, uris: [spiffe(name)] })));
  const certificates = new Map(AGENTS.map((name, i) => [name, issued[i]!]));
  const policyFile = join(dir, "policy.yaml");
  const configFile = join(dir, "config.yaml");
  const dataFile = join(dir, "requests.json");
  await writeFile(policyFile, policyYaml());
  await writeFile(configFile, configYaml());
  const messages: unknown[] = [];
  for (let i = 0; i < variants; i++) messages.push(asGhzJson(variant(i, "{{.RequestNumber}}"), certificates));
  await writeFile(dataFile, JSON.stringify(messages));
  return {
    policyFile,
    configFile,
    dataFile,
    variants,
    agents: AGENTS.length,
    churnRequests: (count, offset) => Array.from({ length: count }, (_, k) => asCheckRequest(variant(offset + k, `c${offset + k}`), certificates)),
  };
}
