"""A set as a directory: export, import, and what an import refuses."""

import os

import pytest
import yaml

from saltops.confpush import bundle, model
from saltops.confpush import config as cp_config
from saltops.errors import ValidationError

LIMITS = cp_config.load({})
SPEC = model.normalise(
    {
        "roots": ["/etc/shop"],
        "values": {"port": 1},
        "files": [
            {"path": "/etc/shop/conf.d/a.conf", "template": "port={{ values.port }}\n", "mode": "0600"}
        ],
    },
    LIMITS,
)


def test_write_then_read_gives_the_same_set(tmp_path):
    written = bundle.write(tmp_path / "out", "shop", "test", 3, SPEC)
    assert str(tmp_path / "out" / "files" / "etc" / "shop" / "conf.d" / "a.conf") in written
    manifest = yaml.safe_load((tmp_path / "out" / "confpush.yml").read_text())
    assert manifest["version"] == 3 and manifest["files"][0]["source"] == "files/etc/shop/conf.d/a.conf"
    assert model.normalise(bundle.read(tmp_path / "out", LIMITS), LIMITS) == SPEC


def test_read_refuses_a_symlink_that_leads_out_and_oversized_files(tmp_path):
    base = tmp_path / "set"
    base.mkdir()
    (tmp_path / "outside").write_text("x")
    os.symlink(tmp_path / "outside", base / "link")
    (base / "big").write_text("x" * 50)
    (base / "confpush.yml").write_text(
        yaml.safe_dump(
            {"files": [{"path": "/etc/shop/a", "source": "link"}, {"path": "/etc/shop/b", "source": "big"}]}
        )
    )
    with pytest.raises(ValidationError) as err:
        bundle.read(base, dict(LIMITS, max_file_bytes=10))
    text = str(err.value)
    assert "source 'link' is outside" in text and "big is 50 bytes, more than 10" in text


def test_write_refuses_a_directory_that_is_not_empty(tmp_path):
    (tmp_path / "keep").write_text("mine")
    with pytest.raises(ValidationError, match="not an empty directory"):
        bundle.write(tmp_path, "shop", "test", 1, SPEC)
    assert (tmp_path / "keep").read_text() == "mine"
