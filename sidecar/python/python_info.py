"""Prints the real interpreter behind the command that runs this script, and its version."""
import json
import sys

print(json.dumps({"executable": sys.executable, "version": sys.version.split()[0]}))
