// The Node flags the shipped image starts hopwarden with (Dockerfile
// ENTRYPOINT, and `npm start`; docs in README "Operations"), so that
// `npm run bench` measures what production runs; a test keeps them in step.
//
// --max-semi-space-size=4 (MiB): Node 24 lets the young generation grow to
// 64 MiB under a steady gRPC load. Some of each call's objects (grpc-js and
// http2 streams, mostly) then survive their first scavenge and are copied,
// 6–9 MB a time, and each scavenge stops the event loop for 10–20 ms: the
// tail of every Check waiting behind it. With 4 MiB semi-spaces a scavenge
// copies about a tenth of that and pauses for 1–3 ms (rarely up to 6); it
// runs more often, and the GC time per second stays about the same
// (measured at 1,000 Checks a second with --trace-gc-nvp, Node 24.22.3,
// 2 cores).
export const SERVE_NODE_FLAGS: readonly string[] = ["--max-semi-space-size=4"];
