// Builds grpc-js method definitions whose (de)serializers are protobuf-es
// codecs for generated messages: no proto-loader and no .proto parsing at run
// time. Decoding untrusted bytes never throws into grpc-js: a message that
// does not decode becomes a DecodeFailure the handler answers itself.

import { fromBinary, toBinary, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import type { MethodDefinition } from "@grpc/grpc-js";

export class DecodeFailure {
  constructor(readonly problem: string) {}
}

export function protobufMethod<I extends DescMessage, O extends DescMessage>(
  path: string,
  input: I,
  output: O,
  streams: { requestStream?: boolean; responseStream?: boolean } = {},
): MethodDefinition<MessageShape<I> | DecodeFailure, MessageShape<O>> {
  return {
    path,
    requestStream: streams.requestStream ?? false,
    responseStream: streams.responseStream ?? false,
    requestSerialize: (message) => {
      if (message instanceof DecodeFailure) throw new Error(message.problem);
      return Buffer.from(toBinary(input, message));
    },
    requestDeserialize: (bytes) => {
      try {
        return fromBinary(input, bytes);
      } catch (err) {
        return new DecodeFailure(err instanceof Error ? err.message : String(err));
      }
    },
    responseSerialize: (message) => Buffer.from(toBinary(output, message)),
    responseDeserialize: (bytes) => fromBinary(output, bytes),
  };
}
