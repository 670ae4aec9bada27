#!/usr/bin/env node
// The `hopwarden` executable: dispatches to one sub-command and turns its
// result into the process exit code. Commands report their own failures
// through exit.ts (usage 2, a failure the user can fix 1, a bug 70); what
// fails outside a command is mapped there too.

import { COMMANDS } from "./commands/index.js";
import { EXIT, reportFailure } from "./exit.js";
import { VERSION } from "./version.js";

function usage(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((n) => n.length));
  const lines = Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`);
  return `hopwarden ${VERSION} — Envoy ext_authz service that proves, per call, which person authorized which agent through which chain of agents.

Usage: hopwarden <command> [options]      (hopwarden <command> --help for details)

Commands:
${lines.join("\n")}

Exit status: 0 success; each command's help names its other answers; 2 usage
error (audit: 3); 70 internal error (a bug, printed with its stack trace).

Start here:
  hopwarden check-policy examples/policy.yaml
  hopwarden serve --policy examples/policy.yaml --listen 127.0.0.1:9191
`;
}

async function main(argv: readonly string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === "--help" || name === "-h" || name === "help") {
    process.stdout.write(usage());
    return name === undefined ? EXIT.usage : EXIT.ok;
  }
  if (name === "--version" || name === "-v") {
    process.stdout.write(`${VERSION}\n`);
    return EXIT.ok;
  }
  const entry = COMMANDS[name];
  if (entry === undefined) {
    process.stderr.write(`hopwarden: unknown command ${JSON.stringify(name)}\n\n${usage()}`);
    return EXIT.usage;
  }
  const command = await entry.load();
  return command.run(rest);
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.exitCode = reportFailure(err);
  },
);
