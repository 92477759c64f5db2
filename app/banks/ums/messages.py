"""Reading ums wire formats: the notification's form body and the JSON of a response."""

import json
import re
from collections.abc import Mapping
from datetime import datetime
from functools import lru_cache
from types import MappingProxyType
from typing import Any
from urllib.parse import parse_qsl

from app.kit.clock import SHANGHAI


def form_fields(body: bytes) -> Mapping[str, str]:
    """The fields of an application/x-www-form-urlencoded UTF-8 body. ValueError for a body that is
    not UTF-8 (raw or percent-encoded), a part without `=`, or a field given twice: which of two
    values the bank signed cannot be known, so neither is trusted.

    A body is read once, however often it is asked for (a request verifies it, then reads it):
    the fields of the last few bodies are kept, read-only."""
    return _form_fields(body)


@lru_cache(maxsize=64)
def _form_fields(body: bytes) -> Mapping[str, str]:
    text = body.decode("utf-8")  # UnicodeDecodeError is a ValueError
    fields: dict[str, str] = {}
    if not text:
        return MappingProxyType(fields)
    pairs = parse_qsl(
        text, keep_blank_values=True, strict_parsing=True, encoding="utf-8", errors="strict"
    )
    for key, value in pairs:
        if key in fields:
            raise ValueError(f"field {key!r} given twice")
        fields[key] = value
    return MappingProxyType(fields)


# What the signed string of a notification (spec 1) joins its fields with.
_SEPARATORS = re.compile(r"[&=]")


def ambiguous_field(fields: Mapping[str, str]) -> str | None:
    """The name of a field whose name or value holds `&` or `=`, or None. The signature covers
    `k1=v1&k2=v2...`, which reads back into one set of fields only when no name or value holds
    either: otherwise `a=1&b=2` could be one field or two, and a captured notification could be
    re-cut into another whose signature still verifies."""
    for key, value in fields.items():
        if _SEPARATORS.search(key) or _SEPARATORS.search(value):
            return key
    return None


_PAY_TIME = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}")


def pay_time(text: str) -> datetime:
    """`yyyy-MM-dd HH:mm:ss` in Asia/Shanghai, as an aware datetime; ValueError otherwise."""
    if not _PAY_TIME.fullmatch(text):
        raise ValueError(f"not a time as yyyy-MM-dd HH:mm:ss: {text!r}")
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=SHANGHAI)


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"key {key!r} given twice")
        result[key] = value
    return result


def json_object(body: bytes) -> dict[str, Any]:
    """A JSON object from UTF-8 bytes; ValueError for anything else (or a key given twice, since
    the signature could then cover a different value from the one we would read)."""
    value = json.loads(body.decode("utf-8"), object_pairs_hook=_no_duplicate_keys)
    if not isinstance(value, dict):
        raise ValueError("not a JSON object")
    return value
