/**
 * The Python preamble that runs a program inside the sandbox process, before any generated code:
 * it makes every mount but the working copy read-only (when started in its own user and mount
 * namespaces), sets the resource limits (address space, file size, no core dumps), loads the
 * assembled main.py as a module, times the sub-tasks' imports and run() calls, records the
 * exception with the module it came from, converts the final values to JSON, and reports all of
 * it on file descriptor 3 (never on stdout, which belongs to the program).
 *
 * Config (argv[1], JSON): workdir, args (main.py's argv), memoryMB, fileSizeMB, isolateFs,
 * want (names of values to return), maxOutputItems.
 */
export const SANDBOX_PREAMBLE = String.raw`
import sys, os, json, time

_cfg = json.loads(sys.argv[1])
_report = os.fdopen(3, "w", encoding="utf-8")
try:
    os.set_inheritable(3, False)
except Exception:
    pass
_result = {"setup": {}, "exitCode": None}
_steps = []


def _mark(module):
    now = time.perf_counter()
    if _steps and "ms" not in _steps[-1]:
        _steps[-1]["ms"] = round((now - _steps[-1].pop("started")) * 1000.0, 3)
        _steps[-1]["peakMemoryMB"] = _peak_memory_mb()
    if module:
        _steps.append({"module": module, "started": now})
    try:
        _report.write(json.dumps({"current": module}) + "\n")
        _report.flush()
    except Exception:
        pass


def _isolate_filesystem(workdir):
    import ctypes, ctypes.util
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_void_p]
    MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
    MS_REMOUNT, MS_NOATIME, MS_NODIRATIME, MS_BIND, MS_REC = 32, 1024, 2048, 4096, 16384
    MS_PRIVATE, MS_RELATIME = 1 << 18, 1 << 21

    def mount(source, target, flags):
        if libc.mount(source.encode() if source else None, target.encode(), None, flags, None) != 0:
            error = ctypes.get_errno()
            raise OSError(error, os.strerror(error), target)

    mount(None, "/", MS_REC | MS_PRIVATE)
    mount(workdir, workdir, MS_BIND | MS_REC)
    targets = set()
    with open("/proc/self/mountinfo", encoding="utf-8") as handle:
        for line in handle:
            fields = line.split()
            if len(fields) > 4:
                targets.add(fields[4].encode("latin-1").decode("unicode_escape"))
    kept = ("/proc", "/sys", "/dev")
    failed = []
    for target in sorted(targets):
        if target == workdir or target.startswith(workdir + "/"):
            continue
        if any(target == prefix or target.startswith(prefix + "/") for prefix in kept):
            continue
        try:
            flag = os.statvfs(target).f_flag
        except OSError:
            continue
        flags = MS_REMOUNT | MS_BIND | MS_RDONLY
        for stat_flag, mount_flag in ((os.ST_NOSUID, MS_NOSUID), (os.ST_NODEV, MS_NODEV), (os.ST_NOEXEC, MS_NOEXEC), (os.ST_NOATIME, MS_NOATIME), (os.ST_NODIRATIME, MS_NODIRATIME), (getattr(os, "ST_RELATIME", 4096), MS_RELATIME)):
            if flag & stat_flag:
                flags |= mount_flag
        try:
            mount(None, target, flags)
        except OSError:
            failed.append(target)
    return failed


def _set_limits():
    limits = {}
    try:
        import resource, signal
    except ImportError:
        return {"memory": None, "note": "no resource module on this platform"}
    memory_mb = _cfg.get("memoryMB")
    if memory_mb:
        cap = int(memory_mb) << 20
        try:
            resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
            limits["memory"] = memory_mb
        except (ValueError, OSError) as error:
            limits["memory"] = None
            limits["note"] = "address-space limit not set: %s" % error
    file_mb = _cfg.get("fileSizeMB")
    if file_mb:
        try:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            cap = int(file_mb) << 20
            resource.setrlimit(resource.RLIMIT_FSIZE, (cap, cap))
        except (ValueError, OSError, AttributeError):
            pass
    try:
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    except (ValueError, OSError):
        pass
    return limits


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
    if _cfg.get("isolateFs"):
        try:
            _result["setup"]["readOnlyFailed"] = _isolate_filesystem(workdir)
            _result["setup"]["filesystem"] = "readOnly"
        except Exception as error:
            _result["setup"]["filesystem"] = "notIsolated"
            _result["setup"]["filesystemError"] = str(error)
    _result["setup"]["limits"] = _set_limits()
    os.chdir(workdir)
    sys.path.insert(0, workdir)
    args = list(_cfg.get("args", []))
    sys.argv = ["main.py"] + args
    import importlib, importlib.util
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
            _mark(name)
            return importlib.import_module(name, package)

    namespace["importlib"] = _ImportTracker()
    started = time.perf_counter()
    for step in pipeline:
        try:
            importlib.import_module(step["module"])
        except BaseException:
            break
    _result["importMs"] = round((time.perf_counter() - started) * 1000.0, 3)
    original = namespace.get("run_pipeline")
    captured = {}

    def run_pipeline(values):
        started = time.perf_counter()
        try:
            state = original(values)
        except BaseException as error:
            captured["pipelineMs"] = (time.perf_counter() - started) * 1000.0
            _mark(None)
            captured["error"] = _describe_error(error, module_files, current)
            raise
        captured["pipelineMs"] = (time.perf_counter() - started) * 1000.0
        _mark(None)
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
            _result["pipelineMs"] = round(captured["pipelineMs"], 3)
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
    _result["exitCode"] = _exit
    _result["peakMemoryMB"] = _peak_memory_mb()
    _result["steps"] = [step for step in _steps if "ms" in step]
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except Exception:
        pass
    try:
        _report.write(json.dumps({"final": _result}, allow_nan=False, default=lambda value: repr(value)[:200]) + "\n")
        _report.close()
    except Exception as error:
        sys.stderr.write("gpiot sandbox: could not report the result: %s\n" % error)
os._exit(_exit if 0 <= _exit < 256 else 1)
`;
