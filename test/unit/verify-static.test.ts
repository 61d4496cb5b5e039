/**
 * Static checks (no generated code runs), sample inputs from specs, failure location, and the
 * order of failures that picks the best version.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { assembleProgram, type ProgramPart } from "../../sidecar/src/pipeline/assembleProgram";
import type { ResourceLimits } from "../../sidecar/src/schemas";
import { compareReports, type VerifyReport } from "../../sidecar/src/verify/report";
import { deriveInputs, externalInputs } from "../../sidecar/src/verify/sampleInputs";
import { locateRunFailure, readProgramManifest, verifyProgram } from "../../sidecar/src/verify/verifier";

const settings = { python: "python3", timeoutMs: 30_000, memoryMB: 4096 };

function part(name: string, inputs: [string, string][], outputs: string[], code: string, requirements: string[] = []): ProgramPart {
  return {
    subTask: { name, problem: `${name} problem`, steps: ["step"] },
    spec: {
      target: `Write some code and documentation to ${name}`,
      inputs: inputs.map(([inputName, type]) => ({ name: inputName, type, description: inputName })),
      outputs: outputs.map((outputName) => ({ name: outputName, type: "np.ndarray", description: outputName })),
    },
    artifact: { code, documentation: "doc", requirements },
  };
}

function files(parts: ProgramPart[], limits: ResourceLimits | null = null) {
  return assembleProgram({ requirement: "Filter a signal and find its peaks", limits, parts, generator: { profile: "test", createdAt: "2026-01-01T00:00:00Z" } });
}

describe("static checks", () => {
  test("a sound program passes without running", async () => {
    const program = files([
      part("filter", [["signal", "np.ndarray of shape (N,)"], ["fs", "float"]], ["filtered"], "import numpy as np\nfrom scipy.signal import butter\nimport json\n\ndef run(signal, fs):\n    return {'filtered': np.asarray(signal)}\n", ["numpy", "scipy"]),
      part("peaks", [["filtered", "np.ndarray"]], ["peaks"], "try:\n    import not_installed_optional\nexcept ImportError:\n    not_installed_optional = None\n\ndef run(filtered, **kwargs):\n    return {'peaks': []}\n"),
    ]);
    const { report, run } = await verifyProgram({ files: program, execute: false, settings });
    assert.equal(report.ok, true, JSON.stringify(report.staticIssues));
    assert.equal(report.executed, false);
    assert.equal(run, null);
    assert.deepEqual(report.staticIssues.filter((issue) => issue.severity === "error"), []);
    assert.ok(report.python?.version.startsWith("3."));
  });

  test("syntax, imports, requirements and run() signatures", async () => {
    const program = files([
      part("load", [["path", "str"]], ["signal"], "def run(path:\n    return {}\n"),
      part("filter", [["signal", "np.ndarray"], ["fs", "float"]], ["filtered"], "import numpy as np\nimport surely_missing_pkg\nimport scipy.no_such_submodule\n\ndef run(signal):\n    return {}\n", ["surely-missing-pkg"]),
      part("detect", [["filtered", "np.ndarray"]], ["peaks"], "import numpy\n\ndef run(filtered, threshold):\n    return {}\n"),
      part("report", [["peaks", "list"]], ["rate"], "def compute(peaks):\n    return 1\n"),
      part("extra", [["rate", "float"]], ["text"], "import numpy\n\nasync def run(rate):\n    return {}\n"),
    ]);
    const { report } = await verifyProgram({ files: program, execute: true, settings });
    assert.equal(report.ok, false);
    assert.equal(report.executed, false, "static failures stop before running");
    assert.equal(report.failure?.kind, "static");
    assert.deepEqual(report.failure?.subTaskIndexes, [0, 1, 2, 3, 4]);
    const byIndex = (index: number) => report.staticIssues.filter((issue) => issue.subTaskIndex === index);
    assert.equal(byIndex(0)[0].kind, "syntax");
    assert.ok(byIndex(0)[0].line);
    const imports = byIndex(1).filter((issue) => issue.kind === "import");
    assert.equal(imports.length, 2);
    assert.match(imports.find((issue) => /surely_missing_pkg/.test(issue.message))!.message, /requirements\.txt lists it but it is not installed/);
    assert.match(imports.find((issue) => /no_such_submodule/.test(issue.message))!.message, /does not exist/);
    assert.match(byIndex(1).find((issue) => issue.kind === "signature")!.message, /does not accept the input fs/);
    assert.match(byIndex(2).find((issue) => issue.kind === "signature")!.message, /requires threshold/);
    assert.ok(byIndex(2).some((issue) => issue.kind === "requirements" && issue.severity === "warning"), "numpy imported but not listed: a warning");
    assert.match(byIndex(3)[0].message, /defines no top-level run\(\)/);
    assert.ok(byIndex(4).some((issue) => issue.kind === "signature" && /async/.test(issue.message)));
  });

  test("import failures alone are their own kind", async () => {
    const program = files([part("load", [["x", "float"]], ["y"], "import surely_missing_pkg\n\ndef run(x):\n    return {'y': x}\n")]);
    const { report } = await verifyProgram({ files: program, execute: false, settings });
    assert.equal(report.failure?.kind, "import");
    assert.match(report.failure!.message, /neither installed .* nor listed in requirements\.txt/);
  });
});

describe("sample inputs from specs", () => {
  test("external inputs are those no earlier step produces", () => {
    const pipeline = [
      { module: "a", name: "a", inputs: ["signal", "fs"], outputs: ["filtered"] },
      { module: "b", name: "b", inputs: ["filtered", "fs", "threshold"], outputs: ["peaks"] },
    ];
    assert.deepEqual(
      externalInputs(pipeline).map((input) => input.name),
      ["signal", "fs", "threshold"],
    );
  });

  test("types and shapes become values; users' values and data files win", () => {
    const inputs = externalInputs(
      [{ module: "a", name: "a", inputs: ["ecg", "fs", "window", "imu", "record_path", "label", "enabled", "config", "mystery"], outputs: ["out"] }],
      [
        [
          { name: "ecg", type: "np.ndarray (N,)", description: "" },
          { name: "fs", type: "float", description: "" },
          { name: "window", type: "int", description: "" },
          { name: "imu", type: "numpy array of shape (N, 6)", description: "" },
          { name: "record path", type: "str", description: "" },
          { name: "label", type: "str", description: "" },
          { name: "enabled", type: "bool", description: "" },
          { name: "config", type: "dict", description: "" },
          { name: "mystery", type: "SomeClass", description: "" },
        ],
      ],
    );
    const derived = deriveInputs({ inputs, user: { window: 32 }, dataFile: "/data/rec.csv" });
    const values = derived.values as Record<string, any>;
    assert.equal(values.ecg.length, 512);
    assert.equal(typeof values.ecg[0], "number");
    assert.equal(values.fs, 100);
    assert.equal(values.window, 32);
    assert.equal(values.imu.length, 512);
    assert.equal(values.imu[0].length, 6);
    assert.equal(values.record_path, "/data/rec.csv");
    assert.equal(values.label, "sample");
    assert.equal(values.enabled, true);
    assert.deepEqual(values.config, {});
    assert.equal(values.mystery.length, 512);
    assert.deepEqual(
      Object.fromEntries(derived.described.map((input) => [input.name, input.source])),
      { ecg: "derived", fs: "derived", window: "user", imu: "derived", record_path: "dataFile", label: "derived", enabled: "derived", config: "derived", mystery: "derived" },
    );
    assert.deepEqual(deriveInputs({ inputs }).values, deriveInputs({ inputs }).values, "deterministic");
    const withoutData = deriveInputs({ inputs });
    assert.equal((withoutData.values as Record<string, unknown>).record_path, "sample_record_path.csv");
    assert.equal(withoutData.files[0].path, "sample_record_path.csv");
  });

  test("a derived run feeds the program and checks the stated limits", async () => {
    const program = files(
      [
        part("scale", [["signal", "np.ndarray (N,)"], ["gain", "float"]], ["scaled"], "import numpy as np\n\ndef run(signal, gain):\n    return {'scaled': np.asarray(signal) * gain}\n"),
        part("big", [["scaled", "np.ndarray"]], ["energy"], "import numpy as np\n\ndef run(scaled):\n    block = np.ones((64, 1024, 1024))\n    block[::4096] = 1\n    return {'energy': float(np.sum(np.square(scaled))) + float(block[0, 0, 0])}\n"),
      ],
      { text: "<= 100 MB", memoryMB: 100 },
    );
    const { report, run } = await verifyProgram({ files: program, execute: true, settings });
    assert.equal(report.executed, true);
    assert.equal(report.execution?.exitCode, 0, report.execution?.stderr);
    assert.equal(typeof run?.outputs?.energy, "number");
    assert.equal(report.failure?.kind, "resource");
    assert.equal(report.resources?.memory?.ok, false);
    assert.ok((report.resources?.memory?.measuredMB ?? 0) > 400);
    assert.deepEqual(report.failure?.subTaskIndexes, [1], "the step after which the peak grew");
    assert.deepEqual(report.execution?.inputs.map((input) => input.name), ["signal", "gain"]);
  });
});

describe("failure location and ranking", () => {
  const pipeline = readProgramManifest(files([part("one", [["x", "float"]], ["y"], "def run(x):\n    return {}\n"), part("two", [["y", "float"]], ["z"], "def run(y):\n    return {}\n")])).pipeline;

  test("traceback module first, then main.py's messages, then the running step", () => {
    const error = (module: string | null, message = "boom") => ({ type: "ValueError", message, traceback: "", module, line: null });
    assert.deepEqual(locateRunFailure({ error: error("task_02_two"), stderr: "", lastModule: null }, pipeline), [1]);
    assert.deepEqual(locateRunFailure({ error: error(null), stderr: "error: sub-task 2 (two, task_02_two.py) defines no run() function", lastModule: null }, pipeline), [1]);
    assert.deepEqual(locateRunFailure({ error: error(null, "cannot import sub-task 1 (one, task_01_one.py):\n..."), stderr: "", lastModule: null }, pipeline), [0]);
    assert.deepEqual(locateRunFailure({ error: null, stderr: "", lastModule: "task_01_one" }, pipeline), [0]);
    assert.deepEqual(locateRunFailure({ error: null, stderr: "nothing useful", lastModule: null }, pipeline), []);
  });

  test("static < import < runtime < resource < passed; fewer static errors break ties", () => {
    const report = (kind: "static" | "import" | "runtime" | "resource" | null, errors = 0): VerifyReport => ({
      ok: kind === null,
      executed: kind === "runtime" || kind === "resource" || kind === null,
      failure: kind ? { kind, message: kind, subTaskIndexes: [0], detail: "" } : null,
      staticIssues: Array.from({ length: errors }, () => ({ file: "a.py", subTaskIndex: 0, kind: "syntax" as const, severity: "error" as const, message: "x" })),
      execution: null,
      resources: null,
      python: null,
      ms: 1,
    });
    const ordered = [report("static", 3), report("static", 1), report("import"), report("runtime"), report("resource"), report(null)];
    for (let i = 1; i < ordered.length; i++) assert.ok(compareReports(ordered[i], ordered[i - 1]) > 0, `${i} beats ${i - 1}`);
    assert.equal(compareReports(report("runtime"), report("runtime")), 0);
  });
});
