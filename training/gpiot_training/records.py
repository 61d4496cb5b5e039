"""Training records (JSONL, one per line), as `gpiot data` writes them.

The TypeScript side owns the format (one zod schema in sidecar/src/data/records.ts); this is a
small validator of its own, kept in sync by a test that reads a records file written by TypeScript.
Unknown fields are allowed (the format may grow); the fields training reads are checked strictly,
and the first problem is reported with its line number.
"""

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .events import EXIT_BAD_INPUT, TrainingError

ROLES = ("td", "rt", "cg")
FORMATS = ("json", "paper")
SPLITS = ("train", "validation", "test")
SOURCE_KINDS = ("paper", "package", "published", "synthetic")
AUGMENTATION_AXES = ("modality", "representation", "resources")
MESSAGE_ROLES = ("system", "user", "assistant")
_HEX = re.compile(r"^[0-9a-f]{8,128}$")


@dataclass(frozen=True)
class Record:
    id: str
    role: str
    messages: tuple[tuple[str, str], ...]
    format: str
    split: str
    source: dict[str, Any] = field(default_factory=dict, compare=False)
    line: int = 0

    @property
    def prompt_messages(self) -> list[dict[str, str]]:
        return [{"role": role, "content": content} for role, content in self.messages[:-1]]

    @property
    def answer(self) -> str:
        return self.messages[-1][1]


def _problem(where: str, message: str) -> TrainingError:
    return TrainingError("RECORDS_INVALID", f"{where}: {message}", EXIT_BAD_INPUT)


def parse_record(raw: Any, where: str, line: int = 0) -> Record:
    if not isinstance(raw, dict):
        raise _problem(where, "a record must be a JSON object")

    def need(name: str, kind: type) -> Any:
        if name not in raw:
            raise _problem(where, f'the record has no "{name}"')
        value = raw[name]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise _problem(where, f'"{name}" must be a {kind.__name__}')
        return value

    record_id = need("id", str)
    if not _HEX.match(record_id):
        raise _problem(where, f'"id" must be a lower-case hex content hash, got "{record_id[:40]}"')
    role = need("role", str)
    if role not in ROLES:
        raise _problem(where, f'"role" is "{role}"; a record\'s role is one of {", ".join(ROLES)}')
    record_format = raw.get("format", "json")
    if record_format not in FORMATS:
        raise _problem(where, f'"format" is "{record_format}"; expected one of {", ".join(FORMATS)}')
    split = need("split", str)
    if split not in SPLITS:
        raise _problem(where, f'"split" is "{split}"; expected one of {", ".join(SPLITS)}')
    source = need("source", dict)
    if source.get("kind") not in SOURCE_KINDS:
        raise _problem(where, f'"source.kind" must be one of {", ".join(SOURCE_KINDS)}')
    augmentation = raw.get("augmentation")
    if augmentation is not None:
        if (
            not isinstance(augmentation, dict)
            or augmentation.get("axis") not in AUGMENTATION_AXES
            or not isinstance(augmentation.get("value"), str)
        ):
            raise _problem(where, '"augmentation" must be null or {"axis": modality|representation|resources, "value": text}')

    messages = need("messages", list)
    if len(messages) < 2:
        raise _problem(where, '"messages" needs at least a user message and the assistant answer')
    parsed: list[tuple[str, str]] = []
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in MESSAGE_ROLES or not isinstance(message.get("content"), str):
            raise _problem(where, f'messages[{index}] must be {{"role": system|user|assistant, "content": text}}')
        parsed.append((message["role"], message["content"]))
    if parsed[-1][0] != "assistant":
        raise _problem(where, "the last message must be the assistant's answer (the only one that carries training loss)")
    if not parsed[-1][1].strip():
        raise _problem(where, "the assistant's answer is empty")
    if any(role == "system" for role, _ in parsed[1:]):
        raise _problem(where, "only the first message may be a system message")
    if record_format == "paper" and [role for role, _ in parsed] != ["system", "user", "assistant"]:
        raise _problem(where, 'a "paper" record is exactly system, user, assistant (the GPIoT authors\' Llama-2 chat prompt)')
    return Record(record_id, role, tuple(parsed), record_format, split, source, line)


def read_records(path: str) -> list[Record]:
    try:
        with open(path, encoding="utf-8") as handle:
            lines = handle.read().split("\n")
    except FileNotFoundError as error:
        raise TrainingError("RECORDS_NOT_FOUND", f"The records file {path} does not exist.", EXIT_BAD_INPUT) from error
    except UnicodeDecodeError as error:
        raise TrainingError("RECORDS_INVALID", f"The records file {path} is not UTF-8 text: {error}", EXIT_BAD_INPUT) from error
    records: list[Record] = []
    for number, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        where = f"{path}, line {number}"
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as error:
            raise _problem(where, f"not valid JSON ({error.msg} at column {error.colno})") from error
        records.append(parse_record(raw, where, number))
    if not records:
        raise TrainingError("RECORDS_EMPTY", f"The records file {path} holds no records: nothing to train on.", EXIT_BAD_INPUT)
    return records


def check_roles(records: Iterable[Record], wanted: tuple[str, ...], path: str) -> None:
    """Every record's role must be one this run trains; every trained role needs training records."""
    records = list(records)
    for record in records:
        if record.role not in wanted:
            raise _problem(
                f"{path}, line {record.line}",
                f'a record for role "{record.role}", but this run trains {", ".join(wanted)} (pass --roles to include it, or filter the records)',
            )
    for role in wanted:
        if not any(record.role == role and record.split == "train" for record in records):
            raise TrainingError("RECORDS_EMPTY", f'{path} has no training records (split "train") for role "{role}".', EXIT_BAD_INPUT)
    for role in wanted:
        formats = {record.format for record in records if record.role == role}
        if len(formats) > 1:
            raise _problem(
                path, f'role "{role}" mixes prompt formats ({", ".join(sorted(formats))}); a tuned adapter is trained on one format'
            )
