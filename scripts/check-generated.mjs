// Fails when `buf generate` would change the checked-in code under src/gen:
// generates into a temp dir and compares file by file.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";

const root = new URL("..", import.meta.url).pathname;
const out = mkdtempSync(join(tmpdir(), "hopwarden-gen-"));
const buf = join(root, "node_modules", ".bin", "buf");
execFileSync(buf, ["generate", "--output", out], { cwd: root, stdio: "inherit", env: { ...process.env, PATH: `${join(root, "node_modules", ".bin")}:${process.env.PATH}` } });

function files(dir) {
  const result = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) result.push(...files(p));
    else result.push(p);
  }
  return result;
}

const fresh = join(out, "src", "gen");
const committed = join(root, "src", "gen");
const a = new Set(files(fresh).map((f) => relative(fresh, f)));
const b = new Set(files(committed).map((f) => relative(committed, f)));
const problems = [];
for (const f of a) if (!b.has(f)) problems.push(`missing from src/gen: ${f}`);
for (const f of b) if (!a.has(f)) problems.push(`not produced by buf generate: src/gen/${f}`);
for (const f of a) if (b.has(f) && readFileSync(join(fresh, f), "utf8") !== readFileSync(join(committed, f), "utf8")) problems.push(`differs from buf generate: src/gen/${f}`);
rmSync(out, { recursive: true, force: true });
if (problems.length > 0) {
  console.error(`src/gen is out of date with proto/ (run 'npm run generate' and commit):\n  ${problems.join("\n  ")}`);
  process.exit(1);
}
console.log(`src/gen matches buf generate (${a.size} files)`);
