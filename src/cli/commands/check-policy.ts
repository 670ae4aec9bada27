// `hopwarden check-policy <file>`: validates a policy file. Exit 0 valid, 1
// invalid (one `file:line:column: field: problem` line per error), 2 usage.
// Warnings (rules that can never match) are printed but do not fail.

import { readPolicyFile, PolicyFileError } from "../../adapters/config/policy-store.js";
import { runCommand } from "../exit.js";
import { parseCommandArgs, UsageError } from "../options.js";
import type { Command } from "./index.js";

const HELP = `Usage: hopwarden check-policy [--quiet] <policy.yaml>

Validates a policy file the way 'serve' does at start-up and on every reload,
and reports every problem, one per line:

  policy.yaml:12:5: hops[1].methds: unknown key "methds" (known keys: ...)

Unknown keys are errors (a misspelt key must never silently widen a rule).
Warnings name rules that can never match; they do not fail the check.

Exit status: 0 valid, 1 invalid, 2 usage error.

Options:
  -q, --quiet   print nothing when the policy is valid
  -h, --help    show this help
`;

export const checkPolicyCommand: Command = {
  run: (argv) =>
    runCommand("check-policy", async () => {
      const { values, positionals } = parseCommandArgs(argv, { help: { type: "boolean", short: "h" }, quiet: { type: "boolean", short: "q" } }, true);
      if (values.help === true) {
        process.stdout.write(HELP);
        return 0;
      }
      if (positionals.length !== 1) throw new UsageError(positionals.length === 0 ? "name the policy file to check" : "check one policy file at a time");
      const file = positionals[0]!;
      try {
        const { policy, warnings } = await readPolicyFile(file);
        for (const w of warnings) process.stderr.write(`warning: ${w}\n`);
        if (values.quiet !== true) {
          process.stdout.write(`${file}: valid policy version ${JSON.stringify(policy.version)} (${policy.agents.size} agents, ${policy.hops.length} hop rules, ${policy.requireVia.length} requireVia rules)\n`);
        }
        return 0;
      } catch (err) {
        if (!(err instanceof PolicyFileError)) throw err;
        for (const e of err.errors) process.stderr.write(`${e}\n`);
        process.stderr.write(`${file}: invalid policy (${err.errors.length} error${err.errors.length === 1 ? "" : "s"})\n`);
        return 1;
      }
    }),
};
