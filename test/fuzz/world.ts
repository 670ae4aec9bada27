// The reference decider's world for a fixture: the fuzz policy as data, the
// fixed clock, and certificate and token facts as the fixture made them
// (a certificate string it never made is parsed independently).

import type { FuzzFixture } from "./fixture.js";
import { parseCertificateIndependently, type ReferenceWorld } from "./reference-decider.js";

export function referenceWorld(fixture: FuzzFixture): ReferenceWorld {
  return {
    policy: fixture.policy,
    nowMs: fixture.nowMs,
    certFacts: (raw) => fixture.certFacts(raw) ?? parseCertificateIndependently(raw),
    tokenFacts: (raw) => fixture.tokenFacts(raw),
  };
}
