/**
 * The deploy/ recipe: every Kubernetes object validates against the Kubernetes API schemas
 * (kubernetes-models), the compose file validates with docker-compose itself, and both carry what
 * GPIoT needs from vLLM (LoRA on, three adapters, rank 64, health checks, the key from a secret).
 *
 * docker-compose comes from `bash scripts/install-scale-tools.sh` (Debian's docker-compose); a
 * machine without it fails this test with that advice unless GPIOT_SKIP_DOCKER_COMPOSE=1.
 */
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, test } from "node:test";
import { Deployment } from "kubernetes-models/apps/v1";
import { PodDisruptionBudget } from "kubernetes-models/policy/v1";
import { ConfigMap, PersistentVolumeClaim, Service } from "kubernetes-models/v1";
import { parse, parseAllDocuments } from "yaml";
import { repoRoot } from "../helpers/testModels";

const kubernetesDir = path.join(repoRoot, "deploy", "kubernetes");
const composeFile = path.join(repoRoot, "deploy", "vllm", "compose.yaml");

const models: Record<string, new (data: any) => { validate(): void }> = {
  "apps/v1/Deployment": Deployment,
  "policy/v1/PodDisruptionBudget": PodDisruptionBudget,
  "v1/ConfigMap": ConfigMap,
  "v1/Service": Service,
  "v1/PersistentVolumeClaim": PersistentVolumeClaim,
};

interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; labels?: Record<string, string> };
  spec?: any;
  data?: Record<string, string>;
}

function manifests(): { file: string; objects: KubeObject[] }[] {
  return readdirSync(kubernetesDir)
    .filter((file) => file.endsWith(".yaml"))
    .map((file) => {
      const documents = parseAllDocuments(readFileSync(path.join(kubernetesDir, file), "utf8"));
      for (const document of documents) assert.deepEqual(document.errors, [], `${file}: YAML errors`);
      return { file, objects: documents.map((document) => document.toJSON() as KubeObject) };
    });
}

function validate(object: KubeObject): void {
  const Model = models[`${object.apiVersion}/${object.kind}`];
  assert.ok(Model, `${object.kind} ${object.apiVersion} has no validator here; add it to the test`);
  new Model(object).validate();
}

describe("Kubernetes manifests", () => {
  test("the validator rejects a broken object (so passing means something)", () => {
    const broken = { apiVersion: "apps/v1", kind: "Deployment", metadata: { name: "x" }, spec: { replicas: "two", selector: {}, template: { spec: { containers: [{ name: "c", image: "i", ports: [{ containerPort: "http" }] }] } } } };
    assert.throws(() => validate(broken), /replicas must be integer/);
  });

  test("every object validates against the Kubernetes API schemas", () => {
    const found = manifests();
    assert.deepEqual(found.map(({ file }) => file).sort(), ["vllm-replicas.yaml", "vllm-tensor-parallel.yaml"]);
    for (const { file, objects } of found) for (const object of objects) assert.doesNotThrow(() => validate(object), `${file}: ${object.kind} ${object.metadata.name}`);
  });

  test("each vLLM Deployment serves LoRA adapters per role with rank 64, health checks, GPUs and a secret API key", () => {
    for (const { file, objects } of manifests()) {
      const deployments = objects.filter((object) => object.kind === "Deployment");
      assert.equal(deployments.length, 1, file);
      const deployment = deployments[0];
      const container = deployment.spec.template.spec.containers[0];
      const args: string[] = container.args;
      assert.ok(args.includes("--enable-lora"), `${file}: --enable-lora`);
      assert.ok(args.includes("--max-loras=3"), `${file}: --max-loras`);
      assert.ok(args.includes("--max-lora-rank=64"), `${file}: --max-lora-rank 64`);
      assert.ok(args.includes("--served-model-name=gpiot-base"), `${file}: the base's name`);
      const loraModules = args.slice(args.indexOf("--lora-modules") + 1).filter((arg) => !arg.startsWith("--"));
      assert.ok(loraModules.some((module) => module.startsWith("gpiot-td=")) && loraModules.some((module) => module.startsWith("gpiot-cg=")), `${file}: TD and CG adapters`);
      for (const probe of ["startupProbe", "readinessProbe", "livenessProbe"]) assert.equal(container[probe]?.httpGet?.path, "/health", `${file}: ${probe}`);
      const gpus = Number(container.resources.limits["nvidia.com/gpu"]);
      assert.ok(gpus >= 1, `${file}: GPUs`);
      const apiKey = container.env.find((variable: any) => variable.name === "VLLM_API_KEY");
      assert.ok(apiKey?.valueFrom?.secretKeyRef, `${file}: the API key comes from a Secret, never a literal`);
      // Every $(VAR) in the arguments is defined (env or the ConfigMap it loads).
      const configMaps = objects.filter((object) => object.kind === "ConfigMap");
      const defined = new Set<string>([
        ...container.env.map((variable: any) => variable.name),
        ...(container.envFrom ?? []).flatMap((source: any) => Object.keys(configMaps.find((map) => map.metadata.name === source.configMapRef?.name)?.data ?? {})),
      ]);
      for (const arg of args) for (const [, name] of arg.matchAll(/\$\(([A-Z_]+)\)/g)) assert.ok(defined.has(name), `${file}: $(${name}) is defined`);
      // Tensor parallelism uses exactly the GPUs the pod gets.
      const tensorParallel = args.find((arg) => arg.startsWith("--tensor-parallel-size="));
      if (tensorParallel) {
        const size = tensorParallel.split("=")[1].replace(/\$\(([A-Z_]+)\)/, (_match, name) => configMaps.flatMap((map) => Object.entries(map.data ?? {})).find(([key]) => key === name)?.[1] ?? "?");
        assert.equal(Number(size), gpus, `${file}: --tensor-parallel-size equals the GPUs per pod`);
        assert.ok(deployment.spec.template.spec.volumes.some((volume: any) => volume.emptyDir?.medium === "Memory"), `${file}: shared memory for tensor parallelism`);
      }
      // The Service reaches the Deployment's pods.
      const labels = deployment.spec.template.metadata.labels;
      for (const [key, value] of Object.entries(deployment.spec.selector.matchLabels)) assert.equal(labels[key], value, `${file}: the selector matches the pods`);
      const service = objects.find((object) => object.kind === "Service");
      assert.ok(service, `${file}: a Service`);
      for (const [key, value] of Object.entries(service.spec.selector)) assert.equal(labels[key], value, `${file}: the Service selects the pods`);
    }
    const replicated = manifests().find(({ file }) => file === "vllm-replicas.yaml")!.objects.find((object) => object.kind === "Deployment")!;
    assert.ok(replicated.spec.replicas >= 2, "several replicas");
  });
});

describe("compose file", () => {
  test("serves LoRA adapters per role with rank 64, a GPU and a health check", () => {
    const compose = parse(readFileSync(composeFile, "utf8"));
    const service = compose.services.vllm;
    const command: string[] = service.command;
    for (const flag of ["--enable-lora", "--max-loras=3", "--max-lora-rank=64", "--served-model-name=gpiot-base"]) assert.ok(command.includes(flag), flag);
    assert.equal(service.deploy.resources.reservations.devices[0].driver, "nvidia");
    assert.match(service.healthcheck.test.join(" "), /\/health/);
    assert.match(String(service.environment.VLLM_API_KEY), /^\$\{GPIOT_API_KEY:\?/, "the key comes from the environment, never the file");
  });

  test("docker-compose config accepts it and rejects a broken one", (context) => {
    const probe = spawnSync("docker-compose", ["version"], { encoding: "utf8" });
    if (probe.error) {
      if (process.env.GPIOT_SKIP_DOCKER_COMPOSE === "1") return context.skip("docker-compose not installed (GPIOT_SKIP_DOCKER_COMPOSE=1)");
      assert.fail("docker-compose is not installed: run `bash scripts/install-scale-tools.sh` (Debian's docker-compose), or set GPIOT_SKIP_DOCKER_COMPOSE=1 to skip this check.");
    }
    const env = { ...process.env, GPIOT_API_KEY: "test-key", HOME: os.tmpdir() };
    const output = execFileSync("docker-compose", ["-f", composeFile, "config"], { env, encoding: "utf8" });
    assert.match(output, /--max-lora-rank=64/);
    const scratch = mkdtempSync(path.join(os.tmpdir(), "gpiot-compose-"));
    try {
      const broken = path.join(scratch, "compose.yaml");
      writeFileSync(broken, readFileSync(composeFile, "utf8").replace("interval: 30s", "interval: [30s]"));
      const result = spawnSync("docker-compose", ["-f", broken, "config"], { env, encoding: "utf8" });
      assert.notEqual(result.status, 0, "a broken compose file is rejected");
      const missingKey = spawnSync("docker-compose", ["-f", composeFile, "config"], { env: { ...env, GPIOT_API_KEY: "" }, encoding: "utf8" });
      assert.notEqual(missingKey.status, 0, "without GPIOT_API_KEY the file refuses to start");
      assert.match(missingKey.stderr, /set GPIOT_API_KEY/);
    } finally {
      rmSync(scratch, { recursive: true, force: true });
    }
  });
});
