"""The end of a CMDB outage is handled once: the note the outage marker leaves, claimed once.

``cmdb.refresh_after_outage`` (the reactor's answer to ``saltops/cmdb/recovered``,
:func:`saltops.pillar.outage.refresh_after_outage`)
refreshes every pillar only with a note in hand, so a forged or replayed
``recovered`` event refreshes nothing.
"""

import pytest

from saltops.pillar.outage import OutageMarker, refresh_after_outage
from saltops.saltcalls import SaltCalls, SaltUnreachable


def fired():
    events = []

    def fire(tag, data):
        events.append((tag, data))
        return True

    return events, fire


def test_a_recovery_leaves_one_note_that_one_claim_takes(tmp_path):
    marker = OutageMarker(str(tmp_path / "snap.msgpack"))
    events, fire = fired()
    assert marker.claim_recovery() is None  # no outage ever: nothing to claim
    marker.failed(100.0, "down", 300, fire)
    assert marker.claim_recovery() is None  # still down: not a recovery
    assert marker.recovered(160.0, fire) == 100.0
    assert [tag for tag, _ in events] == ["saltops/cmdb/unavailable", "saltops/cmdb/recovered"]
    assert marker.claim_recovery() == {"since": 100.0, "until": 160.0}
    assert marker.claim_recovery() is None


def test_a_recovery_that_could_not_be_announced_leaves_no_note(tmp_path):
    marker = OutageMarker(str(tmp_path / "snap.msgpack"))
    _, fire = fired()
    marker.failed(100.0, "down", 300, fire)
    assert marker.recovered(150.0, lambda tag, data: False) is None
    assert marker.exists() and marker.claim_recovery() is None
    # The next check announces it; then there is a note to take.
    assert marker.recovered(170.0, fire) == 100.0
    assert marker.claim_recovery() == {"since": 100.0, "until": 170.0}


def test_a_new_outage_before_the_claim_holds_the_note_back(tmp_path):
    marker = OutageMarker(str(tmp_path / "snap.msgpack"))
    _, fire = fired()
    marker.failed(100.0, "down", 300, fire)
    marker.recovered(150.0, fire)
    marker.failed(200.0, "down again", 300, fire)
    assert marker.claim_recovery() is None
    marker.recovered(260.0, fire)
    assert marker.claim_recovery() == {"since": 200.0, "until": 260.0}


def test_an_unreadable_note_is_dropped_not_acted_on(tmp_path):
    marker = OutageMarker(str(tmp_path / "snap.msgpack"))
    (tmp_path / "snap.msgpack.recovered").write_text('{"since": "yesterday"')
    assert marker.claim_recovery() is None
    assert not (tmp_path / "snap.msgpack.recovered").exists()


def test_without_a_note_the_refresh_publishes_nothing(tmp_path):
    # SaltCalls without a Salt client: any publish would raise SaltUnreachable.
    calls = SaltCalls()
    snapshot_file = str(tmp_path / "cmdb.msgpack")
    skipped = refresh_after_outage(snapshot_file, calls)
    assert skipped["jid"] is None and "no CMDB outage ended" in skipped["skipped"]
    _, fire = fired()
    marker = OutageMarker(snapshot_file)
    marker.failed(10.0, "down", 300, fire)
    assert "no CMDB outage ended" in refresh_after_outage(snapshot_file, calls)["skipped"]  # still down
    marker.recovered(20.0, fire)
    with pytest.raises(SaltUnreachable, match="no Salt client"):
        refresh_after_outage(snapshot_file, calls)  # a note: it tries to publish


class PublishLog:
    """Stands in for Salt's LocalClient in the core's unit tests: records what was published."""

    def __init__(self):
        self.jobs = []

    def cmd_async(self, tgt, fun, arg, tgt_type, kwarg):
        self.jobs.append((tgt, fun, tgt_type, kwarg))
        return f"2026120200000000000{len(self.jobs)}"


def test_a_refresh_the_master_did_not_take_keeps_its_note_for_the_next_try(tmp_path):
    snapshot_file = str(tmp_path / "cmdb.msgpack")
    marker = OutageMarker(snapshot_file)
    _, fire = fired()
    marker.failed(10.0, "down", 300, fire)
    marker.recovered(20.0, fire)
    with pytest.raises(SaltUnreachable):
        refresh_after_outage(snapshot_file, SaltCalls())  # the master did not take the job
    published = PublishLog()
    calls = SaltCalls(local=lambda: published)
    done = refresh_after_outage(snapshot_file, calls)
    assert done["outage"] == {"since": "1970-01-01T00:00:10Z", "until": "1970-01-01T00:00:20Z"}
    assert published.jobs == [("*", "saltutil.refresh_pillar", "glob", {"clean_cache": True})]
    assert "no CMDB outage ended" in refresh_after_outage(snapshot_file, calls)["skipped"]  # taken once
    assert len(published.jobs) == 1


def test_a_note_given_back_during_a_new_outage_waits_for_that_outage_to_end(tmp_path):
    marker = OutageMarker(str(tmp_path / "snap.msgpack"))
    _, fire = fired()
    marker.failed(10.0, "down", 300, fire)
    marker.recovered(20.0, fire)
    note = marker.claim_recovery()
    marker.failed(30.0, "down again", 300, fire)
    marker.give_back(note)
    assert marker.claim_recovery() is None  # still down: nothing to refresh yet
    marker.recovered(40.0, fire)
    assert marker.claim_recovery() == {"since": 30.0, "until": 40.0}
