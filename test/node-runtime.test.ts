// The suites run on a Node that package.json's `engines` admits (22 or 24
// LTS), and every `node` they start is that same Node: a PATH that falls back
// to an older machine Node fails here, not somewhere obscure. Under
// scripts/test-all.sh, HOPWARDEN_EXPECT_NODE names the pinned Node
// (.tools/node.version) and the version must be exactly that one.

import { execFile } from "node:child_process";
import { readFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";

const repoRoot = join(dirname(fileURLToPath(import.meta.url)), "..");
const run = promisify(execFile);

type Version = [number, number, number];

function parseVersion(text: string): Version {
  const match = /^v?(\d+)\.(\d+)\.(\d+)$/.exec(text.trim());
  if (match === null) throw new Error(`not a version: ${text}`);
  return [Number(match[1]), Number(match[2]), Number(match[3])];
}

/** `engines.node` as a list of caret ranges ("^22.13.0 || ^24.0.0"): the only form this project writes. */
function caretRanges(engines: string): Version[] {
  return engines.split("||").map((part) => {
    const match = /^\s*\^(\S+)\s*$/.exec(part);
    if (match?.[1] === undefined) throw new Error(`engines.node: "${part.trim()}" is not a caret range`);
    return parseVersion(match[1]);
  });
}

function satisfiesCaret(version: Version, floor: Version): boolean {
  const [major, minor, patch] = version;
  const [fMajor, fMinor, fPatch] = floor;
  return major === fMajor && (minor > fMinor || (minor === fMinor && patch >= fPatch));
}

async function enginesNode(): Promise<string> {
  const pkg = JSON.parse(await readFile(join(repoRoot, "package.json"), "utf8")) as { engines?: { node?: string } };
  if (pkg.engines?.node === undefined) throw new Error("package.json has no engines.node");
  return pkg.engines.node;
}

describe("the Node the suites run on", () => {
  it("engines admits the maintained LTS lines 22 and 24, and nothing older", async () => {
    const majors = caretRanges(await enginesNode()).map(([major]) => major);
    expect(majors).toEqual([22, 24]);
  });

  it("is one that engines admits", async () => {
    const ranges = caretRanges(await enginesNode());
    const current = parseVersion(process.versions.node);
    expect(ranges.some((floor) => satisfiesCaret(current, floor)), `Node ${process.versions.node} (${process.execPath})`).toBe(true);
  });

  // A direct `npx vitest` runs on whatever Node the developer chose.
  it.skipIf(process.env.HOPWARDEN_EXPECT_NODE === undefined)("is the pinned Node when scripts/test-all.sh runs the suites", () => {
    expect(process.versions.node).toBe(process.env.HOPWARDEN_EXPECT_NODE);
  });

  it("is also the `node` a suite starts by name", async () => {
    const { stdout } = await run("node", ["-p", "process.versions.node"], { timeout: 15_000 });
    expect(stdout.trim()).toBe(process.versions.node);
  });
});
