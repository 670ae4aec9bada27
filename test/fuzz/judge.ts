// What counts as a violation: an allow the reference decider denies, an
// answer that is not the one the contract gives by construction, an allow
// whose verified facts are not the request's, or an internal error. What
// counts as a disagreement (reported, not failed unless --strict): the
// reference allows and the pipeline denies, or both deny for different
// reasons where SPEC's order does not pin one.

import { DENIAL_REASONS } from "../../src/core/reasons.js";
import type { FuzzCase } from "./cases.js";
import type { ReferenceDecision } from "./reference-decider.js";

/**
 * What the fuzz reads of a decision. Only `allowed` and `reason` are relied
 * on (Decision may be reshaped); the verified facts are compared when the
 * decision carries them under these names (the gRPC fuzz reads them from the
 * CheckResponse's headers, whatever Decision looks like).
 */
export interface ObservedDecision {
  readonly allowed: boolean;
  readonly reason: string | undefined;
  readonly message?: string;
  readonly caller?: string | undefined;
  readonly callee?: string | undefined;
  readonly chain?: readonly string[];
  readonly onBehalfOf?: string | undefined;
}

export interface Verdict {
  /** A broken promise of the contract: the run fails. */
  readonly violation?: string;
  /** A difference from the reference that is not unsafe: counted and reported. */
  readonly disagreement?: string;
}

const KNOWN_REASONS = new Set<string>(DENIAL_REASONS);

/** The observable part of a core Decision, read without depending on its shape beyond `allowed` and `reason`. */
export function observeDecision(decision: { readonly allowed: boolean; readonly reason?: string | undefined }): ObservedDecision {
  const d = decision as { readonly allowed: boolean; readonly reason?: string } & Partial<Record<"message" | "caller" | "callee" | "onBehalfOf", unknown>> & { readonly chain?: unknown };
  const str = (v: unknown): string | undefined => (typeof v === "string" ? v : undefined);
  return {
    allowed: d.allowed,
    reason: d.reason,
    message: str(d.message) ?? "",
    ...("caller" in d && { caller: str(d.caller) }),
    ...("callee" in d && { callee: str(d.callee) }),
    ...("onBehalfOf" in d && { onBehalfOf: str(d.onBehalfOf) }),
    ...(Array.isArray(d.chain) && { chain: d.chain as string[] }),
  };
}

export function judge(c: FuzzCase, got: ObservedDecision, ref: ReferenceDecision, options: { checkFacts: boolean } = { checkFacts: true }): Verdict {
  const refText = ref.allowed ? "allow" : `deny ${ref.reason} (${ref.why})`;
  const gotText = got.allowed ? "allow" : `deny ${got.reason ?? "(no reason)"}`;

  // The oracle itself: where the contract's answer is known by construction, the reference must give it.
  const e = c.expect;
  if (e.kind === "allow" && !ref.allowed) return { violation: `fuzz harness: the reference denies a call the contract allows (${refText})` };
  if (e.kind === "deny" && ref.allowed) return { violation: "fuzz harness: the reference allows a call a contract mutation must deny" };
  if (e.kind === "deny" && e.reason !== undefined && !ref.allowed && ref.reason !== e.reason) {
    return { violation: `fuzz harness: the reference answers ${ref.reason} (${ref.why}), the contract ${e.reason}` };
  }

  if (got.allowed && !ref.allowed) return { violation: `UNSAFE ALLOW: allowed what the contract denies (reference: ${refText})` };
  if (!got.allowed && (got.reason === undefined || !KNOWN_REASONS.has(got.reason))) return { violation: `deny with a reason outside SPEC 4's table: ${String(got.reason)}` };
  if (got.reason === "internal_error") return { violation: `internal_error (an exception while deciding): ${got.message ?? ""}` };
  if (e.kind === "allow" && !got.allowed) return { violation: `denied a call the contract allows: ${gotText} (${got.message ?? ""})` };
  if (e.kind === "deny" && e.reason !== undefined && got.reason !== e.reason) return { violation: `wrong reason: the contract says ${e.reason}, got ${gotText} (${got.message ?? ""})` };

  if (got.allowed && ref.allowed && options.checkFacts) {
    const chainOk = got.chain === undefined || (got.chain.length === ref.chain.length && got.chain.every((a, i) => a === ref.chain[i]));
    const differs = (key: "caller" | "callee" | "onBehalfOf"): boolean => key in got && got[key] !== ref[key];
    if (differs("caller") || differs("callee") || differs("onBehalfOf") || !chainOk) {
      return {
        violation: `allow with the wrong verified facts: caller ${String(got.caller)} callee ${String(got.callee)} on-behalf-of ${String(got.onBehalfOf)} chain [${(got.chain ?? []).join(", ")}]; expected ${ref.caller} ${ref.callee} ${String(ref.onBehalfOf)} [${ref.chain.join(", ")}]`,
      };
    }
  }
  if (!got.allowed && ref.allowed) return { disagreement: `pipeline ${gotText}, reference allow` };
  if (!got.allowed && !ref.allowed && got.reason !== ref.reason) return { disagreement: `pipeline ${got.reason ?? ""}, reference ${ref.reason}` };
  return {};
}
