// The typed failure to bind a listening socket (the address is taken, the
// port is privileged, the host is not this machine's), thrown by the code
// that binds (the Check server, the admin server, the token service), so
// callers tell it apart by class and code, never by the text of a Node or
// grpc-js message. And the address that is not host:port to begin with.

import { HopwardenError } from "../../core/errors.js";

export class ListenError extends HopwardenError {
  readonly code = "listen_failed";

  constructor(
    /** What was to listen there, e.g. "the gRPC port". */
    readonly server: string,
    /** host:port as configured. */
    readonly address: string,
    cause: unknown,
  ) {
    super(`cannot listen on ${address} (${server}): ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
  }
}

/** A listen address that is not host:port. */
export class ListenAddressError extends HopwardenError {
  readonly code = "invalid_listen_address";
}
