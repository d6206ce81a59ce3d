"""Master opts for compiling pillar through Salt's own pillar compiler (no daemons)."""

import pytest
import salt.config
import salt.pillar

from saltops.cmdb import snapshot


@pytest.fixture
def master_opts(tmp_path):
    """Build master opts with ``ext_pillar: [{saltops_cmdb: {}}]``; pass the CMDB URL and extras."""
    pillar_root = tmp_path / "pillar"
    pillar_root.mkdir()
    (pillar_root / "top.sls").write_text("base:\n  '*':\n    - common\n")
    (pillar_root / "common.sls").write_text("static_key: from_pillar_roots\n")

    def make(db_url, **overrides):
        opts = {
            "root_dir": str(tmp_path),
            "cachedir": str(tmp_path / "cache"),
            "sock_dir": str(tmp_path / "sock"),
            "pki_dir": str(tmp_path / "pki"),
            "file_client": "local",
            "file_roots": {"base": [str(tmp_path / "states")]},
            "pillar_roots": {"base": [str(pillar_root)]},
            "ext_pillar": [{"saltops_cmdb": {}}],
            "saltops": {"db_url": db_url, "cmdb": {"retry_interval": 0}},
            "pillar_cache": False,
        }
        opts.update(overrides)
        return salt.config.apply_master_config(overrides=opts)

    yield make
    snapshot.forget_caches()


def compile_pillar(opts, minion_id, clean_cache=False):
    """Compile one minion's pillar the way a master worker does."""
    return salt.pillar.get_pillar(
        opts, {"id": minion_id}, minion_id, saltenv="base", clean_cache=clean_cache
    ).compile_pillar()


@pytest.fixture
def render():
    return compile_pillar
