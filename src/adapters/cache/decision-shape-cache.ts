// Decisions repeat: the same agent calls the same callee for the same person
// through the same chain, admitted by the same rules, thousands of times a
// second. Everything the Check answer, the span and the audit record say
// about that "shape" (who, through whom, for whom, under which policy, by
// which rules) is then the same from call to call; only the decision id, the
// times, the request line and the trace ids differ. Each of those writers
// keeps the bytes or text of a shape here and fills in the per-call parts,
// instead of encoding every string again on every call.
//
// A hit compares every field of the shape (strings by value: the same
// request usually hands over the very same string objects, which compare at
// once), so a cached template is only ever used for a decision that would
// have produced it. Bounded: at most `maxCallers` callers with `perCaller`
// shapes each, the oldest shape of a caller replaced first; a value the
// writer judged too large is never offered. A full table makes room for a
// new caller by "second chance": the oldest caller goes unless it was served
// since the last sweep, in which case it moves to the back. Callers that
// stopped calling (pods gone, identities rotated) so leave, and busy ones
// stay, with no bookkeeping on a hit beyond one flag.

import type { Decision, HopRecord } from "../../core/decision/decision.js";

interface Shape<V> {
  readonly allowed: boolean;
  readonly reason: string | undefined;
  readonly callee: string | undefined;
  readonly onBehalfOf: string | undefined;
  readonly policyVersion: string;
  readonly callerBinding: string | undefined;
  readonly chain: readonly string[];
  readonly hops: readonly HopRecord[];
  readonly value: V;
}

interface CallerShapes<V> {
  readonly shapes: Shape<V>[];
  /** Where the next new shape goes once `shapes` is full. */
  next: number;
  /** Whether a get found one of its shapes since the eviction sweep last passed it. */
  used: boolean;
}

export const DEFAULT_SHAPE_CALLERS = 256;
export const DEFAULT_SHAPES_PER_CALLER = 4;

export class DecisionShapeCache<V> {
  private readonly byCaller = new Map<string, CallerShapes<V>>();

  constructor(
    private readonly maxCallers = DEFAULT_SHAPE_CALLERS,
    private readonly perCaller = DEFAULT_SHAPES_PER_CALLER,
  ) {}

  /** The value kept for a decision of the same shape, if any. */
  get(d: Decision): V | undefined {
    if (d.caller === undefined) return undefined;
    const entry = this.byCaller.get(d.caller);
    if (entry === undefined) return undefined;
    for (const shape of entry.shapes) {
      if (sameShape(shape, d)) {
        entry.used = true;
        return shape.value;
      }
    }
    return undefined;
  }

  /** Keeps `value` for the decision's shape (in place of an older value for it); nothing when the decision names no caller. */
  set(d: Decision, value: V): void {
    if (d.caller === undefined) return;
    let entry = this.byCaller.get(d.caller);
    if (entry === undefined) {
      if (this.byCaller.size >= this.maxCallers) this.evictOne();
      entry = { shapes: [], next: 0, used: false };
      this.byCaller.set(d.caller, entry);
    }
    const same = entry.shapes.findIndex((s) => sameShape(s, d));
    const shape: Shape<V> = {
      allowed: d.allowed,
      reason: d.reason,
      callee: d.callee,
      onBehalfOf: d.onBehalfOf,
      policyVersion: d.policyVersion,
      callerBinding: d.callerBinding,
      // Copies: the decision's arrays are its own, and a shape must not change with them.
      chain: [...d.chain],
      hops: d.hops.map((h) => ({ ...h })),
      value,
    };
    if (same !== -1) {
      entry.shapes[same] = shape;
    } else if (entry.shapes.length < this.perCaller) {
      entry.shapes.push(shape);
    } else {
      entry.shapes[entry.next] = shape;
      entry.next = (entry.next + 1) % this.perCaller;
    }
  }

  /**
   * Removes the oldest caller not served since the sweep last passed it;
   * callers that were served move to the back, their flag cleared. At most one
   * pass over the table: after it every flag is clear, so the next caller
   * in line goes.
   */
  private evictOne(): void {
    for (let moved = 0; moved < this.byCaller.size; moved++) {
      const [caller, entry] = this.byCaller.entries().next().value!;
      this.byCaller.delete(caller);
      if (!entry.used) return;
      entry.used = false;
      this.byCaller.set(caller, entry);
    }
    // Every caller was served since the last sweep: the oldest (now first again) goes.
    const oldest = this.byCaller.keys().next().value;
    if (oldest !== undefined) this.byCaller.delete(oldest);
  }

  /** Callers with at least one shape (tests, bounds). */
  get callers(): number {
    return this.byCaller.size;
  }
}

function sameShape<V>(s: Shape<V>, d: Decision): boolean {
  if (
    s.allowed !== d.allowed ||
    s.reason !== d.reason ||
    s.callee !== d.callee ||
    s.onBehalfOf !== d.onBehalfOf ||
    s.policyVersion !== d.policyVersion ||
    s.callerBinding !== d.callerBinding ||
    s.chain.length !== d.chain.length ||
    s.hops.length !== d.hops.length
  ) {
    return false;
  }
  for (let i = 0; i < s.chain.length; i++) if (s.chain[i] !== d.chain[i]) return false;
  for (let i = 0; i < s.hops.length; i++) {
    const a = s.hops[i]!;
    const b = d.hops[i]!;
    if (a.from !== b.from || a.to !== b.to || a.rule !== b.rule || a.result !== b.result || a.cached !== b.cached || a.detail !== b.detail) return false;
  }
  return true;
}
