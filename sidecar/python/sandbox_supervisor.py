"""The sandbox's trusted supervisor: the parent of the program under test, out of its reach.

GPIoT starts it (inside fresh user, network, mount and PID namespaces where Linux allows it) with
its configuration and a per-run key on stdin, and a pipe on file descriptor 3 that only the
supervisor holds. It

- makes every mount but the working copy read-only, puts empty read-only folders over the paths it
  is told to hide, and gives the program a private /dev/shm,
- forks the program (killed with the supervisor) with the resource limits (address space, file size, no
  core dumps), no capabilities, no way to gain privileges, stdin from /dev/null and only the
  program's end of the hints pipe (its file descriptor 3) besides stdout and stderr,
- times the run, enforces the wall-clock timeout, reaps every process the program leaves behind,
  and takes exit status, CPU time and peak memory from the kernel (wait4's rusage),
- stamps every line the program's preamble writes on the hints pipe with its own clock and the
  program's peak resident memory at that moment, and only then acknowledges it on the program's
  descriptor 4 (the preamble waits for that, so the readings belong to the mark); the lines are
  the program's claims, never trusted as such,
- and reports all of it on descriptor 3, signed with the key (HMAC-SHA256), so that nothing the
  program writes anywhere can pass for the supervisor's report.

The supervisor never runs generated code itself.
"""
import ctypes
import hashlib
import hmac
import json
import os
import signal
import sys
import threading
import time

REPORT_FD = 3
ACK_FD = 4
LINUX = sys.platform.startswith("linux")

PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_CAPBSET_DROP = 24
PR_SET_SECUREBITS = 28
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
# SECBIT_NOROOT, SECBIT_NOROOT_LOCKED, SECBIT_NO_SETUID_FIXUP, its lock, SECBIT_KEEP_CAPS_LOCKED.
SECURE_BITS = 0x01 | 0x02 | 0x04 | 0x08 | 0x20

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_NOATIME, MS_NODIRATIME, MS_BIND, MS_REC = 32, 1024, 2048, 4096, 16384
MS_PRIVATE, MS_RELATIME = 1 << 18, 1 << 21

_libc = None


def libc():
    global _libc
    if _libc is None:
        # The interpreter's own symbols include libc's; find_library would start ldconfig.
        _libc = ctypes.CDLL(None, use_errno=True)
        _libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
        _libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    return _libc


def prctl(option, argument=0):
    if libc().prctl(option, argument, 0, 0, 0) != 0:
        error = ctypes.get_errno()
        raise OSError(error, os.strerror(error))


def _bytes(text):
    return text.encode() if text is not None else None


def mount(source, target, fstype, flags, data=None):
    if libc().mount(_bytes(source), _bytes(target), _bytes(fstype), flags, _bytes(data)) != 0:
        error = ctypes.get_errno()
        raise OSError(error, os.strerror(error), target)


def inside(path, folder):
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def mount_points():
    targets = []
    with open("/proc/self/mountinfo", encoding="utf-8") as handle:
        for line in handle:
            fields = line.split()
            if len(fields) > 4:
                targets.append(fields[4].encode("latin-1").decode("unicode_escape"))
    return targets


def isolate_filesystem(workdir, hide, needed):
    """Read-only mounts outside the working copy; empty folders over `hide`. Returns what it did."""
    setup = {"readOnlyFailed": [], "hidden": [], "hideFailed": []}
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    mount(workdir, workdir, None, MS_BIND | MS_REC)
    for path in hide:
        if not os.path.isabs(path) or not os.path.exists(path):
            continue
        if any(inside(keep, path) for keep in needed):
            setup["hideFailed"].append("%s (holds the working copy or the interpreter)" % path)
            continue
        try:
            if os.path.isdir(path):
                mount("none", path, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=4k,mode=0555")
            else:
                mount("/dev/null", path, None, MS_BIND)
                mount(None, path, None, MS_REMOUNT | MS_BIND | MS_RDONLY)
            setup["hidden"].append(path)
        except OSError as error:
            setup["hideFailed"].append("%s (%s)" % (path, error.strerror))
    try:
        mount("none", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=64m,mode=1777")
    except OSError:
        pass
    kept = ("/proc", "/dev")
    for target in sorted(set(mount_points())):
        if inside(target, workdir) or any(inside(target, prefix) for prefix in kept):
            continue
        try:
            flag = os.statvfs(target).f_flag
        except OSError:
            continue
        flags = MS_REMOUNT | MS_BIND | MS_RDONLY
        for stat_flag, mount_flag in (
            (os.ST_NOSUID, MS_NOSUID),
            (os.ST_NODEV, MS_NODEV),
            (os.ST_NOEXEC, MS_NOEXEC),
            (os.ST_NOATIME, MS_NOATIME),
            (os.ST_NODIRATIME, MS_NODIRATIME),
            (getattr(os, "ST_RELATIME", 4096), MS_RELATIME),
        ):
            if flag & stat_flag:
                flags |= mount_flag
        try:
            mount(None, target, None, flags)
        except OSError:
            # /sys and its sub-mounts may refuse; the program has no capabilities to write there anyway.
            if not inside(target, "/sys"):
                setup["readOnlyFailed"].append(target)
    return setup


def capabilities():
    """The capability sets of this process, as /proc/self/status shows them."""
    found = {}
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                name, _, value = line.partition(":")
                if name in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
                    found[name] = int(value.strip(), 16)
    except OSError:
        pass
    return found


def drop_privileges():
    """No capabilities now or after exec, and no way to gain any (Linux)."""
    prctl(PR_SET_NO_NEW_PRIVS, 1)
    held = capabilities()
    if not any(held.get(name, 0) for name in ("CapEff", "CapPrm", "CapAmb")):
        # Nothing held, and with no_new_privs no exec can grant anything.
        return
    with open("/proc/sys/kernel/cap_last_cap", encoding="ascii") as handle:
        last = int(handle.read())
    try:
        prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)
    except OSError:
        pass
    for capability in range(last + 1):
        prctl(PR_CAPBSET_DROP, capability)
    prctl(PR_SET_SECUREBITS, SECURE_BITS)

    class Header(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

    class Data(ctypes.Structure):
        _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]

    header = Header(0x20080522, 0)
    data = (Data * 2)()
    if libc().capset(ctypes.byref(header), data) != 0:
        error = ctypes.get_errno()
        raise OSError(error, "capset: " + os.strerror(error))


def set_limits(config):
    import resource

    limits = {"memory": None}
    memory_mb = config.get("memoryMB")
    if memory_mb:
        cap = int(memory_mb) << 20
        try:
            resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
            limits["memory"] = memory_mb
        except (ValueError, OSError) as error:
            limits["note"] = "address-space limit not set: %s" % error
    file_mb = config.get("fileSizeMB")
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


def close_other_descriptors(keep):
    """Closes every open descriptor but `keep`: whatever GPIoT's process left open is not the program's."""
    try:
        numbers = [int(name) for name in os.listdir("/proc/self/fd" if LINUX else "/dev/fd")]
    except (OSError, ValueError):
        numbers = range(0, 4096)
    for number in numbers:
        if number not in keep:
            try:
                os.close(number)
            except OSError:
                pass


def start_program(config, hints_write, ack_read, setup_write):
    """In the forked child: limits, no privileges, clean descriptors, then exec the preamble."""
    report = {}
    try:
        if LINUX:
            prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        report["limits"] = set_limits(config)
        if LINUX:
            try:
                drop_privileges()
            except OSError as error:
                report["privilegesError"] = str(error)
            report["capabilities"] = capabilities().get("CapEff")
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
        # Out of the way of descriptors 3 and 4 first, then into place.
        hints_write, ack_read = os.dup(hints_write), os.dup(ack_read)
        os.dup2(hints_write, REPORT_FD)
        os.dup2(ack_read, ACK_FD)
        close_other_descriptors(keep=(0, 1, 2, REPORT_FD, ACK_FD, setup_write))
        os.chdir(config["workdir"])
        os.write(setup_write, json.dumps(report).encode())
        argv = [config["python"], "-B", config["preamble"], json.dumps(config["program"])]
        os.execve(config["python"], argv, dict(os.environ))
    except BaseException as error:
        report["execError"] = "%s: %s" % (type(error).__name__, error)
        try:
            os.write(setup_write, b"\n" + json.dumps(report).encode())
        except OSError:
            pass
    os._exit(127)


class HintsReader(threading.Thread):
    """Collects the program's lines, each stamped with the supervisor's clock and the program's VmHWM."""

    def __init__(self, fd, ack, pid, started, limit):
        super().__init__(daemon=True)
        self.fd, self.ack, self.pid, self.started, self.limit = fd, ack, pid, started, limit
        # A PID namespace without its own /proc would show other processes under the program's number.
        self.readable = LINUX and os.path.exists("/proc/%d" % os.getpid()) and os.readlink("/proc/self") == str(os.getpid())
        self.records = []
        self.size = 0
        self.truncated = False
        self.torn = False

    def high_water_mb(self):
        if not self.readable:
            return None
        try:
            with open("/proc/%d/status" % self.pid, encoding="ascii", errors="replace") as handle:
                for line in handle:
                    if line.startswith("VmHWM:"):
                        return round(int(line.split()[1]) / 1024.0, 2)
        except (OSError, ValueError, IndexError):
            return None
        return None

    def add(self, line):
        if self.size + len(line) > self.limit:
            self.truncated = True
            return
        self.size += len(line)
        stamp = round((time.monotonic() - self.started) * 1000.0, 3)
        self.records.append([stamp, self.high_water_mb(), line.decode("utf-8", "replace")])

    def run(self):
        pending = b""
        while True:
            try:
                chunk = os.read(self.fd, 1 << 16)
            except OSError:
                break
            if not chunk:
                break
            pending += chunk
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                try:
                    self.add(line)
                except Exception:
                    self.truncated = True
                try:
                    os.write(self.ack, b"\x06")
                except OSError:
                    pass
            if len(pending) > self.limit:
                self.truncated = True
                pending = b""
        if pending:
            self.torn = True
            self.add(pending)


def children_of(pid):
    found = []
    try:
        for task in os.listdir("/proc/%d/task" % pid):
            with open("/proc/%d/task/%s/children" % (pid, task), encoding="ascii") as handle:
                found += [int(value) for value in handle.read().split()]
    except (OSError, ValueError):
        pass
    return found


def kill_everything(in_pid_namespace):
    """The program and every process it started, wherever it went (re-parented to us, the subreaper)."""
    if in_pid_namespace:
        try:
            os.kill(-1, signal.SIGKILL)
        except OSError:
            pass
        return
    pending = children_of(os.getpid())
    seen = set()
    while pending:
        pid = pending.pop()
        if pid in seen:
            continue
        seen.add(pid)
        pending += children_of(pid)
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def to_mb(maxrss):
    return round(maxrss / (1024.0 * 1024.0) if sys.platform == "darwin" else maxrss / 1024.0, 2)


def supervise(config):
    setup = {}
    needed = [config["workdir"], config["preamble"], os.path.realpath(config["python"]), config["python"]]
    if config.get("isolateFs"):
        try:
            setup.update(isolate_filesystem(config["workdir"], config.get("hide") or [], needed))
            setup["filesystem"] = "readOnly"
        except OSError as error:
            setup["filesystem"] = "notIsolated"
            setup["filesystemError"] = str(error)
    in_pid_namespace = os.getpid() == 1
    if LINUX and not in_pid_namespace:
        try:
            prctl(PR_SET_CHILD_SUBREAPER, 1)
        except OSError:
            pass
    hints_read, hints_write = os.pipe()
    ack_read, ack_write = os.pipe()
    setup_read, setup_write = os.pipe()
    started = time.monotonic()
    pid = os.fork()
    if pid == 0:
        os.close(hints_read)
        os.close(ack_write)
        os.close(setup_read)
        start_program(config, hints_write, ack_read, setup_write)
    os.close(hints_write)
    os.close(ack_read)
    os.close(setup_write)
    os.set_blocking(ack_write, False)
    reader = HintsReader(hints_read, ack_write, pid, started, int(config.get("maxHintBytes") or (64 << 20)))
    reader.start()
    child_setup = b""
    while True:
        chunk = os.read(setup_read, 1 << 16)
        if not chunk:
            break
        child_setup += chunk
    os.close(setup_read)
    for part in child_setup.split(b"\n"):
        if part.strip():
            try:
                setup.update(json.loads(part))
            except ValueError:
                pass

    timed_out = threading.Event()

    def on_timeout():
        timed_out.set()
        kill_everything(in_pid_namespace)

    timer = threading.Timer(max(0.001, float(config["timeoutMs"]) / 1000.0), on_timeout)
    timer.daemon = True
    timer.start()
    result = None
    others_peak = 0
    while result is None:
        try:
            reaped, status, usage = os.wait4(-1, 0)
        except ChildProcessError:
            break
        except InterruptedError:
            continue
        if reaped == pid:
            result = (status, usage, time.monotonic())
        else:
            others_peak = max(others_peak, usage.ru_maxrss)
    timer.cancel()
    # Whatever the program left running dies with it, and is measured.
    deadline = time.monotonic() + 5.0
    while True:
        kill_everything(in_pid_namespace)
        try:
            reaped, _, usage = os.wait4(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if reaped == 0:
            if time.monotonic() > deadline:
                break
            time.sleep(0.01)
            continue
        others_peak = max(others_peak, usage.ru_maxrss)
    reader.join(2.0)
    if result is None:
        raise RuntimeError("the program's process was not found among the children")
    status, usage, ended = result
    import resource

    everyone = resource.getrusage(resource.RUSAGE_CHILDREN)
    program = {
        "exitCode": os.WEXITSTATUS(status) if os.WIFEXITED(status) else None,
        "signal": signal.Signals(os.WTERMSIG(status)).name if os.WIFSIGNALED(status) else None,
        "timedOut": timed_out.is_set(),
        "wallMs": round((ended - started) * 1000.0, 3),
        "cpuMs": round((everyone.ru_utime + everyone.ru_stime) * 1000.0, 3),
        "peakMemoryMB": to_mb(max(usage.ru_maxrss, others_peak, everyone.ru_maxrss)),
        "processPeakMemoryMB": to_mb(usage.ru_maxrss),
    }
    return {
        "version": 1,
        "program": program,
        "setup": setup,
        "pidNamespace": in_pid_namespace,
        "records": list(reader.records),
        "recordsTruncated": reader.truncated,
        "lastRecordTorn": reader.torn,
    }


def main():
    config = json.loads(sys.stdin.buffer.read())
    key = bytes.fromhex(config.pop("key"))
    os.set_inheritable(REPORT_FD, False)
    if LINUX:
        try:
            prctl(PR_SET_DUMPABLE, 0)
        except OSError:
            pass
    for name in ("SIGTERM", "SIGINT", "SIGHUP", "SIGUSR1", "SIGUSR2", "SIGQUIT"):
        signal.signal(getattr(signal, name), signal.SIG_IGN)
    try:
        body = supervise(config)
    except BaseException as error:
        body = {"version": 1, "supervisorError": "%s: %s" % (type(error).__name__, error)}
    data = json.dumps(body, allow_nan=False).encode()
    mac = hmac.new(key, data, hashlib.sha256).hexdigest().encode()
    view = memoryview(data + b"\n" + mac + b"\n")
    while view:
        written = os.write(REPORT_FD, view)
        view = view[written:]
    os.close(REPORT_FD)


if __name__ == "__main__":
    main()
