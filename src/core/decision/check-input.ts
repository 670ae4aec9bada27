// A Check request as the core sees it: plain strings, no protobuf. The Envoy
// adapter builds it from a CheckRequest; the admin API and the CLI's explain
// build it too.

export interface CheckInput {
  /** attributes.source.certificate: URL-encoded PEM, "" when Envoy sent none. */
  readonly peerCertificate: string;
  /** attributes.source.principal, "" when absent. */
  readonly peerPrincipal: string;
  /** attributes.destination.principal, "" when absent. */
  readonly destinationPrincipal: string;
  /** attributes.context_extensions. */
  readonly contextExtensions: Readonly<Record<string, string>>;
  /** Request headers, names lower case. */
  readonly headers: Readonly<Record<string, string>>;
  /**
   * Names (lower case) of headers that arrived more than once (repeated in
   * `header_map`); their value in `headers` is the copies joined with ",".
   * A repeated security header is refused, never merged (SPEC 1).
   */
  readonly repeatedHeaders?: ReadonlySet<string>;
  /**
   * Names (lower case) of headers whose raw_value was not UTF-8; their value in
   * `headers` has U+FFFD for the bad sequences. A security header among them is
   * refused with that header's reason.
   */
  readonly notUtf8Headers?: ReadonlySet<string>;
  readonly method: string;
  /** The request target as sent: path and query. */
  readonly path: string;
  /**
   * attributes.metadata_context.filter_metadata[<MCP namespace>] as JSON
   * (SPEC 8), or MCP_METADATA_OVER_BOUNDS when it is too large, too deep
   * or in too many pieces to read;
   * absent when the request carries no such namespace.
   */
  readonly mcpMetadata?: unknown;
}

/** Header names the pipeline reads, lower case (configurable: SPEC 7 `headers.*`). */
export interface HeaderNames {
  readonly subject: string;
  readonly onBehalfOf: string;
  readonly chain: string;
  readonly token: string;
  /** The Transaction Token (SPEC 8, draft-ietf-oauth-transaction-tokens' `Txn-Token`); optional so that older callers keep compiling. */
  readonly txnToken?: string;
}

export const DEFAULT_TXN_TOKEN_HEADER = "txn-token";

export const DEFAULT_HEADER_NAMES: HeaderNames = {
  subject: "x-agent-subject",
  onBehalfOf: "x-agent-on-behalf-of",
  chain: "x-agent-delegation-chain",
  token: "x-agent-delegation-token",
  txnToken: DEFAULT_TXN_TOKEN_HEADER,
};

export const XFCC_HEADER = "x-forwarded-client-cert";
/** The context_extensions key that names the callee on a route. */
export const CALLEE_CONTEXT_KEY = "agent";
