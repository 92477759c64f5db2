"""Free text a caller sends and we store: trimmed, bounded, and free of control characters, which
have no place in a name, break logs and exports, and (NUL) cannot be stored in PostgreSQL at all."""

from typing import Annotated

from pydantic import StringConstraints

NO_CONTROL_CHARACTERS = r"^[^\x00-\x1f\x7f]+$"

Name = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, min_length=1, max_length=200, pattern=NO_CONTROL_CHARACTERS
    ),
]
Reason = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, min_length=1, max_length=500, pattern=NO_CONTROL_CHARACTERS
    ),
]
