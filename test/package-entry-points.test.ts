// SPEC 7, packaging: what package.json promises exists after `npm run build`:
// the `hopwarden` bin is a JavaScript file node runs, and every export
// resolves to a module that loads and exports what its users import.

import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { beforeAll, describe, expect, it } from "vitest";
import { REPO_ROOT, requireBuiltCli } from "./support/cli-process.js";

const pkg = JSON.parse(readFileSync(join(REPO_ROOT, "package.json"), "utf8")) as { bin: Record<string, string>; exports: Record<string, string>; files: string[] };

beforeAll(() => {
  requireBuiltCli();
});

describe("package.json entry points", () => {
  it("has a hopwarden bin that is a built JavaScript file with a node shebang", () => {
    const bin = join(REPO_ROOT, pkg.bin.hopwarden!);
    expect(existsSync(bin)).toBe(true);
    expect(readFileSync(bin, "utf8").startsWith("#!/usr/bin/env node")).toBe(true);
  });

  it.each(Object.entries(pkg.exports))("export %s resolves to a built module that loads", async (_name, target) => {
    const file = join(REPO_ROOT, target);
    expect(existsSync(file), `${target} exists`).toBe(true);
    const module = (await import(pathToFileURL(file).href)) as Record<string, unknown>;
    expect(Object.keys(module).length).toBeGreaterThan(0);
  });

  it("exports startHopwarden from the main entry and the delegation client from ./client", async () => {
    const main = (await import(pathToFileURL(join(REPO_ROOT, pkg.exports["."]!)).href)) as Record<string, unknown>;
    const client = (await import(pathToFileURL(join(REPO_ROOT, pkg.exports["./client"]!)).href)) as Record<string, unknown>;
    expect(typeof main.startHopwarden).toBe("function");
    expect(typeof client.DelegationClient).toBe("function");
  });

  it("ships what the exports and the bin need", () => {
    expect(pkg.files).toContain("dist");
  });
});
