"""GPIoT's Python syntax checker: one long-lived process per engine.

Reads one JSON request per line on stdin, {"file": NAME, "source": TEXT}, compiles the source
(compile() only: nothing is executed) and writes one JSON answer per line on stdout:
{"ok": true} or {"ok": false, "message": ..., "line": ...}. Exits at the end of stdin.
"""

import json
import sys


def check(source, file_name):
    try:
        compile(source, file_name, "exec", dont_inherit=True)
        return {"ok": True}
    except SyntaxError as error:
        return {"ok": False, "message": f"{type(error).__name__}: {error.msg}", "line": error.lineno}
    except ValueError as error:
        return {"ok": False, "message": f"ValueError: {error}"}


def main():
    for raw in sys.stdin.buffer:
        line = raw.decode("utf-8", "replace")
        if not line.strip():
            continue
        try:
            request = json.loads(line)
            answer = check(request["source"], request["file"])
        except (ValueError, KeyError, TypeError) as error:
            answer = {"ok": False, "message": f"Bad request to the syntax checker: {error}", "bad_request": True}
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
