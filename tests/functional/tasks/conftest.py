"""Master opts on SQLite for the task runner and scheduler through Salt's own loaders (no daemons)."""

import pytest
import salt.config
import salt.loader


@pytest.fixture
def opts(tmp_path):
    (tmp_path / "cache" / "proc").mkdir(parents=True)  # a master has it: RunnerClient tracks its jobs there
    o = salt.config.master_config(None)
    o.update({
        "cachedir": str(tmp_path / "cache"), "pki_dir": str(tmp_path / "pki"), "sock_dir": str(tmp_path / "sock"),
        "saltops": {"db_url": f"sqlite:///{tmp_path / 'saltops.db'}",
                    "tasks": {"refresh": 0.2, "heartbeat": 0.2, "min_timeout": 2}},
    })
    return o


@pytest.fixture
def runners(opts):
    return salt.loader.runner(opts, utils=salt.loader.utils(opts))


@pytest.fixture
def store(opts, runners):
    from saltops import runnerkit

    return runnerkit.open_store(opts)[1]
