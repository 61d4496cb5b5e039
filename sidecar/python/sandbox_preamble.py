"""Runs an assembled program inside the sandbox's program process, before any generated code.

It loads main.py as a module, imports the sub-task modules, calls main() with the program's
arguments, and tells the supervisor, on file descriptor 3, where the run is: `ready` before any
generated code runs, the import phase, the pipeline phase, the module of each step, the end of
the pipeline (waiting at each mark until the supervisor acknowledges it on descriptor 4), then the
final values (as JSON) with the exception and the module it came from, and
last its own view of the exit code, peak memory and pipeline time.

Everything written here comes from inside the program's process, so the program can write the same
lines: the supervisor stamps each line with its own clock and memory reading, and GPIoT takes exit
status, time and memory from the supervisor and rejects a report that contradicts them.

Config (argv[1], JSON): workdir, args (main.py's argv), want (names of values to return besides
the last sub-task's outputs), maxOutputItems.
"""
import json
import os
import sys
import time

REPORT_FD = 3
ACK_FD = 4
_cfg = json.loads(sys.argv[1])
# Kept before any generated code runs: a program that replaces these cannot redirect the preamble.
_write, _read, _exit_process, _dumps, _clock = os.write, os.read, os._exit, json.dumps, time.perf_counter
_result = {}
_timing = {}


def _send(message, wait=True):
    """Writes one line; for a mark, waits until the supervisor has taken its time and memory readings."""
    data = (_dumps(message, allow_nan=False, default=lambda value: repr(value)[:200]) + "\n").encode("utf-8")
    view = memoryview(data)
    try:
        while view:
            view = view[_write(REPORT_FD, view):]
        if wait:
            _read(ACK_FD, 1)
    except OSError:
        pass


def _peak_memory_mb():
    try:
        import resource
    except ImportError:
        return None
    peak = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
    return round(peak / (1024.0 * 1024.0) if sys.platform == "darwin" else peak / 1024.0, 2)


_budget = [int(_cfg.get("maxOutputItems", 2000000))]


def _jsonable(value, depth=0):
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if value == value and value not in (float("inf"), float("-inf")) else None
    if depth > 8 or _budget[0] <= 0:
        return "<%s>" % type(value).__name__
    tolist = getattr(value, "tolist", None)
    if callable(tolist) and hasattr(value, "shape"):
        size = int(getattr(value, "size", 0) or 0)
        if size > _budget[0]:
            return "<%s of shape %s>" % (type(value).__name__, tuple(value.shape))
        _budget[0] -= size
        try:
            return _jsonable(tolist(), depth + 1)
        except Exception:
            return "<%s>" % type(value).__name__
    item = getattr(value, "item", None)
    if callable(item) and type(value).__module__ == "numpy":
        try:
            return _jsonable(item(), depth + 1)
        except Exception:
            return repr(value)[:200]
    if isinstance(value, dict):
        _budget[0] -= len(value)
        return {str(key): _jsonable(item_value, depth + 1) for key, item_value in value.items()}
    if isinstance(value, (list, tuple, set, frozenset, range)):
        items = list(value)
        _budget[0] -= len(items)
        return [_jsonable(element, depth + 1) for element in items]
    if isinstance(value, bytes):
        return "<bytes of length %d>" % len(value)
    return repr(value)[:500]


def _describe_error(error, module_files, current):
    import traceback

    frames = traceback.extract_tb(error.__traceback__)
    module, line = None, None
    for frame in frames:
        name = module_files.get(os.path.realpath(frame.filename))
        if name:
            module, line = name, frame.lineno
    if module is None:
        module = current.get("module")
    text = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    if len(text) > 12000:
        text = text[:2000] + "\n...\n" + text[-10000:]
    return {"type": type(error).__name__, "message": str(error)[:4000], "traceback": text, "module": module, "line": line}


def _run():
    workdir = os.path.realpath(_cfg["workdir"])
    os.chdir(workdir)
    # The preamble's own folder is not the program's: only the working copy is importable from here.
    if sys.path and os.path.realpath(sys.path[0] or ".") == os.path.dirname(os.path.realpath(__file__)):
        sys.path.pop(0)
    sys.path.insert(0, workdir)
    args = list(_cfg.get("args", []))
    sys.argv = ["main.py"] + args
    import importlib
    import importlib.util

    _send({"ready": True})
    spec = importlib.util.spec_from_file_location("__gpiot_main__", os.path.join(workdir, "main.py"))
    main = importlib.util.module_from_spec(spec)
    sys.modules["__gpiot_main__"] = main
    spec.loader.exec_module(main)
    namespace = main.__dict__
    pipeline = namespace.get("PIPELINE") or []
    module_files = {os.path.realpath(os.path.join(workdir, step["module"] + ".py")): step["module"] for step in pipeline}
    current = {"module": None}

    class _ImportTracker(object):
        def __getattr__(self, name):
            return getattr(importlib, name)

        def import_module(self, name, package=None):
            current["module"] = name
            _send({"current": name})
            return importlib.import_module(name, package)

    namespace["importlib"] = _ImportTracker()
    _send({"phase": "imports"})
    for step in pipeline:
        try:
            importlib.import_module(step["module"])
        except BaseException:
            break
    original = namespace.get("run_pipeline")
    captured = {}

    def run_pipeline(values):
        _send({"phase": "pipeline"})
        started = _clock()
        try:
            state = original(values)
        except BaseException as error:
            captured["pipelineMs"] = (_clock() - started) * 1000.0
            _send({"current": None})
            captured["error"] = _describe_error(error, module_files, current)
            raise
        captured["pipelineMs"] = (_clock() - started) * 1000.0
        _send({"current": None})
        captured["state"] = state
        return state

    if not callable(original) or not callable(namespace.get("main")):
        import runpy

        runpy.run_path(os.path.join(workdir, "main.py"), run_name="__main__")
        return 0
    namespace["run_pipeline"] = run_pipeline
    try:
        code = namespace["main"](args)
    finally:
        if "pipelineMs" in captured:
            _timing["pipelineMs"] = round(captured["pipelineMs"], 3)
        if "error" in captured:
            _result["error"] = captured["error"]
            sys.stderr.write("\n" + captured["error"]["traceback"])
        state = captured.get("state")
        if isinstance(state, dict):
            want = list(_cfg.get("want") or [])
            final = pipeline[-1]["outputs"] if pipeline else []
            names = want + [name for name in final if name not in want]
            _result["outputs"] = {name: _jsonable(state[name]) for name in names if name in state}
            _result["finalOutputs"] = list(final)
    return code if isinstance(code, int) else 0


_exit = 1
try:
    _exit = _run()
except SystemExit as error:
    _exit = error.code if isinstance(error.code, int) else (0 if error.code is None else 1)
except BaseException as error:
    import traceback

    traceback.print_exc()
    if "error" not in _result:
        _result["error"] = _describe_error(error, {}, {})
    _exit = 1
finally:
    _exit = _exit if 0 <= _exit < 256 else 1
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except Exception:
        pass
    _send({"final": _result}, wait=False)
    _send({"exit": {"code": _exit, "peakMemoryMB": _peak_memory_mb(), "pipelineMs": _timing.get("pipelineMs")}}, wait=False)
_exit_process(_exit)
