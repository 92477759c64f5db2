from stdnum.cn import uscc

from tests.factories import valid_uscc


def test_made_up_credit_codes_are_valid():
    assert all(uscc.is_valid(valid_uscc()) for _ in range(200))
