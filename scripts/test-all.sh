#!/usr/bin/env bash
# The one test command (README, .ci/run): on a fresh machine it installs what
# the tests need (Node 24, then npm packages from the lock file; Envoy,
# grpcurl, ghz, grpc-health-probe and Jaeger, pinned, into .tools/;
# redis-server from Debian's packages), then checks generated code, types and
# lint, builds, and runs every suite (unit, integration, real Envoy, real
# Jaeger and real Redis end-to-end) on that Node 24, whatever Node the machine
# has. Ends with one "N passed, N failed" line.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

step() { printf '\n==> %s\n' "$*"; }

step "node (pinned Node 24 LTS into .tools/node)"
scripts/install-test-tools.sh node
# Everything from here on, and every `node` it starts (npm scripts, tsc,
# eslint, vitest and its workers, the CLI processes the suites spawn through
# process.execPath or by name), runs on this Node.
export PATH="$PWD/.tools/node/bin:$PATH"
# test/node-runtime.test.ts fails unless the suites run on exactly this version.
HOPWARDEN_EXPECT_NODE="$(cat .tools/node.version)"
export HOPWARDEN_EXPECT_NODE
echo "node $(node --version) at $(command -v node)"

step "npm ci"
npm ci --no-audit --no-fund --loglevel=error

step "test tools (pinned; first run builds Jaeger, ~7 min on 2 cores; apt-get installs redis-server)"
scripts/install-test-tools.sh

step "generated code is current"
node scripts/check-generated.mjs

step "typecheck"
npm run --silent typecheck

step "lint"
npm run --silent lint

step "build"
npm run --silent build

step "tests"
mkdir -p .tmp
status=0
npx vitest run --reporter=default --reporter=json --outputFile.json=.tmp/vitest-report.json || status=$?
node -e '
const r = require("./.tmp/vitest-report.json");
const skipped = r.numPendingTests + r.numTodoTests;
console.log(`\n${r.numPassedTests} passed, ${r.numFailedTests} failed` + (skipped ? `, ${skipped} skipped` : ""));
if (r.numTotalTests === 0) { console.error("no test ran"); process.exit(1); }
' || status=1
exit "$status"
