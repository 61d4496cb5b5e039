"""Harvests the documentation of installed Python packages for GPIoT's code generation dataset (CGD).

For each public function of the packages (or of an explicit list) it prints one JSON line with the
signature, the summary, the numpydoc Parameters and Returns sections, and the code samples made
from the Examples section: each example block becomes a module with a `run()` function (D2) and,
when the block starts by building its input values, a module with `run(inputs...)` (D3). It also
writes a small module that describes the function (D1). It never runs an example: `gpiot data cgd`
runs every sample in its sandbox and keeps only those that run.

Usage: python harvest_docs.py --packages numpy,scipy [--functions scipy.signal.find_peaks,...]
       [--max-functions N] [--max-examples N]
Exit status: 0 done, 3 a package is not installed, 2 usage.
"""

import argparse
import ast
import builtins
import doctest
import importlib
import importlib.metadata
import importlib.util
import inspect
import json
import pkgutil
import re
import sys
import time
import warnings

SECTION_NAMES = {
    "Parameters",
    "Other Parameters",
    "Returns",
    "Yields",
    "Receives",
    "Raises",
    "Warns",
    "Warnings",
    "See Also",
    "Notes",
    "References",
    "Examples",
    "Attributes",
    "Methods",
}
SKIPPED_SUBMODULES = {"tests", "testing", "conftest", "setup", "distutils", "f2py", "version", "compat", "core", "lib", "matlib"}
PLOT_MODULES = ("matplotlib", "pylab", "seaborn")
IMPLICIT_IMPORTS = {"np": "import numpy as np", "plt": "import matplotlib.pyplot as plt"}
PIP_NAMES = {"sklearn": "scikit-learn", "PIL": "pillow", "cv2": "opencv-python", "skimage": "scikit-image", "yaml": "pyyaml"}
MAX_OUTPUTS = 6
BUILTINS = set(dir(builtins))
IMPERATIVE_VERBS = {
    "add",
    "analyze",
    "apply",
    "approximate",
    "build",
    "calculate",
    "check",
    "classify",
    "cluster",
    "combine",
    "compare",
    "compute",
    "construct",
    "convert",
    "count",
    "create",
    "decimate",
    "decompose",
    "define",
    "demodulate",
    "denoise",
    "design",
    "detect",
    "determine",
    "display",
    "downsample",
    "draw",
    "estimate",
    "evaluate",
    "extract",
    "filter",
    "find",
    "fit",
    "generate",
    "get",
    "integrate",
    "interpolate",
    "invert",
    "load",
    "locate",
    "make",
    "measure",
    "model",
    "normalize",
    "normalise",
    "obtain",
    "perform",
    "pick",
    "plot",
    "predict",
    "process",
    "read",
    "recover",
    "reduce",
    "remove",
    "resample",
    "reshape",
    "sample",
    "scale",
    "select",
    "separate",
    "simulate",
    "smooth",
    "solve",
    "sort",
    "split",
    "standardize",
    "subtract",
    "sum",
    "test",
    "threshold",
    "track",
    "transform",
    "upsample",
    "use",
    "visualize",
    "window",
    "write",
}
MAX_INPUTS = 6


def emit(record):
    sys.stdout.write(json.dumps(record, ensure_ascii=False) + "\n")


def public_modules(package):
    """The package and its public first-level submodules, imported, in name order."""
    modules = [package]
    path = getattr(package, "__path__", None)
    if not path:
        return modules
    for info in sorted(pkgutil.iter_modules(path), key=lambda item: item.name):
        if info.name.startswith("_") or info.name in SKIPPED_SUBMODULES:
            continue
        try:
            modules.append(importlib.import_module(package.__name__ + "." + info.name))
        except Exception:  # noqa: BLE001, S112 - a submodule that cannot be imported is left out
            continue
    return modules


def is_function_like(value):
    if inspect.isclass(value) or inspect.ismodule(value) or not callable(value):
        return False
    return bool(getattr(value, "__doc__", None))


def enumerate_functions(package_name):
    package = importlib.import_module(package_name)
    seen = set()
    found = []
    for module in public_modules(package):
        names = getattr(module, "__all__", None)
        if not isinstance(names, (list, tuple)):
            names = [name for name in dir(module) if not name.startswith("_")]
        for name in sorted(set(names)):
            if name.startswith("_"):
                continue
            try:
                value = getattr(module, name)
            except Exception:  # noqa: BLE001, S112 - lazy attributes may fail to load
                continue
            if not is_function_like(value) or id(value) in seen:
                continue
            owner = str(getattr(value, "__module__", None) or module.__name__)
            if owner.split(".")[0] != package_name and type(value).__name__ != "ufunc":
                continue
            seen.add(id(value))
            found.append((module.__name__, name, value))
    return found


def resolve(qualified):
    parts = qualified.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        module_name = ".".join(parts[:cut])
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        value = module
        try:
            for part in parts[cut:]:
                value = getattr(value, part)
        except AttributeError:
            return None
        return module_name, ".".join(parts[cut:]), value
    return None


def split_sections(doc):
    lines = doc.splitlines()
    sections = {"": []}
    current = ""
    index = 0
    while index < len(lines):
        line = lines[index]
        following = lines[index + 1] if index + 1 < len(lines) else ""
        if line.strip() in SECTION_NAMES and re.match(r"^\s*-{3,}\s*$", following):
            current = line.strip()
            sections[current] = []
            index += 2
            continue
        sections[current].append(line)
        index += 1
    return {name: "\n".join(body).strip("\n") for name, body in sections.items()}


def parse_parameters(text):
    entries = []
    for line in text.splitlines():
        if not line.strip():
            if entries:
                entries[-1]["description"] += "\n"
            continue
        if not line.startswith((" ", "\t")):
            name, _, kind = line.partition(" : ")
            if " : " not in line and ":" in line and not line.rstrip().endswith(":"):
                name, _, kind = line.partition(":")
            entries.append({"name": name.strip(), "type": kind.strip(), "description": ""})
        elif entries:
            entries[-1]["description"] += line.strip() + " "
    for entry in entries:
        entry["description"] = re.sub(r"\s*\n\s*", "\n", entry["description"]).strip()
    return entries


def signature_of(name, value, doc):
    try:
        return name + str(inspect.signature(value)), True
    except (TypeError, ValueError):
        first = doc.splitlines()[0] if doc else ""
        match = re.match(r"^\s*" + re.escape(name) + r"\s*\(.*\)\s*$", first)
        return (first.strip() if match else name + "(...)"), False


def narrative_phrase(text):
    """The last sentence before an example that reads as a task, as a verb phrase ("find the peaks ...")."""
    text = re.sub(r"\s+", " ", text.replace("``", "`")).strip()
    sentences = re.split(r"(?<=[.!?:])\s+(?=[A-Z`(])", text) if text else []
    for sentence in reversed(sentences):
        phrase = sentence.strip().rstrip(":.").strip()
        previous = None
        while previous != phrase:
            previous = phrase
            phrase = re.sub(
                r"^(?:in this case|for example|for instance|here|now|then|first|next|finally|similarly|alternatively|also),?\s+",
                "",
                phrase,
                flags=re.IGNORECASE,
            )
            phrase = re.sub(r"^(?:let's|let us|we can|we'll|we will|we|you can|one can|to)\s+(?:easily\s+|also\s+|now\s+)?", "", phrase, flags=re.IGNORECASE)
        if 12 <= len(phrase) <= 240 and phrase.split()[0].lower() in IMPERATIVE_VERBS:
            return phrase[0].lower() + phrase[1:]
    return ""


class Names(ast.NodeVisitor):
    """Names a statement binds and names it reads."""

    def __init__(self):
        self.bound = set()
        self.used = set()
        self.attributes = set()
        self.rebound = set()

    def visit_Name(self, node):
        if isinstance(node.ctx, ast.Load):
            self.used.add(node.id)
        else:
            self.bound.add(node.id)
            if isinstance(node.ctx, ast.Store):
                self.rebound.add(node.id)

    def visit_FunctionDef(self, node):
        self.bound.add(node.name)
        self.generic_visit(node)

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_ClassDef(self, node):
        self.bound.add(node.name)
        self.generic_visit(node)

    def visit_Import(self, node):
        for alias in node.names:
            self.bound.add((alias.asname or alias.name).split(".")[0])

    visit_ImportFrom = visit_Import

    def visit_Subscript(self, node):
        if not isinstance(node.ctx, ast.Load):
            root = node.value
            while isinstance(root, (ast.Subscript, ast.Attribute)):
                root = root.value
            if isinstance(root, ast.Name):
                self.bound.add(root.id)
        self.generic_visit(node)

    def visit_Attribute(self, node):
        self.attributes.add(node.attr)
        self.visit_Subscript(node)


def names_of(node):
    visitor = Names()
    visitor.visit(node)
    return visitor


def is_import(statement):
    return isinstance(statement, (ast.Import, ast.ImportFrom))


def imported_modules(statement):
    if isinstance(statement, ast.Import):
        return [alias.name for alias in statement.names]
    if isinstance(statement, ast.ImportFrom) and statement.module and statement.level == 0:
        return [statement.module]
    return []


def is_display(statement):
    """A bare expression that only shows a value in the docs: a print, a value the doctest shows, or no call at all."""
    if not isinstance(statement, ast.Expr):
        return False
    value = statement.value
    if isinstance(value, ast.Call):
        return getattr(statement, "shows_output", False) or (isinstance(value.func, ast.Name) and value.func.id == "print")
    return True


def result_of(statement):
    """(output names, the statement that assigns them, source of the value) of a block's last statement."""
    if isinstance(statement, ast.Expr):
        value = statement.value
        if isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and value.func.id == "print":
            if len(value.args) != 1 or value.keywords:
                return None
            value = value.args[0]
        assign = ast.Assign(targets=[ast.Name(id="result", ctx=ast.Store())], value=value, lineno=statement.lineno)
        return ["result"], assign, ast.unparse(value)
    if isinstance(statement, ast.Assign) and len(statement.targets) == 1:
        target = statement.targets[0]
        if isinstance(target, ast.Name):
            return [target.id], statement, ast.unparse(statement.value)
        if isinstance(target, ast.Tuple) and all(isinstance(item, ast.Name) for item in target.elts):
            names = [item.id for item in target.elts if item.id != "_"]
            if names and len(names) <= MAX_OUTPUTS:
                return names, statement, ast.unparse(statement.value)
    if isinstance(statement, ast.AugAssign) and isinstance(statement.target, ast.Name):
        return [statement.target.id], statement, ast.unparse(statement)
    return None


def render_module(imports, parameters, body, outputs):
    lines = [ast.unparse(statement) for statement in imports]
    lines += ["", "", "def run(" + ", ".join(parameters) + ") -> dict:"]
    for statement in body:
        for line in ast.unparse(statement).splitlines():
            lines.append("    " + line if line else "")
    lines.append("    return {" + ", ".join(f"{json.dumps(name)}: {name}" for name in outputs) + "}")
    return "\n".join(lines) + "\n"


def requirements_of(imports):
    stdlib = getattr(sys, "stdlib_module_names", set())
    found = []
    for statement in imports:
        for module in imported_modules(statement):
            root = module.split(".")[0]
            name = PIP_NAMES.get(root, root)
            if root not in stdlib and name not in found:
                found.append(name)
    return found


def parse_example_blocks(text):
    """Example blocks (consecutive doctest examples) with the narrative text before each."""
    parser = doctest.DocTestParser()
    try:
        parts = parser.parse(text)
    except ValueError as error:
        return [], str(error)
    blocks = []
    narrative = ""
    current = None
    for part in parts:
        if isinstance(part, str):
            if part.strip():
                narrative = part
                current = None
            continue
        if current is None:
            current = {"narrative": narrative, "examples": []}
            blocks.append(current)
            narrative = ""
        current["examples"].append(part)
    return blocks, None


def build_samples(blocks, module_name, function_name, max_examples):
    """The D2/D3 code samples of the example blocks; a block that cannot be made into one says why."""
    statements = []
    samples = []
    for index, block in enumerate(blocks):
        block_statements = []
        error = None
        for example in block["examples"]:
            if example.options.get(doctest.SKIP):
                continue
            try:
                parsed = ast.parse(example.source)
            except SyntaxError as problem:
                error = f"syntax error in the example: {problem.msg}"
                break
            for statement in parsed.body:
                statement.shows_output = bool(example.want.strip())
            block_statements.extend(parsed.body)
        if error:
            samples.append({"block": index, "skipped": "example-syntax-error", "detail": error})
            break
        start = len(statements)
        statements.extend(block_statements)
        if len(samples) >= max_examples:
            continue
        sample = build_sample(statements, start, module_name, function_name)
        sample["block"] = index
        sample["narrative"] = narrative_phrase(block["narrative"])
        samples.append(sample)
    return samples


def plotting_names(statements):
    names = set()
    for statement in statements:
        if is_import(statement) and any(module.split(".")[0] in PLOT_MODULES for module in imported_modules(statement)):
            names |= names_of(statement).bound
    changed = True
    while changed:
        changed = False
        for statement in statements:
            if isinstance(statement, (ast.Assign, ast.With, ast.For)):
                info = names_of(statement)
                if info.used & names and not info.bound <= names:
                    names |= info.bound
                    changed = True
    return names


def build_sample(statements, start, module_name, function_name):
    plot = plotting_names(statements)

    def plots(statement):
        if is_import(statement):
            return any(module.split(".")[0] in PLOT_MODULES for module in imported_modules(statement))
        return bool(names_of(statement).used & plot)

    target = [statement for statement in statements[start:] if not plots(statement)]
    while target and is_display(target[-1]) and result_of(target[-1]) is None:
        target.pop()
    if not target:
        return {"skipped": "no-code", "detail": "the example only plots or prints"}
    result = result_of(target[-1])
    if result is None:
        return {"skipped": "no-result", "detail": "the example's last statement yields no value to return"}
    outputs, last, result_source = result
    target = [statement for statement in target[:-1] if not is_display(statement)] + [last]

    # Backward slice: keep the earlier statements the block depends on (and every import); a name
    # that a later statement assigns afresh is no longer needed from before it.
    needed = set()
    for statement in reversed(target):
        info = names_of(statement)
        needed = (needed - info.rebound) | info.used
    kept = []
    for statement in reversed(statements[:start]):
        if plots(statement):
            continue
        if is_import(statement):
            kept.append(statement)
            continue
        if is_display(statement):
            continue
        info = names_of(statement)
        if info.bound & needed or (isinstance(statement, ast.Expr) and info.used & needed):
            kept.append(statement)
            needed = (needed - (info.rebound - info.used)) | info.used
    body_all = list(reversed(kept)) + target
    imports = []
    body = []
    for statement in body_all:
        (imports if is_import(statement) else body).append(statement)
    defined = set()
    for statement in body_all:
        defined |= names_of(statement).bound
    used = set()
    for statement in body:
        used |= names_of(statement).used
    # Doctests run in the documented module's namespace: the function itself needs no import there.
    implicit_sources = {**IMPLICIT_IMPORTS, function_name: f"from {module_name} import {function_name}"}
    implicit = [ast.parse(implicit_sources[name]).body[0] for name in sorted(implicit_sources) if name in used and name not in defined]
    imports = [statement for statement in implicit if not plots(statement)] + imports
    if any(name in plot for name in used):
        return {"skipped": "needs-plotting", "detail": "the result depends on a plot"}
    unique_imports = []
    seen = set()
    for statement in imports:
        key = ast.unparse(statement)
        if key not in seen:
            seen.add(key)
            unique_imports.append(statement)

    sample = {
        "skipped": None,
        "outputs": outputs,
        "resultSource": result_source,
        "requirements": requirements_of(unique_imports),
        "d2": {"code": render_module(unique_imports, [], body, outputs)},
        "d3": None,
    }

    # D3: the leading assignments that build the inputs become run()'s parameters.
    imported = set()
    for statement in unique_imports:
        imported |= names_of(statement).bound
    setup = []
    setup_names = []
    for statement in body[:-1]:
        if not (isinstance(statement, ast.Assign) and len(statement.targets) == 1 and isinstance(statement.targets[0], ast.Name)):
            break
        info = names_of(statement.value)
        known = set(setup_names) | imported | BUILTINS
        if function_name in info.used or function_name in info.attributes or not info.used <= known:
            break
        setup.append(statement)
        setup_names.append(statement.targets[0].id)
    rest = body[len(setup) :]
    rest_used = set()
    for statement in rest:
        rest_used |= names_of(statement).used
    inputs = [name for name in setup_names if name in rest_used][:MAX_INPUTS]
    if setup and inputs and rest and len(inputs) == len([name for name in setup_names if name in rest_used]):
        sample["d3"] = {
            "code": render_module(unique_imports, inputs, rest, outputs),
            "setup": "\n".join(ast.unparse(statement) for statement in unique_imports + setup) + "\n",
            "inputs": [{"name": statement.targets[0].id, "source": ast.unparse(statement)} for statement in setup if statement.targets[0].id in inputs],
        }
    return sample


def describe_module(module_name, name, has_signature):
    if has_signature:
        body = f'    return {{"signature": {json.dumps(name)} + str(inspect.signature({name}))}}'
        output = "signature"
    else:
        body = f'    return {{"summary": inspect.getdoc({name}).strip().splitlines()[0]}}'
        output = "summary"
    code = f"import inspect\n\nfrom {module_name} import {name}\n\n\ndef run() -> dict:\n{body}\n"
    return code, output


def harvest(module_name, name, value, max_examples):
    doc = inspect.getdoc(value) or ""
    signature, has_signature = signature_of(name, value, doc)
    if doc.splitlines() and re.match(r"^\s*" + re.escape(name) + r"\s*\(", doc.splitlines()[0]):
        doc = "\n".join(doc.splitlines()[1:]).strip()
    sections = split_sections(doc)
    preamble = [part.strip() for part in re.split(r"\n\s*\n", sections.get("", "")) if part.strip()]
    summary = re.sub(r"\s+", " ", preamble[0]) if preamble else ""
    blocks, parse_error = parse_example_blocks(sections.get("Examples", ""))
    samples = build_samples(blocks, module_name, name, max_examples) if blocks else []
    if parse_error:
        samples.append({"block": 0, "skipped": "example-syntax-error", "detail": parse_error})
    describe_code, describe_output = describe_module(module_name, name, has_signature)
    package = module_name.split(".")[0]
    return {
        "type": "function",
        "package": package,
        "module": module_name,
        "name": name,
        "qualname": f"{module_name}.{name}",
        "signature": signature,
        "summary": summary,
        "extended": "\n\n".join(preamble[1:3]),
        "parameters": parse_parameters(sections.get("Parameters", "")),
        "returns": parse_parameters(sections.get("Returns", "") or sections.get("Yields", "")),
        "notes": sections.get("Notes", "")[:1500],
        "d1": {"code": describe_code, "output": describe_output, "requirements": [PIP_NAMES.get(package, package)]},
        "samples": samples,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--packages", default="")
    parser.add_argument("--functions", default="")
    parser.add_argument("--max-functions", type=int, default=0)
    parser.add_argument("--max-examples", type=int, default=3)
    args = parser.parse_args()
    packages = [name.strip() for name in args.packages.split(",") if name.strip()]
    functions = [name.strip() for name in args.functions.split(",") if name.strip()]
    wanted = list(dict.fromkeys(packages + [name.split(".")[0] for name in functions]))
    missing = [name for name in wanted if importlib.util.find_spec(name) is None]
    if missing:
        for name in missing:
            emit({"type": "error", "code": "not_installed", "package": name, "message": f"{name} is not installed in {sys.executable}"})
        return 3
    warnings.simplefilter("ignore")
    started = time.perf_counter()
    for name in wanted:
        module = importlib.import_module(name)
        try:
            version = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            version = str(getattr(module, "__version__", ""))
        emit({"type": "package", "package": name, "version": version, "python": sys.version.split()[0]})
    if functions:
        targets = []
        for qualified in functions:
            found = resolve(qualified)
            if found is None or not callable(found[2]):
                emit({"type": "skipped", "name": qualified, "reason": "not-found", "detail": f"{qualified} is not a function of an installed package"})
                continue
            targets.append(found)
    else:
        targets = []
        for name in packages:
            targets.extend(enumerate_functions(name))
    if args.max_functions > 0:
        targets = targets[: args.max_functions]
    count = 0
    for module_name, name, value in targets:
        try:
            emit(harvest(module_name, name, value, args.max_examples))
            count += 1
        except Exception as error:  # noqa: BLE001 - one odd docstring must not end the harvest
            emit({"type": "skipped", "name": f"{module_name}.{name}", "reason": "harvest-failed", "detail": f"{type(error).__name__}: {error}"})
    emit({"type": "done", "functions": count, "seconds": round(time.perf_counter() - started, 3)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
