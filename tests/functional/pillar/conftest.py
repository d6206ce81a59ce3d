"""Master opts for compiling pillar through Salt's own pillar compiler (no daemons)."""

import re

import pytest
import salt.config
import salt.pillar

from saltops import config
from saltops.cmdb import version as cmdb_version
from saltops.pillar import cache as pillar_cache
from saltops.store.engine import Store
from tests.support.mariadb_instance import MariaDBInstance, available
from tests.support.pillar_fixtures import clock, events, make_cache, sqlite_url, store  # noqa: F401


@pytest.fixture
def master_opts(tmp_path):
    """Build master opts with ``ext_pillar: [{saltops_cmdb: {}}]``; pass the CMDB URL and extras.

    ``writer``: a store whose writes count as this master's (they move its
    version stamp, as a runner's do); ``cmdb``: settings under ``saltops:cmdb``.
    """
    pillar_root = tmp_path / "pillar"
    pillar_root.mkdir()
    (pillar_root / "top.sls").write_text("base:\n  '*':\n    - common\n")
    (pillar_root / "common.sls").write_text("static_key: from_pillar_roots\n")

    def make(db_url, writer=None, cmdb=None, **overrides):
        opts = {
            "root_dir": str(tmp_path),
            "cachedir": str(tmp_path / "cache"),
            "sock_dir": str(tmp_path / "sock"),
            "pki_dir": str(tmp_path / "pki"),
            "file_client": "local",
            "file_roots": {"base": [str(tmp_path / "states")]},
            "pillar_roots": {"base": [str(pillar_root)]},
            "ext_pillar": [{"saltops_cmdb": {}}],
            "saltops": {"db_url": db_url, "cmdb": {"retry_interval": 0, **(cmdb or {})}},
            "pillar_cache": False,
        }
        opts.update(overrides)
        opts = salt.config.apply_master_config(overrides=opts)
        if writer is not None:
            cmdb_version.publish_on_commit(writer, config.load(opts)["cmdb"]["snapshot_file"])
        return opts

    yield make
    pillar_cache.forget_caches()


def compile_pillar(opts, minion_id, clean_cache=False):
    """Compile one minion's pillar the way a master worker does."""
    return salt.pillar.get_pillar(
        opts, {"id": minion_id}, minion_id, saltenv="base", clean_cache=clean_cache
    ).compile_pillar()


@pytest.fixture
def render():
    return compile_pillar


@pytest.fixture(scope="module")
def mariadb():
    """A private MariaDB server per test module, which the outage tests stop, kill and start."""
    problem = available()
    if problem:
        pytest.fail(problem)
    with MariaDBInstance() as instance:
        yield instance


def private_cmdb(mariadb, prefix, request):
    """``(url, store)`` of a fresh, migrated CMDB database on the running private server."""
    mariadb.start()
    name = prefix + re.sub(r"\W", "_", request.node.name.replace("test_", ""))[:40]
    conn = mariadb.connect()
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
    conn.close()
    url = mariadb.url(name)
    cmdb_store = Store(url)
    cmdb_store.migrate()
    return url, cmdb_store
