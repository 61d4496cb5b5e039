/**
 * The Python GPIoT runs (the sandbox's supervisor and preamble, the checks, the isolation probe,
 * main.py's template) lives in real .py files in sidecar/python/, found from source and, after
 * the build, next to the bundles in dist/python/; no TypeScript hands Python source to `-c`.
 */
import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, test } from "node:test";
import { shippedPythonFolder, shippedPythonPath, type ShippedPython } from "../../sidecar/src/verify/pythonFiles";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
const SOURCE = path.join(ROOT, "sidecar", "python");

function typescriptFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => (entry.isDirectory() ? typescriptFiles(path.join(dir, entry.name)) : entry.name.endsWith(".ts") ? [path.join(dir, entry.name)] : []));
}

describe("shipped Python", () => {
  test("run from source, every file is found in sidecar/python/", () => {
    assert.equal(shippedPythonFolder(), SOURCE);
    for (const name of ["sandbox_supervisor.py", "sandbox_preamble.py", "isolation_probe.py", "static_check.py", "syntax_check.py", "python_info.py", "main_template.py"] as ShippedPython[])
      assert.ok(existsSync(shippedPythonPath(name)), name);
  });

  test("the build puts the same files next to the bundles", (t) => {
    const dist = path.join(ROOT, "dist", "python");
    if (!existsSync(path.join(ROOT, "dist", "sidecar.mjs"))) return t.skip("not built (npm run build)");
    const shipped = readdirSync(SOURCE).filter((name) => name.endsWith(".py")).sort();
    assert.deepEqual(readdirSync(dist).sort(), shipped);
    for (const name of shipped) assert.equal(readFileSync(path.join(dist, name), "utf8"), readFileSync(path.join(SOURCE, name), "utf8"), `${name} is up to date in dist/python (npm run build)`);
  });

  test("no TypeScript in the sidecar passes Python source to an interpreter's -c", () => {
    const offenders = typescriptFiles(path.join(ROOT, "sidecar", "src")).filter((file) => /["']-c["']/.test(readFileSync(file, "utf8")));
    assert.deepEqual(offenders.map((file) => path.relative(ROOT, file)), []);
  });
});
