"""A notification's form body, read once however often it is asked for (verified, then read)."""

from urllib.parse import urlencode

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.banks.ums.messages import form_fields

names = st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=0x2FF), min_size=1)
values = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=0x2FF))


@given(st.dictionaries(names, values, max_size=8))
def test_the_fields_read_back_and_again_alike_and_read_only(fields):
    body = urlencode(fields).encode()
    first = form_fields(body)
    assert dict(first) == fields
    assert form_fields(body) == first  # asked again: the same fields
    with pytest.raises(TypeError):
        first["sign"] = "forged"  # type: ignore[index]  # nobody changes what another reads


def test_a_field_given_twice_is_refused_every_time():
    for _ in range(2):
        with pytest.raises(ValueError, match="given twice"):
            form_fields(b"a=1&a=2")
