"""docs/configuration.md documents every key under `saltops:` that has a default."""

import re
from pathlib import Path

import pytest

from saltops import config
from saltops.alarms import settings as alarm_settings
from saltops.deploy import config as deploy_config
from saltops.notify import settings as notify_settings

DOC = Path(__file__).resolve().parents[3] / "docs" / "configuration.md"


def _sections():
    """``{section: set of keys}`` from the doc's ``## `saltops:<section>``` tables."""
    out = {}
    current = None
    for line in DOC.read_text(encoding="utf-8").splitlines():
        heading = re.match(r"^## `saltops:(\w*)`", line)
        if heading:
            current = heading.group(1) or ""
            out.setdefault(current, set())
            continue
        if line.startswith("## "):
            current = None
        row = re.match(r"^\| `(\w+)` \|", line)
        if current is not None and row:
            out[current].add(row.group(1))
    return out


def _defaults():
    sections = {
        "": {k for k, v in config.DEFAULTS.items() if not isinstance(v, dict) or k in ("db_options", "read_options")},
        "cmdb": set(config.DEFAULTS["cmdb"]),
    }
    sections["deploy"] = set(deploy_config.DEFAULTS)
    sections["alarms"] = set(alarm_settings.ALARMS)
    sections["notify"] = set(notify_settings.NOTIFY)
    return sections


@pytest.mark.parametrize("section", sorted(_defaults()))
def test_every_key_with_a_default_is_documented(section):
    documented = _sections().get(section, set())
    missing = _defaults()[section] - documented
    assert not missing, (
        f"docs/configuration.md lacks saltops:{section or '(top level)'} key(s): {sorted(missing)}"
    )


def test_the_doc_names_no_key_that_does_not_exist():
    defaults = _defaults()
    for section, keys in _sections().items():
        if section in defaults:
            assert keys <= defaults[section], (
                f"saltops:{section}: documented but unknown {sorted(keys - defaults[section])}"
            )
