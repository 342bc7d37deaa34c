"""Raw bytes in, validated models out; whatever does not validate comes back with its reason.

A batch keeps its good entries: each bad entry is returned separately with its own reason and
bytes, so it can be dead-lettered on its own.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from schemas import format_errors

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class Rejected:
    """An input (or one batch entry) that failed, with its bytes and the reason."""

    payload: bytes
    reason: str


@dataclass
class Decoded(Generic[M]):
    """The valid items of a message and the rejected ones."""

    items: list[M] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)


def _load(raw: bytes | None) -> tuple[Any, str | None]:
    if raw is None:
        return None, "empty message (no value)"
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, f"not UTF-8: {exc.reason} at byte {exc.start}"
    try:
        return json.loads(text), None
    except json.JSONDecodeError as exc:
        return None, f"not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
    except RecursionError:
        return None, "not JSON: nested too deeply"


def decode_one(raw: bytes | None, model: type[M]) -> Decoded[M]:
    """Decode a message that holds exactly one ``model``."""
    data, problem = _load(raw)
    if problem is not None:
        return Decoded(rejected=[Rejected(raw or b"", problem)])
    if not isinstance(data, dict):
        return Decoded(rejected=[Rejected(raw or b"", "expected a JSON object")])
    try:
        return Decoded(items=[model.model_validate(data)])
    except ValidationError as exc:
        return Decoded(rejected=[Rejected(raw or b"", format_errors(exc))])


def decode_batchable(raw: bytes | None, model: type[M], batch_field: str) -> Decoded[M]:
    """Decode one ``model`` or a batch ``{batch_field: [...]}``; bad entries are split out."""
    data, problem = _load(raw)
    if problem is not None:
        return Decoded(rejected=[Rejected(raw or b"", problem)])
    if not isinstance(data, dict):
        return Decoded(rejected=[Rejected(raw or b"", "expected a JSON object")])
    if batch_field not in data:
        try:
            return Decoded(items=[model.model_validate(data)])
        except ValidationError as exc:
            return Decoded(rejected=[Rejected(raw or b"", format_errors(exc))])
    entries = data[batch_field]
    if not isinstance(entries, list) or not entries:
        return Decoded(rejected=[Rejected(raw or b"", f"{batch_field}: expected a non-empty list")])
    out: Decoded[M] = Decoded()
    for i, entry in enumerate(entries):
        try:
            if not isinstance(entry, dict):
                raise TypeError
            out.items.append(model.model_validate(entry))
        except TypeError:
            out.rejected.append(Rejected(_dump(entry), f"{batch_field}.{i}: expected an object"))
        except ValidationError as exc:
            out.rejected.append(Rejected(_dump(entry), format_errors(exc, f"{batch_field}.{i}")))
    return out


def _dump(entry: Any) -> bytes:
    return json.dumps(entry, separators=(",", ":"), ensure_ascii=False).encode()


def encode(model: BaseModel) -> bytes:
    """A model as compact JSON bytes."""
    return model.model_dump_json().encode()
