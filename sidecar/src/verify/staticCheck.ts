/**
 * Static checks of an assembled program, with the user's interpreter but without running any
 * generated code: each module parses; every import resolves (the standard library, the
 * program's own modules, or a package installed in the chosen environment: `find_spec` locates
 * a module without executing it) and installed third-party packages are listed in
 * requirements.txt; each module defines `run()` accepting the input names its spec promised.
 */
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import type { StaticIssue } from "./report";
import { capture, pythonEnvironment, resolvePython, type PythonInfo } from "./pythonEnv";

const STATIC_SCRIPT = String.raw`
import ast, json, os, sys
import importlib.util, importlib.machinery

config = json.loads(sys.stdin.read())
workdir = config["workdir"]
sys.path.insert(0, workdir)
stdlib = set(getattr(sys, "stdlib_module_names", ())) | set(sys.builtin_module_names)
local = set(config["localModules"])
requirements = set(name.lower().replace("_", "-").replace(".", "-") for name in config["requirements"])
try:
    from importlib.metadata import packages_distributions
    distributions = packages_distributions()
except Exception:
    distributions = {}


def normalized(name):
    return name.lower().replace("_", "-").replace(".", "-")


def guarded_by_import_error(handlers):
    for handler in handlers:
        if handler.type is None:
            return True
        names = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
        for name in names:
            if isinstance(name, ast.Name) and name.id in ("ImportError", "ModuleNotFoundError", "Exception", "BaseException"):
                return True
    return False


def collect_imports(tree):
    found = []

    def visit(node, optional):
        if isinstance(node, ast.Try):
            guarded = optional or guarded_by_import_error(node.handlers)
            for child in node.body:
                visit(child, guarded)
            for child in node.handlers + node.orelse + node.finalbody:
                visit(child, optional)
            return
        if isinstance(node, ast.Import):
            for alias in node.names:
                found.append((alias.name, node.lineno, optional, None))
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0 and node.module:
                found.append((node.module, node.lineno, optional, [alias.name for alias in node.names]))
        for child in ast.iter_child_nodes(node):
            visit(child, optional)

    visit(tree, False)
    return found


def resolve(name):
    top = name.split(".")[0]
    if top in stdlib or top in local:
        return "ok", top
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        spec = None
    if spec is None:
        return "missing", top
    locations = spec.submodule_search_locations
    parts = name.split(".")[1:]
    for depth, part in enumerate(parts):
        if not locations:
            break
        sub = importlib.machinery.PathFinder.find_spec(part, list(locations))
        if sub is None:
            return "missingSubmodule", ".".join([top] + parts[: depth + 1])
        locations = sub.submodule_search_locations
    return "installed", top


results = []
for module in config["modules"]:
    entry = {"file": module["file"], "syntax": None, "imports": [], "run": None}
    results.append(entry)
    try:
        with open(os.path.join(workdir, module["file"]), encoding="utf-8") as handle:
            source = handle.read()
        tree = ast.parse(source, module["file"])
        compile(tree, module["file"], "exec", dont_inherit=True)
    except SyntaxError as error:
        entry["syntax"] = {"message": "%s: %s" % (type(error).__name__, error.msg), "line": error.lineno}
        continue
    except (ValueError, UnicodeDecodeError) as error:
        entry["syntax"] = {"message": "%s: %s" % (type(error).__name__, error), "line": None}
        continue
    for name, line, optional, _names in collect_imports(tree):
        status, what = resolve(name)
        if status == "ok":
            continue
        dists = [normalized(dist) for dist in distributions.get(what.split(".")[0], [])] or [normalized(what.split(".")[0])]
        listed = any(dist in requirements for dist in dists) or normalized(what.split(".")[0]) in requirements
        entry["imports"].append({"name": what, "line": line, "status": status, "optional": optional, "listed": listed, "distribution": dists[0]})
    run = None
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == "run":
            run = node
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.ImportFrom, ast.Import)):
            targets = []
            if isinstance(node, ast.Assign):
                targets = [target.id for target in node.targets if isinstance(target, ast.Name)]
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                targets = [node.target.id]
            else:
                targets = [(alias.asname or alias.name).split(".")[0] for alias in node.names]
            if "run" in targets:
                run = "other"
    if run is None:
        entry["run"] = {"defined": False}
    elif run == "other":
        entry["run"] = {"defined": True, "known": False}
    else:
        arguments = run.args
        positional = arguments.posonlyargs + arguments.args
        defaults_from = len(positional) - len(arguments.defaults)
        params = [arg.arg for arg in positional] + [arg.arg for arg in arguments.kwonlyargs]
        required = [arg.arg for index, arg in enumerate(positional) if index < defaults_from]
        required += [arg.arg for arg, default in zip(arguments.kwonlyargs, arguments.kw_defaults) if default is None]
        positional_only = [arg.arg for arg in arguments.posonlyargs]
        entry["run"] = {
            "defined": True,
            "known": True,
            "async": isinstance(run, ast.AsyncFunctionDef),
            "params": params,
            "required": required,
            "positionalOnly": positional_only,
            "varKeyword": arguments.kwarg is not None,
            "line": run.lineno,
        }
print(json.dumps(results))
`;

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
  const result = await capture(python.executable, ["-B", "-c", STATIC_SCRIPT], { input: JSON.stringify(config), cwd: options.workdir, env: pythonEnvironment(), timeoutMs: 60_000 });
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
