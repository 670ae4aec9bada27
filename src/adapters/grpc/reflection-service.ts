// gRPC server reflection (grpc.reflection.v1 and v1alpha) answered from the
// descriptors protobuf-es embeds in the generated code, so grpcurl and ghz can
// call Check with no .proto files at hand.

import { create, toBinary, type DescFile } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import type { ServerDuplexStream, ServiceDefinition, UntypedServiceImplementation } from "@grpc/grpc-js";
import * as v1 from "../../gen/grpc/reflection/v1/reflection_pb.js";
import * as v1alpha from "../../gen/grpc/reflection/v1alpha/reflection_pb.js";
import { DecodeFailure, protobufMethod } from "./protobuf-method.js";

/** Indexes the given files and everything they import, by file name and by fully-qualified symbol. */
class DescriptorIndex {
  readonly files = new Map<string, DescFile>();
  readonly symbols = new Map<string, DescFile>();
  readonly encoded = new Map<string, Uint8Array>();

  constructor(roots: readonly DescFile[]) {
    const visit = (file: DescFile) => {
      if (this.files.has(file.proto.name)) return;
      this.files.set(file.proto.name, file);
      this.encoded.set(file.proto.name, toBinary(FileDescriptorProtoSchema, file.proto));
      for (const dep of file.dependencies) visit(dep);
      const pkg = file.proto.package;
      const prefix = pkg.length > 0 ? `${pkg}.` : "";
      for (const service of file.services) {
        this.symbols.set(service.typeName, file);
        for (const method of service.methods) this.symbols.set(`${service.typeName}.${method.name}`, file);
      }
      const addMessages = (messages: readonly { typeName: string; nestedMessages: readonly unknown[]; nestedEnums: readonly { typeName: string }[] }[]) => {
        for (const m of messages) {
          this.symbols.set(m.typeName, file);
          for (const e of m.nestedEnums) this.symbols.set(e.typeName, file);
          addMessages(m.nestedMessages as typeof messages);
        }
      };
      addMessages(file.messages);
      for (const e of file.enums) this.symbols.set(e.typeName, file);
      if (prefix.length > 0) this.symbols.set(pkg, file);
    };
    for (const root of roots) visit(root);
  }

  /** The file and its transitive imports, the file itself first (what grpcurl expects). */
  withDependencies(file: DescFile): Uint8Array[] {
    const out: Uint8Array[] = [];
    const seen = new Set<string>();
    const walk = (f: DescFile) => {
      if (seen.has(f.proto.name)) return;
      seen.add(f.proto.name);
      out.push(this.encoded.get(f.proto.name)!);
      for (const d of f.dependencies) walk(d);
    };
    walk(file);
    return out;
  }
}

// v1 and v1alpha are the same messages under two package names, so one codec
// (v1's) serves both paths; v1alpha's file is indexed only so that its service
// can be described to clients that ask.
type AnyRequest = v1.ServerReflectionRequest;

function reflectionDefinition(pkg: string): ServiceDefinition {
  return {
    ServerReflectionInfo: protobufMethod(`/${pkg}.ServerReflection/ServerReflectionInfo`, v1.ServerReflectionRequestSchema, v1.ServerReflectionResponseSchema, {
      requestStream: true,
      responseStream: true,
    }),
  };
}

export const reflectionV1Definition = reflectionDefinition("grpc.reflection.v1");
export const reflectionV1AlphaDefinition = reflectionDefinition("grpc.reflection.v1alpha");
export const reflectionFiles: readonly DescFile[] = [v1.file_grpc_reflection_v1_reflection, v1alpha.file_grpc_reflection_v1alpha_reflection];

const NOT_FOUND = 5;
const UNIMPLEMENTED = 12;

export function reflectionImplementation(services: readonly string[], files: readonly DescFile[]): UntypedServiceImplementation {
  const index = new DescriptorIndex(files);
  const answer = (request: AnyRequest): v1.ServerReflectionResponse => {
    const base = { validHost: request.host, originalRequest: request };
    const fileResponse = (file: DescFile | undefined, what: string) =>
      file === undefined
        ? create(v1.ServerReflectionResponseSchema, { ...base, messageResponse: { case: "errorResponse", value: { errorCode: NOT_FOUND, errorMessage: `${what} not found` } } })
        : create(v1.ServerReflectionResponseSchema, { ...base, messageResponse: { case: "fileDescriptorResponse", value: { fileDescriptorProto: index.withDependencies(file) } } });
    const req = request.messageRequest;
    switch (req.case) {
      case "listServices":
        return create(v1.ServerReflectionResponseSchema, { ...base, messageResponse: { case: "listServicesResponse", value: { service: services.map((name) => ({ name })) } } });
      case "fileByFilename":
        return fileResponse(index.files.get(req.value), `file ${req.value}`);
      case "fileContainingSymbol":
        return fileResponse(index.symbols.get(req.value.replace(/^\./, "")), `symbol ${req.value}`);
      case "allExtensionNumbersOfType":
        return create(v1.ServerReflectionResponseSchema, { ...base, messageResponse: { case: "allExtensionNumbersResponse", value: { baseTypeName: req.value, extensionNumber: [] } } });
      default:
        return create(v1.ServerReflectionResponseSchema, { ...base, messageResponse: { case: "errorResponse", value: { errorCode: UNIMPLEMENTED, errorMessage: "not supported" } } });
    }
  };
  return {
    ServerReflectionInfo: (call: ServerDuplexStream<AnyRequest | DecodeFailure, v1.ServerReflectionResponse>) => {
      call.on("data", (request: AnyRequest | DecodeFailure) => {
        if (request instanceof DecodeFailure) {
          call.write(create(v1.ServerReflectionResponseSchema, { messageResponse: { case: "errorResponse", value: { errorCode: 3, errorMessage: request.problem } } }));
          return;
        }
        call.write(answer(request));
      });
      call.on("end", () => call.end());
      call.on("error", () => call.end());
    },
  };
}
