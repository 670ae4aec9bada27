// The direct route inside a real grpc-js server: the common unary call is
// answered from the HTTP/2 stream; every other shape, path and framing
// problem gets grpc-js's answer or a gRPC error, never a handler call with a
// half-read or merged message.

import { connect, constants, type ClientHttp2Session, type IncomingHttpHeaders, type OutgoingHttpHeaders } from "node:http2";
import { Client, credentials, Metadata, Server, ServerCredentials, ServerInterceptingCall, status as GrpcStatus, type ServiceError } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { answerDirectly, framingProblem, isCommonShape, type DirectRoute } from "./direct-unary.js";
import type { MetadataReader } from "../telemetry/trace-parent.js";

const PATH = "/test.Echo/Call";
const MAX = 1024;
const identity = (b: Buffer) => b;

let server: Server;
let route: DirectRoute;
let address: string;
let generalCalls = 0;
const seen: { request: Buffer; metadata: MetadataReader }[] = [];
/** Requests whose first byte is "w" wait here until the test answers them. */
const waiting: ((response: Buffer) => void)[] = [];

function answer(request: Buffer, metadata: MetadataReader, reply: (response: Buffer) => void): void {
  seen.push({ request, metadata });
  if (request[0] === 0x77) waiting.push(reply);
  else reply(Buffer.concat([Buffer.from("echo:"), request]));
}

beforeAll(async () => {
  server = new Server({ "grpc.enable_channelz": 0, "grpc.max_receive_message_length": MAX });
  route = answerDirectly(server, { path: PATH, maxMessageBytes: MAX, decode: identity, handle: answer })!;
  server.addService(
    { Call: { path: PATH, requestStream: false, responseStream: false, requestSerialize: identity, requestDeserialize: identity, responseSerialize: identity, responseDeserialize: identity } },
    {
      Call: (call: { request: Buffer; metadata: Metadata }, callback: (err: null, response: Buffer) => void) => {
        generalCalls++;
        answer(call.request, call.metadata, (response) => callback(null, response));
      },
    },
  );
  const port = await new Promise<number>((resolve, reject) => server.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
  address = `127.0.0.1:${port}`;
});

afterAll(() => server.forceShutdown());

function grpcCall(message: Buffer, options: { metadata?: Record<string, string>; compress?: boolean } = {}): Promise<Buffer> {
  const client = new Client(address, credentials.createInsecure(), options.compress ? { "grpc.default_compression_algorithm": 2 } : {});
  const md = new Metadata();
  for (const [k, v] of Object.entries(options.metadata ?? {})) md.set(k, v);
  return new Promise<Buffer>((resolve, reject) => {
    client.makeUnaryRequest(PATH, identity, identity, message, md, { deadline: Date.now() + 5000 }, (err: ServiceError | null, response?: Buffer) => (err ? reject(err) : resolve(response!)));
  }).finally(() => client.close());
}

interface RawResult {
  readonly status: number | undefined;
  readonly grpcStatus: string | undefined;
  readonly grpcMessage: string | undefined;
  readonly body: Buffer;
}

function frame(message: Buffer, flag = 0): Buffer {
  const prefix = Buffer.alloc(5);
  prefix[0] = flag;
  prefix.writeUInt32BE(message.length, 1);
  return Buffer.concat([prefix, message]);
}

/** One HTTP/2 request with exactly these headers and body bytes. */
async function raw(body: Buffer, headers: OutgoingHttpHeaders = {}, session?: ClientHttp2Session): Promise<RawResult> {
  const own = session === undefined;
  const s = session ?? connect(`http://${address}`);
  try {
    return await new Promise<RawResult>((resolve, reject) => {
      const req = s.request({ ":method": "POST", ":path": PATH, "content-type": "application/grpc", te: "trailers", ...headers }, { endStream: false });
      let status: number | undefined;
      let grpcStatus: string | undefined;
      let grpcMessage: string | undefined;
      const chunks: Buffer[] = [];
      req.on("response", (h) => {
        status = h[":status"];
        grpcStatus ??= h["grpc-status"] as string | undefined;
        grpcMessage ??= h["grpc-message"] as string | undefined;
      });
      req.on("trailers", (t: IncomingHttpHeaders) => {
        grpcStatus = t["grpc-status"] as string | undefined;
        grpcMessage = t["grpc-message"] as string | undefined;
      });
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("close", () => resolve({ status, grpcStatus, grpcMessage, body: Buffer.concat(chunks) }));
      req.on("error", reject);
      req.end(body);
    });
  } finally {
    if (own) s.close();
  }
}

describe("the direct route", () => {
  it("answers a grpc-js client's unary call itself, with the call's metadata", async () => {
    const before = { direct: route.served, general: generalCalls };
    const response = await grpcCall(Buffer.from("hello"), { metadata: { "x-tag": "t1" } });
    expect(response.toString()).toBe("echo:hello");
    expect(route.served).toBe(before.direct + 1);
    expect(generalCalls).toBe(before.general);
    expect(seen.at(-1)!.metadata.get("x-tag")).toEqual(["t1"]);
    expect(seen.at(-1)!.metadata.get("x-absent")).toEqual([]);
  });

  it("leaves a compressed call (grpc-encoding: gzip) to grpc-js, which answers it the same", async () => {
    const before = { direct: route.served, general: generalCalls };
    const response = await grpcCall(Buffer.from("x".repeat(200)), { compress: true });
    expect(response.toString()).toBe(`echo:${"x".repeat(200)}`);
    expect(route.served).toBe(before.direct);
    expect(generalCalls).toBe(before.general + 1);
  });

  it("reads a repeated header as node:http2 hands it to grpc-js too: joined, one value", async () => {
    const result = await raw(frame(Buffer.from("r")), { traceparent: ["a", "b"] });
    expect(result.grpcStatus).toBe("0");
    expect(seen.at(-1)!.metadata.get("traceparent")).toEqual(["a, b"]);
  });

  it("frames the answer as one message with status 0 in the trailers", async () => {
    const result = await raw(frame(Buffer.from("abc")));
    expect(result.status).toBe(200);
    expect(result.grpcStatus).toBe("0");
    expect(result.body).toEqual(frame(Buffer.from("echo:abc")));
  });

  it.each([
    ["no message", Buffer.alloc(0), GrpcStatus.UNIMPLEMENTED],
    ["a prefix cut short", Buffer.from([0, 0, 0]), GrpcStatus.INTERNAL],
    ["a message cut short", frame(Buffer.from("abcdef")).subarray(0, 8), GrpcStatus.INTERNAL],
    ["two messages", Buffer.concat([frame(Buffer.from("a")), frame(Buffer.from("b"))]), GrpcStatus.UNIMPLEMENTED],
    ["the compressed flag without an encoding", frame(Buffer.from("a"), 1), GrpcStatus.INTERNAL],
    ["a flag that is neither 0 nor 1", frame(Buffer.from("a"), 7), GrpcStatus.INTERNAL],
    ["a length over the limit", Buffer.from([0, 0xff, 0xff, 0xff, 0xff]), GrpcStatus.RESOURCE_EXHAUSTED],
  ])("refuses %s with a gRPC error and never calls the handler", async (_name, body, code) => {
    const calls = seen.length;
    const result = await raw(body);
    expect(result.status).toBe(200);
    expect(result.grpcStatus).toBe(String(code));
    expect(result.grpcMessage).toBeTruthy();
    expect(seen.length).toBe(calls);
  });

  it("refuses a body over the limit while it is still arriving", async () => {
    const calls = seen.length;
    const result = await raw(frame(Buffer.alloc(64 * 1024, 1)));
    expect(result.grpcStatus).toBe(String(GrpcStatus.RESOURCE_EXHAUSTED));
    expect(decodeURIComponent(result.grpcMessage!)).toBe(`request message larger than ${MAX} bytes`);
    expect(seen.length).toBe(calls);
  });

  // The client never ends its side: only the server's reset closes the stream.
  it.each([
    ["a body past the limit", frame(Buffer.alloc(2 * MAX, 1)).subarray(0, MAX + 100)],
    ["a declared length past the limit, at the prefix", Buffer.from([0, 0, 0, 0x10, 0])],
  ])("resets the stream on %s without waiting for the rest", async (_name, bytes) => {
    const session = connect(`http://${address}`);
    try {
      const req = session.request({ ":method": "POST", ":path": PATH, "content-type": "application/grpc", te: "trailers" }, { endStream: false });
      req.on("error", () => undefined);
      let grpcStatus: unknown;
      req.on("response", (h) => (grpcStatus = h["grpc-status"]));
      req.write(bytes);
      await new Promise((r) => req.on("close", r));
      expect(grpcStatus).toBe(String(GrpcStatus.RESOURCE_EXHAUSTED));
      expect(req.rstCode).toBe(constants.NGHTTP2_NO_ERROR);
    } finally {
      session.close();
    }
  });

  it("leaves other content types, methods and paths to grpc-js", async () => {
    const served = route.served;
    expect((await raw(frame(Buffer.from("a")), { "content-type": "application/json" })).status).toBe(415);
    expect((await raw(frame(Buffer.from("a")), { ":path": "/test.Echo/Other" })).grpcStatus).toBe(String(GrpcStatus.UNIMPLEMENTED));
    const viaGet = await raw(frame(Buffer.from("get")), { ":method": "GET" });
    expect(viaGet.grpcStatus).toBe("0");
    expect(route.served).toBe(served);
  });

  it("drops the answer of a call the client has reset, and goes on serving", async () => {
    const session = connect(`http://${address}`);
    try {
      const req = session.request({ ":method": "POST", ":path": PATH, "content-type": "application/grpc", te: "trailers" });
      req.on("error", () => undefined);
      req.end(frame(Buffer.from("wait")));
      await expect.poll(() => waiting.length).toBe(1);
      req.close(constants.NGHTTP2_CANCEL);
      await new Promise((r) => req.on("close", r));
      await new Promise((r) => setTimeout(r, 50));
      expect(() => waiting.pop()!(Buffer.from("late"))).not.toThrow();
      expect((await raw(frame(Buffer.from("next")), {}, session)).body).toEqual(frame(Buffer.from("echo:next")));
    } finally {
      session.close();
    }
  });
});

describe("a held call and grpc-js's idle timeout", () => {
  it("counts a direct call as an open stream, so an idle session is not closed under it", async () => {
    const idle = new Server({ "grpc.enable_channelz": 0, "grpc.max_connection_idle_ms": 200 });
    const held: ((response: Buffer) => void)[] = [];
    answerDirectly(idle, { path: PATH, maxMessageBytes: MAX, decode: identity, handle: (request, _md, reply) => (request[0] === 0x77 ? held.push(reply) : reply(request)) });
    const port = await new Promise<number>((resolve, reject) => idle.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
    const session = connect(`http://127.0.0.1:${port}`);
    try {
      const call = (body: Buffer) =>
        new Promise<Buffer>((resolve, reject) => {
          const req = session.request({ ":method": "POST", ":path": PATH, "content-type": "application/grpc", te: "trailers" });
          const chunks: Buffer[] = [];
          req.on("data", (c: Buffer) => chunks.push(c));
          req.on("close", () => resolve(Buffer.concat(chunks)));
          req.on("error", reject);
          req.end(frame(body));
        });
      const first = call(Buffer.from("wait"));
      await expect.poll(() => held.length).toBe(1);
      // Well past the idle timeout, with the call still open.
      await new Promise((r) => setTimeout(r, 600));
      held[0]!(Buffer.from("late"));
      expect(await first).toEqual(frame(Buffer.from("late")));
      expect(await call(Buffer.from("again"))).toEqual(frame(Buffer.from("again")));
    } finally {
      session.close();
      idle.forceShutdown();
    }
  });
});

describe("isCommonShape", () => {
  const base = { ":method": "POST", "content-type": "application/grpc" };
  it("takes POST application/grpc(+proto) with no or identity encoding", () => {
    expect(isCommonShape(base)).toBe(true);
    expect(isCommonShape({ ...base, "content-type": "application/grpc+proto" })).toBe(true);
    expect(isCommonShape({ ...base, "grpc-encoding": "identity" })).toBe(true);
  });
  it("leaves anything else", () => {
    expect(isCommonShape({ ...base, "grpc-encoding": "gzip" })).toBe(false);
    expect(isCommonShape({ ...base, "content-type": "application/grpc+json" })).toBe(false);
    expect(isCommonShape({ ...base, "content-type": "application/grpc; charset=utf-8" })).toBe(false);
    expect(isCommonShape({ ...base, ":method": "PUT" })).toBe(false);
    expect(isCommonShape({ ":method": "POST" })).toBe(false);
  });
});

describe("framingProblem", () => {
  it("accepts exactly one uncompressed message within the limit, an empty one too", () => {
    expect(framingProblem(frame(Buffer.alloc(MAX)), MAX)).toBeUndefined();
    expect(framingProblem(frame(Buffer.alloc(0)), MAX)).toBeUndefined();
  });
  it("refuses a message one byte over the limit", () => {
    expect(framingProblem(frame(Buffer.alloc(MAX + 1)), MAX)?.code).toBe(GrpcStatus.RESOURCE_EXHAUSTED);
  });
});

describe("answerDirectly", () => {
  it("hooks nothing on a server with interceptors, which only grpc-js's way runs", () => {
    const intercepted = new Server({ "grpc.enable_channelz": 0, interceptors: [(_method, call) => new ServerInterceptingCall(call)] });
    expect(answerDirectly(intercepted, { path: PATH, maxMessageBytes: MAX, decode: identity, handle: answer })).toBeUndefined();
  });

  it("hooks nothing where grpc-js has no per-stream handler", () => {
    const notGrpcJs = {} as Server;
    expect(answerDirectly(notGrpcJs, { path: PATH, maxMessageBytes: MAX, decode: identity, handle: answer })).toBeUndefined();
    expect(Object.keys(notGrpcJs)).toEqual([]);
  });
});
