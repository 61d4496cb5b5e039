import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, readdirSync, readFileSync, writeFileSync, mkdirSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, describe, test } from "node:test";
import { assembleProgram, collectRequirements, moduleNameFor, type ProgramPart } from "../../sidecar/src/pipeline/assembleProgram";
import { checkPythonSyntax } from "../../sidecar/src/pipeline/pythonSyntax";
import { writeProgram } from "../../sidecar/src/pipeline/writeProgram";

const scratch = mkdtempSync(path.join(os.tmpdir(), "gpiot-assemble-"));
after(() => rmSync(scratch, { recursive: true, force: true }));

const workingParts: ProgramPart[] = [
  {
    subTask: { name: "Scale the signal", problem: "Multiply", steps: ["Multiply by gain"] },
    spec: { target: "Write some code and documentation to scale", inputs: [{ name: "signal", type: "list", description: "values" }, { name: "gain", type: "float", description: "factor" }], outputs: [{ name: "scaled", type: "list", description: "scaled values" }] },
    artifact: { code: "def run(signal, gain):\n    return {'scaled': [value * gain for value in signal]}\n", documentation: "Scales.", requirements: ["numpy>=1.20", "os", "sklearn"] },
  },
  {
    subTask: { name: "Sum it up", problem: "Sum", steps: ["Sum the values"] },
    spec: { target: "Write some code and documentation to sum", inputs: [{ name: "scaled", type: "list", description: "values" }], outputs: [{ name: "total", type: "float", description: "sum" }] },
    artifact: { code: "def run(scaled):\n    return {'total': sum(scaled)}\n", documentation: "Sums.", requirements: ["rm -rf /", "scipy"] },
  },
];

const hostileParts: ProgramPart[] = [
  {
    subTask: { name: '"""\\\n; import os #', problem: "\u0000 weird ''' \"\"\"", steps: ["`"] },
    spec: { target: '"""', inputs: [{ name: "class", type: "x", description: '"""' }], outputs: [{ name: "1 bad-name", type: "y", description: "\\" }] },
    artifact: { code: "def run(:\n  ''' unterminated", documentation: "```", requirements: [] },
  },
];

const generator = { profile: "test", createdAt: "2026-01-01T00:00:00Z" };

describe("assembled program", () => {
  test("file set: a module per sub-task, main.py, README.md, requirements.txt, gpiot.json", () => {
    const files = assembleProgram({ requirement: "Scale and sum", limits: null, parts: workingParts, generator });
    assert.deepEqual(files.map((file) => file.path), ["task_01_scale_the_signal.py", "task_02_sum_it_up.py", "main.py", "README.md", "requirements.txt", "gpiot.json"]);
    assert.equal(files.find((file) => file.kind === "requirements")!.content, "numpy>=1.20\nscikit-learn\nscipy\n");
    const readme = files.find((file) => file.kind === "readme")!.content;
    assert.match(readme, /\*\*Input Specification\*\*/);
    assert.match(readme, /python3 main.py --input signal=\.\.\. --input gain=\.\.\./);
  });

  test("main.py and the modules' headers compile whatever the model wrote", async () => {
    const files = assembleProgram({ requirement: 'A """ requirement \\ with \u2028 odd text', limits: { text: '""" 200 MB', memoryMB: 200 }, parts: hostileParts, generator });
    const main = files.find((file) => file.kind === "main")!;
    const check = await checkPythonSyntax(main.content, "main.py");
    assert.equal(check.checked, true, check.message);
    assert.equal(check.ok, true, check.message);
    const moduleFile = files.find((file) => file.kind === "module")!;
    assert.equal(moduleFile.path, "task_01_import_os.py");
    const header = moduleFile.content.split("\ndef run(:")[0];
    assert.equal((await checkPythonSyntax(header, "header.py")).ok, true, "the generated header is only comments");
    const moduleCheck = await checkPythonSyntax(moduleFile.content, moduleFile.path);
    assert.equal(moduleCheck.ok, false);
    assert.ok((moduleCheck.line ?? 0) > 1);
  });

  test("main.py runs the modules in order and passes values by name", async () => {
    const out = path.join(scratch, "working");
    await writeProgram(out, assembleProgram({ requirement: "Scale and sum", limits: null, parts: workingParts, generator }));
    const stdout = execFileSync("python3", ["main.py", "--input", "signal=[1, 2, 3]", "--input", "gain=2", "--json"], { cwd: out, encoding: "utf8" });
    assert.deepEqual(JSON.parse(stdout), { total: 12 });
  });

  test("main.py names a missing input and a module that does not compile", async () => {
    const out = path.join(scratch, "failing");
    await writeProgram(out, assembleProgram({ requirement: "Scale and sum", limits: null, parts: [workingParts[0], hostileParts[0]], generator }));
    const run = (args: string[]) => {
      try {
        execFileSync("python3", ["main.py", ...args], { cwd: out, encoding: "utf8", stdio: "pipe" });
        return "";
      } catch (error) {
        return String((error as { stderr: string }).stderr);
      }
    };
    assert.match(run([]), /needs inputs that nothing provided: signal, gain/);
    assert.match(run(["--input", "signal=[1]", "--input", "gain=1"]), /cannot import sub-task 2/);
  });

  test("module names are stable, numbered identifiers", () => {
    assert.equal(moduleNameFor(0, "Load ECG (MIT-BIH)"), "task_01_load_ecg_mit_bih");
    assert.equal(moduleNameFor(11, "???"), "task_12");
    assert.deepEqual(collectRequirements([{ ...workingParts[0], artifact: { ...workingParts[0].artifact, requirements: ["cv2", "numpy==2.0", "numpy", "--index-url http://x"] } }]), ["numpy", "opencv-python"]);
  });
});

describe("writing a program", () => {
  const files = assembleProgram({ requirement: "Scale and sum", limits: null, parts: workingParts, generator });

  test("gpiot.json names the program and the SHA-256 of every other file", () => {
    const manifest = JSON.parse(files.find((file) => file.path === "gpiot.json")!.content);
    assert.match(manifest.programId, /^[0-9a-f-]{36}$/);
    assert.deepEqual(
      manifest.files.map((file: { path: string }) => file.path),
      files.filter((file) => file.path !== "gpiot.json").map((file) => file.path),
    );
    for (const entry of manifest.files) assert.equal(entry.sha256, createHash("sha256").update(files.find((file) => file.path === entry.path)!.content).digest("hex"));
    const again = assembleProgram({ requirement: "Scale and sum", limits: null, parts: workingParts, generator, programId: "fixed-id" });
    assert.equal(JSON.parse(again.at(-1)!.content).programId, "fixed-id");
  });

  test("an empty existing folder is used; a path outside the folder is refused", async () => {
    const out = path.join(scratch, "empty");
    mkdirSync(out);
    await writeProgram(out, files);
    assert.deepEqual(readdirSync(out).sort(), files.map((file) => file.path).sort());
    await assert.rejects(writeProgram(path.join(scratch, "escape"), [{ path: "../evil.py", content: "", kind: "module" }]), /outside the program folder/);
    assert.deepEqual(readdirSync(scratch).filter((name) => name.includes("gpiot-") || name === "evil.py" || name === "escape"), []);
  });
});
