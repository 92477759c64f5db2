"""Student identity numbers (居民身份证号码): checked, then kept only as a keyed hash, to recognise
the same student across enrollments, and a masked form, to show. The full number is never stored,
returned or logged, and error messages never repeat it."""

import hashlib
import hmac
from dataclasses import dataclass

from stdnum.cn import ric
from stdnum.exceptions import ValidationError

from app.enrollments.errors import InvalidIdNumber

# Keeps these hashes apart from the API key hashes made with the same secret.
HASH_DOMAIN = b"student-id-number\x00"


@dataclass(frozen=True, slots=True)
class StudentId:
    hash: str
    masked: str


def student_id(secret: str, id_number: str) -> StudentId:
    try:
        number = ric.validate(id_number)
    except ValidationError:
        raise InvalidIdNumber(
            "the student's identity number is not a valid 18-character resident identity number "
            "(length, birth date or check character)"
        ) from None
    digest = hmac.new(secret.encode(), HASH_DOMAIN + number.encode(), hashlib.sha256)
    return StudentId(
        hash=digest.hexdigest(), masked=number[:3] + "*" * (len(number) - 7) + number[-4:]
    )
