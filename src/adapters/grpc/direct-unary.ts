// One unary method answered straight from the HTTP/2 stream, inside grpc-js's
// own server. For every call grpc-js builds an intercepting call, a Metadata
// object from all the headers, a deadline timer, a writable call object and
// their closures. At full load that is about a quarter of a Check's CPU on
// the bench machine (a server that answers without work spends about 200 µs a
// call on grpc-js and 130 µs on node:http2; a Check with the record on, about
// 300 µs on grpc-js). Check needs none of it: its request is one small
// message, its answer is always one CheckResponse.
//
// Only the common shape is served here: POST, `application/grpc` or
// `application/grpc+proto`, no message encoding other than `identity`. Any
// other stream, and every other method (health, reflection), goes grpc-js's
// own way, which answers it in full. So TLS, sessions, keepalive, limits and
// graceful shutdown stay grpc-js's: only the call on an open stream is ours.
//
// The hook is grpc-js's per-stream handler, a private method of Server,
// replaced on the instance. @grpc/grpc-js is pinned to an exact version, and
// a test fails if a Check no longer comes this way; without the method (another
// grpc-js) nothing is hooked and every call takes the general path, slower
// but the same answers. channelz must stay off: with it on, grpc-js uses
// another handler and this one is never called.
//
// A `grpc-timeout` is not enforced here: Check answers in the same turn unless
// a token needs a key fetch or the audit log is full, both bounded by their
// own timeouts, and the client (Envoy) gives up at its deadline on its own. An
// answer for a stream the client has closed is dropped; the decision is
// recorded all the same.

import { constants, type IncomingHttpHeaders, type ServerHttp2Stream } from "node:http2";
import { status as GrpcStatus, type Server } from "@grpc/grpc-js";
import type { MetadataReader } from "../telemetry/trace-parent.js";

export interface DirectUnaryMethod<Request> {
  /** `/package.Service/Method` */
  readonly path: string;
  /** The largest request message accepted, in bytes (grpc.max_receive_message_length). */
  readonly maxMessageBytes: number;
  /** Decodes the request message; never throws (a message that does not decode is the handler's to answer). */
  decode(message: Buffer): Request;
  /** Answers exactly once, with the encoded response message. */
  handle(request: Request, metadata: MetadataReader, answer: (response: Buffer) => void): void;
}

export interface DirectRoute {
  /** Calls answered here since the server started (the rest went through grpc-js). */
  readonly served: number;
}

type StreamHandler = (this: Server, extraInterceptors: unknown, stream: ServerHttp2Stream, headers: IncomingHttpHeaders) => void;

/** The private members of grpc-js's Server the hook needs. */
interface ServerInternals {
  _streamHandler?: StreamHandler;
  onStreamOpened?: (this: Server, stream: ServerHttp2Stream) => void;
  /** The server's own interceptors (options.interceptors). */
  interceptors?: readonly unknown[];
}

/** gRPC's length-prefixed message: a compressed flag byte and a 4-byte big-endian length. */
const PREFIX_BYTES = 5;

/**
 * Hooks `method` into `server` before it binds. Returns undefined when this
 * grpc-js has no per-stream handler to hook, or when the server has
 * interceptors, which only grpc-js's way runs (every call then goes that way).
 */
export function answerDirectly<Request>(server: Server, method: DirectUnaryMethod<Request>): DirectRoute | undefined {
  const internals = server as unknown as ServerInternals;
  const general = internals._streamHandler;
  const opened = internals.onStreamOpened;
  if (typeof general !== "function" || (internals.interceptors?.length ?? 0) > 0) return undefined;
  const route = { served: 0 };
  internals._streamHandler = function (this: Server, extraInterceptors, stream, headers) {
    // Interceptors that credentials bring (createServerCredentialsWithInterceptors) are grpc-js's to run, too.
    if (headers[constants.HTTP2_HEADER_PATH] !== method.path || !isCommonShape(headers) || hasItems(extraInterceptors)) {
      general.call(this, extraInterceptors, stream, headers);
      return;
    }
    // What grpc-js does first for every stream: count it for the idle timeout.
    opened?.call(this, stream);
    route.served++;
    serveStream(stream, headers, method);
  };
  return route;
}

/** A unary call this module can answer itself; anything else is grpc-js's. */
export function isCommonShape(headers: IncomingHttpHeaders): boolean {
  if (headers[constants.HTTP2_HEADER_METHOD] !== "POST") return false;
  const contentType = headers[constants.HTTP2_HEADER_CONTENT_TYPE];
  if (contentType !== "application/grpc" && contentType !== "application/grpc+proto") return false;
  const encoding = headers["grpc-encoding"];
  return encoding === undefined || encoding === "identity";
}

function serveStream<Request>(stream: ServerHttp2Stream, headers: IncomingHttpHeaders, method: DirectUnaryMethod<Request>): void {
  // As grpc-js: an error is followed by 'close', and there is no one left to answer.
  stream.on("error", ignore);
  const limit = PREFIX_BYTES + method.maxMessageBytes;
  const chunks: Buffer[] = [];
  let received = 0;
  let refused = false;
  stream.on("data", (chunk: Buffer) => {
    if (refused) return;
    const before = received;
    received += chunk.length;
    chunks.push(chunk);
    // Too much, or (as soon as the prefix is in) a declared length over the limit: no need to wait for the rest.
    if (received > limit || (before < PREFIX_BYTES && received >= PREFIX_BYTES && declaredLength(chunks) > method.maxMessageBytes)) {
      refused = true;
      chunks.length = 0;
      refuse(stream, GrpcStatus.RESOURCE_EXHAUSTED, `request message larger than ${method.maxMessageBytes} bytes`);
      // The client may still be sending: a reset stops it (RFC 9113 8.1 allows it once the response is complete).
      stream.close(constants.NGHTTP2_NO_ERROR);
    }
  });
  stream.once("end", () => {
    if (refused) return;
    const body = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, received);
    const problem = framingProblem(body, method.maxMessageBytes);
    if (problem !== undefined) {
      refuse(stream, problem.code, problem.message);
      return;
    }
    try {
      const request = method.decode(body.subarray(PREFIX_BYTES));
      method.handle(request, new Http2HeadersMetadata(headers), (response) => respond(stream, response));
    } catch {
      // Neither throws by contract; if one does, the call fails as grpc-js fails it (UNKNOWN), and no
      // exception escapes into node:http2's event, which would end the process and every call in flight.
      refuse(stream, GrpcStatus.UNKNOWN, "the server failed to answer");
    }
  });
}

/** The message length the prefix declares; the chunks hold at least its 5 bytes. */
function declaredLength(chunks: readonly Buffer[]): number {
  const first = chunks[0]!;
  const prefix = first.length >= PREFIX_BYTES ? first : Buffer.concat(chunks).subarray(0, PREFIX_BYTES);
  return prefix.readUInt32BE(1);
}

function hasItems(list: unknown): boolean {
  return Array.isArray(list) && list.length > 0;
}

/** Why a request body is not exactly one uncompressed message within the limit. */
export function framingProblem(body: Buffer, maxMessageBytes: number): { code: GrpcStatus; message: string } | undefined {
  if (body.length === 0) return { code: GrpcStatus.UNIMPLEMENTED, message: "no request message for a unary method" };
  if (body.length < PREFIX_BYTES) return { code: GrpcStatus.INTERNAL, message: "request message prefix cut short" };
  const flag = body[0]!;
  if (flag === 1) return { code: GrpcStatus.INTERNAL, message: "compressed request message without a grpc-encoding" };
  if (flag !== 0) return { code: GrpcStatus.INTERNAL, message: `request message flag ${flag} is neither 0 nor 1` };
  const length = body.readUInt32BE(1);
  if (length > maxMessageBytes) return { code: GrpcStatus.RESOURCE_EXHAUSTED, message: `request message larger than ${maxMessageBytes} bytes` };
  if (PREFIX_BYTES + length > body.length) return { code: GrpcStatus.INTERNAL, message: "request message cut short" };
  if (PREFIX_BYTES + length < body.length) return { code: GrpcStatus.UNIMPLEMENTED, message: "more than one request message for a unary method" };
  return undefined;
}

function respond(stream: ServerHttp2Stream, response: Buffer): void {
  if (stream.destroyed || stream.closed) return;
  const frame = Buffer.allocUnsafe(PREFIX_BYTES + response.length);
  frame[0] = 0;
  frame.writeUInt32BE(response.length, 1);
  response.copy(frame, PREFIX_BYTES);
  try {
    stream.respond({ ":status": 200, "content-type": "application/grpc" }, { waitForTrailers: true });
    stream.once("wantTrailers", sendOkTrailers);
    stream.end(frame);
  } catch {
    // The stream closed between the check and the write: the client is gone.
  }
}

function sendOkTrailers(this: ServerHttp2Stream): void {
  try {
    this.sendTrailers({ "grpc-status": "0", "grpc-message": "OK" });
  } catch {
    // The stream was destroyed after its data went out: the client is gone.
  }
}

/** A trailers-only gRPC error. */
function refuse(stream: ServerHttp2Stream, code: GrpcStatus, message: string): void {
  if (stream.destroyed || stream.closed || stream.headersSent) return;
  try {
    stream.respond({ ":status": 200, "content-type": "application/grpc", "grpc-status": String(code), "grpc-message": encodeURIComponent(message) }, { endStream: true });
  } catch {
    // The client is gone.
  }
}

function ignore(): void {}

const NONE: readonly string[] = [];

/** The call's text metadata as grpc-js's Metadata.get gives it, read from the HTTP/2 headers without copying them. */
class Http2HeadersMetadata implements MetadataReader {
  constructor(private readonly headers: IncomingHttpHeaders) {}

  get(key: string): readonly string[] {
    const value = this.headers[key];
    if (value === undefined) return NONE;
    return typeof value === "string" ? [value] : value;
  }
}
