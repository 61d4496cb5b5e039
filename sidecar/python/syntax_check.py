"""Checks the syntax of Python source read from stdin with compile() only: nothing is executed.

argv[1] is the file name to report. Prints {"ok": true} or {"ok": false, "message", "line"}.
"""
import json
import sys


def main():
    source = sys.stdin.buffer.read().decode("utf-8", "replace")
    try:
        compile(source, sys.argv[1], "exec", dont_inherit=True)
        print(json.dumps({"ok": True}))
    except SyntaxError as error:
        print(json.dumps({"ok": False, "message": "%s: %s" % (type(error).__name__, error.msg), "line": error.lineno}))
    except ValueError as error:
        print(json.dumps({"ok": False, "message": "ValueError: %s" % error}))


if __name__ == "__main__":
    main()
