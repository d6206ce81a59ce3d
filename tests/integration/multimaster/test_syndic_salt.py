"""The two settings a Salt 3008.4 syndic needs, shown on Salt alone (no SaltOps setting involved).

docs/scale.md (Syndic) explains both; these tests fail when a Salt upgrade changes
either behaviour, which is the time to revisit the settings of test_syndic.py.

1. A syndic sends its events and its minions' returns up with a synchronous request
   channel called from inside its running event loop (``SyndicManager._forward_events``,
   a periodic callback).  ``SyncWrapper`` then runs the request in a thread and, after
   it, cancels the tasks it takes for orphans; on ZeroMQ that is the inner task of the
   request client's ``wait_for(queue.get())``, which ends the client's send loop: only
   the first request reaches the master.  On the TCP transport every one does.
2. ``salt.config.syndic_config`` takes ``publish_port`` from the syndic's own master
   config unless its minion config sets one, and the publish channel uses it as the
   upper master's port.
"""

import asyncio
import copy

import pytest
import salt.channel.client
import salt.config
import salt.exceptions
import yaml

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _probe_opts(master, tmp_path, transport):
    opts = salt.config.minion_config(None)
    port = master.config["ret_port"]
    opts.update({"id": "syndic-probe", "master": "127.0.0.1", "master_port": port,
                 "master_uri": f"tcp://127.0.0.1:{port}", "transport": transport, "acceptance_wait_time": 1})
    for key in ("pki_dir", "cachedir", "sock_dir"):
        opts[key] = str(tmp_path / key)
        (tmp_path / key).mkdir()
    return opts


def _sends_inside_a_running_loop(opts, count=3):
    """How many of ``count`` requests through a sync ReqChannel, made inside a running loop, got an answer."""

    async def inside():
        channel = salt.channel.client.ReqChannel.factory(copy.deepcopy(opts))
        answered = 0
        try:
            for i in range(count):
                load = {"cmd": "_minion_event", "id": opts["id"], "tag": f"syndic-probe/{i}", "data": {}}
                try:
                    channel.send(load, timeout=5, tries=1)
                    answered += 1
                except salt.exceptions.SaltReqTimeoutError:
                    pass
        finally:
            channel.close()
        return answered

    return asyncio.run(inside())


@pytest.mark.parametrize("transport", ["tcp", pytest.param("zeromq", marks=pytest.mark.xfail(
    strict=True, reason="Salt 3008.4: SyncWrapper reaps the ZeroMQ request client's queue task"))])
def test_a_sync_request_channel_inside_a_running_loop_keeps_sending(salt_factories, tmp_path, transport):
    master = salt_factories.salt_master_daemon(f"sreq-{transport[:3]}", overrides={
        "auto_accept": True, "transport": transport})
    with master.started(start_timeout=120):
        assert _sends_inside_a_running_loop(_probe_opts(master, tmp_path, transport)) == 3


def test_a_syndic_takes_its_own_masters_publish_port_unless_its_minion_config_sets_one(tmp_path):
    master = {"publish_port": 14505, "syndic_master": "top.example.com"}
    (tmp_path / "master").write_text(yaml.safe_dump(master))
    (tmp_path / "minion").write_text(yaml.safe_dump({"id": "idc1"}))
    opts = salt.config.syndic_config(str(tmp_path / "master"), str(tmp_path / "minion"))
    assert opts["publish_port"] == 14505
    (tmp_path / "minion").write_text(yaml.safe_dump({"id": "idc1", "publish_port": 4506}))
    opts = salt.config.syndic_config(str(tmp_path / "master"), str(tmp_path / "minion"))
    # 4506 is what the publish channel reads as "not set": it then takes the port the upper master reports.
    assert opts["publish_port"] == 4506
