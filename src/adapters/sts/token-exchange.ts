// One RFC 8693 token exchange: the presenting agent (its mTLS identity) hands
// in a subject token and names the next callee (`audience`); the service
// checks the hop against the same policy Check uses, narrows the scope
// (requested ⊆ previous token's scope ⊆ the hop rule's scopes) and issues
// the next delegation token, bound to the agent's certificate. Refusals are
// RFC 6749 5.2 / RFC 8693 2.2.2 errors, never exceptions.

import { randomBytes, randomUUID } from "node:crypto";
import { parseSpiffeId, type SpiffeId } from "../../core/identity/spiffe-id.js";
import type { ParsedPeerCertificate } from "../../core/identity/peer-certificate.js";
import { evaluateHop } from "../../core/policy/evaluate-hop.js";
import type { CompiledPolicy } from "../../core/policy/model.js";
import { DELEGATION_TOKEN_TYP, delegationTokenSha256, nestActors, parseScope } from "../tokens/delegation-token-format.js";
import { TXN_TOKEN_TYP } from "../tokens/txn-token-format.js";
import type { TxnTokenIssuance } from "./sts-config.js";
import type { SigningKeyRing } from "./signing-key-ring.js";
import { verifySubjectToken, type SubjectVerification } from "./subject-token.js";
import { quotedValue } from "../../core/input/untrusted-bounds.js";

export const GRANT_TYPE_TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange";
export const TOKEN_TYPE_JWT = "urn:ietf:params:oauth:token-type:jwt";
/** Subject token types accepted: the token's own `typ` header tells a delegation token from a person's token. */
export const SUBJECT_TOKEN_TYPES = [TOKEN_TYPE_JWT, "urn:ietf:params:oauth:token-type:access_token", "urn:ietf:params:oauth:token-type:id_token"];

export type OAuthErrorCode =
  | "invalid_request"
  | "invalid_client"
  | "invalid_grant"
  | "unauthorized_client"
  | "unsupported_grant_type"
  | "invalid_scope"
  | "invalid_target"
  | "temporarily_unavailable";

export interface TokenResponse {
  readonly access_token: string;
  readonly issued_token_type: string;
  /** RFC 8693 2.2.1: "N_A", since the token is a proof of delegation, not a bearer access token. */
  readonly token_type: "N_A";
  readonly expires_in: number;
  readonly scope: string;
  /**
   * First hop only, when the service mints Transaction Tokens: the Txn-Token
   * for the whole call chain (typ txntoken+jwt), which every agent forwards
   * unmodified in the `Txn-Token` header. Extra members of a token response
   * are ignored by clients that do not know them (RFC 6749 5.1).
   */
  readonly txn_token?: string;
  readonly txn_token_expires_in?: number;
}

export type ExchangeOutcome =
  | {
      readonly ok: true;
      readonly response: TokenResponse;
      readonly jti: string;
      /** The issued token's hash (base64url SHA-256 of its JWS): the next hop's `prev`, and Check's token_sha256. */
      readonly tokenSha256: string;
      /** The issued token's `prev`: the subject token's hash; undefined at the first hop. */
      readonly prev: string | undefined;
      readonly chain: readonly string[];
      readonly audience: string;
      readonly person: string;
      /** The transaction id of a Txn-Token minted with this answer. */
      readonly txn?: string;
    }
  | { readonly ok: false; readonly status: 400 | 401 | 503; readonly error: OAuthErrorCode; readonly description: string };

export interface ExchangeCaller {
  readonly id: SpiffeId;
  readonly certificate: ParsedPeerCertificate;
}

export interface TokenExchangeDeps {
  readonly issuer: string;
  readonly tokenTtlSeconds: number;
  readonly clockSkewSeconds: number;
  readonly policy: () => CompiledPolicy | undefined;
  readonly keys: SigningKeyRing;
  readonly person: SubjectVerification["person"];
  /** Mint a Txn-Token at the first hop; undefined: never. */
  readonly txnTokens?: TxnTokenIssuance | undefined;
}

const refuse = (error: OAuthErrorCode, description: string, status: 400 | 401 | 503 = 400): ExchangeOutcome => ({ ok: false, status, error, description });

export class TokenExchange {
  constructor(private readonly deps: TokenExchangeDeps) {}

  async exchange(params: URLSearchParams, caller: ExchangeCaller, nowMs: number): Promise<ExchangeOutcome> {
    const policy = this.deps.policy();
    if (policy === undefined) return refuse("temporarily_unavailable", "no valid policy is loaded", 503);

    // RFC 6749 3.2: parameters must not repeat (audience is checked below, with its own error).
    for (const name of ["grant_type", "subject_token", "subject_token_type", "scope", "requested_token_type"]) {
      if (params.getAll(name).length > 1) return refuse("invalid_request", `${name} is given more than once`);
    }
    const grantType = params.get("grant_type");
    if (grantType === null) return refuse("invalid_request", "grant_type is missing");
    if (grantType !== GRANT_TYPE_TOKEN_EXCHANGE) return refuse("unsupported_grant_type", `only ${GRANT_TYPE_TOKEN_EXCHANGE} is supported`);
    const subjectToken = params.get("subject_token");
    if (subjectToken === null || subjectToken.length === 0) return refuse("invalid_request", "subject_token is missing");
    const subjectType = params.get("subject_token_type");
    if (subjectType === null || !SUBJECT_TOKEN_TYPES.includes(subjectType)) {
      return refuse("invalid_request", `subject_token_type must be one of ${SUBJECT_TOKEN_TYPES.join(", ")}`);
    }
    const requestedType = params.get("requested_token_type");
    if (requestedType !== null && requestedType !== TOKEN_TYPE_JWT) return refuse("invalid_request", `requested_token_type can only be ${TOKEN_TYPE_JWT}`);
    if (params.has("actor_token")) return refuse("invalid_request", "actor_token is not used: the actor is the agent's client certificate");
    const audiences = params.getAll("audience");
    if (audiences.length === 0) return refuse("invalid_request", "audience is missing: name the agent to call (a SPIFFE ID or a policy alias)");
    if (audiences.length > 1) return refuse("invalid_target", "one audience per token: a token for two callees would be usable at either");
    const rawScope = params.get("scope");
    const requested = rawScope === null ? undefined : parseScope(rawScope);
    if (requested === undefined && rawScope !== null) return refuse("invalid_scope", "scope is not a space-separated list of scope tokens");

    const presenter = caller.id.id;
    if (!policy.trustDomains.has(caller.id.trustDomain)) return refuse("unauthorized_client", `${presenter} is not in a trust domain the policy trusts`);
    if (policy.revokedIdentities.has(presenter) || policy.revokedSerials.has(caller.certificate.serial)) {
      return refuse("unauthorized_client", `${presenter} (or its certificate) is revoked`);
    }

    const audience = resolveAgent(policy, audiences[0]!);
    if (audience === undefined) return refuse("invalid_target", `audience ${quotedValue(audiences[0])} is neither a SPIFFE ID nor an alias the policy defines`);

    const subject = await verifySubjectToken(
      subjectToken,
      presenter,
      { issuer: this.deps.issuer, ownKeys: this.deps.keys, person: this.deps.person, clockSkewSeconds: this.deps.clockSkewSeconds },
      nowMs,
    );
    if (!subject.ok) return refuse("invalid_grant", subject.problem);
    const grant = subject.grant;
    const chain = [...grant.chain, presenter];

    const hopProblem = checkHops(policy, chain, audience.id, grant.person);
    if (hopProblem !== undefined) return refuse(hopProblem.error, hopProblem.description);

    const scope = narrowScope(requested, grant.scope, lastHopScopes(policy, presenter, audience.id, grant.person));
    if (!scope.ok) return refuse("invalid_scope", scope.problem);

    const iat = Math.floor(nowMs / 1000);
    const jti = randomBytes(16).toString("base64url");
    const claims: Record<string, unknown> = {
      iss: this.deps.issuer,
      sub: grant.person,
      aud: audience.id,
      iat,
      exp: iat + this.deps.tokenTtlSeconds,
      jti,
      scope: scope.scope.join(" "),
      cnf: { "x5t#S256": caller.certificate.x5tS256 },
      act: nestActors(chain),
      ...(grant.prev !== undefined && { prev: grant.prev }),
    };
    const token = await this.deps.keys.sign(claims, DELEGATION_TOKEN_TYP, nowMs);
    const txn = grant.kind === "person" && this.deps.txnTokens !== undefined ? await this.mintTxnToken(this.deps.txnTokens, grant.person, caller.id, scope.scope, iat, nowMs) : undefined;
    return {
      ok: true,
      response: {
        access_token: token,
        issued_token_type: TOKEN_TYPE_JWT,
        token_type: "N_A",
        expires_in: this.deps.tokenTtlSeconds,
        scope: scope.scope.join(" "),
        ...(txn !== undefined && { txn_token: txn.token, txn_token_expires_in: txn.expiresIn }),
      },
      jti,
      tokenSha256: delegationTokenSha256(token),
      prev: grant.prev,
      chain,
      audience: audience.id,
      person: grant.person,
      ...(txn !== undefined && { txn: txn.txn }),
    };
  }

  /**
   * The Txn-Token of a transaction that starts here (draft-ietf-oauth-
   * transaction-tokens, section 9): the person as `sub`, the trust domain as
   * `aud`, a fresh `txn`, the first hop's granted scope, the first agent as
   * `req_wl`. Signed with the service's current key, told apart from
   * delegation tokens by its `typ`.
   */
  private async mintTxnToken(
    issuance: TxnTokenIssuance,
    person: string,
    firstAgent: SpiffeId,
    scope: readonly string[],
    iat: number,
    nowMs: number,
  ): Promise<{ token: string; txn: string; expiresIn: number }> {
    const txn = randomUUID();
    const claims: Record<string, unknown> = {
      iss: this.deps.issuer,
      sub: person,
      aud: issuance.audience ?? firstAgent.trustDomain,
      iat,
      exp: iat + issuance.ttlSeconds,
      txn,
      scope: scope.join(" "),
      req_wl: firstAgent.id,
    };
    return { token: await this.deps.keys.sign(claims, TXN_TOKEN_TYP, nowMs), txn, expiresIn: issuance.ttlSeconds };
  }
}

function resolveAgent(policy: CompiledPolicy, name: string): SpiffeId | undefined {
  const id = name.startsWith("spiffe://") ? name : policy.agents.get(name);
  if (id === undefined) return undefined;
  const parsed = parseSpiffeId(id);
  return parsed.ok ? parsed.value : undefined;
}

/** The checks Check will make of this chain and callee (SPEC 2, steps 4–8, without method and path), refused up front. */
function checkHops(policy: CompiledPolicy, chain: readonly string[], audience: string, person: string): { error: OAuthErrorCode; description: string } | undefined {
  if (policy.onBehalfOf !== undefined && !policy.onBehalfOf.matches(person)) {
    return { error: "invalid_grant", description: `the policy does not allow acting on behalf of ${quotedValue(person)}` };
  }
  for (const id of [...chain, audience]) {
    const parsed = parseSpiffeId(id);
    if (!parsed.ok || !policy.trustDomains.has(parsed.value.trustDomain)) return { error: "invalid_target", description: `${id} is not in a trust domain the policy trusts` };
    if (policy.revokedIdentities.has(id)) return { error: "invalid_grant", description: `${id} is revoked` };
  }
  if (chain.length > policy.maxChainLength) {
    return { error: "invalid_target", description: `the chain would hold ${chain.length} agents; the policy allows at most ${policy.maxChainLength}` };
  }
  if (new Set(chain).size !== chain.length) return { error: "invalid_target", description: `${chain[chain.length - 1]} is already in the chain (a cycle)` };
  const hops = [...chain, audience];
  for (let i = 0; i + 1 < hops.length; i++) {
    const outcome = evaluateHop(policy, hops[i]!, hops[i + 1]!, person, undefined);
    if (!outcome.allowed) return { error: "invalid_target", description: `hop ${hops[i]} → ${hops[i + 1]} is not allowed: ${outcome.detail}` };
  }
  for (const rule of policy.requireVia) {
    if (!rule.to.matches(audience)) continue;
    for (const via of rule.via) {
      if (!chain.includes(via)) return { error: "invalid_target", description: `a chain reaching ${audience} must pass through ${via} (${rule.name})` };
    }
  }
  return undefined;
}

/**
 * The scopes any rule admitting the last hop allows, ignoring method and path
 * (which the token service cannot know); undefined when some admitting rule
 * names no scopes, since Check then allows any scope on that rule.
 */
function lastHopScopes(policy: CompiledPolicy, from: string, to: string, person: string): readonly string[] | undefined {
  const out = new Set<string>();
  for (const rule of policy.hops) {
    if (!rule.from.matches(from) || !rule.to.matches(to)) continue;
    if (rule.onBehalfOf !== undefined && !rule.onBehalfOf.matches(person)) continue;
    if (rule.scopes === undefined) return undefined;
    for (const s of rule.scopes) out.add(s);
  }
  return [...out];
}

/** requested ⊆ previous ⊆ hop; with nothing requested, all of previous ∩ hop. */
function narrowScope(
  requested: readonly string[] | undefined,
  previous: readonly string[] | undefined,
  hop: readonly string[] | undefined,
): { ok: true; scope: readonly string[] } | { ok: false; problem: string } {
  const within = (s: string) => (previous === undefined || previous.includes(s)) && (hop === undefined || hop.includes(s));
  if (requested === undefined) {
    const base = previous ?? hop ?? [];
    return { ok: true, scope: base.filter(within) };
  }
  const beyondPrevious = previous === undefined ? [] : requested.filter((s) => !previous.includes(s));
  if (beyondPrevious.length > 0) return { ok: false, problem: `scope ${beyondPrevious.join(" ")} is wider than the subject token's scope (scope only narrows)` };
  const beyondHop = hop === undefined ? [] : requested.filter((s) => !hop.includes(s));
  if (beyondHop.length > 0) return { ok: false, problem: `scope ${beyondHop.join(" ")} is not allowed on this hop by the policy` };
  return { ok: true, scope: [...new Set(requested)] };
}
