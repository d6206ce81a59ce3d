"""Every channel against a local server speaking its protocol; retries, backoff and restart."""

import time

import pytest
import sqlalchemy as sa

from saltops.errors import ValidationError
from saltops.notify import dingtalk, registry
from saltops.notify import queue as notify_queue
from saltops.notify.base import DeliveryError
from saltops.notify.worker import Deliverer, RetryPolicy
from tests.support.alarm_receivers import Receivers, SmtpReceiver, channel_config
from tests.support.alarm_receivers import sample_payload as payload


@pytest.fixture
def receivers():
    r = Receivers(hook_token="hooktok").start()
    yield r
    r.stop()


@pytest.fixture
def smtp():
    s = SmtpReceiver().start()
    yield s
    s.stop()


@pytest.fixture
def channels(receivers, smtp):
    return registry.build(channel_config(receivers, smtp))


def test_wecom_markdown(channels, receivers):
    channels["wecom"].send(payload())
    (got,) = receivers.of("wecom")
    content = got["body"]["markdown"]["content"]
    assert content.startswith("### [P2] [FIRING:2] DiskFull")
    assert "web00" in content and "web01" in content


def test_wecom_long_message_is_cut_to_the_robot_limit(channels, receivers):
    big = payload(50)
    for alert in big["alerts"]:
        alert["annotations"]["summary"] = "磁盘满 " * 40
    channels["wecom"].send(big)
    assert len(receivers.of("wecom")[0]["body"]["markdown"]["content"].encode()) <= 4096


def test_dingtalk_signature_is_accepted_and_a_wrong_secret_refused(channels, receivers):
    channels["dingtalk"].send(payload())
    (got,) = receivers.of("dingtalk")
    assert got["body"]["at"]["atMobiles"] == ["13800000000"]
    assert "DiskFull" in got["body"]["markdown"]["title"]
    wrong = registry.build({"d": {"type": "dingtalk", "url": f"{receivers.base}/dingtalk?access_token=t",
                                  "secret": "SECwrong"}})["d"]
    with pytest.raises(DeliveryError, match="310000"):
        wrong.send(payload())
    assert receivers.refused[-1][1]["errmsg"] == "sign not match"


def test_dingtalk_sign_matches_the_documented_algorithm():
    import base64
    import hashlib
    import hmac
    import urllib.parse

    # base64(hmac_sha256(key=secret, msg="<ms>\\n<secret>")), URL-encoded, as DingTalk documents it.
    expected = base64.b64encode(hmac.new(b"SEC123", b"1700000000000\nSEC123", hashlib.sha256).digest()).decode()
    assert dingtalk.sign("SEC123", 1700000000000) == expected
    url = dingtalk.signed_url("https://oapi.dingtalk.com/robot/send?access_token=x", "SEC123", now=1700000000)
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))
    assert query == {"access_token": "x", "timestamp": "1700000000000", "sign": expected}


def test_sms_gateway_template(channels, receivers):
    channels["sms"].send(payload())
    (got,) = receivers.of("sms")
    assert got["body"]["to"] == ["13800000000"]
    assert got["body"]["content"].startswith("[P2] [FIRING:2] DiskFull") and len(got["body"]["content"]) <= 300


def test_webhook_is_alertmanager_v4(channels, receivers):
    channels["hook"].send(payload())
    (got,) = receivers.of("hook")
    assert got["body"]["version"] == "4" and "counts" not in got["body"]
    assert got["headers"]["Authorization"] == "Bearer hooktok"


def test_smtp(channels, smtp):
    channels["mail"].send(payload())
    ((rcpts, msg),) = smtp.wait(1)
    assert rcpts == ["ops@example.com", "lead@example.com"]
    assert msg["Subject"].startswith("[saltops] [P2] [FIRING:2] DiskFull")
    assert "web01" in msg.get_payload()


def test_a_message_for_one_person_goes_to_their_address_with_its_own_title(channels, receivers, smtp):
    personal = dict(payload(), title="[ticket #7] waits for your approval",
                    recipients={"to": ["dan@example.com"], "phones": ["13900000009"]})
    for name in ("mail", "wecom", "dingtalk", "sms", "hook"):
        channels[name].send(personal)
    ((rcpts, msg),) = smtp.wait(1)
    assert rcpts == ["dan@example.com"] and msg["Subject"] == "[saltops] [ticket #7] waits for your approval"
    assert receivers.of("wecom")[0]["body"]["markdown"]["content"].endswith("<@13900000009>")
    assert receivers.of("dingtalk")[0]["body"]["at"]["atMobiles"] == ["13900000009"]
    assert receivers.of("sms")[0]["body"]["to"] == ["13900000009"]
    assert "recipients" not in receivers.of("hook")[0]["body"]  # still a plain Alertmanager payload


def test_refusals_and_outages_raise_delivery_errors(receivers):
    chans = registry.build({
        "badkey": {"type": "wecom", "url": f"{receivers.base}/wecom?key=nope"},
        "gone": {"type": "webhook", "url": f"{receivers.base}/nothing-here"},
        "closed": {"type": "webhook", "url": "http://127.0.0.1:1/hook", "timeout": 2},
        "nosmtp": {"type": "smtp", "host": "127.0.0.1", "port": 1, "from": "a@b.c", "to": ["d@e.f"]},
        "smsbad": {"type": "sms", "url": f"{receivers.base}/sms", "phones": ["1"], "body": "{}",
                   "headers": {"X-Token": "wrong"}},
    })
    with pytest.raises(DeliveryError, match="93000") as err:
        chans["badkey"].send(payload())
    assert err.value.retryable
    with pytest.raises(DeliveryError) as err:
        chans["gone"].send(payload())
    assert not err.value.retryable  # 404: trying again will not help
    for name in ("closed", "nosmtp"):
        with pytest.raises(DeliveryError) as err:
            chans[name].send(payload())
        assert err.value.retryable
    with pytest.raises(DeliveryError, match="HTTP 401"):
        chans["smsbad"].send(payload())
    receivers.down = True
    with pytest.raises(DeliveryError, match="HTTP 503") as err:
        registry.build({"h": {"type": "webhook", "url": f"{receivers.base}/hook"}})["h"].send(payload())
    assert err.value.retryable


def test_channel_config_is_validated_with_every_problem():
    with pytest.raises(ValidationError) as err:
        registry.build({
            "a": {"type": "pager"},
            "b": {"type": "smtp", "host": "x", "from": "y", "to": "ops"},
            "c": {"type": "wecom", "url": "ftp://x", "colour": "red"},
            "d": {"type": "sms", "url": "http://x", "phones": [1], "body": "{{ text "},
            "e": {"type": "dingtalk"},
            "f": "nope",
        })
    text = str(err.value)
    for needle in ("channels.a.type", "channels.b.to", "channels.c.url", "unknown keys ['colour']",
                   "channels.d.phones", "channels.d.body: template error", "channels.e.url", "channels.f"):
        assert needle in text, needle


def _enqueue(store, channel, n=1):
    with store.begin() as conn:
        return [notify_queue.enqueue(conn, channel, "ops", "g1", payload(), time.time()) for _ in range(n)]


def test_worker_retries_with_backoff_until_the_channel_is_back(store, receivers):
    receivers.down = True
    chans = registry.build({"hook": channel_config(receivers)["hook"]})
    (oid,) = _enqueue(store, "hook")
    worker = Deliverer(store, chans, RetryPolicy(max_attempts=10, backoff=0.2, max_backoff=1, jitter=0),
                       workers=2, poll_interval=0.1)
    worker.start()
    try:
        worker.submit([(oid, "hook", payload())])
        deadline = time.time() + 10
        while time.time() < deadline:
            with store.connect() as conn:
                attempts = conn.execute(sa.select(notify_queue.outbox.c.attempts).where(notify_queue.outbox.c.id == oid)).scalar()
            if attempts >= 3:
                break
            time.sleep(0.05)
        assert attempts >= 3 and not receivers.of("hook")
        receivers.down = False
        assert len(receivers.wait("hook", 1, timeout=10)) == 1
        time.sleep(0.3)
    finally:
        worker.stop()
    with store.connect() as conn:
        assert notify_queue.counts(conn) == {"sent": 1}
        log = notify_queue.log(conn, outbox_id=oid)
    assert [row["ok"] for row in reversed(log)][-1] is True
    assert all(not row["ok"] for row in log[1:]) and "HTTP 503" in log[-1]["error"]
    assert len(receivers.of("hook")) == 1


def test_pending_rows_are_delivered_by_the_next_run(store, receivers):
    """A notification committed before a crash is delivered by the next process, once."""
    conf = channel_config(receivers)
    chans = registry.build({"hook": conf["hook"], "sms": conf["sms"]})
    ids = _enqueue(store, "hook", 3) + _enqueue(store, "sms", 1)
    worker = Deliverer(store, chans, RetryPolicy(backoff=0.1), workers=2, poll_interval=0.1)
    worker.start()
    try:
        receivers.wait("hook", 3, timeout=10)
        receivers.wait("sms", 1, timeout=10)
        time.sleep(0.5)
    finally:
        worker.stop()
    assert len(receivers.of("hook")) == 3 and len(receivers.of("sms")) == 1
    with store.connect() as conn:
        assert notify_queue.counts(conn) == {"sent": 4}
    assert len(ids) == 4


def test_permanent_failures_and_unknown_channels_give_up(store, receivers):
    chans = registry.build({"gone": {"type": "webhook", "url": f"{receivers.base}/nothing"}})
    a, = _enqueue(store, "gone")
    b, = _enqueue(store, "removed-channel")
    worker = Deliverer(store, chans, RetryPolicy(max_attempts=3, backoff=0.05, jitter=0))
    assert worker.deliver(a, "gone", payload()) is False
    assert worker.deliver(b, "removed-channel", payload()) is False
    with store.connect() as conn:
        assert notify_queue.counts(conn) == {"failed": 2}
        rows = {r["id"]: r for r in notify_queue.listing(conn)}
    assert "not configured" in rows[b]["last_error"]
