// The Check pipeline of SPEC 2, as explicit phases in the binding order:
// identity → revocation → subject → on-behalf-of → chain → callee → hops →
// requireVia → delegation token → Transaction Token (SPEC 8). The first
// failure wins; every path, even an unexpected exception, ends in a Decision
// (fail closed), never a throw.

import type { DenialReason } from "../reasons.js";
import { ChainIdsMemo } from "../chain/chain-ids.js";
import { parseSpiffeId, type SpiffeId } from "../identity/spiffe-id.js";
import { svidIdentity, type ParsedPeerCertificate } from "../identity/peer-certificate.js";
import { parseXfccLastElement } from "../identity/xfcc.js";
import { evaluateHop, lastHopRequest, NO_MCP_METADATA, type HopOutcome, type LastHopRequest } from "../policy/evaluate-hop.js";
import { DEFAULT_MCP_METADATA_KEYS, readMcpFacts, type McpMetadataKeys, type McpReading } from "../mcp/mcp-metadata.js";
import { onBehalfOfProblem } from "../identity/on-behalf-of.js";
import { exceedsUtf8Bytes, MAX_IDENTITY_BYTES, MAX_TOKEN_BYTES, quoted } from "../input/untrusted-bounds.js";
import type { CompiledPolicy } from "../policy/model.js";
import type {
  CertificateParser,
  Clock,
  DecisionIdGenerator,
  DelegationTokenVerifier,
  HopDecisionCache,
  PolicySource,
} from "../ports.js";
import { CALLEE_CONTEXT_KEY, DEFAULT_HEADER_NAMES, DEFAULT_TXN_TOKEN_HEADER, XFCC_HEADER, type CheckInput, type HeaderNames } from "./check-input.js";
import type { CallerBinding, Decision, HopRecord } from "./decision.js";
import { checkTxnTokenSubject, type TxnTokenVerifier } from "./txn-token-check.js";

export interface CheckPipelineDeps {
  readonly policies: PolicySource;
  readonly certificates: CertificateParser;
  readonly clock: Clock;
  readonly ids: DecisionIdGenerator;
  readonly hopCache?: HopDecisionCache;
  readonly tokens?: DelegationTokenVerifier;
  readonly headerNames?: HeaderNames;
  /** SPEC 1: read the caller from x-forwarded-client-cert (its last element). */
  readonly trustForwardedClientCert?: boolean;
  /** Verifies Transaction Tokens (SPEC 8) when the policy has `txnTokens`. */
  readonly txnTokens?: TxnTokenVerifier;
  /** Where in the MCP namespace the method, tool and resource are (`--config` `mcp:`). */
  readonly mcpKeys?: McpMetadataKeys;
}

class Denial {
  constructor(
    readonly reason: DenialReason,
    readonly message: string,
  ) {}
}

/** Everything learned so far about one request; turned into a Decision at the end. */
interface Facts {
  policy: CompiledPolicy | undefined;
  caller: SpiffeId | undefined;
  /** Where the caller was read from, as soon as a source was chosen (also when it then fails). */
  binding: CallerBinding | undefined;
  certificate: ParsedPeerCertificate | undefined;
  callee: string | undefined;
  onBehalfOf: string | undefined;
  chain: readonly string[];
  hops: HopRecord[];
  requireToken: boolean;
  lastHopScopes: readonly string[] | undefined;
  tokenId: string | undefined;
  tokenSha256: string | undefined;
  tokenPrev: string | undefined;
  /** What Envoy's MCP filter said of the body (read before any phase, so every decision records it). */
  mcp: McpReading;
  txn: string | undefined;
}

export class CheckPipeline {
  private readonly headers: HeaderNames;
  private readonly txnTokenHeader: string;
  private readonly chains = new ChainIdsMemo();
  /** The last allow's message, by its chain (a memoized, shared array) and callee: consecutive allows mostly repeat it. */
  private lastAllow: { chain: readonly string[]; callee: string | undefined; message: string } | undefined;
  /** Hop-cache keys kept with each shared chain array (see hopKeysOf); they go when the memo drops the array. */
  private readonly hopKeys = new WeakMap<readonly string[], ChainHopKeys>();
  /** Where the MCP facts are in the namespace the adapter hands over. */
  readonly mcpKeys: McpMetadataKeys;
  /** The request headers the pipeline reads (lower case); an adapter may drop all others before deciding. */
  readonly headersRead: ReadonlySet<string>;

  constructor(private readonly deps: CheckPipelineDeps) {
    this.headers = deps.headerNames ?? DEFAULT_HEADER_NAMES;
    this.txnTokenHeader = this.headers.txnToken ?? DEFAULT_TXN_TOKEN_HEADER;
    this.mcpKeys = deps.mcpKeys ?? DEFAULT_MCP_METADATA_KEYS;
    this.headersRead = new Set([this.headers.subject, this.headers.onBehalfOf, this.headers.chain, this.headers.token, this.txnTokenHeader, XFCC_HEADER]);
  }

  decide(input: CheckInput): Decision | Promise<Decision> {
    const nowMs = this.deps.clock.nowMs();
    const facts = emptyFacts();
    try {
      // A few property reads, and only when Envoy sent the namespace.
      if (input.mcpMetadata !== undefined) facts.mcp = readMcpFacts(input.mcpMetadata, this.mcpKeys);
      const outcome = this.runPhases(input, facts, nowMs);
      if (!(outcome instanceof Promise)) return this.finish(input, facts, nowMs, outcome);
      return outcome.then(
        (d) => this.finish(input, facts, nowMs, d),
        (err: unknown) => this.finish(input, facts, nowMs, internalError(err)),
      );
    } catch (err) {
      return this.finish(input, facts, nowMs, internalError(err));
    }
  }

  private runPhases(input: CheckInput, facts: Facts, nowMs: number): Denial | undefined | Promise<Denial | undefined> {
    const denial = this.runSyncPhases(input, facts, nowMs);
    if (denial !== undefined) return this.withTxnRecorded(input, facts, nowMs, denial);
    const tokenDenial = this.tokenPhase(input, facts, nowMs);
    if (tokenDenial instanceof Denial) return this.withTxnRecorded(input, facts, nowMs, tokenDenial);
    if (tokenDenial === undefined) return this.txnTokenPhase(input, facts, nowMs);
    return tokenDenial.then((d) => (d === undefined ? this.txnTokenPhase(input, facts, nowMs) : this.withTxnRecorded(input, facts, nowMs, d)));
  }

  /** A deny that needs no policy walk: a request that could not be read, or a service that cannot record decisions. */
  denyWithoutDeciding(reason: DenialReason, message: string): Decision {
    const nowMs = this.deps.clock.nowMs();
    const facts = emptyFacts();
    facts.policy = this.deps.policies.current();
    return this.finish({ peerCertificate: "", peerPrincipal: "", destinationPrincipal: "", contextExtensions: {}, headers: {}, method: "", path: "" }, facts, nowMs, new Denial(reason, message));
  }

  private runSyncPhases(input: CheckInput, facts: Facts, nowMs: number): Denial | undefined {
    const policy = this.deps.policies.current();
    if (policy === undefined) return new Denial("policy_unavailable", "no valid policy has been loaded");
    facts.policy = policy;
    return (
      this.identityPhase(input, facts, policy, nowMs) ??
      this.revocationPhase(facts, policy) ??
      this.subjectPhase(input, facts) ??
      this.onBehalfOfPhase(input, facts, policy) ??
      this.chainPhase(input, facts, policy) ??
      this.calleePhase(input, facts, policy) ??
      this.hopPhase(input, facts, policy) ??
      this.requireViaPhase(facts, policy)
    );
  }

  // 1. caller identity present, valid, in an allowed trust domain.
  private identityPhase(input: CheckInput, facts: Facts, policy: CompiledPolicy, nowMs: number): Denial | undefined {
    const resolved = this.resolveCaller(input, facts, policy.requireCertificate, nowMs);
    if (resolved instanceof Denial) return resolved;
    facts.caller = resolved.id;
    facts.certificate = resolved.certificate;
    if (!policy.trustDomains.has(resolved.id.trustDomain)) {
      return new Denial("untrusted_trust_domain", `caller ${resolved.id.id} is in trust domain "${resolved.id.trustDomain}", which the policy does not trust`);
    }
    return undefined;
  }

  /** SPEC 8: the binding is the source chosen, in this order: a trusted XFCC, the peer certificate, the principal. */
  private resolveCaller(
    input: CheckInput,
    facts: Facts,
    requireCertificate: boolean,
    nowMs: number,
  ): Denial | { id: SpiffeId; certificate: ParsedPeerCertificate | undefined } {
    if (this.deps.trustForwardedClientCert === true) {
      const xfcc = input.headers[XFCC_HEADER];
      if (xfcc !== undefined) {
        facts.binding = "xfcc";
        // Envoy writes one XFCC header and appends its own element last. Two header lines would be read
        // joined, and a proxy that put its element on the first line would let the caller's line speak last.
        if (isRepeated(input, XFCC_HEADER)) {
          return new Denial("invalid_peer_certificate", `the ${XFCC_HEADER} header arrived more than once; the proxy must send one, its own element last`);
        }
        if (isNotUtf8(input, XFCC_HEADER)) return new Denial("invalid_peer_certificate", `the ${XFCC_HEADER} header ${NOT_UTF8}`);
        return this.callerFromXfcc(xfcc, nowMs, requireCertificate);
      }
    }
    if (input.peerCertificate.length > 0) {
      facts.binding = "certificate";
      return this.callerFromCertificate(input.peerCertificate, nowMs, "peer certificate");
    }
    if (input.peerPrincipal.length > 0) {
      facts.binding = "principal";
      if (requireCertificate) {
        return new Denial("missing_peer_certificate", "the caller is named by source.principal alone, and the policy requires a certificate (requireCertificate)");
      }
      const parsed = parseSpiffeId(input.peerPrincipal);
      if (!parsed.ok) return new Denial("invalid_peer_certificate", `peer principal ${quoted(input.peerPrincipal)} ${parsed.problem}`);
      return { id: parsed.value, certificate: undefined };
    }
    return new Denial("missing_peer_certificate", "the request carries no peer certificate and no peer principal (is include_peer_certificate set and mTLS required?)");
  }

  private callerFromCertificate(raw: string, nowMs: number, what: string): Denial | { id: SpiffeId; certificate: ParsedPeerCertificate } {
    const parsed = this.deps.certificates.parse(raw);
    if (!parsed.ok) return new Denial("invalid_peer_certificate", `${what} ${parsed.problem}`);
    const svid = svidIdentity(parsed.certificate, nowMs);
    if (!svid.ok) return new Denial("invalid_peer_certificate", `${what} ${svid.problem}`);
    return { id: svid.id, certificate: parsed.certificate };
  }

  private callerFromXfcc(header: string, nowMs: number, requireCertificate: boolean): Denial | { id: SpiffeId; certificate: ParsedPeerCertificate | undefined } {
    const xfcc = parseXfccLastElement(header);
    if (!xfcc.ok) return new Denial("invalid_peer_certificate", `${XFCC_HEADER} ${xfcc.problem}`);
    if (xfcc.last.cert !== undefined) return this.callerFromCertificate(xfcc.last.cert, nowMs, `${XFCC_HEADER} Cert`);
    // Without Cert= the element only names the caller: no serial, CRL or validity window can be checked,
    // which is what requireCertificate asks for.
    if (requireCertificate) {
      return new Denial("missing_peer_certificate", `the ${XFCC_HEADER} element names the caller without its certificate (no Cert=), and the policy requires a certificate (requireCertificate)`);
    }
    const uris = xfcc.last.uris;
    if (uris.length !== 1) {
      return new Denial("invalid_peer_certificate", `${XFCC_HEADER} last element has ${uris.length} URI values; exactly one SPIFFE ID is required`);
    }
    const parsed = parseSpiffeId(uris[0] ?? "");
    if (!parsed.ok) return new Denial("invalid_peer_certificate", `${XFCC_HEADER} URI ${parsed.problem}`);
    return { id: parsed.value, certificate: undefined };
  }

  // 2. identity revoked (by SPIFFE ID or certificate serial).
  private revocationPhase(facts: Facts, policy: CompiledPolicy): Denial | undefined {
    const caller = facts.caller!.id;
    if (policy.revokedIdentities.has(caller)) return new Denial("revoked_identity", `caller ${caller} is revoked`);
    const serial = facts.certificate?.serial;
    if (serial !== undefined && policy.revokedSerials.has(serial)) {
      return new Denial("revoked_identity", `the peer certificate (serial ${serial}) is revoked`);
    }
    return undefined;
  }

  // 3. subject header present and exactly the caller's identity.
  private subjectPhase(input: CheckInput, facts: Facts): Denial | undefined {
    const subject = input.headers[this.headers.subject];
    if (subject === undefined) return new Denial("missing_subject_header", `the ${this.headers.subject} header is missing`);
    if (isRepeated(input, this.headers.subject)) return new Denial("subject_mismatch", `the ${this.headers.subject} header arrived more than once`);
    if (isNotUtf8(input, this.headers.subject)) return new Denial("subject_mismatch", `the ${this.headers.subject} header ${NOT_UTF8}`);
    if (exceedsUtf8Bytes(subject, MAX_IDENTITY_BYTES)) {
      return new Denial("subject_mismatch", `${this.headers.subject} is longer than ${MAX_IDENTITY_BYTES} bytes, so it names no SPIFFE ID`);
    }
    const caller = facts.caller!.id;
    if (subject !== caller) {
      return new Denial("subject_mismatch", `${this.headers.subject} ${quoted(subject)} is not the caller's certificate identity ${caller}`);
    }
    return undefined;
  }

  // 4. on-behalf-of present when required, and within the policy's patterns.
  private onBehalfOfPhase(input: CheckInput, facts: Facts, policy: CompiledPolicy): Denial | undefined {
    const value = input.headers[this.headers.onBehalfOf];
    const present = value !== undefined && value.length > 0;
    if (!present) {
      if (policy.requireOnBehalfOf) return new Denial("missing_on_behalf_of", `the ${this.headers.onBehalfOf} header is missing or empty`);
      return undefined;
    }
    // Recorded even when refused below: the audit trail shows whom the caller claimed to act for (bounded there).
    facts.onBehalfOf = value;
    if (isRepeated(input, this.headers.onBehalfOf)) {
      return new Denial("on_behalf_of_not_allowed", `the ${this.headers.onBehalfOf} header arrived more than once; it must name one principal`);
    }
    if (isNotUtf8(input, this.headers.onBehalfOf)) return new Denial("on_behalf_of_not_allowed", `the ${this.headers.onBehalfOf} header ${NOT_UTF8}`);
    const problem = onBehalfOfProblem(value);
    if (problem !== undefined) return new Denial("on_behalf_of_not_allowed", `${this.headers.onBehalfOf} ${problem}`);
    if (policy.onBehalfOf !== undefined && !policy.onBehalfOf.matches(value)) {
      return new Denial("on_behalf_of_not_allowed", `the policy does not allow acting on behalf of ${quoted(value)}`);
    }
    return undefined;
  }

  // 5. chain: syntax, trust domains, length, cycles, caller last, revocation.
  private chainPhase(input: CheckInput, facts: Facts, policy: CompiledPolicy): Denial | undefined {
    const caller = facts.caller!;
    const header = input.headers[this.headers.chain];
    if (header === undefined) {
      facts.chain = [caller.id];
      return undefined;
    }
    if (isRepeated(input, this.headers.chain)) return new Denial("malformed_chain", `the ${this.headers.chain} header arrived more than once`);
    if (isNotUtf8(input, this.headers.chain)) return new Denial("malformed_chain", `the ${this.headers.chain} header ${NOT_UTF8}`);
    // SPEC 1: bounded before any work, with the reason of an entry over 2,048 bytes. Longer, it holds more
    // agents than the policy allows or an entry no SPIFFE ID can be, and parsing it to tell which would
    // cost time in its length (about 0.5 s for 4 MiB).
    const maxHeader = maxChainHeaderLength(policy.maxChainLength);
    if (header.length > maxHeader) {
      return new Denial("malformed_chain", `the ${this.headers.chain} header is ${header.length} characters; a chain of at most ${policy.maxChainLength} agents takes at most ${maxHeader}`);
    }
    const parsed = this.chains.parse(header);
    if (!parsed.ok) return new Denial("malformed_chain", `${this.headers.chain}${parsed.problem}`);
    const ids = parsed.ids;
    facts.chain = parsed.entries;
    // Indexed loops: for-of over these arrays allocated an iterator result per entry, on every Check.
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i]!;
      if (!policy.trustDomains.has(id.trustDomain)) {
        return new Denial("untrusted_trust_domain", `chain entry ${id.id} is in trust domain "${id.trustDomain}", which the policy does not trust`);
      }
    }
    if (ids.length > policy.maxChainLength) {
      return new Denial("chain_too_long", `the chain has ${ids.length} agents; the policy allows at most ${policy.maxChainLength}`);
    }
    if (parsed.repeated !== undefined) return new Denial("chain_cycle", `${parsed.repeated} appears more than once in the chain`);
    const last = ids[ids.length - 1]!;
    if (last.id !== caller.id) {
      return new Denial("chain_caller_mismatch", `the chain ends with ${last.id}, but the caller is ${caller.id}`);
    }
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i]!;
      if (policy.revokedIdentities.has(id.id)) return new Denial("revoked_identity", `chain entry ${id.id} is revoked`);
    }
    return undefined;
  }

  // 6. callee from the route's context extension, else the destination principal.
  private calleePhase(input: CheckInput, facts: Facts, policy: CompiledPolicy): Denial | undefined {
    const named = input.contextExtensions[CALLEE_CONTEXT_KEY];
    if (named !== undefined && named.length > 0) {
      if (named.startsWith("spiffe://")) {
        const parsed = parseSpiffeId(named);
        if (!parsed.ok) return new Denial("unknown_callee", `context extension agent=${quoted(named)} ${parsed.problem}`);
        facts.callee = named;
        return undefined;
      }
      const resolved = policy.agents.get(named);
      if (resolved === undefined) return new Denial("unknown_callee", `context extension agent=${quoted(named)} is not an alias the policy defines`);
      facts.callee = resolved;
      return undefined;
    }
    const destination = input.destinationPrincipal;
    if (destination.length === 0) return new Denial("unknown_callee", "no callee: the route sets no context extension \"agent\" and the destination has no principal");
    const parsed = parseSpiffeId(destination);
    if (!parsed.ok) return new Denial("unknown_callee", `destination principal ${quoted(destination)} ${parsed.problem}`);
    facts.callee = destination;
    return undefined;
  }

  // 7. every hop of chain + [callee] admitted; method, path and MCP request on the last (SPEC 8).
  private hopPhase(input: CheckInput, facts: Facts, policy: CompiledPolicy): Denial | undefined {
    const chain = facts.chain;
    const callee = facts.callee!;
    // The MCP facts enter the last hop only under a policy with `mcp:` rules: otherwise they cannot change an outcome (nor split its cache entry).
    const last = lastHopRequest(input.method, input.path, policy.hasMcpRules ? facts.mcp : NO_MCP_METADATA);
    // SPEC 1: an oversized path is refused before any rule is walked.
    if (!last.rulePath.ok && last.rulePath.tooLong === true) return new Denial("hop_not_allowed", `the request path ${last.rulePath.problem}`);
    const keys = this.deps.hopCache === undefined ? undefined : this.hopKeysOf(policy, chain, facts.onBehalfOf ?? "");
    for (let i = 0; i < chain.length; i++) {
      const from = chain[i]!;
      const isLast = i === chain.length - 1;
      const to = isLast ? callee : chain[i + 1]!;
      const { outcome, cached } = this.cachedHop(policy, from, to, facts.onBehalfOf, isLast ? last : undefined, keys, i);
      facts.hops.push({ from, to, rule: outcome.rule, result: outcome.allowed ? "allow" : "deny", cached, detail: outcome.detail });
      if (!outcome.allowed) return new Denial("hop_not_allowed", `hop ${from} → ${to} is not allowed: ${outcome.detail}`);
      const rule = policy.hops[outcome.ruleIndex];
      if (rule?.requireToken === true) facts.requireToken = true;
      if (isLast) {
        facts.lastHopScopes = rule?.scopes;
        // SPEC 8: the rule that admits this call may refuse a caller hopwarden saw no certificate of (a principal, or XFCC without Cert=).
        if (rule?.requireCertificate === true && facts.certificate === undefined) {
          const named = facts.binding === "xfcc" ? `an ${XFCC_HEADER} element without Cert=` : "source.principal alone";
          return new Denial("missing_peer_certificate", `${rule.name} admits ${from} → ${to} only for a caller bound by a certificate, and this caller is named by ${named}`);
        }
      }
    }
    return undefined;
  }

  /**
   * The hop-cache keys of a chain under one policy and one person. A chain
   * header that repeats is parsed once (ChainIdsMemo hands out one frozen
   * array per header value), so its keys are kept with that array and handed
   * to the cache again: the same string objects, whose hashes V8 keeps,
   * instead of new 150-character keys to build and hash on every request.
   * (A header too long for the memo also gives a frozen array, but a new
   * one each time: its keys are never found again and go with it.)
   */
  private hopKeysOf(policy: CompiledPolicy, chain: readonly string[], onBehalfOf: string): ChainHopKeys {
    // Bounded: ChainIdsMemo keeps 512 chains of at most 2,048 characters, and a long person or last-hop key is not kept (about 10 KB a chain at most).
    const shared = Object.isFrozen(chain) && onBehalfOf.length <= MAX_KEPT_ON_BEHALF_OF;
    if (shared) {
      const known = this.hopKeys.get(chain);
      if (known !== undefined && known.revision === policy.revision && known.onBehalfOf === onBehalfOf) return known;
    }
    const fresh: ChainHopKeys = { revision: policy.revision, onBehalfOf, inner: [], last: undefined };
    if (shared) this.hopKeys.set(chain, fresh);
    return fresh;
  }

  private cachedHop(
    policy: CompiledPolicy,
    from: string,
    to: string,
    onBehalfOf: string | undefined,
    last: LastHopRequest | undefined,
    keys: ChainHopKeys | undefined,
    index: number,
  ): { outcome: HopOutcome; cached: boolean } {
    const cache = this.deps.hopCache;
    if (cache === undefined || keys === undefined) return { outcome: evaluateHop(policy, from, to, onBehalfOf, last), cached: false };
    const key = last === undefined ? (keys.inner[index] ??= hopCacheKey(policy, from, to, keys.onBehalfOf, undefined)) : lastHopCacheKey(keys, policy, from, to, last);
    const hit = cache.get(key);
    if (hit !== undefined) return { outcome: hit, cached: true };
    const outcome = evaluateHop(policy, from, to, onBehalfOf, last);
    cache.set(key, outcome);
    return { outcome, cached: false };
  }

  // 8. requireVia: a chain reaching the callee must pass through the required agents.
  private requireViaPhase(facts: Facts, policy: CompiledPolicy): Denial | undefined {
    const callee = facts.callee!;
    for (const rule of policy.requireVia) {
      if (!rule.to.matches(callee)) continue;
      for (const via of rule.via) {
        if (!facts.chain.includes(via)) {
          return new Denial("required_hop_missing", `a chain reaching ${callee} must pass through ${via} (${rule.name})`);
        }
      }
    }
    return undefined;
  }

  // 9. the delegation token, when present or required.
  private tokenPhase(input: CheckInput, facts: Facts, nowMs: number): Denial | undefined | Promise<Denial | undefined> {
    const policy = facts.policy!;
    const token = input.headers[this.headers.token];
    const required = facts.requireToken || policy.tokens?.required === true;
    if (token === undefined || token.length === 0) {
      return required ? new Denial("token_missing", `the ${this.headers.token} header is required by the policy`) : undefined;
    }
    if (isRepeated(input, this.headers.token)) return new Denial("token_invalid", `the ${this.headers.token} header arrived more than once`);
    if (isNotUtf8(input, this.headers.token)) return new Denial("token_invalid", `the ${this.headers.token} header ${NOT_UTF8}`);
    if (exceedsUtf8Bytes(token, MAX_TOKEN_BYTES)) return new Denial("token_invalid", `the ${this.headers.token} header is longer than ${MAX_TOKEN_BYTES} bytes`);
    if (policy.tokens === undefined) {
      return new Denial("token_invalid", "a delegation token was sent, but the policy configures no token issuer to verify it against");
    }
    const verifier = this.deps.tokens;
    if (verifier === undefined) return new Denial("internal_error", "the policy configures tokens, but no token verifier is running");
    return verifier
      .verify({
        token,
        policy: policy.tokens,
        chain: facts.chain,
        caller: facts.caller!.id,
        callee: facts.callee!,
        onBehalfOf: facts.onBehalfOf,
        peerX5tS256: facts.certificate?.x5tS256,
        allowedScopes: facts.lastHopScopes,
        nowMs,
      })
      .then((result) => {
        // Recorded for a refusal too (when the verifier hashed the token): the audit trail shows which token was refused.
        facts.tokenSha256 = result.tokenSha256;
        if (!result.ok) return new Denial(result.reason, result.message);
        facts.tokenId = result.jti;
        facts.tokenPrev = result.prev;
        return undefined;
      });
  }

  // 9, continued (SPEC 8): the Transaction Token, after the delegation token.
  private txnTokenPhase(input: CheckInput, facts: Facts, nowMs: number): Denial | undefined | Promise<Denial | undefined> {
    const policy = facts.policy!;
    const header = this.txnTokenHeader;
    const token = input.headers[header];
    if (token === undefined || token.length === 0) {
      return policy.txnTokens?.required === true ? new Denial("token_missing", `the ${header} header (a Transaction Token) is required by the policy (txnTokens.required)`) : undefined;
    }
    if (isRepeated(input, header)) return new Denial("token_invalid", `the ${header} header arrived more than once; it carries exactly one Txn-Token`);
    if (isNotUtf8(input, header)) return new Denial("token_invalid", `the ${header} header ${NOT_UTF8}`);
    if (exceedsUtf8Bytes(token, MAX_TOKEN_BYTES)) return new Denial("token_invalid", `the ${header} header is longer than ${MAX_TOKEN_BYTES} bytes`);
    if (policy.txnTokens === undefined) {
      return new Denial("token_invalid", `a Txn-Token was sent (${header}), but the policy configures no txnTokens issuer to verify it against`);
    }
    const verifier = this.deps.txnTokens;
    if (verifier === undefined) return new Denial("internal_error", "the policy configures txnTokens, but no Txn-Token verifier is running");
    return verifier.verify({ token, policy: policy.txnTokens, trustDomains: policy.trustDomains, nowMs }).then((result) => {
      if (!result.ok) return new Denial(result.reason, result.message);
      // Recorded even when refused below: the audit trail shows which transaction the mismatch was in.
      facts.txn = result.txn;
      const mismatch = checkTxnTokenSubject(result.sub, facts.onBehalfOf);
      return mismatch === undefined ? undefined : new Denial(mismatch.reason, mismatch.message);
    });
  }

  /**
   * A request denied before the Txn-Token step still records the transaction
   * of a valid Txn-Token it carries, so that `trace --txn` lists every hop of
   * a transaction, the refused ones too (SPEC 8). The reason never changes:
   * the token is verified for the record only, and any failure is ignored.
   * Costs nothing without the header; a reused token is a cache hit.
   */
  private withTxnRecorded(input: CheckInput, facts: Facts, nowMs: number, denial: Denial): Denial | Promise<Denial> {
    const policy = facts.policy?.txnTokens;
    const verifier = this.deps.txnTokens;
    const token = input.headers[this.txnTokenHeader];
    if (policy === undefined || verifier === undefined || token === undefined || token.length === 0) return denial;
    if (isRepeated(input, this.txnTokenHeader) || isNotUtf8(input, this.txnTokenHeader) || exceedsUtf8Bytes(token, MAX_TOKEN_BYTES)) return denial;
    return verifier.verify({ token, policy, trustDomains: facts.policy!.trustDomains, nowMs }).then(
      (result) => {
        if (result.ok) facts.txn = result.txn;
        return denial;
      },
      () => denial,
    );
  }

  private allowMessage(chain: readonly string[], callee: string | undefined): string {
    const last = this.lastAllow;
    if (last !== undefined && last.chain === chain && last.callee === callee) return last.message;
    const message = `allowed: ${chain.join(" → ")} → ${callee ?? ""}`;
    // Only a frozen chain can be shared between requests (ChainIdsMemo's results are frozen); any other array is this request's own.
    this.lastAllow = Object.isFrozen(chain) ? { chain, callee, message } : undefined;
    return message;
  }

  private finish(input: CheckInput, facts: Facts, nowMs: number, denial: Denial | undefined): Decision {
    // One literal for both shapes (this runs on every Check): `allowed` and
    // `reason` come from the same `denial`, so the pair is always consistent.
    return {
      allowed: denial === undefined,
      reason: denial?.reason,
      message: denial?.message ?? this.allowMessage(facts.chain, facts.callee),
      decisionId: this.deps.ids.next(nowMs),
      policyVersion: facts.policy?.version ?? "",
      decidedAtMs: nowMs,
      caller: facts.caller?.id,
      callee: facts.callee,
      onBehalfOf: facts.onBehalfOf,
      chain: facts.chain,
      hops: facts.hops,
      peerCertificateSha256: facts.certificate?.sha256Hex,
      method: input.method,
      path: input.path,
      tokenId: facts.tokenId,
      tokenSha256: facts.tokenSha256,
      tokenPrev: facts.tokenPrev,
      callerBinding: facts.binding,
      mcp: facts.mcp.kind === "mcp" ? facts.mcp.facts : undefined,
      txn: facts.txn,
    } as Decision;
  }
}

/** Longer people's keys are built per request (see hopKeysOf). */
const MAX_KEPT_ON_BEHALF_OF = 256;
/** Longer last-hop keys (long paths) are built per request. */
const MAX_KEPT_LAST_HOP_KEY = 4096;

/** The hop-cache keys kept with a shared chain (see hopKeysOf). */
interface ChainHopKeys {
  readonly revision: string;
  readonly onBehalfOf: string;
  /** The keys of the hops before the last, by position. */
  readonly inner: string[];
  /** The last hop's key and what it was built from (the last hop's `from` is the chain's own). */
  last: { readonly to: string; readonly method: string; readonly pathOk: boolean; readonly pathText: string; readonly key: string } | undefined;
}

/**
 * The policy revision leads the key, so a reload can never serve a stale
 * outcome. "i"/"l" tells an earlier hop from the last one, and the free-form
 * values (on-behalf-of, method) are length-prefixed, so no header value can
 * make one hop's key equal another's (from/to are validated SPIFFE IDs). The
 * last hop is keyed by what path rules see (no query string), or by why no
 * path rule may match, so distinct query strings share one entry.
 */
function hopCacheKey(policy: CompiledPolicy, from: string, to: string, onBehalfOf: string, last: LastHopRequest | undefined): string {
  let key = `${policy.revision}\u0000${last === undefined ? "i" : "l"}\u0000${from}\u0000${to}\u0000${onBehalfOf.length}:${onBehalfOf}`;
  if (last !== undefined) {
    const path = last.rulePath.ok ? `=${last.rulePath.path}` : `!${last.rulePath.problem}`;
    key += `\u0000${last.method.length}:${last.method}\u0000${path}`;
    // Only under a policy with mcp: rules (see hopPhase). The MCP method, tool and URI come from the body: length-prefixed like every free-form value.
    if (policy.hasMcpRules) key += `\u0000${mcpKeyPart(last.mcp)}`;
  }
  return key;
}

/** The last hop's key, reused while the callee, method and rule path repeat (not under `mcp:` rules, whose key also holds the body's names). */
function lastHopCacheKey(keys: ChainHopKeys, policy: CompiledPolicy, from: string, to: string, last: LastHopRequest): string {
  if (policy.hasMcpRules) return hopCacheKey(policy, from, to, keys.onBehalfOf, last);
  const pathOk = last.rulePath.ok;
  const pathText = last.rulePath.ok ? last.rulePath.path : last.rulePath.problem;
  const kept = keys.last;
  if (kept !== undefined && kept.to === to && kept.method === last.method && kept.pathOk === pathOk && kept.pathText === pathText) return kept.key;
  const key = hopCacheKey(policy, from, to, keys.onBehalfOf, last);
  keys.last = key.length <= MAX_KEPT_LAST_HOP_KEY ? { to, method: last.method, pathOk, pathText, key } : undefined;
  return key;
}

function isRepeated(input: CheckInput, header: string): boolean {
  return input.repeatedHeaders !== undefined && input.repeatedHeaders.has(header);
}

const NOT_UTF8 = "is not valid UTF-8 (its raw_value holds other bytes)";

/** A raw_value that was not UTF-8 (header_map): its text holds U+FFFD where the bytes were, so it names nothing as sent. */
function isNotUtf8(input: CheckInput, header: string): boolean {
  return input.notUtf8Headers !== undefined && input.notUtf8Headers.has(header);
}

/** The MCP part of the last hop's cache key: unambiguous, every value length-prefixed (-1: none). */
function mcpKeyPart(mcp: McpReading): string {
  if (mcp.kind === "absent") return "a";
  if (mcp.kind === "unparsable") return `u${mcp.problem.length}:${mcp.problem}`;
  const { method, tool, resource } = mcp.facts;
  return `m${method.length}:${method}\u0000${tool === undefined ? -1 : tool.length}:${tool ?? ""}\u0000${resource === undefined ? -1 : resource.length}:${resource ?? ""}`;
}

function emptyFacts(): Facts {
  return {
    policy: undefined,
    caller: undefined,
    binding: undefined,
    certificate: undefined,
    callee: undefined,
    onBehalfOf: undefined,
    chain: [],
    hops: [],
    requireToken: false,
    lastHopScopes: undefined,
    tokenId: undefined,
    tokenSha256: undefined,
    tokenPrev: undefined,
    mcp: NO_MCP_METADATA,
    txn: undefined,
  };
}

function internalError(err: unknown): Denial {
  const detail = err instanceof Error ? err.message : String(err);
  return new Denial("internal_error", `internal error while deciding: ${detail}`);
}

/** Optional whitespace allowed around a chain header's entries, in all (RFC 9110 lets a list have any amount). */
const CHAIN_HEADER_WHITESPACE = 1024;

/** The longest chain header that can hold a valid chain: maxChainLength SPIFFE IDs of 2,048 bytes, their commas, and some whitespace. */
export function maxChainHeaderLength(maxChainLength: number): number {
  return maxChainLength * (MAX_IDENTITY_BYTES + 1) + CHAIN_HEADER_WHITESPACE;
}
