"""Runs one documentation code sample the way a GPIoT program calls a sub-task, inside the sandbox.

The working copy holds this file (as main.py), the sample as sample.py, and sample.json:
{"setup": code that builds the inputs, "inputs": [names], "outputs": [names]}. It builds the
inputs, calls sample.run(**inputs), checks that run() returns a dict with exactly the promised
output names, and prints the kinds of the values on its last line, after MARKER.
"""

import json
import sys

MARKER = "GPIOT-SAMPLE-RESULT "


class SampleContractError(Exception):
    """run() did not return the dict of outputs its specification promises."""


def describe(value):
    """(type, detail) of a value, in the words a task specification uses."""
    numpy = sys.modules.get("numpy")
    if numpy is not None and isinstance(value, numpy.ndarray):
        return f"np.ndarray of shape {value.shape}", f"dtype {value.dtype}"
    if numpy is not None and isinstance(value, numpy.generic):
        for kind, name in ((numpy.bool_, "bool"), (numpy.integer, "int"), (numpy.floating, "float"), (numpy.complexfloating, "complex")):
            if isinstance(value, kind):
                return name, f"NumPy {type(value).__name__}"
    if value is None:
        return "None", ""
    if isinstance(value, (bool, int, float, complex, str, bytes)):
        return type(value).__name__, ""
    if isinstance(value, (list, tuple, dict, set)):
        return type(value).__name__, f"{len(value)} items"
    kind = type(value)
    return kind.__name__, kind.__module__


def main():
    with open("sample.json", encoding="utf-8") as handle:
        config = json.load(handle)
    namespace = {}
    exec(compile(config["setup"], "setup.py", "exec"), namespace)  # noqa: S102 - the sample's own input code, in the sandbox
    inputs = {name: namespace[name] for name in config["inputs"]}
    import sample

    result = sample.run(**inputs)
    if not isinstance(result, dict) or sorted(result) != sorted(config["outputs"]):
        keys = sorted(result) if isinstance(result, dict) else None
        raise SampleContractError(f"run() returned {type(result).__name__} with keys {keys}, not {sorted(config['outputs'])}")
    report = {
        "inputs": {name: describe(value) for name, value in inputs.items()},
        "outputs": {name: describe(value) for name, value in result.items()},
    }
    sys.stdout.flush()
    sys.stdout.write("\n" + MARKER + json.dumps(report) + "\n")


if __name__ == "__main__":
    main()
