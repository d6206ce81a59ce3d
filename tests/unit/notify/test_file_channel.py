"""The file channel: one readable block per notification, appended; bad settings refused."""

import threading

import pytest

from saltops.errors import ValidationError
from saltops.notify import registry
from saltops.notify.base import DeliveryError
from tests.support.alarm_receivers import sample_payload as payload


def test_blocks_are_appended_readable_and_private(tmp_path):
    path = tmp_path / "alarms" / "inbox.log"
    channel = registry.build({"inbox": {"type": "file", "path": str(path)}})["inbox"]
    channel.send(payload())
    channel.send(payload())
    text = path.read_text()
    assert text.count("--- ") == 2 and "receiver=" in text
    assert "[FIRING:" in text  # the same title the mail and robot channels use
    assert path.stat().st_mode & 0o077 == 0


def test_concurrent_workers_never_interleave_blocks(tmp_path):
    path = tmp_path / "inbox.log"
    channel = registry.build({"inbox": {"type": "file", "path": str(path)}})["inbox"]
    one = channel.block(payload())
    threads = [threading.Thread(target=lambda: [channel.send(payload()) for _ in range(20)]) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    blocks = path.read_text().split("--- ")[1:]
    assert len(blocks) == 80
    body = one.split("\n", 1)[1]
    assert all(b.split("\n", 1)[1] == body for b in blocks)


def test_bad_settings_and_unwritable_files(tmp_path):
    with pytest.raises(ValidationError, match="absolute file path"):
        registry.build({"inbox": {"type": "file", "path": "relative/inbox.log"}})
    with pytest.raises(ValidationError, match="path: required"):
        registry.build({"inbox": {"type": "file"}})
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")  # a file where the directory should be: unwritable even for root
    channel = registry.build({"inbox": {"type": "file", "path": str(blocker / "inbox.log")}})["inbox"]
    with pytest.raises(DeliveryError, match="cannot append") as err:
        channel.send(payload())
    assert err.value.retryable
