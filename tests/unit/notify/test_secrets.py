"""No channel secret reaches an error text.

Not in the outbox, the delivery log, the master log or alarm.notifications.

Every channel fails for real against local servers (a closed port, a 500
that quotes the request, an SMTP server quoting the refused AUTH line), with
its secrets where real services put them: WeCom's ``key`` and DingTalk's
``access_token``/``sign`` in the query string, a password in the URL, a token
header, an SMTP password.
"""

import logging
import time

import pytest

from saltops.notify import queue as notify_queue
from saltops.notify import redact, registry
from saltops.notify.worker import Deliverer, RetryPolicy
from tests.support.alarm_receivers import Receivers, RefusingSmtpServer, free_port
from tests.support.alarm_receivers import sample_payload as payload

SECRETS = {
    "wecom_key": "wk-5f1e0c7a-93d2-4b8e",
    "ding_token": "dt9c2b7e41aa0f",
    "ding_secret": "SECd41d8cd98f00b204e9800998ecf8427e",
    "url_password": "pw-in-the-url-77",
    "sms_token": "smstok-3141592653",
    "bearer": "bearer-2718281828",
    "smtp_password": "Sm7p-pa55word!",
}


def _channels(base):
    return {
        "wecom": {"type": "wecom", "url": f"{base}/wecom?key={SECRETS['wecom_key']}"},
        "dingtalk": {"type": "dingtalk", "url": f"{base}/dingtalk?access_token={SECRETS['ding_token']}",
                     "secret": SECRETS["ding_secret"]},
        "sms": {"type": "sms", "url": f"{base}/sms", "phones": ["13800000000"],
                "headers": {"X-Token": SECRETS["sms_token"]}, "body": '{"to": {{ phones|tojson }}}'},
        "hook": {"type": "webhook", "url": base.replace("http://", f"http://ops:{SECRETS['url_password']}@")
                 + f"/hook?token={SECRETS['bearer']}", "bearer_token": SECRETS["bearer"]},
    }


def _leaks(text):
    """The secrets (or DingTalk's per-request signature) found in ``text``."""
    found = [name for name, value in SECRETS.items() if value in text]
    if "sign=" in text or "timestamp=" in text:
        found.append("dingtalk signature")
    return found


def _everything_stored(store):
    with store.connect() as conn:
        rows = notify_queue.listing(conn)  # what alarm.notifications shows
        log = notify_queue.log(conn, limit=500)
        raw = [r.last_error or "" for r in conn.execute(notify_queue.outbox.select())]
        raw += [r.error or "" for r in conn.execute(notify_queue.deliveries.select())]
    return "\n".join([*(r["last_error"] or "" for r in rows), *(r["error"] or "" for r in log), *raw])


@pytest.mark.parametrize(("failure", "expected"), [
    ("connection refused", "ConnectionError"), (500, "HTTP 500"), (400, "HTTP 400")])
def test_failed_deliveries_store_and_log_no_secret(store, caplog, failure, expected):
    if failure == "connection refused":
        receivers = None
        base = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    else:
        receivers = Receivers().start()
        receivers.echo_errors = failure  # answer with this code, quoting the request line
        base = receivers.base
    try:
        chans = registry.build(_channels(base), timeout=3)
        worker = Deliverer(store, chans, RetryPolicy(max_attempts=1))
        now = time.time()
        with store.begin() as conn:
            ids = {name: notify_queue.enqueue(conn, name, "ops", "g1", payload(), now) for name in chans}
        with caplog.at_level(logging.WARNING):
            for name, oid in ids.items():
                assert worker.deliver(oid, name, payload()) is False
    finally:
        if receivers is not None:
            receivers.stop()
    stored = _everything_stored(store)
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert _leaks(stored) == [] and _leaks(logged) == []
    # The errors still say what went wrong, and where.
    for name in ids:
        assert f"{name}: " in stored and expected in stored
    if failure != 500:  # a 5xx answer is reported by its code only
        assert "/wecom?[redacted]" in stored
    if receivers is not None:
        assert receivers.of("wecom") == []  # the echo path answered: nothing was accepted


def test_smtp_login_errors_carry_no_form_of_the_password(store, caplog):
    server = RefusingSmtpServer().start()
    try:
        chans = registry.build({"mail": {"type": "smtp", "host": "127.0.0.1", "port": server.port,
                                         "username": "alarms", "password": SECRETS["smtp_password"],
                                         "from": "saltops@example.com", "to": ["ops@example.com"],
                                         "timeout": 5}})
        with store.begin() as conn:
            oid = notify_queue.enqueue(conn, "mail", "ops", "g1", payload(), time.time())
        with caplog.at_level(logging.WARNING):
            assert Deliverer(store, chans).deliver(oid, "mail", payload()) is False
    finally:
        server.stop()
    assert server.auth_lines, "the client never tried to log in"
    forms = redact.smtp_login_secrets("alarms", SECRETS["smtp_password"])
    # The server did quote the credentials: the test would catch a leak.
    assert any(form in line for line in server.auth_lines for form in forms[1:])
    stored = _everything_stored(store)
    logged = "\n".join(r.getMessage() for r in caplog.records)
    for text in (stored, logged):
        assert "login refused" in text and "535" in text
        assert not [form for form in forms if form in text]


@pytest.mark.parametrize(("text", "secrets", "expected"), [
    ("Max retries exceeded with url: /cgi-bin/webhook/send?key=abc123 (Caused by x)", (),
     "Max retries exceeded with url: /cgi-bin/webhook/send?[redacted] (Caused by x)"),
    ("POST https://oapi.dingtalk.com/robot/send?access_token=t&timestamp=1&sign=a%2Bb%3D failed", (),
     "POST https://oapi.dingtalk.com/robot/send?[redacted] failed"),
    ("Invalid URL 'https://ops:hunter22@hooks.example.com/x': no host", (),
     "Invalid URL 'https://[redacted]@hooks.example.com/x': no host"),
    ("gateway says: token tok-9999 is not valid", ("tok-9999",), "gateway says: token [redacted] is not valid"),
    ("why? nothing to hide here", ("ab",), "why? nothing to hide here"),
])
def test_scrub(text, secrets, expected):
    assert redact.scrub(text, secrets) == expected


def test_rows_stored_before_scrubbing_are_listed_without_their_secret(store):
    # An older version stored the raw requests message; alarm.notifications must not show it.
    now = time.time()
    with store.begin() as conn:
        oid = notify_queue.enqueue(conn, "wecom", "ops", "g1", payload(), now)
        conn.execute(notify_queue.outbox.update().values(
            last_error="wecom w: ConnectionError: Max retries exceeded with url: /send?key=legacy-key-1"))
        conn.execute(notify_queue.deliveries.insert().values(
            outbox_id=oid, channel="wecom", attempt=1, ok=False, duration_ms=1, ts=now,
            error="wecom w: ConnectionError: Max retries exceeded with url: /send?key=legacy-key-1"))
    with store.connect() as conn:
        shown = repr(notify_queue.listing(conn)) + repr(notify_queue.log(conn))
    assert "legacy-key-1" not in shown and "/send?[redacted]" in shown


def test_the_http_library_debug_log_carries_no_query_string(caplog):
    receivers = Receivers().start()
    try:
        wecom = registry.build({"w": {"type": "wecom", "url": f"{receivers.base}/wecom?key={receivers.wecom_key}"}})
        with caplog.at_level(logging.DEBUG, logger="urllib3"):
            wecom["w"].send(payload())
    finally:
        receivers.stop()
    assert receivers.of("wecom")  # the key was right: the request went through
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("urllib3")]
    assert any('"POST /wecom?[redacted] HTTP/1.1" 200' in line for line in lines), lines
    assert not any(f"key={receivers.wecom_key}" in line for line in lines)
