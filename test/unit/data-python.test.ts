/** The Python helpers of `gpiot data`: they compile, pass the linter, and turn doctest examples into run() modules. */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import path from "node:path";
import { describe, test } from "node:test";
import { repoRoot } from "../helpers/testModels";

const files = [
  path.join(repoRoot, "sidecar", "python", "harvest_docs.py"),
  path.join(repoRoot, "sidecar", "python", "check_sample.py"),
  path.join(repoRoot, "scripts", "make-data-fixtures.py"),
  path.join(repoRoot, "test", "fixtures", "data", "pkg", "gpiot_data_fixture", "__init__.py"),
];
const fixturePackage = path.join(repoRoot, "test", "fixtures", "data", "pkg");

function linter(): { command: string; args: string[] } | null {
  if (spawnSync("ruff", ["--version"]).status === 0) return { command: "ruff", args: ["check", "--isolated", "--line-length", "160"] };
  if (spawnSync("python3", ["-m", "ruff", "--version"]).status === 0) return { command: "python3", args: ["-m", "ruff", "check", "--isolated", "--line-length", "160"] };
  if (spawnSync("python3", ["-m", "pyflakes", "--version"]).status === 0) return { command: "python3", args: ["-m", "pyflakes"] };
  return null;
}

const found = linter();

describe("gpiot data Python helpers", () => {
  test("they compile", () => {
    const result = spawnSync("python3", ["-c", "import sys\nfor f in sys.argv[1:]: compile(open(f, encoding='utf-8').read(), f, 'exec')", ...files], { encoding: "utf8" });
    assert.equal(result.status, 0, result.stderr);
  });

  test("they pass the linter (ruff, else pyflakes)", { skip: found ? false : "no Python linter installed here (pip install ruff)" }, () => {
    const result = spawnSync(found!.command, [...found!.args, ...files], { encoding: "utf8" });
    assert.equal(result.status, 0, `${result.stdout}${result.stderr}`);
  });

  test("harvest_docs.py: doctest examples become run() modules (D2) and run(inputs) modules (D3); nothing is executed", () => {
    const result = spawnSync("python3", [files[0], "--functions", "gpiot_data_fixture.moving_average,gpiot_data_fixture.heart_rate,gpiot_data_fixture.absent"], {
      encoding: "utf8",
      env: { ...process.env, PYTHONPATH: fixturePackage },
    });
    assert.equal(result.status, 0, result.stderr);
    const lines = result.stdout.trim().split("\n").map((line) => JSON.parse(line));
    assert.deepEqual(lines.map((line) => line.type), ["package", "skipped", "function", "function", "done"]);
    assert.equal(lines[1].name, "gpiot_data_fixture.absent");
    const average = lines[2];
    assert.equal(average.signature, "moving_average(values, width=3)");
    assert.equal(average.summary, "Average each window of a signal.");
    assert.deepEqual(average.parameters.map((parameter: { name: string; type: string }) => [parameter.name, parameter.type]), [["values", "list of float"], ["width", "int"]]);
    assert.deepEqual(average.returns.map((parameter: { name: string }) => parameter.name), ["averages"]);
    const [sample] = average.samples;
    assert.equal(sample.narrative, "smooth a short ramp with windows of two samples");
    assert.equal(sample.d2.code, 'from gpiot_data_fixture import moving_average\n\n\ndef run() -> dict:\n    signal = [1.0, 2.0, 3.0, 4.0]\n    result = moving_average(signal, width=2)\n    return {"result": result}\n');
    assert.equal(sample.d3.code, 'from gpiot_data_fixture import moving_average\n\n\ndef run(signal) -> dict:\n    result = moving_average(signal, width=2)\n    return {"result": result}\n');
    assert.deepEqual(sample.d3.inputs, [{ name: "signal", source: "signal = [1.0, 2.0, 3.0, 4.0]" }]);
    assert.match(average.d1.code, /return \{"signature": "moving_average" \+ str\(inspect\.signature\(moving_average\)\)\}/);
    assert.equal(lines[3].samples[0].d3, null, "no input to hoist: no D3");
  });

  test("harvest_docs.py: a package that is not installed stops it with exit status 3 and names the package", () => {
    const result = spawnSync("python3", [files[0], "--packages", "gpiot_no_such_package"], { encoding: "utf8" });
    assert.equal(result.status, 3);
    assert.deepEqual(JSON.parse(result.stdout.trim()), { type: "error", code: "not_installed", package: "gpiot_no_such_package", message: `gpiot_no_such_package is not installed in ${JSON.parse(JSON.stringify(spawnSync("python3", ["-c", "import sys; print(sys.executable)"], { encoding: "utf8" }).stdout.trim()))}` });
  });
});
