"""docs/guarantees.md names the test behind each promise: every test it names exists."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# `tests/x.py::test_a`, or `::test_b` for another test of the file named just before it.
REFERENCE = re.compile(r"`(tests/[\w/]+\.py)?::(\w+)`")


def _references() -> list[tuple[str, str]]:
    found = []
    for line in (ROOT / "docs" / "guarantees.md").read_text().splitlines():
        path = None
        for match in REFERENCE.finditer(line):
            path = match.group(1) or path
            assert path is not None, f"a bare ::{match.group(2)} with no file before it: {line}"
            found.append((path, match.group(2)))
    return found


def test_every_test_the_guarantees_name_exists():
    references = _references()
    assert len(references) > 40
    missing = [
        f"{path}::{name}"
        for path, name in references
        if not (ROOT / path).exists()
        or not re.search(rf"^(async )?def {name}\(", (ROOT / path).read_text(), re.M)
    ]
    assert missing == []
