// One error shape at the CLI edge: every error a user can meet is a
// HopwardenError with a stable code, and one mapping turns a failure into
// what stderr gets and the exit code (usage 2, a failure the user can fix 1,
// a bug 70 with its stack trace).

import { describe, expect, it } from "vitest";
import { HopwardenError } from "../core/errors.js";
import { ChainWalkFailure } from "../adapters/audit/audit-chain-walk.js";
import { AuditKeyError } from "../adapters/audit/audit-keys.js";
import { AuditLogFileError } from "../adapters/audit/audit-log-files.js";
import { AuditLogConfigError } from "../adapters/audit/audit-log-writer.js";
import { PolicyFileError } from "../adapters/config/policy-store.js";
import { ServiceConfigError } from "../adapters/config/service-config.js";
import { TlsFileError } from "../adapters/grpc/tls-file-set.js";
import { ListenAddressError, ListenError } from "../adapters/net/listen-error.js";
import { WireError } from "../adapters/protobuf/wire.js";
import { SigningKeyError } from "../adapters/sts/signing-key-ring.js";
import { StsStartError } from "../adapters/sts/sts-service.js";
import { JaegerQueryError } from "../adapters/telemetry/jaeger-query-client.js";
import { OtlpConfigError } from "../adapters/telemetry/otlp-config.js";
import { ReplayStoreUnavailable } from "../adapters/tokens/replay-store.js";
import { CrlError } from "../adapters/x509/crl.js";
import { EXIT, failureOf, runCommand } from "./exit.js";
import { UsageError } from "./options.js";
import { WorkerStartError } from "./serve/cluster.js";

/** Every error class a user can meet, with the code it promises. */
const ERROR_CODES: ReadonlyArray<readonly [string, string, HopwardenError]> = [
  ["UsageError", "usage", new UsageError("--listen must be host:port")],
  ["PolicyFileError", "invalid_policy", new PolicyFileError("p.yaml", ["p.yaml:1:1: version: required"])],
  ["ServiceConfigError", "invalid_service_config", new ServiceConfigError(["c.yaml:1:1: listen: must be host:port"])],
  ["CrlError", "invalid_crl", new CrlError("is not a DER CertificateList")],
  ["WireError", "malformed_protobuf", new WireError("truncated varint")],
  ["TlsFileError", "tls_file_unusable", new TlsFileError("tls.key", "cannot read the private key (ENOENT)")],
  ["ListenError", "listen_failed", new ListenError("the admin API", "127.0.0.1:9192", new Error("listen EADDRINUSE"))],
  ["ListenAddressError", "invalid_listen_address", new ListenAddressError('listen address "bad" must be host:port')],
  ["WorkerStartError", "worker_start_failed", new WorkerStartError("worker 1 exited during start-up")],
  ["AuditKeyError", "invalid_audit_key", new AuditKeyError("audit.key", "not a PEM PKCS#8 private key")],
  ["AuditLogConfigError", "invalid_audit_log_config", new AuditLogConfigError("path", "audit.log: is not a regular file")],
  ["AuditLogFileError", "audit_file_unusable", new AuditLogFileError("audit.log.000000000001", "is a FIFO (named pipe), not a regular file")],
  ["ChainWalkFailure", "audit_chain_broken", new ChainWalkFailure({ file: "audit.log", line: 3, message: "record was altered" })],
  ["OtlpConfigError", "invalid_otlp_config", new OtlpConfigError("OTEL_EXPORTER_OTLP_PROTOCOL: unknown protocol")],
  ["StsStartError", "sts_start_failed", new StsStartError(["signingKeys: no key file"])],
  ["SigningKeyError", "invalid_signing_key", new SigningKeyError("sts.key", "not a private key")],
  ["ReplayStoreUnavailable", "replay_store_unavailable", new ReplayStoreUnavailable("timeout", "no answer within 50 ms")],
  ["JaegerQueryError", "unreachable", new JaegerQueryError("unreachable", "cannot reach Jaeger")],
];

const STACK_FRAME = /^\s+at /m;

describe("error codes (stable API: add, never rename)", () => {
  it.each(ERROR_CODES)("%s carries the code %s and is a HopwardenError named after its class", (name, code, error) => {
    expect(error).toBeInstanceOf(HopwardenError);
    expect(error).toBeInstanceOf(Error);
    expect(error.code).toBe(code);
    expect(error.name).toBe(name);
  });

  it("gives every error class its own code", () => {
    const codes = ERROR_CODES.filter(([name]) => name !== "JaegerQueryError").map(([, code]) => code);
    expect(new Set(codes).size).toBe(codes.length);
  });
});

describe("failureOf: what the CLI prints and exits with", () => {
  it("a usage error: exit 2, the problem and a pointer to the command's --help", () => {
    expect(failureOf(new UsageError("--listen must be host:port"), { command: "serve" })).toEqual({
      exitCode: EXIT.usage,
      text: "hopwarden serve: --listen must be host:port\nRun 'hopwarden serve --help' for usage.\n",
    });
  });

  it("a usage error of a command that documents another usage exit code (audit: 3)", () => {
    expect(failureOf(new UsageError("no log files given"), { command: "audit", usageExit: 3 }).exitCode).toBe(3);
  });

  it("a start-up error: exit 1, the message naming the file, after the command's prefix, no stack trace", () => {
    const failure = failureOf(new PolicyFileError("/etc/p.yaml", ["/etc/p.yaml:3:1: hops: must be a list"]), { command: "serve", prefix: "cannot start: " });
    expect(failure.exitCode).toBe(EXIT.failed);
    expect(failure.text).toBe("hopwarden serve: cannot start: the policy file /etc/p.yaml is not usable:\n/etc/p.yaml:3:1: hops: must be a list\n");
    expect(failure.text).not.toMatch(STACK_FRAME);
  });

  it("a listen failure is typed: exit 1 naming the address, whatever the socket library's words", () => {
    const cause = new Error("No address added out of total 1 resolved");
    const failure = failureOf(new ListenError("the gRPC port", "127.0.0.1:9191", cause), { command: "serve", prefix: "cannot start: " });
    expect(failure).toEqual({ exitCode: 1, text: "hopwarden serve: cannot start: cannot listen on 127.0.0.1:9191 (the gRPC port): No address added out of total 1 resolved\n" });
  });

  it("an error code the command documents its own exit code and hint for (trace: Jaeger unreachable → 3)", () => {
    const failure = failureOf(new JaegerQueryError("unreachable", "cannot reach Jaeger"), { command: "trace", exits: { unreachable: 3 }, hints: { unreachable: "(set --jaeger-url)" } });
    expect(failure).toEqual({ exitCode: 3, text: "hopwarden trace: cannot reach Jaeger\n(set --jaeger-url)\n" });
  });

  it("a file or socket the system refused: exit 1 with Node's message (it names the path), no stack trace", () => {
    const refused = Object.assign(new Error("EACCES: permission denied, open '/var/log/x'"), { code: "EACCES", syscall: "open", path: "/var/log/x" });
    const failure = failureOf(refused, { command: "serve", prefix: "cannot start: " });
    expect(failure).toEqual({ exitCode: 1, text: "hopwarden serve: cannot start: EACCES: permission denied, open '/var/log/x'\n" });
  });

  it("anything else is a bug: exit 70 with the stack trace, never an exit code a command documents as an answer", () => {
    const failure = failureOf(new TypeError("cannot read properties of undefined"), { command: "explain", exits: { invalid_policy: 2 } });
    expect(failure.exitCode).toBe(70);
    expect(failure.text).toMatch(/^hopwarden explain: internal error \(a bug: please report it\)\nTypeError: cannot read properties of undefined\n/);
    expect(failure.text).toMatch(STACK_FRAME);
    expect(failureOf("a string").text).toBe("hopwarden: internal error (a bug: please report it)\na string\n");
  });
});

describe("runCommand", () => {
  it("returns the body's exit code, and maps what it throws through failureOf", async () => {
    let written = "";
    const write = (text: string) => void (written += text);
    expect(await runCommand("check-policy", () => Promise.resolve(0), { write })).toBe(0);
    expect(await runCommand("check-policy", () => Promise.reject(new UsageError("name the policy file")), { write })).toBe(2);
    expect(written).toBe("hopwarden check-policy: name the policy file\nRun 'hopwarden check-policy --help' for usage.\n");
  });
});
