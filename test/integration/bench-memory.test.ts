/**
 * The memory part of `npm run bench` on real parts (sidecar processes, node-llama-cpp in a child
 * process), on the tiny model so that it runs in the test suite: the benchmark itself is not part of
 * `npm test`, and its one-role process once failed at node-llama-cpp's binding self-test.
 */
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, describe, test } from "node:test";
import { measureRoleMemory } from "../../bench/memory";
import { sidecarPath } from "../helpers/testModels";

const COMPARABLE_SHAPE = { embeddingLength: 512, blockCount: 4, headCount: 8, headCountKv: 4, feedForwardLength: 1408 };
const scratch = mkdtempSync(path.join(os.tmpdir(), "gpiot-bench-memory-"));
after(() => rmSync(scratch, { recursive: true, force: true }));

describe("bench: peak memory of the roles", () => {
  test("measures one role, three roles on one base and three model files, with contexts of one size", async (t) => {
    const figures = await measureRoleMemory({
      dir: scratch,
      sidecarPath,
      requirement: "Read a DHT22 every 5 seconds and alert over MQTT above 30 degrees",
      threads: 1,
      contextSize: 2048,
      // Wide enough that the weights (about 30 MB) stand far above the noise of a process's peak RSS (a few MB).
      shape: COMPARABLE_SHAPE,
    });
    t.diagnostic(JSON.stringify(figures));
    assert.equal(figures.contextSize, 2048);
    assert.ok(figures.modelFileMB > 10 && figures.modelFileMB < 100, `model file: ${figures.modelFileMB} MB`);
    for (const value of [figures.oneRoleMB, figures.threeRolesOneBaseMB, figures.threeRolesThreeModelsMB]) assert.ok(Number.isFinite(value) && value > figures.modelFileMB, JSON.stringify(figures));
    assert.ok(
      figures.threeRolesThreeModelsMB > figures.threeRolesOneBaseMB + figures.modelFileMB,
      `three model files hold the weights three times: ${JSON.stringify(figures)}`,
    );
    assert.deepEqual(readdirSync(path.join(scratch, "models")).filter((name) => name.includes(".tmp")), [], "no half-written model files");
  });
});
