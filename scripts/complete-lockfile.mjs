// Completes package-lock.json with the platform-specific optional packages
// (other operating systems and CPUs) that the registry reachable here does not
// serve, so npm leaves them out of the lock file it writes, and `npm ci` then
// refuses the lock as out of sync. Each missing entry is recorded with the
// version its parent pins and the os/cpu/libc its name states; npm never
// downloads them on a machine they do not match. Run after `npm install`:
//
//   node scripts/complete-lockfile.mjs
import { readFileSync, writeFileSync } from "node:fs";

const file = new URL("../package-lock.json", import.meta.url);
const lock = JSON.parse(readFileSync(file, "utf8"));
const packages = lock.packages;

const OS = ["darwin", "linux", "win32", "freebsd", "openbsd", "netbsd", "android", "sunos", "aix", "openharmony"];
const CPU = { arm64: "arm64", aarch64: "arm64", x64: "x64", ia32: "ia32", arm: "arm", armv7: "arm", loong64: "loong64", ppc64: "ppc64", riscv64: "riscv64", s390x: "s390x" };

function platformOf(name) {
  const parts = name.split("/").pop().split("-");
  const os = parts.find((p) => OS.includes(p));
  const cpu = parts.map((p) => CPU[p]).find(Boolean);
  const libc = parts.includes("musl") || parts.includes("musleabihf") ? "musl" : parts.includes("gnu") || parts.includes("gnueabihf") ? "glibc" : undefined;
  return { os, cpu, libc };
}

let added = 0;
for (const [path, entry] of Object.entries(packages)) {
  if (entry.optionalDependencies === undefined) continue;
  const base = path === "" ? "" : `${path}/`;
  for (const [dep, spec] of Object.entries(entry.optionalDependencies)) {
    const nested = `${base}node_modules/${dep}`;
    const hoisted = `node_modules/${dep}`;
    if (packages[nested] !== undefined || packages[hoisted] !== undefined) continue;
    const { os, cpu, libc } = platformOf(dep);
    if (os === undefined || cpu === undefined || !/^\d+\.\d+\.\d+/.test(spec)) continue; // only exact-pinned platform binaries
    packages[hoisted] = {
      version: spec,
      ...(entry.dev === true && { dev: true }),
      optional: true,
      os: [os],
      cpu: [cpu],
      ...(libc !== undefined && { libc: [libc] }),
    };
    added += 1;
  }
}
lock.packages = Object.fromEntries(Object.entries(packages).sort(([a], [b]) => (a === "" ? -1 : b === "" ? 1 : a < b ? -1 : a > b ? 1 : 0)));
writeFileSync(file, `${JSON.stringify(lock, null, 2)}\n`);
console.log(`package-lock.json: ${added} platform package entr${added === 1 ? "y" : "ies"} added`);
