"""Settings: flags, environment variables and their documentation stay in step."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import pytest

from m2mcloud.cse.config import ConfigError, CSEConfig

DOCS = Path(__file__).resolve().parents[2] / "docs" / "cse.md"


def test_every_setting_is_documented() -> None:
    text = DOCS.read_text()
    missing = [
        f.name for f in dataclasses.fields(CSEConfig) if f"`M2M_{f.name.upper()}`" not in text
    ]
    assert not missing, f"docs/cse.md lacks {missing}: regenerate its configuration table"


def test_flag_beats_environment_beats_default() -> None:
    parser = argparse.ArgumentParser()
    CSEConfig.add_arguments(parser)
    env = {"M2M_HTTP_PORT": "9000", "M2M_CSE_NAME": "from-env", "M2M_MQTT": "off"}
    cfg = CSEConfig.from_args(parser.parse_args(["--cse-name", "from-flag"]), env)
    assert (cfg.http_port, cfg.cse_name, cfg.mqtt, cfg.cse_id) == (
        9000,
        "from-flag",
        False,
        "id-in",
    )
    assert CSEConfig.from_args(parser.parse_args(["--mqtt"]), env).mqtt is True


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"M2M_HTTP_PORT": "eighty"}, "M2M_HTTP_PORT='eighty' is not a valid int"),
        ({"M2M_MQTT": "maybe"}, "M2M_MQTT='maybe' is not a valid bool"),
    ],
)
def test_bad_values_name_the_setting(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        CSEConfig.from_env(env)


def test_passwords_are_masked_in_the_description() -> None:
    cfg = CSEConfig(db_url="postgresql+psycopg://m2m:topsecret@db/m2m", mqtt_password="pw")
    described = str(cfg.describe())
    assert "topsecret" not in described and "'pw'" not in described
