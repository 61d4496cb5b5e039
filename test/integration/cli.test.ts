/** The `gpiot` command end to end on the tiny models, as a shell user runs it. */
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { JobEventSchema } from "../../sidecar/src/protocol";
import { cliPath, setUpTestModels, type TestModelSetup } from "../helpers/testModels";

const REQUIREMENT = "Detect heartbeats in a single-lead ECG from the MIT-BIH database and report the heart rate";
let setup: TestModelSetup;
let scratch: string;

function gpiot(args: string[], input?: string) {
  const result = spawnSync(process.execPath, [cliPath, ...args], { encoding: "utf8", input, timeout: 120_000 });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

before(async () => {
  setup = await setUpTestModels();
  scratch = mkdtempSync(path.join(os.tmpdir(), "gpiot-cli-test-"));
});
after(() => {
  rmSync(scratch, { recursive: true, force: true });
  rmSync(setup.dir, { recursive: true, force: true });
});

describe("gpiot synthesize", () => {
  test("--model FILE writes the program; main.py compiles", () => {
    const out = path.join(scratch, "hb");
    const { code, stdout, stderr } = gpiot(["synthesize", REQUIREMENT, "--out", out, "--model", setup.models.base, "--threads", "1"]);
    assert.equal(code, 0, stderr);
    assert.equal(stdout.trim(), out);
    assert.match(stderr, /Sub-tasks \(\d+\)/);
    assert.match(stderr, /Done in [\d.]+ s, \d+ tokens/);
    const files = readdirSync(out);
    for (const name of ["main.py", "README.md", "requirements.txt", "gpiot.json"]) assert.ok(files.includes(name), name);
    assert.ok(files.filter((name) => /^task_\d\d.*\.py$/.test(name)).length >= 2);
    execFileSync("python3", ["-m", "py_compile", path.join(out, "main.py")]);
    const manifest = JSON.parse(readFileSync(path.join(out, "gpiot.json"), "utf8"));
    assert.equal(manifest.requirement, REQUIREMENT);
    assert.equal(manifest.generator.profile, "file");
  });

  test("--profile with --json prints one valid event per line, ending with jobFinished", () => {
    const out = path.join(scratch, "json");
    const { code, stdout, stderr } = gpiot(["synthesize", "--file", "-", "--out", out, "--manifest", setup.manifestPath, "--profile", "tiny", "--json", "--quiet", "-c", "<= 50 MB RAM"], REQUIREMENT);
    assert.equal(code, 0, stderr);
    assert.equal(stderr, "", "--quiet prints nothing on stderr");
    const events = stdout.trim().split("\n").map((line) => JobEventSchema.parse(JSON.parse(line)));
    assert.equal(events[0].type, "jobQueued");
    assert.equal(events.at(-1)!.type, "jobFinished");
    assert.ok(events.some((event) => event.type === "codeDelta"));
    assert.match(readFileSync(path.join(out, "README.md"), "utf8"), /50 MB/);
  });

  test("exit codes name the problem", () => {
    const taken = path.join(scratch, "taken");
    mkdirSync(taken);
    writeFileSync(path.join(taken, "keep.txt"), "keep");
    const model = ["--model", setup.models.base, "--threads", "1"];
    const cases: [string[], number, RegExp][] = [
      [["synthesize", "", "--out", path.join(scratch, "e"), ...model], 3, /requirement is empty/],
      [["synthesize", "hi", "--out", path.join(scratch, "e"), ...model], 3, /nothing to build/],
      [["synthesize", REQUIREMENT, "--out", taken, ...model], 4, /already exists/],
      [["synthesize", REQUIREMENT, "--out", path.join(scratch, "m"), "--model", path.join(scratch, "absent.gguf")], 5, /not found/],
      [["synthesize", REQUIREMENT, "--out", path.join(scratch, "m"), "--manifest", setup.manifestPath, "--profile", "mismatched"], 5, /does not match the base model/],
      [["synthesize", REQUIREMENT], 2, /--out DIR is required/],
      [["synthesize", REQUIREMENT, "--out", "x", "--threads", "many"], 2, /--threads expects a number/],
      [["synthesize", REQUIREMENT, "--out", "x", "--bogus"], 2, /Unknown option '--bogus'/],
      [["frobnicate"], 2, /unknown command "frobnicate"/],
    ];
    for (const [args, expected, message] of cases) {
      const { code, stderr } = gpiot(args);
      assert.equal(code, expected, `${args.join(" ")}: ${stderr}`);
      assert.match(stderr, message);
    }
    assert.deepEqual(readdirSync(taken), ["keep.txt"]);
    assert.equal(existsSync(path.join(scratch, "e")), false);
  });

  test("--help, --version and models list", () => {
    const help = gpiot(["--help"]);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /gpiot synthesize "<requirement>" --out DIR/);
    assert.match(gpiot(["--version"]).stdout, /^\d+\.\d+\.\d+/);
    const list = gpiot(["models", "list", "--manifest", setup.manifestPath]);
    assert.equal(list.code, 0, list.stderr);
    assert.match(list.stdout, /\* tiny\s+ready/);
    assert.match(list.stdout, /missing\s+missing/);
  });

  test("SIGINT cancels the job and leaves no files", async () => {
    const out = path.join(scratch, "interrupted");
    const { spawn } = await import("node:child_process");
    const child = spawn(process.execPath, [cliPath, "synthesize", REQUIREMENT, "--out", out, "--model", setup.models.base, "--threads", "1", "--json"], { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let interrupted = false;
    await new Promise<void>((resolve) => {
      child.stdout.on("data", (chunk) => {
        stdout += chunk;
        if (stdout.includes('"textDelta"') && !interrupted) {
          interrupted = true;
          child.kill("SIGINT");
          resolve();
        }
      });
      child.on("exit", () => resolve());
    });
    const code = await new Promise<number | null>((resolve) => (child.exitCode !== null ? resolve(child.exitCode) : child.on("exit", resolve)));
    assert.equal(code, 130);
    assert.match(stdout, /"jobFailed".*"CANCELLED"/);
    assert.equal(existsSync(out), false);
  });
});
