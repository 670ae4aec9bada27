// `hopwarden explain`: dry-runs one request against a policy file and prints
// the hop-by-hop table and the decision. Exit 0 allow, 1 deny, 2 usage error.

import { readFile } from "node:fs/promises";
import { fromJson, type JsonValue } from "@bufbuild/protobuf";
import { CheckRequestSchema, type CheckRequest } from "../../gen/envoy/service/auth/v3/external_auth_pb.js";
import { decideCheckRequest, explainDecision, explainInput, formatExplanation } from "../../adapters/admin/explain.js";
import { PolicyStore } from "../../adapters/config/policy-store.js";
import { silentLogger } from "../../adapters/logging/logger.js";
import { createExplainPipeline } from "../../adapters/admin/explain-pipeline.js";
import { resolveConfigAndPolicy } from "../config-and-policy.js";
import { runCommand } from "../exit.js";
import { parseCommandArgs, UsageError } from "../options.js";
import type { Command } from "./index.js";

const HELP = `Usage: hopwarden explain --policy <file> [--config <file>] [request options] [--json]

Dry-runs one request against a policy, with the same pipeline 'serve' uses,
and prints every evaluated hop of chain + [callee] with the rule that admitted
it, then the decision and its reason. Nothing is audited.

  --policy <file>           the policy (or HOPWARDEN_POLICY, or policy: in --config)
  --config <file>           the service config 'serve' runs with (or
                            HOPWARDEN_CONFIG): its header names, MCP metadata
                            keys and identity.trustForwardedClientCert apply
                            here too, so the answer is the one serve gives

Describe the request either with a full CheckRequest as Envoy sends it
(protobuf JSON; read by the decoder 'serve' uses, so it is decided exactly as
'serve' would decide it), or with shorthand flags:

  --request <file.json>     a CheckRequest in protobuf JSON (overrides the flags below)
  --caller <spiffe-id>      the caller, as if proven by mTLS (source.principal)
  --cert <file.pem>         or the caller's certificate (source.certificate)
  --callee <alias|id>       the callee: a policy alias or SPIFFE ID (route's agent)
  --subject <id>            x-agent-subject (default: the --caller value)
  --on-behalf-of <value>    x-agent-on-behalf-of
  --chain <a,b,c>           x-agent-delegation-chain (aliases are NOT expanded)
  --token <jws>             x-agent-delegation-token
  --txn-token <jws>         txn-token (a Transaction Token, SPEC 8)
  -H, --header 'name: value'  any other header (repeatable)
  --method <GET>            default GET
  --path </path?query>      default /
  --mcp-method <method>     an MCP request, as Envoy's MCP filter reports it
                            (e.g. tools/call): mcp: rules judge it
  --mcp-tool <name>         the tool of a tools/call
  --mcp-resource <uri>      the URI of a resources/read

The caller given with --caller is bound by its principal (as agentgateway or
proxyless gRPC send it), with --cert by a certificate (as Envoy sends it);
the output says which, as serve records it.

Output:
  --json                    print the decision as JSON instead of a table

Example:
  hopwarden explain --policy examples/policy.yaml \\
    --caller spiffe://example.org/agent/research --callee db \\
    --on-behalf-of alice@example.com \\
    --chain spiffe://example.org/agent/orchestrator,spiffe://example.org/agent/research \\
    --method GET --path /query
  hopwarden explain --policy examples/policy.yaml \\
    --cert research.pem --callee db --on-behalf-of alice@example.com \\
    --chain spiffe://example.org/agent/orchestrator,spiffe://example.org/agent/research \\
    --method POST --path /mcp --mcp-method tools/call --mcp-tool search_docs

Exit status: 0 allowed, 1 denied, 2 usage error, unreadable policy or config.
`;

export const explainCommand: Command = {
  run: (argv) =>
    runCommand(
      "explain",
      async () => {
        const { values } = parseCommandArgs(argv, {
          help: { type: "boolean", short: "h" },
          policy: { type: "string" },
          config: { type: "string" },
          request: { type: "string" },
          caller: { type: "string" },
          cert: { type: "string" },
          callee: { type: "string" },
          subject: { type: "string" },
          "on-behalf-of": { type: "string" },
          chain: { type: "string" },
          token: { type: "string" },
          "txn-token": { type: "string" },
          "mcp-method": { type: "string" },
          "mcp-tool": { type: "string" },
          "mcp-resource": { type: "string" },
          header: { type: "string", short: "H", multiple: true },
          method: { type: "string" },
          path: { type: "string" },
          json: { type: "boolean" },
        });
        if (values.help === true) {
          process.stdout.write(HELP);
          return 0;
        }
        const { config, policyFile } = await resolveConfigAndPolicy(values);
        const store = new PolicyStore(policyFile, silentLogger);
        await store.loadInitial();
        const headers: Record<string, string> = {};
        for (const h of values.header ?? []) {
          const colon = h.indexOf(":");
          if (colon <= 0) throw new UsageError(`--header ${JSON.stringify(h)} must be 'name: value'`);
          headers[h.slice(0, colon).trim().toLowerCase()] = h.slice(colon + 1).trimStart();
        }
        const names = config.headers;
        const subject = values.subject ?? values.caller;
        if (subject !== undefined) headers[names.subject] = subject;
        if (values["on-behalf-of"] !== undefined) headers[names.onBehalfOf] = values["on-behalf-of"];
        if (values.chain !== undefined) headers[names.chain] = values.chain;
        if (values.token !== undefined) headers[names.token] = values.token;
        if (values["txn-token"] !== undefined) headers[names.txnToken] = values["txn-token"];
        if (values["mcp-method"] === undefined && (values["mcp-tool"] !== undefined || values["mcp-resource"] !== undefined)) {
          throw new UsageError("--mcp-tool and --mcp-resource need --mcp-method (e.g. --mcp-method tools/call)");
        }

        const pipeline = createExplainPipeline(store, { headerNames: config.headers, mcpKeys: config.mcp, trustForwardedClientCert: config.trustForwardedClientCert });
        let decision;
        if (values.request !== undefined) {
          decision = await decideCheckRequest(pipeline, await readCheckRequest(values.request));
        } else {
          let input = explainInput(
            {
              ...(values.caller !== undefined && { caller: values.caller }),
              ...(values.callee !== undefined && { callee: values.callee }),
              headers,
              method: values.method ?? "GET",
              path: values.path ?? "/",
              ...(values["mcp-method"] !== undefined && { mcpMethod: values["mcp-method"] }),
              ...(values["mcp-tool"] !== undefined && { mcpTool: values["mcp-tool"] }),
              ...(values["mcp-resource"] !== undefined && { mcpResource: values["mcp-resource"] }),
            },
            pipeline.mcpKeys,
          );
          if (values.cert !== undefined) input = { ...input, peerCertificate: encodeURIComponent(await readInput("--cert", values.cert)) };
          decision = await pipeline.decide(input);
        }
        const explanation = explainDecision(decision);
        process.stdout.write(values.json === true ? `${JSON.stringify(explanation, null, 2)}\n` : formatExplanation(explanation));
        return explanation.decision === "allow" ? 0 : 1;
      },
      // Exit 1 means "denied", so a policy that cannot be loaded is 2, like a usage error.
      { exits: { invalid_policy: 2, invalid_service_config: 2 } },
    ),
};

/** A file named on the command line; unreadable is a usage error naming the flag and the file. */
async function readInput(flag: string, file: string): Promise<string> {
  try {
    return await readFile(file, "utf8");
  } catch (err) {
    throw new UsageError(`${flag} ${file}: cannot be read (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
  }
}

/** --request: a CheckRequest in protobuf JSON. */
async function readCheckRequest(file: string): Promise<CheckRequest> {
  const text = await readInput("--request", file);
  try {
    return fromJson(CheckRequestSchema, JSON.parse(text) as JsonValue);
  } catch (err) {
    throw new UsageError(`--request ${file}: not a CheckRequest in protobuf JSON (${err instanceof Error ? err.message : String(err)})`);
  }
}
