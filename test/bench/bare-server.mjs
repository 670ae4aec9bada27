// The peer for `npm run bench`: a bare grpc-js unary server that answers
// Check with a fixed, pre-encoded OK CheckResponse and does no work at all
// (no decoding). Its rate is the ceiling one Node process shows here.
import { Server, ServerCredentials } from "@grpc/grpc-js";

// CheckResponse { status: { code: 0 }, ok_response: {} } on the wire.
const FIXED = Buffer.from([0x0a, 0x00, 0x1a, 0x00]);
const identity = (b) => b;

const server = new Server();
server.addService(
  {
    Check: {
      path: "/envoy.service.auth.v3.Authorization/Check",
      requestStream: false,
      responseStream: false,
      requestSerialize: identity,
      requestDeserialize: identity,
      responseSerialize: identity,
      responseDeserialize: identity,
    },
  },
  { Check: (_call, callback) => callback(null, FIXED) },
);
server.bindAsync(process.argv[2] ?? "127.0.0.1:0", ServerCredentials.createInsecure(), (err, port) => {
  if (err) {
    console.error(err.message);
    process.exit(1);
  }
  console.log(`bare ready grpc=127.0.0.1:${port}`);
});
process.on("SIGTERM", () => server.forceShutdown());
