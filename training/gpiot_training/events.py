"""The JSON-lines protocol between the trainer and `gpiot train`.

Every line on stdout is one JSON object with an "event" field; the TypeScript side validates each
with the zod schemas in sidecar/src/train/trainEvents.ts. Warnings and library noise go to stderr.
"""

import json
import sys
from typing import Any

# Exit codes, mirrored by sidecar/src/train/trainEvents.ts.
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_MODEL = 5
EXIT_DOES_NOT_FIT = 8
EXIT_INTERRUPTED = 130


class TrainingError(Exception):
    """A failure the user can act on: its message names the problem and what to do."""

    def __init__(self, code: str, message: str, exit_code: int = EXIT_FAILED):
        super().__init__(message)
        self.code = code
        self.exit_code = exit_code


def emit(event: str, **fields: Any) -> None:
    sys.stdout.write(json.dumps({"event": event, **fields}, allow_nan=False, default=_plain) + "\n")
    sys.stdout.flush()


def warn(message: str) -> None:
    emit("warning", message=message)


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
