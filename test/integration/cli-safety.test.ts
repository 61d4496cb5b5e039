/**
 * The `gpiot` command as a user meets it when something is wrong: folders it must not replace,
 * a write killed half-way, filesystems that refuse the write, flags and requirements that cannot
 * work. Everything that can be refused without a model is refused before one is loaded, in one
 * line that names the problem and what to do.
 */
import assert from "node:assert/strict";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { cliPath, repoRoot, setUpTestModels, type TestModelSetup } from "../helpers/testModels";

const REQUIREMENT = "Detect heartbeats in a single-lead ECG and report the heart rate";
let setup: TestModelSetup;
let scratch: string;
let model: string[];

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function gpiot(args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv; timeout?: number } = {}): Run {
  const result = spawnSync(process.execPath, [cliPath, ...args], { encoding: "utf8", cwd: options.cwd, env: options.env ?? process.env, timeout: options.timeout ?? 180_000 });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

/** The same command inside a fresh mount namespace where `mountPoint` is a tmpfs with these options. */
function gpiotOnTmpfs(mountPoint: string, mountOptions: string, args: string[]): Run {
  const command = `mount -t tmpfs -o ${mountOptions} gpiot-test "$1" && shift && exec "$@"`;
  const result = spawnSync("unshare", ["--user", "--map-root-user", "--mount", "sh", "-c", command, "sh", mountPoint, process.execPath, cliPath, ...args], { encoding: "utf8", timeout: 180_000 });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

function canUseTmpfsNamespace(): boolean {
  const probe = mkdtempSync(path.join(os.tmpdir(), "gpiot-ns-probe-"));
  try {
    return spawnSync("unshare", ["--user", "--map-root-user", "--mount", "sh", "-c", 'mount -t tmpfs -o size=64k none "$0"', probe]).status === 0;
  } finally {
    rmSync(probe, { recursive: true, force: true });
  }
}

/** A refusal before the long work: exit code, one line on stderr, and no model was loaded. */
function assertRefusedUpFront(run: Run, code: number, message: RegExp): void {
  assert.equal(run.code, code, run.stderr);
  const lines = run.stderr.trim().split("\n");
  assert.equal(lines.length, 1, `one line, got:\n${run.stderr}`);
  assert.match(lines[0], message);
  assert.doesNotMatch(run.stderr, /Loading models|Models ready|gpiot-partial|gpiot-previous|    at /);
}

function entries(dir: string): string[] {
  return readdirSync(dir).sort();
}

before(async () => {
  setup = await setUpTestModels();
  scratch = mkdtempSync(path.join(os.tmpdir(), "gpiot-cli-safety-"));
  model = ["--model", setup.models.base, "--threads", "1"];
});

after(() => {
  rmSync(scratch, { recursive: true, force: true });
  rmSync(setup.dir, { recursive: true, force: true });
});

describe("folders GPIoT must not replace", () => {
  test("--out . --overwrite in a project: refused, the project's files stay", () => {
    const project = path.join(scratch, "project");
    mkdirSync(path.join(project, "src"), { recursive: true });
    writeFileSync(path.join(project, "src", "app.c"), "int main(void) { return 0; }\n");
    writeFileSync(path.join(project, "notes.md"), "my notes\n");
    const run = gpiot(["synthesize", REQUIREMENT, "--out", ".", "--overwrite", ...model], { cwd: project });
    assertRefusedUpFront(run, 4, /never writes a program into .*project: it is the current folder/);
    assert.deepEqual(entries(project), ["notes.md", "src"]);
    assert.equal(readFileSync(path.join(project, "src", "app.c"), "utf8"), "int main(void) { return 0; }\n");
    assert.deepEqual(entries(scratch).filter((name) => name.includes("gpiot-")), []);
  });

  test("--out / , the home folder and a repository root: refused whatever the flags", () => {
    const home = path.join(scratch, "home");
    mkdirSync(home);
    writeFileSync(path.join(home, ".bashrc"), "keep\n");
    const repository = path.join(scratch, "repository");
    mkdirSync(path.join(repository, ".git"), { recursive: true });
    writeFileSync(path.join(repository, "README"), "keep\n");
    const env = { ...process.env, HOME: home };
    assertRefusedUpFront(gpiot(["synthesize", REQUIREMENT, "--out", "/", "--overwrite", ...model], { env }), 4, /root of the file system/);
    assertRefusedUpFront(gpiot(["synthesize", REQUIREMENT, "--out", home, "--overwrite", ...model], { env }), 4, /your home folder/);
    assertRefusedUpFront(gpiot(["synthesize", REQUIREMENT, "--out", repository, "--overwrite", ...model], { env }), 4, /root of a repository/);
    assert.deepEqual(entries(home), [".bashrc"]);
    assert.deepEqual(entries(repository), [".git", "README"]);
    assert.equal(existsSync("/.gpiot-write.json"), false);
  });

  test("a folder GPIoT wrote: replaced only with --overwrite; files the user changed only after --yes or a yes", () => {
    const out = path.join(scratch, "hb");
    assert.equal(gpiot(["synthesize", REQUIREMENT, "--out", out, ...model]).code, 0);
    writeFileSync(path.join(out, "notes.txt"), "my notes\n");
    const firstManifest = readFileSync(path.join(out, "gpiot.json"), "utf8");

    assertRefusedUpFront(gpiot(["synthesize", REQUIREMENT, "--out", out, ...model]), 4, /holds another program GPIoT wrote; allow overwriting \(CLI: --overwrite\)/);
    const replaced = gpiot(["synthesize", REQUIREMENT, "--out", out, "--overwrite", ...model]);
    assert.equal(replaced.code, 0, replaced.stderr);
    assert.notEqual(readFileSync(path.join(out, "gpiot.json"), "utf8"), firstManifest, "the program was replaced");
    assert.equal(readFileSync(path.join(out, "notes.txt"), "utf8"), "my notes\n", "the user's file stays");

    writeFileSync(path.join(out, "main.py"), "# my changes\n");
    const refused = gpiot(["synthesize", REQUIREMENT, "--out", out, "--overwrite", ...model]);
    assertRefusedUpFront(refused, 4, /You changed files GPIoT wrote in .*hb \(main\.py\).*--overwrite --yes/);
    assert.equal(readFileSync(path.join(out, "main.py"), "utf8"), "# my changes\n");

    const confirmed = gpiot(["synthesize", REQUIREMENT, "--out", out, "--overwrite", "--yes", ...model]);
    assert.equal(confirmed.code, 0, confirmed.stderr);
    assert.notEqual(readFileSync(path.join(out, "main.py"), "utf8"), "# my changes\n");
    assert.equal(readFileSync(path.join(out, "notes.txt"), "utf8"), "my notes\n");
    assert.deepEqual(entries(scratch).filter((name) => name.includes(".gpiot-")), []);
  });

  test("on a terminal the CLI asks: no keeps everything, yes replaces", () => {
    const out = path.join(scratch, "asked");
    assert.equal(gpiot(["synthesize", REQUIREMENT, "--out", out, ...model]).code, 0);
    writeFileSync(path.join(out, "main.py"), "# my changes\n");
    const inTerminal = (answers: string, args: string[]) =>
      spawnSync("python3", [path.join(repoRoot, "test", "helpers", "run_in_terminal.py"), answers, process.execPath, cliPath, ...args], { encoding: "utf8", timeout: 180_000 });

    const declined = inTerminal("y,n", ["synthesize", REQUIREMENT, "--out", out, ...model]);
    assert.equal(declined.status, 4, declined.stdout);
    assert.match(declined.stdout, /holds a program GPIoT wrote before\. Replace GPIoT's files in it/);
    assert.match(declined.stdout, /You changed files GPIoT wrote in .*asked: main\.py\. Replace them/);
    assert.equal(readFileSync(path.join(out, "main.py"), "utf8"), "# my changes\n");

    const accepted = inTerminal("y,y", ["synthesize", REQUIREMENT, "--out", out, ...model]);
    assert.equal(accepted.status, 0, accepted.stdout);
    assert.notEqual(readFileSync(path.join(out, "main.py"), "utf8"), "# my changes\n");
  });
});

describe("a write killed half-way", () => {
  function startWriter(outDir: string): ChildProcess {
    return spawn(process.execPath, ["--import", "tsx", path.join(repoRoot, "test", "helpers", "writeManyFiles.ts"), outDir, "3000"], { cwd: repoRoot, stdio: "ignore" });
  }

  async function whenStagingHasFiles(parent: string, minimum: number): Promise<string> {
    for (let attempt = 0; attempt < 3000; attempt++) {
      const staging = readdirSync(parent).find((name) => name.includes(".gpiot-partial-"));
      if (staging && readdirSync(path.join(parent, staging)).length >= minimum) return staging;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    throw new Error("the writer never got going");
  }

  test("its hidden staging folder is removed by the next run into the same folder, once its writer is gone", async () => {
    const parent = path.join(scratch, "killed");
    mkdirSync(parent);
    const writer = startWriter(path.join(parent, "big"));
    const exited = new Promise((resolve) => writer.on("exit", resolve));
    const staging = await whenStagingHasFiles(parent, 50);

    // Paused, the writer is still alive: the next run must leave its folder alone.
    writer.kill("SIGSTOP");
    const whileAlive = gpiot(["synthesize", REQUIREMENT, "--out", path.join(parent, "hb1"), ...model]);
    assert.equal(whileAlive.code, 0, whileAlive.stderr);
    assert.ok(existsSync(path.join(parent, staging)), "a live writer's staging folder is kept");

    writer.kill("SIGKILL");
    await exited;
    assert.ok(existsSync(path.join(parent, staging)), "SIGKILL leaves the staging folder behind");
    const next = gpiot(["synthesize", REQUIREMENT, "--out", path.join(parent, "hb2"), ...model]);
    assert.equal(next.code, 0, next.stderr);
    assert.deepEqual(entries(parent), ["hb1", "hb2"], "no hidden staging folder is left");
  });
});

describe("filesystem errors: one line with the user's path and what to do", () => {
  test("a file in the way (ENOTDIR, EEXIST)", () => {
    const file = path.join(scratch, "a-file");
    writeFileSync(file, "x");
    assertRefusedUpFront(gpiot(["synthesize", REQUIREMENT, "--out", path.join(file, "program"), ...model]), 4, /Cannot write the program to .*a-file\/program: .*a-file is a file, not a folder\. Choose another path\./);
    assertRefusedUpFront(gpiot(["synthesize", REQUIREMENT, "--out", file, "--overwrite", ...model]), 4, /a-file is a file, not a folder; choose a folder/);
  });

  test("permission denied (EACCES), as an unprivileged user", { skip: process.getuid?.() !== 0 || spawnSync("setpriv", ["--version"]).status !== 0 }, () => {
    const locked = path.join(scratch, "locked");
    mkdirSync(locked);
    chmodSync(locked, 0o755);
    chmodSync(scratch, 0o755);
    chmodSync(setup.dir, 0o755);
    const result = spawnSync("setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups", process.execPath, cliPath, "synthesize", REQUIREMENT, "--out", path.join(locked, "program"), ...model], { encoding: "utf8", cwd: "/", timeout: 60_000 });
    assertRefusedUpFront({ code: result.status, stdout: result.stdout, stderr: result.stderr }, 4, /Cannot write the program to .*locked\/program: permission denied on .*locked\. Choose a folder you can write to/);
    assert.deepEqual(readdirSync(locked), []);
  });

  test("a read-only file system (EROFS)", { skip: !canUseTmpfsNamespace() }, () => {
    const mountPoint = path.join(scratch, "read-only");
    mkdirSync(mountPoint);
    const run = gpiotOnTmpfs(mountPoint, "ro,size=64k", ["synthesize", REQUIREMENT, "--out", path.join(mountPoint, "program"), ...model]);
    assertRefusedUpFront(run, 4, /Cannot write the program to .*read-only\/program: .*read-only is on a read-only file system\. Choose a folder on a writable disk\./);
  });

  test("a full disk (ENOSPC) during the write: nothing half-written is left", { skip: !canUseTmpfsNamespace() }, () => {
    const mountPoint = path.join(scratch, "full");
    mkdirSync(mountPoint);
    const command = `mount -t tmpfs -o size=8k gpiot-test "$1" && shift && "$@"; status=$?; ls -A "${mountPoint}"; exit $status`;
    const result = spawnSync("unshare", ["--user", "--map-root-user", "--mount", "sh", "-c", command, "sh", mountPoint, process.execPath, cliPath, "synthesize", REQUIREMENT, "--out", path.join(mountPoint, "program"), ...model], { encoding: "utf8", timeout: 180_000 });
    assert.equal(result.status, 4, result.stderr);
    const errorLines = result.stderr.split("\n").filter((line) => line.startsWith("error:"));
    assert.equal(errorLines.length, 1, result.stderr);
    assert.match(errorLines[0], /Cannot write the program to .*full\/program: the disk that holds .*full\/program is full\. Free some space/);
    assert.doesNotMatch(result.stderr, /gpiot-partial|    at /);
    assert.equal(result.stdout.trim(), "", `the tmpfs is left empty, it holds: ${result.stdout}`);
  });
});

describe("flags that cannot work are refused before loading", () => {
  test("--context-size too small for the prompts", () => {
    assertRefusedUpFront(gpiot(["synthesize", REQUIREMENT, "--out", path.join(scratch, "ctx"), "--context-size", "256", ...model]), 2, /A context of 256 tokens is too small: the .* prompt takes about \d+ tokens and its answer needs at least \d+ more\. Use a context of \d+ tokens or more/);
    assert.equal(existsSync(path.join(scratch, "ctx")), false);
  });

  test("a LoRA adapter given as --model is named as an adapter", () => {
    const run = gpiot(["synthesize", REQUIREMENT, "--out", path.join(scratch, "lora"), "--model", setup.models.adapters.td, "--threads", "1"]);
    assert.equal(run.code, 5, run.stderr);
    assert.match(run.stderr, /tiny-td\.lora\.gguf is a LoRA adapter \(its GGUF general\.type is "adapter"\), not a model/);
    assert.doesNotMatch(run.stderr, /llama_model_load|Models ready/);
  });

  test("a FIFO or a device as --model is refused, not waited on", { skip: process.platform === "win32" }, () => {
    const fifo = path.join(scratch, "model.gguf");
    assert.equal(spawnSync("mkfifo", [fifo]).status, 0);
    assert.ok(statSync(fifo).isFIFO());
    for (const [file, kind] of [
      [fifo, /is a named pipe \(FIFO\), not a GGUF file/],
      ["/dev/zero", /is a device, not a GGUF file/],
    ] as const) {
      const run = gpiot(["synthesize", REQUIREMENT, "--out", path.join(scratch, "fifo"), "--model", file, "--threads", "1"], { timeout: 30_000 });
      assert.equal(run.code, 5, `${file}: ${run.stderr}`);
      assert.match(run.stderr, kind);
    }
  });

  test("--gpu cuda without CUDA says so, exit 5", { skip: existsSync(path.join(repoRoot, "node_modules", "@node-llama-cpp", `${process.platform}-${process.arch}-cuda`)) }, () => {
    const run = gpiot(["synthesize", REQUIREMENT, "--out", path.join(scratch, "cuda"), "--gpu", "cuda", ...model]);
    assert.equal(run.code, 5, run.stderr);
    assert.match(run.stderr, /CUDA is not available on this machine.*Use --gpu auto/);
    assert.doesNotMatch(run.stderr, /NoBinaryFoundError$|A prebuilt binary was not found|    at /m);
    assert.equal(existsSync(path.join(scratch, "cuda")), false);
  });

  test("negative resource limits are rejected, not made positive", () => {
    for (const constraints of ["<= -5 ms", "Jetson Nano, <= -200 MB RAM"])
      assertRefusedUpFront(gpiot(["synthesize", REQUIREMENT, "--out", path.join(scratch, "negative"), "-c", constraints, ...model]), 3, /is not a limit a program can meet: .* must be more than zero/);
  });
});

describe("requirements", () => {
  test("a short one that names something to build is accepted", () => {
    const run = gpiot(["synthesize", "Count steps", "--out", path.join(scratch, "steps"), ...model]);
    assert.equal(run.code, 0, run.stderr);
    assert.ok(existsSync(path.join(scratch, "steps", "main.py")));
  });

  test("text with nothing to build is rejected before loading, with the reason", () => {
    assertRefusedUpFront(gpiot(["synthesize", "asdf qwer zxcv", "--out", path.join(scratch, "nothing"), ...model]), 3, /nothing to build in "asdf qwer zxcv": it has only greetings, test words or placeholders/);
    assertRefusedUpFront(gpiot(["synthesize", "???", "--out", path.join(scratch, "nothing"), ...model]), 3, /no words, only numbers and symbols/);
  });
});
