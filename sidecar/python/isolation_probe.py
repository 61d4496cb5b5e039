"""Probes what the sandbox can do here, from inside the namespaces GPIoT would run a program in.

Prints one JSON object: the network interfaces and whether a connection to a TEST-NET address
failed, whether this process is PID 1 of its own PID namespace, whether a read-only remount
worked in its mount namespace, and whether a child could drop every capability. Runs no
generated code.
"""
import json
import os
import socket
import sys

import sandbox_supervisor as supervisor


def network():
    names = [name for _, name in socket.if_nameindex()]
    connection = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    connection.settimeout(2)
    try:
        code = connection.connect_ex(("192.0.2.1", 9))
    finally:
        connection.close()
    return names, code


def read_only_remount():
    try:
        supervisor.mount(None, "/", None, supervisor.MS_REC | supervisor.MS_PRIVATE)
        supervisor.mount("none", "/tmp", "tmpfs", supervisor.MS_NOSUID | supervisor.MS_NODEV, "size=4k")
        supervisor.mount(None, "/tmp", None, supervisor.MS_REMOUNT | supervisor.MS_RDONLY | supervisor.MS_NOSUID | supervisor.MS_NODEV)
        return bool(os.statvfs("/tmp").f_flag & os.ST_RDONLY), None
    except OSError as error:
        return False, str(error)


def capabilities_dropped():
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        try:
            supervisor.drop_privileges()
            left = supervisor.capabilities()
            dropped = left.get("CapEff", 1) == 0 and left.get("CapPrm", 1) == 0 and left.get("CapBnd", 1) == 0
        except OSError:
            dropped = False
        os.write(write, b"1" if dropped else b"0")
        os._exit(0)
    os.close(write)
    answer = os.read(read, 1)
    os.waitpid(pid, 0)
    return answer == b"1"


def main():
    names, code = network()
    report = {"interfaces": names, "connect": code, "pid": os.getpid()}
    if sys.platform.startswith("linux"):
        report["readOnly"], report["mountError"] = read_only_remount()
        report["capabilitiesDropped"] = capabilities_dropped()
    print(json.dumps(report))


if __name__ == "__main__":
    main()
