// The closed set of denial reasons (SPEC 4) and the one table that maps each
// to its HTTP status and gRPC status code. Reason codes are stable API: add
// new ones, never rename.

export const DENIAL_REASONS = [
  "missing_peer_certificate",
  "invalid_peer_certificate",
  "missing_subject_header",
  "token_missing",
  "token_invalid",
  "token_expired",
  "untrusted_trust_domain",
  "revoked_identity",
  "subject_mismatch",
  "missing_on_behalf_of",
  "on_behalf_of_not_allowed",
  "malformed_chain",
  "chain_too_long",
  "chain_cycle",
  "chain_caller_mismatch",
  "unknown_callee",
  "hop_not_allowed",
  "required_hop_missing",
  "token_chain_mismatch",
  "token_scope_exceeded",
  "token_replayed",
  "policy_unavailable",
  "internal_error",
] as const;

export type DenialReason = (typeof DENIAL_REASONS)[number];

/** gRPC status codes used in CheckResponse.status (google.rpc.Code). */
export const GrpcCode = { OK: 0, PERMISSION_DENIED: 7, UNAVAILABLE: 14, UNAUTHENTICATED: 16 } as const;
export type GrpcCodeValue = (typeof GrpcCode)[keyof typeof GrpcCode];

export interface ReasonStatus {
  readonly http: 401 | 403 | 503;
  readonly grpc: GrpcCodeValue;
}

const UNAUTHENTICATED: ReasonStatus = { http: 401, grpc: GrpcCode.UNAUTHENTICATED };
const FORBIDDEN: ReasonStatus = { http: 403, grpc: GrpcCode.PERMISSION_DENIED };
const UNAVAILABLE: ReasonStatus = { http: 503, grpc: GrpcCode.UNAVAILABLE };

export const REASON_STATUS: Readonly<Record<DenialReason, ReasonStatus>> = {
  missing_peer_certificate: UNAUTHENTICATED,
  invalid_peer_certificate: UNAUTHENTICATED,
  missing_subject_header: UNAUTHENTICATED,
  token_missing: UNAUTHENTICATED,
  token_invalid: UNAUTHENTICATED,
  token_expired: UNAUTHENTICATED,
  untrusted_trust_domain: FORBIDDEN,
  revoked_identity: FORBIDDEN,
  subject_mismatch: FORBIDDEN,
  missing_on_behalf_of: FORBIDDEN,
  on_behalf_of_not_allowed: FORBIDDEN,
  malformed_chain: FORBIDDEN,
  chain_too_long: FORBIDDEN,
  chain_cycle: FORBIDDEN,
  chain_caller_mismatch: FORBIDDEN,
  unknown_callee: FORBIDDEN,
  hop_not_allowed: FORBIDDEN,
  required_hop_missing: FORBIDDEN,
  token_chain_mismatch: FORBIDDEN,
  token_scope_exceeded: FORBIDDEN,
  token_replayed: FORBIDDEN,
  policy_unavailable: UNAVAILABLE,
  internal_error: UNAVAILABLE,
};

export function isDenialReason(value: string): value is DenialReason {
  return Object.hasOwn(REASON_STATUS, value);
}
