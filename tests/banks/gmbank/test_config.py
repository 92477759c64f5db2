"""What an operator may configure for gmbank: keys are checked on load and never shown."""

from typing import Any

import pytest
from pydantic import ValidationError

from app.banks.gmbank import ADAPTER
from app.banks.gmbank.config import GmbankConfig
from tests.banks.gmbank.helpers import APP_ID, KeyPair, key_pair

SM2_N = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54123


def _config(our_key: KeyPair, bank_key: KeyPair, **changes: Any) -> dict[str, Any]:
    return {
        "app_id": APP_ID,
        "private_key_hex": our_key.private,
        "bank_public_key_hex": bank_key.public,
    } | changes


def test_the_adapter_names_its_config() -> None:
    assert ADAPTER.name == "gmbank"
    assert ADAPTER.config_model is GmbankConfig
    assert ADAPTER.results_by_query is False


def test_one_bank_key_or_several(our_key: KeyPair, bank_key: KeyPair) -> None:
    one = GmbankConfig.model_validate(_config(our_key, bank_key))
    assert one.bank_public_key_hex == [bank_key.public]
    new = key_pair()
    two = GmbankConfig.model_validate(
        _config(our_key, bank_key, bank_public_key_hex=[bank_key.public, new.public])
    )
    assert two.bank_public_key_hex == [bank_key.public, new.public]


def test_the_private_key_never_shows(our_key: KeyPair, bank_key: KeyPair) -> None:
    config = GmbankConfig.model_validate(_config(our_key, bank_key))
    assert our_key.private not in repr(config)
    assert our_key.private not in str(config.model_dump())
    assert our_key.private not in config.model_dump_json()
    assert config.private_key_hex.get_secret_value() == our_key.private


@pytest.mark.parametrize(
    "private_key_hex",
    [
        "",
        "0" * 64,  # zero is no key
        format(SM2_N - 1, "064x"),  # 1 + d would not be invertible
        "f" * 64,  # beyond the curve's order
        "g" * 64,
        "0x" + "1" * 62,
        "1" * 63,
        "1" * 65,
        "1" * 32 + " " + "1" * 31,
    ],
)
def test_a_private_key_that_is_not_an_sm2_key_is_refused_without_echoing_it(
    private_key_hex: str, our_key: KeyPair, bank_key: KeyPair
) -> None:
    with pytest.raises(ValidationError) as error:
        GmbankConfig.model_validate(_config(our_key, bank_key, private_key_hex=private_key_hex))
    if private_key_hex:
        assert private_key_hex not in str(error.value)


@pytest.mark.parametrize(
    "bank_public_key_hex",
    [
        "",
        [],
        "1" * 128,  # not a point on the curve
        "04" + "1" * 126,
        "g" * 128,
        "1" * 127,
        "1" * 130,
    ],
)
def test_a_bank_key_that_is_not_an_sm2_public_key_is_refused(
    bank_public_key_hex: Any, our_key: KeyPair, bank_key: KeyPair
) -> None:
    with pytest.raises(ValidationError):
        GmbankConfig.model_validate(
            _config(our_key, bank_key, bank_public_key_hex=bank_public_key_hex)
        )


def test_one_bad_key_in_a_rotation_list_is_refused(our_key: KeyPair, bank_key: KeyPair) -> None:
    with pytest.raises(ValidationError):
        GmbankConfig.model_validate(
            _config(our_key, bank_key, bank_public_key_hex=[bank_key.public, "1" * 128])
        )


def test_the_bank_public_key_in_place_of_ours_is_refused(
    our_key: KeyPair, bank_key: KeyPair
) -> None:
    # A 128-character public key pasted where the 64-character private key belongs.
    with pytest.raises(ValidationError):
        GmbankConfig.model_validate(_config(our_key, bank_key, private_key_hex=bank_key.public))


@pytest.mark.parametrize("app_id", ["", "APP 1", "APP\n1", "应用"])
def test_an_app_id_that_cannot_travel_in_a_header_is_refused(
    app_id: str, our_key: KeyPair, bank_key: KeyPair
) -> None:
    with pytest.raises(ValidationError):
        GmbankConfig.model_validate(_config(our_key, bank_key, app_id=app_id))


@pytest.mark.parametrize("field", ["app_id", "private_key_hex", "bank_public_key_hex"])
def test_every_field_is_required(field: str, our_key: KeyPair, bank_key: KeyPair) -> None:
    config = _config(our_key, bank_key)
    del config[field]
    with pytest.raises(ValidationError):
        GmbankConfig.model_validate(config)


def test_an_unknown_field_is_refused(our_key: KeyPair, bank_key: KeyPair) -> None:
    with pytest.raises(ValidationError):
        GmbankConfig.model_validate(_config(our_key, bank_key, md5_key="secret"))
