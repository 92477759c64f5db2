import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from bank_simulator.config import SimulatorConfig
from tests.bank_simulator.conftest import Keys, bank_configs


def test_loads_from_a_json_file_and_keeps_secrets_out_of_its_repr(
    keys: Keys, tmp_path: Path
) -> None:
    path = tmp_path / "sim.json"
    path.write_text(
        json.dumps({"service_url": "http://127.0.0.1:8000", "banks": bank_configs(keys)})
    )
    config = SimulatorConfig.from_file(path)
    assert [bank.adapter for bank in config.banks] == ["ums", "iso20022", "gmbank"]
    shown = repr(config) + config.model_dump_json()
    for secret in (keys.md5_key, keys.secret_to_service, keys.bank_sm2_private):
        assert secret not in shown


@pytest.mark.parametrize(
    ("index", "field", "value"),
    [
        (0, "bank_private_key_pem", "-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----"),
        (0, "service_public_key_pem", "not a pem"),
        (2, "bank_private_key_hex", "ab" * 31),
        (2, "service_public_key_hex", "ab" * 63),
        (0, "md5_key", None),
        (1, "secret_from_service", None),
        (2, "app_id", None),
        (1, "unexpected", "x"),
    ],
)
def test_refuses_a_bank_with_a_missing_or_unloadable_key(
    keys: Keys, index: int, field: str, value: str | None
) -> None:
    banks = bank_configs(keys)
    if value is None:
        del banks[index][field]
    else:
        banks[index][field] = value
    with pytest.raises(ValidationError):
        SimulatorConfig.model_validate({"service_url": "http://x", "banks": banks})


def test_refuses_two_banks_with_one_slug(keys: Keys) -> None:
    banks = bank_configs(keys)
    banks[1]["slug"] = banks[0]["slug"]
    with pytest.raises(ValidationError):
        SimulatorConfig.model_validate({"service_url": "http://x", "banks": banks})
