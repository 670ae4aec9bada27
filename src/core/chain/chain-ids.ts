// The delegation chain header read as SPIFFE IDs, remembered by header value.
// A fleet sends the same few chains again and again, so splitting the header
// and validating every entry on each Check is repeated work: the outcome
// (the IDs, or the first problem) depends on the header's text alone, not on
// the policy, and is kept in a small bounded memo. The checks that depend on
// the policy (trust domains, length, revocation) still run on every Check.
// An attacker's stream of distinct headers only turns the memo over: at most
// MAX_ENTRIES values of at most MAX_KEY_LENGTH characters are kept.

import { parseChainHeader } from "./chain-header.js";
import { parseSpiffeId, type SpiffeId } from "../identity/spiffe-id.js";
import { quoted } from "../input/untrusted-bounds.js";

export type ChainIdsResult =
  | {
      readonly ok: true;
      readonly entries: readonly string[];
      readonly ids: readonly SpiffeId[];
      /** The first ID that appears a second time (a cycle), if any. */
      readonly repeated: string | undefined;
    }
  /** `problem` follows the header name: ": …" for the list syntax, " entry N … " for an entry. */
  | { readonly ok: false; readonly problem: string };

/** The header's entries as validated SPIFFE IDs, or the first problem found. */
export function parseChainIds(header: string): ChainIdsResult {
  const parsed = parseChainHeader(header);
  if (!parsed.ok) return { ok: false, problem: `: ${parsed.problem}` };
  const ids: SpiffeId[] = [];
  for (let i = 0; i < parsed.entries.length; i++) {
    const entry = parsed.entries[i]!;
    const id = parseSpiffeId(entry);
    if (!id.ok) return { ok: false, problem: ` entry ${i + 1} ${quoted(entry)} ${id.problem}` };
    ids.push(id.value);
  }
  const seen = new Set<string>();
  let repeated: string | undefined;
  for (const id of ids) {
    if (seen.has(id.id)) {
      repeated = id.id;
      break;
    }
    seen.add(id.id);
  }
  // Frozen: one result is shared by every Check that sends this header, and its entries become Decision.chain.
  return { ok: true, entries: Object.freeze(parsed.entries), ids: Object.freeze(ids), repeated };
}

const MAX_ENTRIES = 512;
/** Longer headers are parsed every time: they are rare, and keeping them would let each entry hold a lot. */
const MAX_KEY_LENGTH = 2048;

/** parseChainIds with a bounded memo (oldest first out). The results are immutable and shared. */
export class ChainIdsMemo {
  private readonly memo = new Map<string, ChainIdsResult>();

  parse(header: string): ChainIdsResult {
    const known = this.memo.get(header);
    if (known !== undefined) return known;
    const result = parseChainIds(header);
    if (header.length <= MAX_KEY_LENGTH) {
      if (this.memo.size >= MAX_ENTRIES) this.memo.delete(this.memo.keys().next().value!);
      this.memo.set(header, result);
    }
    return result;
  }

  get size(): number {
    return this.memo.size;
  }
}
