// The fuzz cases, one fast-check arbitrary for all of them:
//
//   allowed    a call the fuzz policy admits, in one of its many spellings
//              (certificate encodings, callee as alias or SPIFFE ID or
//              destination, chain spacing, header_map with mixed-case names,
//              query strings, extra headers, an untrusted XFCC); must allow.
//   denied     a scenario the contract refuses as a whole (requireVia).
//   contract   an allowed call with one contract mutation: must deny, and
//              with the mutation's reason where SPEC 2's order pins it.
//   multi      two or three contract mutations: must deny.
//   perturbed  an allowed call with fields swapped for values from the
//              universe: the reference decider judges.
//   universe   a random call over the small universe of agents, people,
//              paths and tokens: the reference decider judges.
//   walk       a random walk over the policy's hop graph, with random
//              people, methods, paths and tokens: the reference judges.
//   junk       arbitrary strings everywhere: the reference decider judges.

import fc from "fast-check";
import type { DenialReason } from "../../src/core/reasons.js";
import { contractMutationArb, type Base } from "./contract-mutations.js";
import type { Call, Callee, TokenValue } from "./request-model.js";
import { ALLOWED_SCENARIOS, callerOf, SCENARIOS, tokenName, type Scenario, type TokenVariant } from "./scenarios.js";
import { AGENT_NAMES, AGENTS, fuzzPolicy, PEOPLE, POLICY_ALIASES, type AgentName } from "./universe.js";
import { globMatches } from "./reference-decider.js";
import {
  ALL_IDS,
  anyCertArb,
  anyTokenArb,
  encodingArb,
  invalidSpellings,
  junkStringArb,
  LONGEST_PERSON,
  METHOD_POOL,
  PATH_POOL,
  pathArb,
  PERSON_POOL,
  queryArb,
  validCert,
} from "./values.js";

export type CaseKind = "allowed" | "denied" | "contract" | "multi" | "perturbed" | "universe" | "walk" | "junk";

export type Expectation =
  | { readonly kind: "allow" }
  /** reason undefined: any deny. */
  | { readonly kind: "deny"; readonly reason: DenialReason | undefined }
  /** No answer known by construction: the reference decider's is the one. */
  | { readonly kind: "reference" };

export interface FuzzCase {
  readonly kind: CaseKind;
  /** What the case is, for the report: the scenario and the mutations applied. */
  readonly label: string;
  readonly call: Call;
  readonly expect: Expectation;
}

const METHODS_ANY = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "get", "X-CUSTOM"];

const SEPARATORS = [",", ", ", " , ", "\t,", ",\t ", " ,\t"];

function chainHeaderArb(ids: readonly string[]): fc.Arbitrary<readonly string[]> {
  const joined = fc
    .tuple(fc.constantFrom(...SEPARATORS), fc.constantFrom("", " ", "\t", " \t"), fc.constantFrom("", " ", "\t"))
    .map(([sep, lead, trail]) => [lead + ids.join(sep) + trail]);
  // A missing chain header means the chain is [caller] (SPEC 2, check 5).
  return ids.length === 1 ? fc.oneof(fc.constant([]), joined) : joined;
}

function calleeArb(callee: AgentName): fc.Arbitrary<Callee> {
  const id = AGENTS[callee];
  const other = callee === "db" ? AGENTS.front : AGENTS.db;
  return fc.oneof(
    { arbitrary: fc.constant<Callee>({ kind: "context", value: callee }), weight: 5 },
    { arbitrary: fc.constant<Callee>({ kind: "context", value: id }), weight: 2 },
    { arbitrary: fc.constant<Callee>({ kind: "destination", value: id }), weight: 2 },
    // The route's context extension wins over the destination (SPEC 1).
    // An empty context extension names no callee: the destination does (SPEC 1).
    { arbitrary: fc.constantFrom<Callee>({ kind: "both", context: callee, destination: other }, { kind: "both", context: id, destination: "not a spiffe id" }, { kind: "both", context: "", destination: id }), weight: 1 },
  );
}

const extraHeaderArb: fc.Arbitrary<readonly [string, string]> = fc.oneof(
  fc.tuple(fc.constant("x-request-id"), fc.uuid()),
  fc.tuple(fc.constant("user-agent"), fc.string({ maxLength: 20 })),
  // Not trusted by this configuration: must change nothing.
  fc.constantFrom(...ALL_IDS).map((uri) => ["x-forwarded-client-cert", `By=spiffe://example.org/agent/gateway;Hash=abc;URI=${uri}`] as const),
  // A client's own verified headers are overwritten on allow, never read.
  fc.constantFrom(...ALL_IDS).map((v) => ["x-agent-verified-subject", v] as const),
  // Names that only look like the security headers.
  fc.tuple(fc.constantFrom("x-agent-subjects", "x-agent-subject-2", "x-agent-on-behalf", "x-agent-delegation-chains", "agent-subject"), fc.constantFrom(...ALL_IDS, PEOPLE.mallory)),
);

const baseArbs = new Map<Scenario, fc.Arbitrary<Base>>();

/** A call the scenario's rules admit, and the facts it was made from. */
export function baseArb(s: Scenario): fc.Arbitrary<Base> {
  let arb = baseArbs.get(s);
  if (arb === undefined) baseArbs.set(s, (arb = makeBaseArb(s)));
  return arb;
}

function makeBaseArb(s: Scenario): fc.Arbitrary<Base> {
  const caller = callerOf(s);
  const callerId = AGENTS[caller];
  const personArb = fc.constantFrom(...s.people);
  // Anyone at example.com is admitted here: the longest on-behalf-of SPEC 1 allows must pass too.
  const longPersonOk = s.people.includes("bob") && !s.tokenRequired;
  return fc
    .record({
      person: personArb,
      longPerson: longPersonOk ? fc.nat({ max: 19 }).map((n) => n === 0) : fc.constant(false),
      method: s.methods === undefined ? fc.constantFrom(...METHODS_ANY) : fc.constantFrom(...s.methods),
      pathOnly: pathArb(s.paths),
      query: queryArb,
      encoding: encodingArb,
      // Istio sends no certificate: the caller is source.principal (SPEC 1).
      usePrincipal: s.tokenRequired ? fc.constant(false) : fc.nat({ max: 4 }).map((n) => n === 0),
      callee: calleeArb(s.callee),
      chain: chainHeaderArb(s.chain.map((a) => AGENTS[a])),
      transport: fc.constantFrom<Call["transport"]>("headers", "header_map"),
      nameCase: fc.constantFrom<Call["nameCase"]>("lower", "upper", "mixed"),
      rawValues: fc.boolean(),
      extraHeaders: fc.array(extraHeaderArb, { maxLength: 3 }),
      tokenChoice: fc.nat({ max: 99 }),
      tokenVariant: fc.constantFrom<TokenVariant>("valid", "wideScope", "emptyScope"),
    })
    .map((r): Base => {
      const usePrincipal = r.usePrincipal;
      // A token needs the certificate its cnf names; optional tokens come with some calls.
      const withToken = s.tokenRequired || (!usePrincipal && !r.longPerson && r.tokenChoice < 15);
      let tokenVariant = r.tokenVariant;
      if (!s.tokenVariants || (tokenVariant === "wideScope" && s.scopes !== undefined && !s.scopes.includes("db:write"))) tokenVariant = "valid";
      const token: TokenValue[] = withToken ? [{ token: tokenName(s, r.person, tokenVariant) }] : [];
      const call: Call = {
        binding: usePrincipal ? { kind: "principal", principal: callerId } : { kind: "certificate", cert: validCert(caller, r.encoding) },
        subject: [callerId],
        onBehalfOf: [r.longPerson ? LONGEST_PERSON : PEOPLE[r.person]],
        chain: r.chain,
        token,
        callee: r.callee,
        method: r.method,
        path: r.pathOnly + r.query,
        transport: r.transport,
        nameCase: r.nameCase,
        rawValues: r.rawValues,
        extraHeaders: r.extraHeaders,
      };
      return { scenario: s, person: r.person, call, pathOnly: r.pathOnly, query: r.query };
    });
}

const allowedScenarioArb = fc.constantFrom(...ALLOWED_SCENARIOS);
const deniedScenarios = SCENARIOS.filter((s) => s.denied !== undefined);

const allowedCaseArb: fc.Arbitrary<FuzzCase> = allowedScenarioArb.chain(baseArb).map((b) => ({ kind: "allowed", label: b.scenario.name, call: b.call, expect: { kind: "allow" } }));

const deniedCaseArb: fc.Arbitrary<FuzzCase> = fc
  .constantFrom(...deniedScenarios)
  .chain(baseArb)
  .map((b) => ({ kind: "denied", label: b.scenario.name, call: b.call, expect: { kind: "deny", reason: b.scenario.denied } }));

const contractCaseArb: fc.Arbitrary<FuzzCase> = allowedScenarioArb
  .chain(baseArb)
  .chain((b) => contractMutationArb(b).map((m): FuzzCase => ({ kind: "contract", label: `${b.scenario.name} | ${m.label}`, call: m.call, expect: { kind: "deny", reason: m.reason } })));

const multiCaseArb: fc.Arbitrary<FuzzCase> = allowedScenarioArb
  .chain(baseArb)
  .chain((b) =>
    fc.integer({ min: 2, max: 3 }).chain((n) => {
      let acc: fc.Arbitrary<{ base: Base; labels: string[] }> = fc.constant({ base: b, labels: [] });
      for (let i = 0; i < n; i++) {
        acc = acc.chain(({ base, labels }) => contractMutationArb(base).map((m) => ({ base: { ...base, call: m.call }, labels: [...labels, m.label] })));
      }
      return acc.map(({ base, labels }): FuzzCase => ({ kind: "multi", label: `${b.scenario.name} | ${labels.join(" + ")}`, call: base.call, expect: { kind: "deny", reason: undefined } }));
    }),
  );

// --- values from the universe, for perturbed and random calls ------------------

const idArb: fc.Arbitrary<string> = fc.oneof({ arbitrary: fc.constantFrom(...ALL_IDS), weight: 8 }, { arbitrary: fc.constantFrom(...ALL_IDS).chain((id) => fc.constantFrom(...invalidSpellings(id))), weight: 1 });

const separatorArb = fc.constantFrom(...SEPARATORS);

const chainValueArb: fc.Arbitrary<readonly string[]> = fc.oneof(
  { arbitrary: fc.constant([]), weight: 2 },
  { arbitrary: fc.tuple(fc.array(idArb, { maxLength: 5 }), separatorArb).map(([ids, sep]) => [ids.join(sep)]), weight: 6 },
  { arbitrary: fc.tuple(fc.array(fc.constantFrom(...ALL_IDS), { maxLength: 3 }), fc.array(fc.constantFrom(...ALL_IDS), { maxLength: 3 })).map(([a, b]) => [a.join(","), b.join(",")]), weight: 1 },
);

const calleeValueArb: fc.Arbitrary<Callee> = fc.oneof(
  fc.constantFrom(...POLICY_ALIASES, "stranger", "nobody", "").map((value): Callee => ({ kind: "context", value })),
  idArb.map((value): Callee => ({ kind: "context", value })),
  idArb.map((value): Callee => ({ kind: "destination", value })),
  fc.constant<Callee>({ kind: "none" }),
);

const bindingArb: fc.Arbitrary<Call["binding"]> = fc.oneof(
  { arbitrary: fc.tuple(fc.constantFrom(...AGENT_NAMES), encodingArb).map(([a, e]): Call["binding"] => ({ kind: "certificate", cert: validCert(a, e) })), weight: 6 },
  { arbitrary: anyCertArb.map((cert): Call["binding"] => ({ kind: "certificate", cert })), weight: 2 },
  { arbitrary: idArb.map((principal): Call["binding"] => ({ kind: "principal", principal })), weight: 2 },
  { arbitrary: fc.tuple(anyCertArb, idArb).map(([cert, principal]): Call["binding"] => ({ kind: "both", cert, principal })), weight: 1 },
  { arbitrary: fc.constant<Call["binding"]>({ kind: "none" }), weight: 1 },
);

const pathValueArb: fc.Arbitrary<string> = fc.tuple(fc.oneof({ arbitrary: fc.constantFrom(...PATH_POOL), weight: 4 }, { arbitrary: fc.constantFrom(...ALLOWED_SCENARIOS.map((s) => s.paths)).chain(pathArb), weight: 2 }), queryArb).map(([p, q]) => p + q);

const personValueArb: fc.Arbitrary<readonly string[]> = fc.oneof(
  { arbitrary: fc.constantFrom(...PERSON_POOL).map((p) => [p]), weight: 8 },
  { arbitrary: fc.constant([]), weight: 1 },
  { arbitrary: fc.tuple(fc.constantFrom(...PERSON_POOL), fc.constantFrom(...PERSON_POOL)).map(([a, b]) => [a, b]), weight: 1 },
);

const tokenValueArb: fc.Arbitrary<readonly TokenValue[]> = fc.oneof({ arbitrary: fc.constant([]), weight: 6 }, { arbitrary: anyTokenArb.map((t) => [t]), weight: 4 }, { arbitrary: fc.tuple(anyTokenArb, anyTokenArb).map(([a, b]) => [a, b]), weight: 1 });

/** One field of a call replaced by a universe value. */
const perturbationArb: fc.Arbitrary<{ label: string; apply: (c: Call) => Call }> = fc.oneof(
  bindingArb.map((binding) => ({ label: `binding=${binding.kind}`, apply: (c: Call) => ({ ...c, binding }) })),
  fc.oneof(idArb.map((v) => [v]), fc.constant([])).map((subject) => ({ label: "subject", apply: (c: Call) => ({ ...c, subject }) })),
  personValueArb.map((onBehalfOf) => ({ label: "on-behalf-of", apply: (c: Call) => ({ ...c, onBehalfOf }) })),
  chainValueArb.map((chain) => ({ label: "chain", apply: (c: Call) => ({ ...c, chain }) })),
  calleeValueArb.map((callee) => ({ label: `callee=${callee.kind}`, apply: (c: Call) => ({ ...c, callee }) })),
  fc.constantFrom(...METHOD_POOL).map((method) => ({ label: "method", apply: (c: Call) => ({ ...c, method }) })),
  pathValueArb.map((path) => ({ label: "path", apply: (c: Call) => ({ ...c, path }) })),
  tokenValueArb.map((token) => ({ label: "token", apply: (c: Call) => ({ ...c, token }) })),
  fc.constantFrom<Call["transport"]>("headers", "header_map").map((transport) => ({ label: "transport", apply: (c: Call) => ({ ...c, transport }) })),
);

const perturbedCaseArb: fc.Arbitrary<FuzzCase> = allowedScenarioArb.chain(baseArb).chain((b) =>
  fc.array(perturbationArb, { minLength: 1, maxLength: 3 }).map((ps): FuzzCase => ({
    kind: "perturbed",
    label: `${b.scenario.name} | ${ps.map((p) => p.label).join(" + ")}`,
    call: ps.reduce((c, p) => p.apply(c), b.call),
    expect: { kind: "reference" },
  })),
);

const universeCaseArb: fc.Arbitrary<FuzzCase> = fc
  .record({
    caller: fc.constantFrom(...AGENT_NAMES),
    binding: bindingArb,
    ownBinding: fc.nat({ max: 9 }),
    subjectOwn: fc.nat({ max: 9 }),
    subject: fc.oneof(idArb.map((v) => [v]), fc.constant([])),
    onBehalfOf: personValueArb,
    chainPrefix: fc.array(fc.constantFrom(...ALL_IDS), { maxLength: 4 }),
    chainEndsWithCaller: fc.nat({ max: 9 }),
    chain: chainValueArb,
    separator: separatorArb,
    callee: calleeValueArb,
    method: fc.constantFrom(...METHOD_POOL),
    path: pathValueArb,
    token: tokenValueArb,
    transport: fc.constantFrom<Call["transport"]>("headers", "header_map"),
    nameCase: fc.constantFrom<Call["nameCase"]>("lower", "upper", "mixed"),
    rawValues: fc.boolean(),
  })
  .map((r): FuzzCase => {
    const callerId = AGENTS[r.caller];
    const chain = r.chainEndsWithCaller < 7 ? [[...r.chainPrefix, callerId].join(r.separator)] : r.chain;
    return {
      kind: "universe",
      label: `caller ${r.caller}`,
      call: {
        binding: r.ownBinding < 7 ? { kind: "certificate", cert: validCert(r.caller) } : r.binding,
        subject: r.subjectOwn < 8 ? [callerId] : r.subject,
        onBehalfOf: r.onBehalfOf,
        chain,
        token: r.token,
        callee: r.callee,
        method: r.method,
        path: r.path,
        transport: r.transport,
        nameCase: r.nameCase,
        rawValues: r.rawValues,
        extraHeaders: [],
      },
      expect: { kind: "reference" },
    };
  });

// Random walks over the policy's hop graph, so random calls are often allowed.
const EDGES: ReadonlyMap<AgentName, readonly AgentName[]> = (() => {
  const policy = fuzzPolicy([]);
  const resolve = (x: string): string => policy.agents[x] ?? x;
  const edges = new Map<AgentName, AgentName[]>();
  for (const rule of policy.hops) {
    for (const from of AGENT_NAMES.filter((a) => globMatches(resolve(rule.from), AGENTS[a]))) {
      for (const to of AGENT_NAMES.filter((a) => globMatches(resolve(rule.to), AGENTS[a]))) {
        if (!edges.has(from)) edges.set(from, []);
        edges.get(from)!.push(to);
      }
    }
  }
  return edges;
})();

const walkCaseArb: fc.Arbitrary<FuzzCase> = fc
  .record({
    start: fc.oneof({ arbitrary: fc.constant<AgentName>("front"), weight: 4 }, { arbitrary: fc.constantFrom(...AGENT_NAMES), weight: 1 }),
    steps: fc.array(fc.nat({ max: 7 }), { minLength: 1, maxLength: 4 }),
    lastCallee: fc.constantFrom(...AGENT_NAMES),
    ownBinding: fc.nat({ max: 9 }),
    binding: bindingArb,
    person: fc.oneof({ arbitrary: fc.constantFrom(PEOPLE.alice, PEOPLE.bob), weight: 4 }, { arbitrary: fc.constantFrom(...PERSON_POOL), weight: 1 }),
    callee: fc.nat({ max: 3 }),
    method: fc.oneof({ arbitrary: fc.constantFrom("GET", "POST"), weight: 3 }, { arbitrary: fc.constantFrom(...METHOD_POOL), weight: 1 }),
    path: pathValueArb,
    token: tokenValueArb,
    separator: separatorArb,
    transport: fc.constantFrom<Call["transport"]>("headers", "header_map"),
  })
  .map((r): FuzzCase => {
    const walk: AgentName[] = [r.start];
    for (const step of r.steps) {
      const next = EDGES.get(walk[walk.length - 1]!);
      if (next === undefined || next.length === 0) break;
      walk.push(next[step % next.length]!);
    }
    if (walk.length < 2) walk.push(r.lastCallee);
    const calleeName = walk[walk.length - 1]!;
    const chain = walk.slice(0, -1);
    const caller = chain[chain.length - 1]!;
    const callee: Callee = r.callee === 0 ? { kind: "destination", value: AGENTS[calleeName] } : r.callee === 1 ? { kind: "context", value: AGENTS[calleeName] } : { kind: "context", value: calleeName };
    return {
      kind: "walk",
      label: walk.join(">"),
      call: {
        binding: r.ownBinding < 8 ? { kind: "certificate", cert: validCert(caller) } : r.binding,
        subject: [AGENTS[caller]],
        onBehalfOf: [r.person],
        chain: chain.length === 1 && r.separator === "," ? [] : [chain.map((a) => AGENTS[a]).join(r.separator)],
        token: r.token,
        callee,
        method: r.method,
        path: r.path,
        transport: r.transport,
        nameCase: "lower",
        rawValues: false,
        extraHeaders: [],
      },
      expect: { kind: "reference" },
    };
  });

const junkValuesArb = fc.oneof({ arbitrary: fc.constant([]), weight: 1 }, { arbitrary: junkStringArb.map((v) => [v]), weight: 4 }, { arbitrary: fc.array(junkStringArb, { minLength: 2, maxLength: 3 }), weight: 1 });

const junkCaseArb: fc.Arbitrary<FuzzCase> = fc
  .record({
    binding: fc.oneof(
      fc.constant<Call["binding"]>({ kind: "none" }),
      junkStringArb.map((principal): Call["binding"] => ({ kind: "principal", principal })),
      junkStringArb.filter((raw) => raw !== "").map((raw): Call["binding"] => ({ kind: "certificate", cert: { raw } })),
    ),
    subject: junkValuesArb,
    onBehalfOf: junkValuesArb,
    chain: junkValuesArb,
    token: junkValuesArb.map((vs) => vs.map((raw): TokenValue => ({ raw }))),
    callee: fc.oneof(junkStringArb.map((value): Callee => ({ kind: "context", value })), junkStringArb.map((value): Callee => ({ kind: "destination", value }))),
    method: junkStringArb,
    path: junkStringArb,
    transport: fc.constantFrom<Call["transport"]>("headers", "header_map"),
    nameCase: fc.constantFrom<Call["nameCase"]>("lower", "upper", "mixed"),
    rawValues: fc.boolean(),
    extraHeaders: fc.array(fc.tuple(junkStringArb, junkStringArb), { maxLength: 3 }),
  })
  .map((call): FuzzCase => ({ kind: "junk", label: "junk", call, expect: { kind: "reference" } }));

/** Every kind of case, weighted towards the contract mutations. */
export const fuzzCaseArb: fc.Arbitrary<FuzzCase> = fc.oneof(
  { arbitrary: allowedCaseArb, weight: 14 },
  { arbitrary: deniedCaseArb, weight: 2 },
  { arbitrary: contractCaseArb, weight: 34 },
  { arbitrary: multiCaseArb, weight: 8 },
  { arbitrary: perturbedCaseArb, weight: 20 },
  { arbitrary: universeCaseArb, weight: 8 },
  { arbitrary: walkCaseArb, weight: 9 },
  { arbitrary: junkCaseArb, weight: 5 },
);
