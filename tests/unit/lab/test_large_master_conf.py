"""salt/master.d/large-master.conf: only settings the installed Salt knows, each with its reason."""

from pathlib import Path

import salt.config
import yaml

SAMPLE = Path(__file__).resolve().parents[3] / "salt" / "master.d" / "large-master.conf"


def test_every_key_is_a_master_setting_of_the_installed_salt_with_a_valid_type():
    settings = yaml.safe_load(SAMPLE.read_text())
    assert settings, "the sample sets nothing"
    unknown = sorted(set(settings) - set(salt.config.DEFAULT_MASTER_OPTS))
    assert not unknown, f"not settings of the installed Salt: {unknown}"
    for key, value in settings.items():
        valid = salt.config.VALID_OPTS[key]
        assert isinstance(value, valid), f"{key}: {value!r} is not of the type Salt expects ({valid})"


def test_salt_applies_the_sample_as_given():
    settings = yaml.safe_load(SAMPLE.read_text())
    opts = salt.config.apply_master_config(overrides=dict(settings))
    assert {key: opts[key] for key in settings} == settings


def test_every_setting_has_its_reason_right_above_it():
    lines = SAMPLE.read_text().splitlines()
    for number, line in enumerate(lines):
        if line and not line.startswith("#"):
            above = lines[number - 1] if number else ""
            assert above.startswith("# "), f"line {number + 1} ({line!r}) has no comment giving its reason above it"
