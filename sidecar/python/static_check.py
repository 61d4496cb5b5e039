"""Static checks of an assembled program, run with the user's interpreter; runs no generated code.

Reads a JSON config on stdin (workdir, modules, localModules, requirements) and prints, per
module: whether it parses and compiles, each import that is neither the standard library nor the
program's own (installed or missing, listed in requirements.txt or not), and the signature of its
top-level run(). `find_spec` locates a module without executing it.
"""
import ast
import importlib.machinery
import importlib.util
import json
import os
import sys

# This script's folder is not the program's: imports resolve against the program and the environment.
if sys.path and os.path.realpath(sys.path[0] or ".") == os.path.dirname(os.path.realpath(__file__)):
    sys.path.pop(0)

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
