# hopwarden container image.
#
#   docker build -t hopwarden .                 (the runtime image, last stage)
#   docker build --target build -t hopwarden:build .   (with devDependencies:
#       docker-compose.yml's demo-init uses it to make the demo certificates)
#
# Network is needed only at build time (npm ci); nothing is fetched at run time.
#
# Base: the official Node 24 LTS image, Debian 13 slim, pinned to the Node
# version the test suites run on (NODE_VERSION in scripts/install-test-tools.sh;
# test/envoy-config.test.ts keeps the two equal). Bump both together.

FROM node:24.22.3-trixie-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci
COPY . .
RUN npm run build

FROM node:24.22.3-trixie-slim AS runtime
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev && npm cache clean --force
COPY --from=build /app/dist ./dist
COPY proto ./proto
# Numeric, so Kubernetes runAsNonRoot can check it (the node image's "node"
# user). The files above stay root's: the service cannot rewrite its own code.
USER 1000:1000
# 9191 gRPC (ext_authz Check, grpc.health.v1, reflection); 9192 admin and metrics.
EXPOSE 9191 9192
# Small young-generation semi-spaces keep each scavenge, and so the pause a
# Check can wait behind, short (test/support/serve-node-flags.ts has the
# numbers). `--workers` forks inherit the flag.
ENTRYPOINT ["node", "--max-semi-space-size=4", "/app/dist/cli/bin.js"]
CMD ["serve", "--policy", "/etc/hopwarden/policy.yaml", "--listen", "0.0.0.0:9191", "--admin-listen", "0.0.0.0:9192"]
