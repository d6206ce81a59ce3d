"""The alarm engine's HTTP endpoint, served by cheroot on a loopback port: authentication, exposure,
limits, timeouts and every kind of bad request."""

import http.client
import json
import logging
import select
import socket
import threading
import time

import pytest

from saltops.alarms import http as alarm_http
from saltops.alarms import settings
from saltops.errors import ValidationError
from tests.support.alarm_receivers import free_port

TOKEN = "wh-3f9c1a7e5b2d48c6a0e1"
METRICS_TOKEN = "mx-8d2b6f0c4a9e17b35c2d"
MARKER = "MARKER-7c1e9a"
ALERT = {"status": "firing", "labels": {"alertname": "DiskFull", "instance": "db01:9100", "severity": "warning"},
         "annotations": {"summary": "from prometheus"}, "startsAt": "2024-05-01T10:00:00Z",
         "endsAt": "0001-01-01T00:00:00Z"}


def payload(alerts):
    return json.dumps({"version": "4", "status": "firing", "receiver": "saltops", "alerts": alerts}).encode()


class Served:
    """One endpoint started through :func:`alarm_http.serve` and what it handed on."""

    def __init__(self, **overrides):
        conf, _notify = settings.load({"alarms": {"listen_port": free_port(), **overrides}})
        self.conf = conf
        self.port = conf["listen_port"]
        self.submitted = []
        self.rejected = []
        self.refused = []
        self.endpoint = alarm_http.serve(conf, self.submitted.append, on_reject=self.rejected.append,
                                         on_refuse=self.refused.append)

    def request(self, method, path, body=None, token=None, headers=None, timeout=30, **kwargs):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        head = dict(headers or {})
        if token:
            head["Authorization"] = f"Bearer {token}"
        try:
            conn.request(method, path, body=body, headers=head, **kwargs)
            resp = conn.getresponse()
            raw = resp.read()
        finally:
            conn.close()
        data = json.loads(raw) if resp.getheader("Content-Type") == "application/json" else raw
        return resp.status, data, resp

    def post(self, body, token=TOKEN, **kwargs):
        return self.request("POST", alarm_http.WEBHOOK_PATH, body=body, token=token, **kwargs)

    def stop(self):
        if self.endpoint is not None:
            self.endpoint.stop()


@pytest.fixture
def serve():
    made = []

    def make(**overrides):
        served = Served(**overrides)
        made.append(served)
        return served

    yield make
    for served in made:
        served.stop()


def connect(port):
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    return sock


def closed_by_server(sock, within=30.0):
    """True when the server closes ``sock`` (EOF or reset) before ``within`` seconds pass."""
    ready, _, _ = select.select([sock], [], [], within)
    if not ready:
        return False
    try:
        rest = b""
        while True:
            piece = sock.recv(65536)
            if not piece:
                return rest or True
            rest += piece
    except (TimeoutError, ConnectionResetError):
        return True


# -- authentication and exposure ------------------------------------------------------------------
def test_without_a_token_the_webhook_is_refused_and_metrics_stay_on_loopback(serve, caplog):
    caplog.set_level(logging.DEBUG)
    srv = serve()
    assert srv.endpoint is not None
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert any("webhook_token is not set" in m for m in warnings), warnings
    code, body, _ = srv.post(payload([ALERT]), token="anything-at-all-1234")
    assert code == 404 and "webhook_token" in body["error"]
    assert srv.submitted == [] and srv.rejected == ["off"]
    code, body, _ = srv.request("GET", "/metrics")
    assert code == 200 and b"# TYPE" in body


def test_wrong_or_missing_token_is_401_and_nothing_is_ingested(serve, caplog):
    caplog.set_level(logging.DEBUG)
    srv = serve(webhook_token=TOKEN)
    wrong_same_length = TOKEN[:-1] + ("0" if TOKEN[-1] != "0" else "1")
    for token, headers in [(None, None), ("wrong", None), (wrong_same_length, None), (TOKEN + "x", None),
                           (None, {"Authorization": f"Basic {TOKEN}"}), (None, {"Authorization": TOKEN})]:
        code, body, resp = srv.post(payload([ALERT]), token=token, headers=headers)
        assert code == 401, (token, headers)
        assert body == {"error": "a valid bearer token is required"}
        assert resp.getheader("WWW-Authenticate", "").startswith("Bearer")
    assert srv.submitted == []
    assert srv.rejected == ["unauthorized"] * 6
    code, body, _ = srv.post(payload([ALERT]), headers={"Authorization": f"bearer  {TOKEN} "})
    assert (code, body) == (200, {"accepted": 1})
    assert len(srv.submitted) == 1 and srv.submitted[0][0][0]["instance"] == "db01:9100"
    assert TOKEN not in caplog.text


def test_a_non_loopback_address_needs_tls_in_front(serve, caplog):
    caplog.set_level(logging.INFO)
    srv = serve(listen_host="0.0.0.0", webhook_token=TOKEN)
    assert srv.endpoint is None
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("behind_tls_proxy" in m for m in errors), errors
    with pytest.raises(ConnectionRefusedError):
        connect(srv.port)
    # Declared behind a TLS proxy: served, but /metrics only with its own token.
    srv = serve(listen_host="0.0.0.0", webhook_token=TOKEN, behind_tls_proxy=True)
    assert srv.endpoint is not None
    assert srv.post(payload([ALERT]))[0] == 200
    code, body, _ = srv.request("GET", "/metrics")
    assert code == 404 and "metrics_token" in body["error"]
    srv = serve(listen_host="0.0.0.0", webhook_token=TOKEN, behind_tls_proxy=True, metrics_token=METRICS_TOKEN)
    assert srv.request("GET", "/metrics")[0] == 401
    assert srv.request("GET", "/metrics", token=TOKEN)[0] == 401
    code, body, _ = srv.request("GET", "/metrics", token=METRICS_TOKEN)
    assert code == 200 and b"# TYPE" in body


def test_metrics_token_is_asked_on_loopback_too_when_set(serve):
    srv = serve(metrics_token=METRICS_TOKEN)
    assert srv.request("GET", "/metrics")[0] == 401
    assert srv.request("GET", "/metrics", token=METRICS_TOKEN)[0] == 200
    assert srv.request("GET", "/-/healthy")[1] == b"ok\n"
    assert srv.refused == ["unauthorized"]


def test_tokens_are_checked_in_settings_without_quoting_them():
    for bad in ("short", 12345678901234567890, "has a space in it 123", "tab\there-0123456789", True):
        with pytest.raises(ValidationError) as err:
            settings.load({"alarms": {"webhook_token": bad}})
        assert "webhook_token" in str(err.value)
        assert str(bad) not in str(err.value)
    with pytest.raises(ValidationError, match="metrics_token"):
        settings.load({"alarms": {"metrics_token": "x" * 1025}})
    with pytest.raises(ValidationError) as err:
        settings.load({"alarms": {"behind_tls_proxy": "yes", "max_body_bytes": 10, "http_threads": 0,
                                  "read_timeout": 0, "max_connections": True, "webhook_max_alerts": 0}})
    text = str(err.value)
    for key in ("behind_tls_proxy", "max_body_bytes", "http_threads", "read_timeout", "max_connections",
                "webhook_max_alerts"):
        assert key in text


def test_without_cheroot_the_endpoint_says_why(monkeypatch, caplog):
    monkeypatch.setitem(__import__("sys").modules, "cheroot", None)
    caplog.set_level(logging.INFO)
    conf, _ = settings.load({"alarms": {"listen_port": free_port(), "webhook_token": TOKEN}})
    assert alarm_http.serve(conf, lambda alerts: None) is None
    assert any(r.levelno >= logging.ERROR and "cheroot" in r.getMessage() for r in caplog.records)


# -- methods and bad requests ---------------------------------------------------------------------
def test_wrong_methods_get_405_with_allow(serve):
    srv = serve(webhook_token=TOKEN)
    code, body, resp = srv.request("GET", alarm_http.WEBHOOK_PATH, token=TOKEN)
    assert (code, resp.getheader("Allow")) == (405, "POST") and body == {"error": "use POST"}
    code, _body, resp = srv.request("PUT", alarm_http.WEBHOOK_PATH, body=payload([ALERT]), token=TOKEN)
    assert (code, resp.getheader("Allow")) == (405, "POST")
    code, _body, resp = srv.request("POST", "/metrics", body=b"{}")
    assert (code, resp.getheader("Allow")) == (405, "GET")
    assert srv.request("GET", "/nowhere")[0] == 404
    assert srv.submitted == []


def test_every_parse_error_is_a_short_400_that_never_quotes_the_body(serve, caplog):
    caplog.set_level(logging.DEBUG)
    srv = serve(webhook_token=TOKEN)
    bad_time = dict(ALERT, startsAt=MARKER)
    cases = [
        (f"{{not json {MARKER}".encode(), "not valid JSON"),
        (b"[" * 200000, "nested too deeply"),
        (b'{"version": "4", "alerts": [' + b"[" * 200000 + b"]}", "nested too deeply"),
        (b"[" + b"[]," * 400000 + b"[]]", "too many JSON arrays and objects"),
        (b"\x80\x81" + MARKER.encode(), "JSON"),
        (json.dumps({"version": MARKER, "alerts": []}).encode(), "version"),
        (json.dumps([MARKER]).encode(), "JSON object"),
        (json.dumps({"version": "4", "alerts": {MARKER: 1}}).encode(), "list"),
        (payload([bad_time]), "timestamp"),
        (payload([dict(ALERT, labels={"alertname": 5, MARKER: MARKER})]), "strings"),
        (payload([dict(ALERT, status=MARKER)]), "status"),
        (b"", "not valid JSON"),
    ]
    for body, expected in cases:
        code, answer, resp = srv.post(body)
        assert code == 400, body[:40]
        assert expected in answer["error"]
        assert MARKER not in answer["error"] and len(answer["error"]) <= 300
        assert resp.getheader("Content-Type") == "application/json"
    assert srv.rejected == ["invalid"] * len(cases)
    assert srv.submitted == []
    # The server is still serving after all of that.
    assert srv.post(payload([ALERT]))[:2] == (200, {"accepted": 1})
    assert MARKER not in caplog.text


def test_a_chunked_body_is_read_whole(serve):
    srv = serve(webhook_token=TOKEN)
    alerts = [dict(ALERT, labels=dict(ALERT["labels"], instance=f"web{i:03d}:9100")) for i in range(300)]
    body = payload(alerts)
    pieces = [body[i:i + 1000] for i in range(0, len(body), 1000)]
    code, answer, _ = srv.post(iter(pieces), encode_chunked=True,
                               headers={"Transfer-Encoding": "chunked", "Content-Type": "application/json"})
    assert (code, answer) == (200, {"accepted": 300})
    assert sorted(a[0]["instance"] for a in srv.submitted[0]) == sorted(a["labels"]["instance"] for a in alerts)
    # A chunk size that is not hexadecimal is a bad request, not a dropped connection.
    sock = connect(srv.port)
    sock.sendall(f"POST {alarm_http.WEBHOOK_PATH} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
                 f"Transfer-Encoding: chunked\r\n\r\nzz\r\n{MARKER}\r\n0\r\n\r\n".encode())
    answer = closed_by_server(sock)
    sock.close()
    assert answer.startswith(b"HTTP/1.1 400") and MARKER.encode() not in answer


def test_an_oversized_body_is_413_with_the_limit_named(serve):
    srv = serve(webhook_token=TOKEN, max_body_bytes=4096)
    # Content-Length over the limit: refused before the body is read, and the connection closed.
    sock = connect(srv.port)
    sock.sendall(f"POST {alarm_http.WEBHOOK_PATH} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
                 "Content-Type: application/json\r\nContent-Length: 5000\r\n\r\n".encode())
    answer = closed_by_server(sock)
    sock.close()
    assert answer.startswith(b"HTTP/1.1 413")
    assert b"max_body_bytes (4096 bytes)" in answer
    # Chunked, so the size shows only while reading.
    body = payload([dict(ALERT, annotations={"summary": "x" * 3000}), dict(ALERT, annotations={"summary": "y" * 3000})])
    code, answer, _ = srv.post(iter([body[:2000], body[2000:]]), encode_chunked=True,
                               headers={"Transfer-Encoding": "chunked"})
    assert code == 413 and "max_body_bytes (4096 bytes)" in answer["error"]
    assert srv.submitted == []
    assert srv.rejected == ["too_large"]
    # Headers have their own, fixed limit.
    sock = connect(srv.port)
    sock.sendall(f"POST {alarm_http.WEBHOOK_PATH} HTTP/1.1\r\nHost: x\r\nX-Big: {'h' * 70000}\r\n\r\n".encode())
    answer = closed_by_server(sock)
    sock.close()
    assert answer.startswith(b"HTTP/1.1 413") and b"headers" in answer
    assert srv.post(payload([ALERT]))[0] == 200


def alertmanager_like(count):
    """A webhook body shaped as Alertmanager 0.25 writes it for one group of ``count`` node alerts."""
    alerts = []
    for i in range(count):
        host = f"web{i:05d}.bj-idc1.example.com"
        alerts.append({
            "status": "firing",
            "labels": {"alertname": "HostDiskFull", "device": "/dev/sda1", "fstype": "ext4",
                       "instance": f"{host}:9100", "job": "node", "mountpoint": "/var", "severity": "warning"},
            "annotations": {"description": "Filesystem /dev/sda1 mounted on /var has 7% space left (threshold 10%).",
                            "summary": f"Disk /var on {host} is 93% full"},
            "startsAt": "2026-12-02T02:05:45.296076Z", "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus.example.com:9090/graph?g0.expr=node_filesystem_avail_bytes%7Bfstype"
                            "%21%3D%22tmpfs%22%7D+%2F+node_filesystem_size_bytes+%3C+0.1&g0.tab=1",
            "fingerprint": f"{i:016x}",
        })
    return {"receiver": "saltops", "status": "firing", "alerts": alerts, "groupLabels": {"alertname": "HostDiskFull"},
            "commonLabels": {"alertname": "HostDiskFull", "job": "node"}, "commonAnnotations": {},
            "externalURL": "http://alertmanager.example.com:9093", "version": "4",
            "groupKey": '{}:{alertname="HostDiskFull"}', "truncatedAlerts": 0}


def test_a_10000_alert_group_fits_the_default_limit(serve):
    srv = serve(webhook_token=TOKEN)
    body = json.dumps(alertmanager_like(10000)).encode()
    assert len(body) < settings.ALARMS["max_body_bytes"]
    code, answer, _ = srv.post(body, headers={"Content-Type": "application/json"})
    assert (code, answer) == (200, {"accepted": 10000})
    (alerts,) = srv.submitted
    assert len({labels["instance"] for labels, *_rest in alerts}) == 10000


# -- connections, timeouts ------------------------------------------------------------------------
def test_idle_clients_do_not_exhaust_the_server(serve):
    srv = serve(webhook_token=TOKEN)
    assert srv.conf["http_threads"] < 201
    threads_before = threading.active_count()
    idle = [connect(srv.port) for _ in range(201)]
    try:
        # Idle clients wait in the selector: they hold no thread.
        assert threading.active_count() <= threads_before + 2
        code, answer, _ = srv.post(payload([ALERT]))
        assert (code, answer) == (200, {"accepted": 1})
        assert srv.request("GET", "/metrics")[0] == 200
    finally:
        for sock in idle:
            sock.close()


def test_stalled_clients_are_disconnected_after_the_read_timeout(serve):
    srv = serve(webhook_token=TOKEN, read_timeout=1)
    silent = connect(srv.port)
    stalled = connect(srv.port)
    stalled.sendall(f"POST {alarm_http.WEBHOOK_PATH} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
                    "Content-Length: 100\r\n\r\n{\"version\"".encode())
    try:
        assert closed_by_server(silent) is True
        answer = closed_by_server(stalled)
        assert answer.startswith(b"HTTP/1.1 408"), answer
        assert b"read_timeout" in answer
    finally:
        silent.close()
        stalled.close()
    assert srv.submitted == [] and srv.rejected == ["timeout"]


def test_a_trickling_client_is_cut_off_after_the_request_timeout(serve):
    srv = serve(webhook_token=TOKEN, read_timeout=5, request_timeout=1)
    sock = connect(srv.port)
    request = f"POST {alarm_http.WEBHOOK_PATH} HTTP/1.1\r\nHost: x\r\n" + "X-Padding: " + "p" * 200
    cut = False
    try:
        for ch in request:  # one byte every 0.2 s: each read is far inside read_timeout
            try:
                sock.sendall(ch.encode())
            except OSError:
                cut = True
                break
            if closed_by_server(sock, within=0.2):
                cut = True
                break
    finally:
        sock.close()
    assert cut
    assert "request_timeout" in srv.refused
    assert srv.post(payload([ALERT]))[0] == 200


def test_connections_beyond_the_limit_are_closed_at_once(serve):
    srv = serve(webhook_token=TOKEN, max_connections=5)
    held = [connect(srv.port) for _ in range(5)]
    extra = connect(srv.port)
    try:
        assert closed_by_server(extra) is True
        assert "connection_limit" in srv.refused
    finally:
        extra.close()
        for sock in held:
            sock.close()
    # Once the held connections are gone, requests are served again.
    for _attempt in range(100):
        try:
            if srv.post(payload([ALERT]))[0] == 200:
                break
        except (ConnectionError, http.client.HTTPException):
            time.sleep(0.1)
    assert srv.submitted and len(srv.submitted[-1]) == 1
