import pytest
from pydantic import ValidationError

from app.banks.iso20022 import ADAPTER
from app.banks.iso20022.config import Iso20022Config

from .conftest import new_secret


def test_one_inbound_secret_or_several_is_stored_as_a_list() -> None:
    one, two = new_secret(), new_secret()
    single = Iso20022Config.model_validate({"inbound_secrets": one, "outbound_secret": two})
    assert [s.get_secret_value() for s in single.inbound_secrets] == [one]
    several = Iso20022Config.model_validate({"inbound_secrets": [one, two], "outbound_secret": one})
    assert [s.get_secret_value() for s in several.inbound_secrets] == [one, two]


def test_the_adapter_names_its_config_model() -> None:
    assert ADAPTER.name == "iso20022"
    assert ADAPTER.config_model is Iso20022Config
    assert ADAPTER.results_by_query is False


def test_secrets_never_appear_in_a_repr_or_a_dump() -> None:
    inbound, outbound = new_secret(), new_secret()
    config = Iso20022Config(inbound_secrets=[inbound], outbound_secret=outbound)
    for text in (repr(config), str(config), config.model_dump_json()):
        assert inbound not in text
        assert outbound not in text


@pytest.mark.parametrize(
    "data",
    [
        {"inbound_secrets": [], "outbound_secret": "o" * 32},
        {"outbound_secret": "o" * 32},
        {"inbound_secrets": ["i" * 32]},
        {"inbound_secrets": ["short"], "outbound_secret": "o" * 32},
        {"inbound_secrets": ["i" * 32], "outbound_secret": "secret"},
        {"inbound_secrets": ["i" * 32, ""], "outbound_secret": "o" * 32},
        {"inbound_secrets": [" " + "i" * 32], "outbound_secret": "o" * 32},
        {"inbound_secrets": ["i" * 32], "outbound_secret": "o" * 32, "md5_key": "x"},
    ],
)
def test_a_config_without_usable_secrets_is_refused(data: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        Iso20022Config.model_validate(data)
