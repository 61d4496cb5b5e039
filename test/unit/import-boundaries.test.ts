/**
 * The boundaries between the parts: the extension reaches the sidecar only through the protocol,
 * the schemas and sidecar/src/shared/, and never loads node-llama-cpp; the sidecar never imports
 * vscode; shared helpers import nothing of the engine. The lint rules that enforce them are tested
 * on probe sources, then the real tree and the extension's bundle are checked.
 */
import assert from "node:assert/strict";
import path from "node:path";
import { describe, test } from "node:test";
import * as esbuild from "esbuild";
import { ESLint } from "eslint";
import tseslint from "typescript-eslint";
import { repoRoot } from "../helpers/testModels";

// The import rules need no type information; without it a probe file need not exist on disk.
const eslint = new ESLint({ cwd: repoRoot, overrideConfig: [tseslint.configs.disableTypeChecked] });

async function flagged(file: string, code: string, ruleId: string): Promise<number[]> {
  const [result] = await eslint.lintText(code, { filePath: path.join(repoRoot, file) });
  assert.deepEqual(result.messages.filter((message) => message.fatal), [], `${file} parses`);
  return result.messages.filter((message) => message.ruleId === ruleId).map((message) => message.line);
}

describe("import boundaries (lint rules)", () => {
  test("the extension imports the protocol, the schemas and shared helpers, nothing else of the sidecar, and never node-llama-cpp", async () => {
    const code = [
      'import { GpiotRpcClient } from "../../sidecar/src/protocol";',
      'import { SubTaskSchema } from "../../sidecar/src/schemas";',
      'import { isNonEmptyDirectory } from "../../sidecar/src/shared/folders";',
      'import { writeProgram } from "../../sidecar/src/pipeline/writeProgram";',
      'import { SynthesisEngine } from "../../sidecar/src/engine/engine";',
      'import { getLlama } from "node-llama-cpp";',
      'import binary from "@node-llama-cpp/linux-x64";',
      'import * as vscode from "vscode";',
      "export { GpiotRpcClient, SubTaskSchema, isNonEmptyDirectory, writeProgram, SynthesisEngine, getLlama, binary, vscode };",
    ].join("\n");
    assert.deepEqual(await flagged("extension/src/boundaryProbe.ts", code, "no-restricted-imports"), [4, 5, 6, 7]);
  });

  test("the sidecar never imports vscode or the extension's client library", async () => {
    const code = ['import * as vscode from "vscode";', 'import { LanguageClient } from "vscode-languageclient/node";', 'import { createConnection } from "vscode-languageserver/node";', "export { vscode, LanguageClient, createConnection };"].join("\n");
    assert.deepEqual(await flagged("sidecar/src/server/boundaryProbe.ts", code, "no-restricted-imports"), [1, 2]);
  });

  test("shared helpers import only Node's built-ins, zod and each other", async () => {
    const code = ['import { readdir } from "node:fs/promises";', 'import { z } from "zod";', 'import { other } from "./other";', 'import { SynthesisEngine } from "../engine/engine";', 'import { getLlama } from "node-llama-cpp";', "export { readdir, z, other, SynthesisEngine, getLlama };"].join("\n");
    assert.deepEqual(await flagged("sidecar/src/shared/boundaryProbe.ts", code, "no-restricted-imports"), [4, 5]);
  });

  test("Node children run from files: node -e cannot run node-llama-cpp's binding self-test", async () => {
    const code = [
      'import { spawn, execSync } from "node:child_process";',
      'spawn(process.execPath, ["--input-type=module", "-e", "code"]);',
      'spawn("node", ["-e", "code"]);',
      'execSync("node -e code");',
      'spawn(process.execPath, ["bench/oneRoleProcess.mjs", "-p", "tiny"]);',
      'spawn(process.execPath, ["--import", "tsx", "script.ts"]);',
    ].join("\n");
    assert.deepEqual([...new Set(await flagged("bench/boundaryProbe.ts", code, "no-restricted-syntax"))], [2, 3, 4]);
  });
});

describe("import boundaries (the tree as it is)", () => {
  test("no source breaks an import rule", async () => {
    const results = await eslint.lintFiles(["extension/src/**/*.ts", "sidecar/src/**/*.ts"]);
    const broken = results.flatMap((result) =>
      result.messages.filter((message) => message.ruleId === "no-restricted-imports").map((message) => `${path.relative(repoRoot, result.filePath)}:${message.line}: ${message.message}`),
    );
    assert.deepEqual(broken, []);
  });

  test("the extension's bundle holds neither node-llama-cpp nor engine-side sidecar modules", async () => {
    const { metafile } = await esbuild.build({
      entryPoints: [path.join(repoRoot, "extension/src/extension.ts")],
      bundle: true,
      platform: "node",
      format: "cjs",
      external: ["vscode"],
      write: false,
      metafile: true,
      logLevel: "silent",
    });
    const inputs = Object.keys(metafile.inputs);
    assert.ok(inputs.some((input) => input.endsWith("sidecar/src/protocol.ts")), "the bundle was read");
    assert.deepEqual(inputs.filter((input) => /node_modules\/(@?node-llama-cpp)\//.test(input)), []);
    assert.deepEqual(inputs.filter((input) => /sidecar\/src\/(engine|models|pipeline|server|cli|client|peft|gguf|bench)\//.test(input)), []);
  });
});
