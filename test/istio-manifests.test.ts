// The Istio manifests in envoy/istio/, checked offline. No schema-aware
// validator can run here (kubeconform needs its schemas from the network), so
// these tests parse the YAML and hold the fields that decide behaviour: fail
// closed, gRPC probes on 9191, a locked-down container, one provider name on
// both sides, a policy path that really is the mounted ConfigMap key, and a
// Check port that only the mesh's sidecars and gateways reach (finding 8).

import { readFile } from "node:fs/promises";
import { dirname, join, posix } from "node:path";
import { fileURLToPath } from "node:url";
import { beforeAll, describe, expect, it } from "vitest";
import { parseAllDocuments } from "yaml";
import { loadPolicyText } from "../src/adapters/config/policy-file.js";

const istioDir = join(dirname(fileURLToPath(import.meta.url)), "..", "envoy", "istio");

type Json = Record<string, unknown>;

async function documents(file: string): Promise<Json[]> {
  const docs = parseAllDocuments(await readFile(join(istioDir, file), "utf8"), { strict: true, uniqueKeys: true });
  if (!Array.isArray(docs)) throw new Error(`${file}: not a YAML stream`);
  for (const doc of docs) expect(doc.errors, `${file}: ${doc.errors.map((e) => e.message).join("; ")}`).toEqual([]);
  return docs.map((doc) => doc.toJS() as Json).filter((doc) => doc !== null);
}

function find(docs: readonly Json[], kind: string, name?: string): Json {
  const found = docs.filter((d) => d.kind === kind && (name === undefined || (d.metadata as Json | undefined)?.name === name));
  expect(found, `exactly one ${kind}${name === undefined ? "" : ` ${name}`}`).toHaveLength(1);
  return found[0]!;
}

/** Walks a path of keys/indexes through parsed YAML, failing with the path when a step is missing. */
function at(value: unknown, ...path: (string | number)[]): unknown {
  let current = value;
  for (const [i, key] of path.entries()) {
    if (current === null || typeof current !== "object" || !(key in current)) {
      throw new Error(`missing ${path.slice(0, i + 1).join(".")}`);
    }
    current = (current as Record<string | number, unknown>)[key];
  }
  return current;
}

let workload: Json[];
let authz: Json[];
let mesh: Json[];
let access: Json[];

beforeAll(async () => {
  [workload, authz, mesh, access] = await Promise.all([
    documents("hopwarden.yaml"),
    documents("authorization-policy.yaml"),
    documents("mesh-config.yaml"),
    documents("check-port-access.yaml"),
  ]);
});

describe("every manifest is a well-formed Kubernetes object", () => {
  it("has apiVersion, kind and metadata.name", () => {
    for (const doc of [...workload, ...authz, ...mesh, ...access]) {
      expect(typeof doc.apiVersion).toBe("string");
      expect(typeof doc.kind).toBe("string");
      expect(typeof at(doc, "metadata", "name")).toBe("string");
    }
  });

  it("kustomization lists files that exist, and not the mesh config", async () => {
    const [kustomization] = await documents("kustomization.yaml");
    const resources = at(kustomization, "resources") as string[];
    expect(resources).toEqual(expect.arrayContaining(["hopwarden.yaml", "authorization-policy.yaml", "check-port-access.yaml"]));
    expect(resources).not.toContain("mesh-config.yaml");
    await Promise.all(resources.map((file) => readFile(join(istioDir, file))));
  });
});

describe("Deployment", () => {
  let deployment: Json;
  let container: Json;
  beforeAll(() => {
    deployment = find(workload, "Deployment", "hopwarden");
    const containers = at(deployment, "spec", "template", "spec", "containers") as Json[];
    expect(containers).toHaveLength(1);
    container = containers[0]!;
  });

  it("probes liveness and readiness with Kubernetes' native gRPC probe on 9191", () => {
    for (const probe of ["livenessProbe", "readinessProbe", "startupProbe"]) {
      expect(at(container, probe, "grpc", "port"), probe).toBe(9191);
      expect(at(container, probe), probe).not.toHaveProperty("exec");
      expect(at(container, probe), probe).not.toHaveProperty("httpGet");
    }
  });

  it("serves gRPC on 9191 and admin on 9192, matching the container ports", () => {
    const args = at(container, "args") as string[];
    expect(args[0]).toBe("serve");
    expect(args[args.indexOf("--listen") + 1]).toBe("0.0.0.0:9191");
    expect(args[args.indexOf("--admin-listen") + 1]).toBe("0.0.0.0:9192");
    const ports = at(container, "ports") as Json[];
    expect(ports.map((p) => [p.name, p.containerPort])).toEqual([
      ["grpc", 9191],
      ["http-admin", 9192],
    ]);
  });

  it("has resource requests and limits", () => {
    for (const kind of ["requests", "limits"]) {
      expect(at(container, "resources", kind, "cpu")).toBeTruthy();
      expect(at(container, "resources", kind, "memory")).toBeTruthy();
    }
  });

  it("runs as non-root with a read-only root file system and no capabilities", () => {
    const pod = at(deployment, "spec", "template", "spec", "securityContext") as Json;
    expect(pod.runAsNonRoot).toBe(true);
    expect(pod.runAsUser).toBeGreaterThan(0);
    expect(at(pod, "seccompProfile", "type")).toBe("RuntimeDefault");
    const own = at(container, "securityContext") as Json;
    expect(own.runAsNonRoot).toBe(true);
    expect(own.readOnlyRootFilesystem).toBe(true);
    expect(own.allowPrivilegeEscalation).toBe(false);
    expect(at(own, "capabilities", "drop")).toEqual(["ALL"]);
    expect(own).not.toHaveProperty("privileged", true);
  });

  it("reads --policy from the ConfigMap key, mounted as a directory so ..data swaps reach it", () => {
    const args = at(container, "args") as string[];
    const policyPath = args[args.indexOf("--policy") + 1]!;
    const mounts = at(container, "volumeMounts") as Json[];
    const mount = mounts.find((m) => policyPath.startsWith(`${String(m.mountPath)}/`));
    expect(mount, `a volume mounted above ${policyPath}`).toBeDefined();
    expect(mount).not.toHaveProperty("subPath");
    expect(mount!.readOnly).toBe(true);
    const volumes = at(deployment, "spec", "template", "spec", "volumes") as Json[];
    const volume = volumes.find((v) => v.name === mount!.name)!;
    const configMapName = at(volume, "configMap", "name");
    const configMap = find(workload, "ConfigMap", configMapName as string);
    const key = posix.relative(String(mount!.mountPath), policyPath);
    expect(Object.keys(at(configMap, "data") as Json)).toContain(key);
  });

  it("the ConfigMap's policy is valid for hopwarden's policy loader", () => {
    const configMap = find(workload, "ConfigMap", "hopwarden-policy");
    const result = loadPolicyText(at(configMap, "data", "policy.yaml") as string, "hopwarden-policy/policy.yaml");
    expect(result.ok ? [] : result.errors).toEqual([]);
  });

  it("uses the namespace's and labels' names consistently with the Service", () => {
    const service = find(workload, "Service", "hopwarden");
    expect(at(service, "spec", "selector")).toEqual(at(deployment, "spec", "selector", "matchLabels"));
    expect(at(deployment, "spec", "template", "metadata", "labels")).toMatchObject(at(deployment, "spec", "selector", "matchLabels") as Json);
  });
});

describe("DestinationRule", () => {
  it("replaces a sidecar's connection to hopwarden after a while, so Checks reach every worker", () => {
    const rule = find(workload, "DestinationRule", "hopwarden");
    const service = find(workload, "Service", "hopwarden");
    const namespace = (service.metadata as Json).namespace as string;
    expect(at(rule, "spec", "host")).toBe(`hopwarden.${namespace}.svc.cluster.local`);
    const perConnection = at(rule, "spec", "trafficPolicy", "connectionPool", "http", "maxRequestsPerConnection") as number;
    expect(perConnection).toBeGreaterThan(0);
    expect(perConnection).toBeLessThanOrEqual(1000);
  });
});

describe("Service", () => {
  it("exposes grpc 9191 and http-admin 9192 under names Istio reads as protocols", () => {
    const service = find(workload, "Service", "hopwarden");
    const ports = at(service, "spec", "ports") as Json[];
    expect(ports.map((p) => [p.name, p.port, p.appProtocol])).toEqual([
      ["grpc", 9191, "grpc"],
      ["http-admin", 9192, "http"],
    ]);
  });
});

describe("mesh config and AuthorizationPolicy", () => {
  const provider = () => {
    const providers = at(find(mesh, "IstioOperator"), "spec", "meshConfig", "extensionProviders") as Json[];
    expect(providers).toHaveLength(1);
    return providers[0]!;
  };

  it("registers hopwarden as an envoyExtAuthzGrpc provider that fails closed", () => {
    const grpc = at(provider(), "envoyExtAuthzGrpc") as Json;
    expect(grpc.port).toBe(9191);
    expect(grpc.failOpen).toBe(false);
    expect(grpc.statusOnError).toBe("503");
    expect(grpc.timeout).toMatch(/^\d+(\.\d+)?(ms|s)$/);
  });

  it("uses only fields the gRPC provider has (includeRequestHeadersInCheck is HTTP-only)", () => {
    const known = ["service", "port", "timeout", "failOpen", "statusOnError", "includeRequestBodyInCheck"];
    expect(Object.keys(at(provider(), "envoyExtAuthzGrpc") as Json).filter((k) => !known.includes(k))).toEqual([]);
  });

  it("points at the hopwarden Service's gRPC port", () => {
    const grpc = at(provider(), "envoyExtAuthzGrpc") as Json;
    const service = find(workload, "Service", "hopwarden");
    const namespace = at(service, "metadata", "namespace") as string;
    expect(grpc.service).toBe(`hopwarden.${namespace}.svc.cluster.local`);
    expect((at(service, "spec", "ports") as Json[]).find((p) => p.name === "grpc")?.port).toBe(grpc.port);
  });

  it("the AuthorizationPolicy is CUSTOM with the provider the mesh config defines", () => {
    const policy = find(authz, "AuthorizationPolicy");
    expect(at(policy, "spec", "action")).toBe("CUSTOM");
    expect(at(policy, "spec", "provider", "name")).toBe(provider().name);
    expect((at(policy, "spec", "rules") as unknown[]).length).toBeGreaterThan(0);
  });

  it("the agents' namespace refuses plaintext, so source.principal is always there", () => {
    const policy = find(authz, "AuthorizationPolicy");
    const peer = find(authz, "PeerAuthentication");
    expect(at(peer, "metadata", "namespace")).toBe(at(policy, "metadata", "namespace"));
    expect(at(peer, "spec", "mtls", "mode")).toBe("STRICT");
  });

  it("the README says Istio sends no peer certificate and hopwarden uses source.principal and XFCC", async () => {
    const readme = await readFile(join(istioDir, "README.md"), "utf8");
    expect(readme).toMatch(/do not send the peer certificate/);
    expect(readme).toMatch(/source\.principal/);
    expect(readme).toMatch(/x-forwarded-client-cert/);
  });
});

describe("finding 8: only the mesh's sidecars and gateways reach hopwarden's :9191", () => {
  const GATEWAY_PRINCIPAL = "cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account";
  let hopwardenNamespace: string;
  let podLabels: Json;
  let agentsNamespace: string;

  beforeAll(() => {
    const deployment = find(workload, "Deployment", "hopwarden");
    hopwardenNamespace = at(deployment, "metadata", "namespace") as string;
    podLabels = at(deployment, "spec", "template", "metadata", "labels") as Json;
    // The namespace whose sidecars call hopwarden: where the CUSTOM policy is.
    agentsNamespace = at(find(authz, "AuthorizationPolicy"), "metadata", "namespace") as string;
  });

  /** A selector's matchLabels picks hopwarden's pods. */
  const selectsHopwarden = (matchLabels: unknown) => {
    expect(Object.keys(matchLabels as Json).length).toBeGreaterThan(0);
    expect(podLabels).toMatchObject(matchLabels as Json);
  };

  it("finding 8: a NetworkPolicy admits connections to hopwarden's pods only on 9191, only from the agents' namespace and the ingress gateway", () => {
    const policy = find(access, "NetworkPolicy");
    expect(at(policy, "metadata", "namespace")).toBe(hopwardenNamespace);
    selectsHopwarden(at(policy, "spec", "podSelector", "matchLabels"));
    expect(at(policy, "spec", "policyTypes")).toEqual(["Ingress"]);
    const rules = at(policy, "spec", "ingress") as Json[];
    expect(rules.length).toBeGreaterThan(0);
    for (const rule of rules) {
      // A rule without `from` or without `ports` would open the pod to everyone or on every port.
      expect((at(rule, "from") as unknown[]).length, "every rule names its peers").toBeGreaterThan(0);
      expect(at(rule, "ports")).toEqual([{ protocol: "TCP", port: 9191 }]);
    }
    const peers = rules.flatMap((rule) => at(rule, "from") as Json[]);
    for (const peer of peers) expect(peer, "no ipBlock: peers are pods of named namespaces").not.toHaveProperty("ipBlock");
    expect(peers).toContainEqual({ namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": agentsNamespace } } });
    expect(peers).toContainEqual({
      namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": "istio-system" } },
      podSelector: { matchLabels: { istio: "ingressgateway" } },
    });
  });

  it("finding 8: an ALLOW AuthorizationPolicy admits only the agents' sidecars and the gateway's identity, and only on 9191", () => {
    const policy = find(access, "AuthorizationPolicy");
    expect(at(policy, "metadata", "namespace")).toBe(hopwardenNamespace);
    selectsHopwarden(at(policy, "spec", "selector", "matchLabels"));
    expect(at(policy, "spec", "action")).toBe("ALLOW");
    const rules = at(policy, "spec", "rules") as Json[];
    expect(rules.length).toBeGreaterThan(0);
    for (const rule of rules) {
      // An empty rule, or one without `from`, would allow every caller.
      const sources = (at(rule, "from") as Json[]).map((f) => at(f, "source") as Json);
      expect(sources.length).toBeGreaterThan(0);
      for (const source of sources) expect(Object.keys(source).filter((k) => k !== "namespaces" && k !== "principals"), "sources are identities").toEqual([]);
      expect((at(rule, "to") as Json[]).map((t) => at(t, "operation", "ports"))).toEqual([["9191"]]);
    }
    const sources = rules.flatMap((rule) => (at(rule, "from") as Json[]).map((f) => at(f, "source") as Json));
    expect(sources).toContainEqual({ namespaces: [agentsNamespace] });
    expect(sources).toContainEqual({ principals: [GATEWAY_PRINCIPAL] });
  });

  it("the port it opens is the Service's gRPC port and the mesh provider's port", () => {
    const service = find(workload, "Service", "hopwarden");
    const grpcPort = (at(service, "spec", "ports") as Json[]).find((p) => p.name === "grpc")!;
    const providers = at(find(mesh, "IstioOperator"), "spec", "meshConfig", "extensionProviders") as Json[];
    expect(at(providers[0], "envoyExtAuthzGrpc", "port")).toBe(grpcPort.port);
    const rule = (at(find(access, "AuthorizationPolicy"), "spec", "rules") as Json[])[0]!;
    expect(at(rule, "to", 0, "operation", "ports")).toEqual([String(grpcPort.port)]);
  });

  it("hopwarden's namespace refuses plaintext, so every caller has an identity to check", () => {
    const peer = find(access, "PeerAuthentication");
    expect(at(peer, "metadata", "namespace")).toBe(hopwardenNamespace);
    selectsHopwarden(at(peer, "spec", "selector", "matchLabels"));
    expect(at(peer, "spec", "mtls", "mode")).toBe("STRICT");
  });

  it("the README explains the gate and its limit", async () => {
    const readme = await readFile(join(istioDir, "README.md"), "utf8");
    expect(readme).toMatch(/check-port-access\.yaml/);
    expect(readme).toMatch(/NetworkPolicy/);
    expect(readme).toMatch(/--tls-client-ca/);
  });
});
