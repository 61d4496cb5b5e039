/**
 * Static checks of an assembled program (sidecar/python/static_check.py), with the user's
 * interpreter but without running any generated code: each module parses; every import resolves
 * (the standard library, the program's own modules, or a package installed in the chosen
 * environment: `find_spec` locates a module without executing it) and installed third-party
 * packages are listed in requirements.txt; each module defines `run()` accepting the input names
 * its spec promised.
 */
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import type { StaticIssue } from "./report";
import { capture, pythonEnvironment, resolvePython, type PythonInfo } from "./pythonEnv";
import { shippedPythonPath } from "./pythonFiles";

export interface ModuleToCheck {
  /** File name in the program folder, e.g. "task_01_load.py". */
  file: string;
  subTaskIndex: number;
  /** Input names main.py passes to run() as keywords. */
  inputs: string[];
}

interface ModuleResult {
  file: string;
  syntax: { message: string; line: number | null } | null;
  imports: { name: string; line: number; status: "missing" | "missingSubmodule" | "installed"; optional: boolean; listed: boolean; distribution: string }[];
  run: { defined: false } | { defined: true; known: false } | { defined: true; known: true; async: boolean; params: string[]; required: string[]; positionalOnly: string[]; varKeyword: boolean; line: number } | null;
}

export interface StaticCheckResult {
  issues: StaticIssue[];
  python: PythonInfo;
}

export function requirementNames(requirementsTxt: string): string[] {
  return requirementsTxt
    .split("\n")
    .map((line) => line.replace(/#.*/, "").trim())
    .filter(Boolean)
    .map((line) => line.split(/[\s=<>!~[;]/)[0]);
}

/** Checks the modules of a program folder (already written to `workdir`). */
export async function staticCheckProgram(options: { workdir: string; modules: ModuleToCheck[]; requirementsTxt: string; python: string }): Promise<StaticCheckResult> {
  const python = await resolvePython(options.python);
  const config = {
    workdir: options.workdir,
    modules: options.modules.map((module) => ({ file: module.file })),
    localModules: options.modules.map((module) => module.file.replace(/\.py$/, "")).concat(["main"]),
    requirements: requirementNames(options.requirementsTxt),
  };
  const result = await capture(python.executable, ["-B", shippedPythonPath("static_check.py")], { input: JSON.stringify(config), cwd: options.workdir, env: pythonEnvironment(), timeoutMs: 60_000 });
  let modules: ModuleResult[];
  try {
    modules = JSON.parse(result.stdout.trim());
  } catch {
    throw new Error(`The static check did not run: ${result.error?.message ?? (result.stderr.trim().slice(-500) || `exit code ${result.code}`)}`);
  }
  const issues: StaticIssue[] = [];
  modules.forEach((module, index) => {
    const { subTaskIndex, inputs } = options.modules[index];
    const issue = (kind: StaticIssue["kind"], severity: StaticIssue["severity"], message: string, line?: number | null) =>
      issues.push({ file: module.file, subTaskIndex, kind, severity, message, ...(typeof line === "number" ? { line } : {}) });
    if (module.syntax) {
      issue("syntax", "error", `${module.file} does not compile: ${module.syntax.message}${module.syntax.line ? ` (line ${module.syntax.line})` : ""}`, module.syntax.line);
      return;
    }
    for (const entry of module.imports) {
      if (entry.status === "installed") {
        if (!entry.listed) issue("requirements", "warning", `${module.file} imports ${entry.name}, which requirements.txt does not list (installed here as ${entry.distribution})`, entry.line);
        continue;
      }
      const severity = entry.optional ? "warning" : "error";
      const where = `${python.executable} (Python ${python.version})`;
      if (entry.status === "missingSubmodule") issue("import", severity, `${module.file} imports ${entry.name}, which does not exist in the installed package`, entry.line);
      else if (entry.listed) issue("import", severity, `${module.file} imports ${entry.name}: requirements.txt lists it but it is not installed in ${where}; install it (pip install -r requirements.txt) or use installed packages`, entry.line);
      else issue("import", severity, `${module.file} imports ${entry.name}, which is neither installed in ${where} nor listed in requirements.txt`, entry.line);
    }
    const run = module.run;
    if (!run || !run.defined) {
      issue("signature", "error", `${module.file} defines no top-level run() function; main.py calls run(${inputs.join(", ")})`);
      return;
    }
    if (!run.known) return;
    if (run.async) issue("signature", "error", `${module.file} defines run() as async; main.py calls it as a plain function`, run.line);
    const missing = inputs.filter((name) => !run.params.includes(name) || run.positionalOnly.includes(name));
    if (missing.length && !run.varKeyword) issue("signature", "error", `${module.file}: run() does not accept the input${missing.length > 1 ? "s" : ""} ${missing.join(", ")} that the spec promised (main.py calls run(${inputs.map((name) => `${name}=...`).join(", ")}))`, run.line);
    const extra = run.required.filter((name) => !inputs.includes(name));
    if (extra.length) issue("signature", "error", `${module.file}: run() requires ${extra.join(", ")}, which the spec does not provide; give ${extra.length > 1 ? "them defaults" : "it a default"} or take only ${inputs.join(", ") || "no arguments"}`, run.line);
  });
  return { issues, python };
}

/** Writes files into a fresh temporary folder; the caller removes it. */
export async function writeTemporaryProgram(files: { path: string; content: string | Buffer }[]): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), "gpiot-check-"));
  for (const file of files) {
    const destination = path.join(dir, ...file.path.split("/"));
    if (!destination.startsWith(dir + path.sep)) throw new Error(`Refusing to write outside the check folder: ${file.path}`);
    await mkdir(path.dirname(destination), { recursive: true });
    await writeFile(destination, file.content);
  }
  return dir;
}

export async function removeTemporaryProgram(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true }).catch(() => undefined);
}
