// The one system clock: the Clock port (core/ports.ts) answered by the
// process's wall clock. Everything that asks "what time is it" for a
// decision, a token, an audit record or the token service takes a Clock and
// defaults to this one, so a test can pass its own and nothing reads
// Date.now() behind the port's back.

import type { Clock } from "../../core/ports.js";

export const systemClock: Clock = { nowMs: () => Date.now() };
