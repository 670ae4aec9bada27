// Mutations the contract says must deny. Each starts from a call the fuzz
// policy allows (a Base: scenarios.ts) and breaks exactly one thing, so SPEC
// 2's order names the reason: a subject that differs, a second principal in
// on-behalf-of, a header repeated in header_map, a value over SPEC 1's bounds,
// a chain entry out of trust domain, a cycle, a path with "..", "%2e", ";",
// "%25", "%2F", control or non-ASCII bytes, an unknown callee alias, a revoked
// identity or serial, an expired certificate, a certificate with two URI
// SANs, a broken delegation token, and so on. A mutation's `reason` is
// undefined where SPEC leaves the reason open (then any deny will do).

import fc from "fast-check";
import type { DenialReason } from "../../src/core/reasons.js";
import type { Call, CertValue } from "./request-model.js";
import { callerOf, TOKEN_VARIANT_NAMES, tokenName, tokenVariantExpectation, type Scenario } from "./scenarios.js";
import { AGENTS, PEOPLE, SERIAL_REVOKED_AGENTS, UNTRUSTED_DOMAIN, type AgentName, type PersonName } from "./universe.js";
import { encodingArb, invalidSpellings, JUNK_CERTS, pathArb, queryArb, validCert } from "./values.js";

/** An allowed call and what it was made from. */
export interface Base {
  readonly scenario: Scenario;
  readonly person: PersonName;
  readonly call: Call;
  /** The path without its query string, and the query. */
  readonly pathOnly: string;
  readonly query: string;
}

export interface Mutated {
  readonly call: Call;
  readonly reason: DenialReason | undefined;
  /** The mutation's name and the value it chose, for the report. */
  readonly label: string;
}

export interface ContractMutation {
  readonly name: string;
  /** How often it is chosen, relative to the others that apply (default 1). */
  readonly weight: number;
  applies(base: Base): boolean;
  arb(base: Base): fc.Arbitrary<Mutated>;
}

const id = (a: AgentName): string => AGENTS[a];
const chainIds = (s: Scenario): string[] => s.chain.map(id);
const TRUSTED_OTHERS: readonly AgentName[] = ["front", "planner", "worker", "research", "db", "mailer", "ghost", "bridge", "stranger"];

function othersThan(ids: readonly string[]): string[] {
  return TRUSTED_OTHERS.map(id).filter((x) => !ids.includes(x));
}

function withChain(call: Call, ids: readonly string[], separator = ", "): Call {
  return { ...call, chain: [ids.join(separator)] };
}

function mutation(name: string, applies: (b: Base) => boolean, arb: (b: Base) => fc.Arbitrary<Omit<Mutated, "label"> & { label?: string }>, weight = 1): ContractMutation {
  return {
    name,
    weight,
    applies,
    arb: (b) => arb(b).map((m) => ({ call: m.call, reason: m.reason, label: m.label === undefined ? name : `${name}: ${m.label}` })),
  };
}

const always = (): boolean => true;
const pick = <T>(values: readonly T[]): fc.Arbitrary<T> => fc.constantFrom(...values);
const show = (v: string): string => (v.length > 60 ? `${JSON.stringify(v.slice(0, 40))}…(${v.length} chars)` : JSON.stringify(v));

// --- 1. caller identity -----------------------------------------------------

const identityMutations: ContractMutation[] = [
  mutation("no certificate, no principal", always, (b) => fc.constant({ call: { ...b.call, binding: { kind: "none" as const } }, reason: "missing_peer_certificate" })),
  mutation("invalid peer certificate", always, (b) => {
    const c = callerOf(b.scenario);
    const certs: CertValue[] = [
      { cert: `${c}:expired`, encoding: "url" },
      { cert: `${c}:notYetValid`, encoding: "url" },
      { cert: `${c}:twoUris`, encoding: "url" },
      { cert: `${c}:sanInjection`, encoding: "url" },
      { cert: `${c}:dnsInjection`, encoding: "url" },
      { cert: "anon:noUri", encoding: "url" },
      { cert: `${c}:valid`, encoding: "caFirst" },
      { cert: `${c}:valid`, encoding: "truncated" },
      ...JUNK_CERTS.map((raw) => ({ raw })),
    ];
    return fc.tuple(pick(certs), fc.boolean()).map(([cert, alsoPrincipal]) => ({
      // A valid principal beside it changes nothing: the certificate is preferred (SPEC 1).
      call: { ...b.call, binding: alsoPrincipal ? { kind: "both" as const, cert, principal: id(c) } : { kind: "certificate" as const, cert } },
      reason: "invalid_peer_certificate" as const,
      label: "raw" in cert ? show(cert.raw) : `${cert.cert} (${cert.encoding})`,
    }));
  }),
  mutation("principal that is not a SPIFFE ID", always, (b) =>
    pick(invalidSpellings(id(callerOf(b.scenario)))).map((principal) => ({ call: { ...b.call, binding: { kind: "principal" as const, principal } }, reason: "invalid_peer_certificate" as const, label: show(principal) })),
  ),
  mutation("caller outside the trust domains", always, (b) => {
    const name = callerOf(b.scenario);
    const principals = [`spiffe://${UNTRUSTED_DOMAIN}/agent/${name}`, "spiffe://example.org.evil.example/agent/front", "spiffe://examp1e.org/agent/front", "spiffe://partner.example.org/agent/bridge", "spiffe://example.org./agent/front", "spiffe://org/agent/front"];
    return fc.oneof(
      encodingArb.map((encoding) => ({ call: { ...b.call, binding: { kind: "certificate" as const, cert: validCert("intruder", encoding) } }, reason: "untrusted_trust_domain" as const, label: "intruder certificate" })),
      pick(principals).map((principal) => ({ call: { ...b.call, binding: { kind: "principal" as const, principal } }, reason: "untrusted_trust_domain" as const, label: principal })),
    );
  }),
  mutation("revoked caller", always, (b) => {
    const c = callerOf(b.scenario);
    const options: fc.Arbitrary<{ call: Call; reason: DenialReason; label: string }>[] = [
      encodingArb.map((encoding) => ({ call: { ...b.call, binding: { kind: "certificate" as const, cert: validCert("retired", encoding) } }, reason: "revoked_identity" as const, label: "retired (identity)" })),
      fc.constant({ call: { ...b.call, binding: { kind: "principal" as const, principal: id("retired") } }, reason: "revoked_identity" as const, label: "retired (principal)" }),
    ];
    if (SERIAL_REVOKED_AGENTS.includes(c)) {
      options.push(encodingArb.map((encoding) => ({ call: { ...b.call, binding: { kind: "certificate" as const, cert: { cert: `${c}:revokedSerial`, encoding } } }, reason: "revoked_identity" as const, label: "revoked serial" })));
    }
    return fc.oneof(...options);
  }),
];

// --- 3. subject ---------------------------------------------------------------

const subjectMutations: ContractMutation[] = [
  mutation("subject missing", always, (b) => fc.constant({ call: { ...b.call, subject: [] }, reason: "missing_subject_header" })),
  mutation("subject differs", always, (b) => {
    const caller = id(callerOf(b.scenario));
    const values = [
      ...othersThan([caller]),
      ...invalidSpellings(caller),
      caller.replace("/agent/", "/Agent/"),
      `${caller} `,
      ` ${caller}`,
      `${caller}\t`,
      `${caller},`,
      `${caller},${caller}`,
      id("intruder"),
      id("retired"),
    ];
    return fc.oneof(
      pick(values).map((v) => ({ call: { ...b.call, subject: [v] }, reason: "subject_mismatch" as const, label: show(v) })),
      // Present but empty: a deny, the reason is not pinned by SPEC.
      fc.constant({ call: { ...b.call, subject: [""] }, reason: undefined, label: '""' }),
    );
  }),
  mutation("subject repeated in header_map", always, (b) => {
    const caller = id(callerOf(b.scenario));
    return fc.constantFrom<readonly string[]>([caller, caller], [caller, id("front") === caller ? id("planner") : id("front")]).map((subject) => ({
      call: { ...b.call, transport: "header_map" as const, subject },
      reason: "subject_mismatch" as const,
      label: `${subject.length} copies`,
    }));
  }),
  mutation("subject over 2,048 bytes", always, (b) => {
    const caller = id(callerOf(b.scenario));
    return fc.integer({ min: 2049, max: 60_000 }).map((n) => {
      const v = `${caller}/${"a".repeat(Math.max(1, n - caller.length - 1))}`;
      return { call: { ...b.call, subject: [v] }, reason: "subject_mismatch" as const, label: `${v.length} bytes` };
    });
  }),
];

// --- 4. on-behalf-of ----------------------------------------------------------

const SPACES_AND_CONTROLS = [" ", "\t", "\u00a0", "\u2028", "\u3000", "\ufeff", "\u1680", "\u0000", "\u001f", "\u007f", "\u0085", "\r", "\n", "\u009f"];
/** Shown as nothing, or as something else: format characters, the replacement character, a lone surrogate. */
const INVISIBLES = ["\u200b", "\u200d", "\u202e", "\u2066", "\u00ad", "\u061c", "\u3164", "\u034f", "\ufe0f", "\ufffd", "\ud800"];

const oboMutations: ContractMutation[] = [
  mutation("on-behalf-of missing", always, (b) =>
    fc.oneof(
      fc.constant({ call: { ...b.call, onBehalfOf: [] }, reason: "missing_on_behalf_of" as const, label: "absent" }),
      fc.constant({ call: { ...b.call, onBehalfOf: [""] }, reason: undefined, label: "empty" }),
    ),
  ),
  mutation("on-behalf-of names two principals", always, (b) => {
    const p = PEOPLE[b.person];
    return pick([`${PEOPLE.mallory},${p}`, `${p},${p}`, `${p},x@example.com`, `${p}, ${p}`, `${p},`, `,${p}`]).map((v) => ({
      call: { ...b.call, onBehalfOf: [v] },
      reason: "on_behalf_of_not_allowed" as const,
      label: show(v),
    }));
  }),
  mutation("on-behalf-of with whitespace or a control character", always, (b) => {
    const p = PEOPLE[b.person];
    return fc.tuple(pick(SPACES_AND_CONTROLS), fc.integer({ min: 0, max: p.length })).map(([c, at]) => {
      const v = p.slice(0, at) + c + p.slice(at);
      return { call: { ...b.call, onBehalfOf: [v] }, reason: "on_behalf_of_not_allowed" as const, label: show(v) };
    });
  }),
  mutation("on-behalf-of with an invisible character", always, (b) => {
    const p = PEOPLE[b.person];
    return fc.tuple(pick(INVISIBLES), fc.integer({ min: 0, max: p.length })).map(([c, at]) => {
      const v = p.slice(0, at) + c + p.slice(at);
      return { call: { ...b.call, onBehalfOf: [v] }, reason: "on_behalf_of_not_allowed" as const, label: show(v) };
    });
  }),
  mutation("on-behalf-of repeated in header_map", always, (b) => {
    const p = PEOPLE[b.person];
    return fc.constantFrom<readonly string[]>([p, p], [PEOPLE.mallory, p], [p, ""]).map((onBehalfOf) => ({
      call: { ...b.call, transport: "header_map" as const, onBehalfOf },
      reason: "on_behalf_of_not_allowed" as const,
      label: JSON.stringify(onBehalfOf),
    }));
  }),
  mutation("on-behalf-of over 2,048 bytes", always, (b) =>
    fc.integer({ min: 2049, max: 60_000 }).map((n) => {
      const v = `${"a".repeat(n - "@example.com".length)}@example.com`;
      return { call: { ...b.call, onBehalfOf: [v] }, reason: "on_behalf_of_not_allowed" as const, label: `${v.length} bytes` };
    }),
  ),
  mutation("on-behalf-of the policy does not represent", always, (b) => {
    const p = PEOPLE[b.person];
    return pick([PEOPLE.mallory, p.toUpperCase(), `${p}.evil.com`, p.replace("example", "Example"), `x/${p}`, "carol@partner.example.org", "Carol@partner.example", `${p}\u200b`]).map((v) => ({
      call: { ...b.call, onBehalfOf: [v] },
      reason: "on_behalf_of_not_allowed" as const,
      label: show(v),
    }));
  }),
];

// --- 5. chain -----------------------------------------------------------------

const chainMutations: ContractMutation[] = [
  mutation("chain header present but empty", always, (b) => pick(["", " ", "\t", " \t "]).map((v) => ({ call: { ...b.call, chain: [v] }, reason: "malformed_chain" as const, label: JSON.stringify(v) }))),
  mutation("chain with an empty entry", always, (b) => {
    const ids = chainIds(b.scenario);
    return fc.integer({ min: 0, max: ids.length }).map((at) => {
      const parts = [...ids.slice(0, at), "", ...ids.slice(at)];
      return { call: withChain(b.call, parts, ","), reason: "malformed_chain" as const, label: `empty entry at ${at}` };
    });
  }),
  mutation("chain entry that is not a SPIFFE ID", always, (b) => {
    const ids = chainIds(b.scenario);
    return fc.integer({ min: 0, max: ids.length - 1 }).chain((i) =>
      pick(invalidSpellings(ids[i]!).filter((v) => !v.includes(","))).map((bad) => {
        const parts = [...ids];
        parts[i] = bad;
        return { call: withChain(b.call, parts), reason: "malformed_chain" as const, label: `entry ${i}: ${show(bad)}` };
      }),
    );
  }),
  mutation("chain repeated in header_map", always, (b) => {
    const joined = chainIds(b.scenario).join(",");
    return fc.constant({ call: { ...b.call, transport: "header_map" as const, chain: [joined, joined] }, reason: "malformed_chain" as const });
  }),
  mutation("chain entry over 2,048 bytes", always, (b) => {
    const ids = chainIds(b.scenario);
    return fc.tuple(fc.integer({ min: 0, max: ids.length - 1 }), fc.integer({ min: 2049, max: 30_000 })).map(([i, n]) => {
      const parts = [...ids];
      parts[i] = `${ids[i]!}/${"a".repeat(n)}`;
      return { call: withChain(b.call, parts), reason: "malformed_chain" as const, label: `entry ${i}, ${parts[i].length} bytes` };
    });
  }),
  mutation("chain entry outside the trust domains", always, (b) => {
    const ids = chainIds(b.scenario);
    return fc.tuple(fc.integer({ min: 0, max: ids.length }), pick([id("intruder"), "spiffe://example.org.evil.example/agent/front", "spiffe://partner.example.org/agent/x"])).map(([at, foreign]) => {
      const parts = [...ids.slice(0, at), foreign, ...ids.slice(at)];
      return { call: withChain(b.call, parts), reason: "untrusted_trust_domain" as const, label: `${foreign} at ${at}` };
    });
  }),
  mutation("chain longer than maxChainLength", always, (b) => {
    const ids = chainIds(b.scenario);
    const extra = othersThan(ids);
    return fc.integer({ min: 1, max: 3 }).map((over) => {
      const prefix = extra.slice(0, 4 + over - ids.length);
      const parts = [...prefix, ...ids];
      return { call: withChain(b.call, parts), reason: "chain_too_long" as const, label: `${parts.length} agents` };
    });
  }),
  mutation("chain with a cycle", always, (b) => {
    const ids = chainIds(b.scenario);
    return fc.tuple(fc.nat(), fc.nat(), fc.boolean()).map(([x, y, insert]) => {
      const parts = [...ids];
      const from = x % ids.length;
      if (insert && ids.length < 4) {
        // A copy of an entry anywhere before the caller's place at the end.
        parts.splice(y % ids.length, 0, ids[from]!);
      } else if (ids.length > 1) {
        const at = y % (ids.length - 1);
        parts[at] = ids[(at + 1 + (from % (ids.length - 1))) % ids.length]!;
      } else {
        parts.unshift(ids[0]!);
      }
      return { call: withChain(b.call, parts), reason: "chain_cycle" as const, label: parts.map((p) => p.slice(p.lastIndexOf("/") + 1)).join(">") };
    });
  }),
  mutation("chain that does not end with the caller", always, (b) => {
    const ids = chainIds(b.scenario);
    return pick(othersThan(ids)).map((other) => {
      const parts = ids.length < 4 ? [...ids, other] : [...ids.slice(0, -1), other];
      return { call: withChain(b.call, parts), reason: "chain_caller_mismatch" as const, label: other };
    });
  }),
  mutation("revoked agent in the chain", (b) => b.scenario.chain.length < 4, (b) => {
    const ids = chainIds(b.scenario);
    return fc.integer({ min: 0, max: ids.length - 1 }).map((at) => {
      const parts = [...ids.slice(0, at), id("retired"), ...ids.slice(at)];
      return { call: withChain(b.call, parts), reason: "revoked_identity" as const, label: `retired at ${at}` };
    });
  }),
];

// --- 6. callee ----------------------------------------------------------------

const calleeMutations: ContractMutation[] = [
  mutation("callee alias the policy does not define", always, (b) => {
    const alias = b.scenario.callee;
    return pick([`${alias}x`, alias.toUpperCase(), `${alias} `, ` ${alias}`, alias[0]!.toUpperCase() + alias.slice(1), "stranger", "intruder", "spiffe", "agent", "*", "__proto__", "constructor", "toString"]).map((value) => ({
      call: { ...b.call, callee: { kind: "context" as const, value } },
      reason: "unknown_callee" as const,
      label: show(value),
    }));
  }),
  mutation("callee that is not a SPIFFE ID", always, (b) =>
    pick(invalidSpellings(id(b.scenario.callee)).filter((v) => v.startsWith("spiffe://"))).map((value) => ({
      call: { ...b.call, callee: { kind: "context" as const, value } },
      reason: "unknown_callee" as const,
      label: show(value),
    })),
  ),
  mutation("no callee", always, (b) => fc.constant({ call: { ...b.call, callee: { kind: "none" as const } }, reason: "unknown_callee" })),
  mutation("destination principal that is not a SPIFFE ID", always, (b) =>
    pick([b.scenario.callee, ...invalidSpellings(id(b.scenario.callee))]).map((value) => ({
      call: { ...b.call, callee: { kind: "destination" as const, value } },
      reason: "unknown_callee" as const,
      label: show(value),
    })),
  ),
];

// --- 7. hops --------------------------------------------------------------------

const pathRuled = (b: Base): boolean => b.scenario.paths !== "any";

function escapes(p: string): string[] {
  return [
    `${p}/../admin`,
    `${p}/..`,
    `${p}/.`,
    `${p}/./x`,
    `${p}/%2e%2e/admin`,
    `${p}/%2E%2e`,
    `${p}/.%2e/x`,
    `${p}/%2e./x`,
    `${p};`,
    `${p};jsessionid=1`,
    `${p}/..;/admin`,
    `${p}%2Fadmin`,
    `${p}%2f..%2fadmin`,
    `${p}%5C..%5Cadmin`,
    `${p}%5c`,
    `${p}\\..\\admin`,
    `${p}%252e%252e`,
    `${p}%25`,
    `${p}%252F..%252Fadmin`,
    `${p}/%u002e%u002e/admin`,
    `${p}/%%32%65%%32%65/admin`,
    `${p}100%`,
    `${p}\u0000`,
    `${p}\t`,
    `${p}\u007f`,
    `${p}é`,
    `${p}\u2028`,
    `${p}/\uff0e\uff0e/admin`,
    `/%2e%2e${p}`,
    `/./${p.slice(1)}`,
  ];
}

const OUTSIDE: Record<Exclude<Scenario["paths"], "any">, readonly string[]> = {
  "worker-db": ["/admin", "/query/x", "/query/", "/Query", "/schema/a/b", "/schema", "/schemas/a", "/reports/x"],
  "research-db": ["/admin", "/query/x", "/reports", "/Reports/x", "/report/x", "/schema/a"],
  send: ["/send/", "/Send", "/send/x", "/sendx", "/"],
  "bridge-research": ["/r/a/b/x", "/r/x", "/r/a/x/", "/R/a/x", "/r/a/y"],
  health: ["/health/", "/healthz", "/"],
};

const hopMutations: ContractMutation[] = [
  mutation("callee no rule reaches", always, (b) =>
    pick<{ kind: "context" | "destination"; value: string }>([
      { kind: "context", value: "ghost" },
      { kind: "context", value: id("ghost") },
      { kind: "context", value: id("stranger") },
      { kind: "destination", value: id("stranger") },
      { kind: "context", value: id("intruder") },
    ]).map((callee) => ({ call: { ...b.call, callee }, reason: "hop_not_allowed" as const, label: callee.value })),
  ),
  mutation("method the last hop does not admit", (b) => b.scenario.methods !== undefined, (b) =>
    pick(["get", "HEAD", "DELETE", "PUT", "GET ", " GET", "", "POST\u0000", "G*T", "*", "post", "CONNECT"].filter((m) => !b.scenario.methods!.includes(m))).map((method) => ({
      call: { ...b.call, method },
      reason: "hop_not_allowed" as const,
      label: show(method),
    })),
  ),
  mutation("path SPEC 3 refuses", pathRuled, (b) =>
    fc.tuple(pick(escapes(b.pathOnly)), queryArb).map(([path, query]) => ({ call: { ...b.call, path: path + query }, reason: "hop_not_allowed" as const, label: show(path) })),
  ),
  mutation("path outside the path rules", pathRuled, (b) =>
    fc.tuple(pick(OUTSIDE[b.scenario.paths as Exclude<Scenario["paths"], "any">]), queryArb).map(([path, query]) => ({ call: { ...b.call, path: path + query }, reason: "hop_not_allowed" as const, label: show(path) })),
  ),
  mutation("path over 8 KiB", always, (b) =>
    fc.tuple(fc.integer({ min: 0, max: 20 }), fc.constantFrom("a", "é", "/"), queryArb).map(([extra, unit, query]) => {
      const bytesPerUnit = Buffer.byteLength(unit);
      const path = `/${unit.repeat(Math.ceil(8192 / bytesPerUnit) + extra)}`;
      return { call: { ...b.call, path: path + query }, reason: "hop_not_allowed" as const, label: `${Buffer.byteLength(path)} bytes of ${JSON.stringify(unit)}` };
    }),
  ),
  mutation("on-behalf-of a hop rule does not admit", (b) => b.scenario.callee === "mailer" || [...b.scenario.chain, b.scenario.callee].join(">").includes("front>planner"), (b) => {
    const people: PersonName[] = b.scenario.callee === "mailer" ? ["bob", "carol"] : ["carol"];
    return pick(people).map((p) => ({ call: { ...b.call, onBehalfOf: [PEOPLE[p]] }, reason: "hop_not_allowed" as const, label: p }));
  }),
  mutation("an earlier hop no rule admits", (b) => b.scenario.chain.length < 4, (b) => {
    const ids = chainIds(b.scenario);
    return fc.integer({ min: 0, max: ids.length - 1 }).map((at) => {
      const parts = [...ids.slice(0, at), id("ghost"), ...ids.slice(at)];
      return { call: withChain(b.call, parts), reason: "hop_not_allowed" as const, label: `ghost at ${at}` };
    });
  }),
];

// --- 9. delegation token ------------------------------------------------------

const hasToken = (b: Base): boolean => b.call.token.length > 0;

const notATokenArb = fc
  .oneof(fc.string({ minLength: 1, maxLength: 60 }), fc.constantFrom("a.b.c", "eyJhbGciOiJub25lIn0.e30.", "...", "x.y."))
  .filter((raw) => raw.trim() !== "" && raw.trim() !== ",");

const tokenMutations: ContractMutation[] = [
  mutation("required token missing", (b) => b.scenario.tokenRequired, (b) =>
    fc.oneof(
      fc.constant({ call: { ...b.call, token: [] }, reason: "token_missing" as const, label: "absent" }),
      fc.constant({ call: { ...b.call, token: [{ raw: "" }] }, reason: "token_missing" as const, label: "empty" }),
    ),
  ),
  mutation("broken delegation token", (b) => b.scenario.tokenVariants, (b) =>
    fc.tuple(pick(TOKEN_VARIANT_NAMES), encodingArb).map(([variant, encoding]) => {
      const expected = tokenVariantExpectation(b.scenario, variant);
      return {
        call: {
          ...b.call,
          binding: { kind: "certificate" as const, cert: validCert(callerOf(b.scenario), encoding) },
          onBehalfOf: [PEOPLE[b.person]],
          token: [{ token: tokenName(b.scenario, b.person, variant) }],
        },
        reason: expected === "allow" ? undefined : expected,
        label: variant,
      };
    }).filter((m) => m.reason !== undefined),
    // One mutation with many outcomes: chosen more often, so each variant is seen often.
    8,
  ),
  mutation("token repeated in header_map", hasToken, (b) => fc.constant({ call: { ...b.call, transport: "header_map" as const, token: [b.call.token[0]!, b.call.token[0]!] }, reason: "token_invalid" })),
  mutation("token over 16 KiB", always, (b) =>
    fc.integer({ min: 16 * 1024 + 1, max: 40_000 }).map((n) => ({ call: { ...b.call, token: [{ raw: "e".repeat(n) }] }, reason: "token_invalid" as const, label: `${n} bytes` })),
  ),
  mutation("token with no certificate to bind it", hasToken, (b) =>
    fc.constant({ call: { ...b.call, binding: { kind: "principal" as const, principal: id(callerOf(b.scenario)) } }, reason: "token_invalid" }),
  ),
  mutation("token that is no token", always, (b) =>
    notATokenArb.map((raw) => ({
      call: { ...b.call, token: [{ raw }] },
      reason: "token_invalid" as const,
      label: show(raw),
    })),
  ),
];

export const CONTRACT_MUTATIONS: readonly ContractMutation[] = [
  ...identityMutations,
  ...subjectMutations,
  ...oboMutations,
  ...chainMutations,
  ...calleeMutations,
  ...hopMutations,
  ...tokenMutations,
];

/** One mutation that applies to `base`, chosen by the generator. */
export function contractMutationArb(base: Base): fc.Arbitrary<Mutated> {
  const applicable = CONTRACT_MUTATIONS.filter((m) => m.applies(base));
  const total = applicable.reduce((n, m) => n + m.weight, 0);
  return fc.integer({ min: 0, max: total - 1 }).chain((ticket) => {
    let left = ticket;
    for (const m of applicable) {
      if (left < m.weight) return m.arb(base);
      left -= m.weight;
    }
    return applicable[0]!.arb(base);
  });
}

export { pathArb, queryArb };
