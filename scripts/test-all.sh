#!/usr/bin/env bash
# The one test command (README, .ci/run): on a fresh machine it installs what
# the tests need (npm packages from the lock file; Envoy, grpcurl, ghz,
# grpc-health-probe and Jaeger, pinned, into .tools/; redis-server from
# Debian's packages), then checks generated code, types and lint, builds, and
# runs every suite (unit, integration, real Envoy, real Jaeger and real Redis
# end-to-end). Ends with one "N passed, N failed" line.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

step() { printf '\n==> %s\n' "$*"; }

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
