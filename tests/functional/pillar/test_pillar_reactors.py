"""The CMDB reactor SLS files, rendered by Salt's own reactor compiler."""

import pytest
import salt.config
import salt.utils.reactor

from saltops.paths import tree

CHANGED = str(tree("reactor") / "cmdb_changed.sls")
RECOVERED = str(tree("reactor") / "cmdb_recovered.sls")


@pytest.fixture(scope="module")
def reactor(tmp_path_factory):
    root = tmp_path_factory.mktemp("reactor")
    opts = salt.config.apply_master_config(
        overrides={
            "root_dir": str(root),
            "cachedir": str(root / "cache"),
            "sock_dir": str(root / "sock"),
            "pki_dir": str(root / "pki"),
            "file_roots": {"base": [str(root)]},
        }
    )
    return salt.utils.reactor.Reactor(opts)


def _chunks(reactor, sls, tag, data):
    return reactor.reactions(tag, data, [sls])


def test_changed_calls_the_refresh_runner_with_the_version_only(reactor):
    data = {
        "version": 42,
        "hostnames": ["evil; rm -rf /", "*"],
        "balancers": ["*"],
        "all": True,
        "_stamp": "x",
    }
    (chunk,) = _chunks(reactor, CHANGED, "saltops/cmdb/changed", data)
    assert chunk["state"] == "runner" and chunk["fun"] == "cmdb.refresh"
    # ``once``: the runner acts only if a CMDB write queued a refresh for that version, unclaimed.
    assert chunk["args"] == [{"version": 42}, {"once": True}]
    assert "tgt" not in chunk and "arg" not in chunk


@pytest.mark.parametrize(
    "data",
    [
        {},
        {"version": "42"},
        {"version": "42; salt '*' cmd.run id"},
        {"version": True},
        {"version": 0},
        {"version": -3},
        {"version": 4.5},
        {"version": [1]},
        {"version": {"a": 1}},
        {"version": None},
        # Relayed from a minion (event.send / fire_master): ignored.
        {"version": 42, "cmd": "_minion_event", "id": "web01.example.com"},
    ],
    ids=lambda d: repr(d)[:40],
)
def test_changed_ignores_anything_but_a_positive_integer_version(reactor, data):
    assert _chunks(reactor, CHANGED, "saltops/cmdb/changed", data) == []


def test_recovered_calls_the_runner_that_checks_the_outage_record(reactor):
    # The runner refreshes every pillar only when this master's outage record says an
    # outage ended (tests/unit/pillar/test_pillar_recovery.py); nothing of the event is passed.
    data = {"since": "2026-01-01T00:00:00Z", "until": "2026-01-01T00:05:00Z", "tgt": "evil", "fun": "cmd.run"}
    (chunk,) = _chunks(reactor, RECOVERED, "saltops/cmdb/recovered", data)
    assert chunk["state"] == "runner" and chunk["fun"] == "cmdb.refresh_after_outage"
    assert not {"args", "arg", "kwarg", "tgt"} & set(chunk)


def test_recovered_relayed_from_a_minion_is_ignored(reactor):
    data = {"cmd": "_minion_event", "id": "web01.example.com", "data": {}}
    assert _chunks(reactor, RECOVERED, "saltops/cmdb/recovered", data) == []
