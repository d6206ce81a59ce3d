"""Local stand-ins that speak the notification protocols, for tests and the benchmark.

:class:`Receivers` is one HTTP server with the endpoints a real WeCom robot,
DingTalk robot (which checks the timestamp + HMAC-SHA256 signature), SMS
gateway and Alertmanager-style webhook receiver have; it refuses what the
real services refuse and records what it accepted.  :class:`SmtpReceiver` is
an aiosmtpd server that keeps the messages it got.
"""

import base64
import hashlib
import hmac
import json
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

WEBHOOK_KEYS = {"version", "groupKey", "truncatedAlerts", "status", "receiver", "groupLabels", "commonLabels",
                "commonAnnotations", "externalURL", "alerts"}
ALERT_KEYS = {"status", "labels", "annotations", "startsAt", "endsAt", "generatorURL", "fingerprint"}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _answer(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        srv = self.server.owner
        url = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(url.query))
        raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if srv.on_request is not None:
            srv.on_request(url.path.strip("/"), query)
        if srv.echo_errors:
            # Some gateways and proxies quote the request line in their error pages.
            self._answer(srv.echo_errors, {"error": f"cannot handle POST {self.path}"})
            return
        if srv.down:
            self._answer(503, {"error": "down"})
            return
        try:
            body = json.loads(raw)
        except ValueError:
            self._answer(400, {"error": "not json"})
            return
        check = getattr(srv, "check_" + url.path.strip("/"), None)
        if check is None:
            self._answer(404, {"error": "no such endpoint"})
            return
        code, answer, ok = check(query, body, self.headers)
        if ok:
            srv.record(url.path.strip("/"), body, query, dict(self.headers))
        else:
            srv.refused.append((url.path.strip("/"), answer))
        self._answer(code, answer)


class Receivers:
    def __init__(self, dingtalk_secret="SECtest", wecom_key="wk", sms_token="st", hook_token=None):
        self.dingtalk_secret = dingtalk_secret
        self.wecom_key = wecom_key
        self.sms_token = sms_token
        self.hook_token = hook_token
        self.down = False
        self.echo_errors = None  # an HTTP code: answer it, quoting the request path (and query) in the body
        self.on_request = None  # (kind, query) -> None, called as each request arrives
        self.got = []
        self.refused = []
        self._cond = threading.Condition()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.daemon_threads = True
        self.httpd.owner = self
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base(self):
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()

    def record(self, kind, body, query, headers):
        with self._cond:
            self.got.append({"kind": kind, "body": body, "query": query, "headers": headers, "at": time.time()})
            self._cond.notify_all()

    def of(self, kind):
        return [g for g in self.got if g["kind"] == kind]

    def wait(self, kind, count=1, timeout=30.0):
        deadline = time.time() + timeout
        with self._cond:
            while len(self.of(kind)) < count:
                left = deadline - time.time()
                if left <= 0:
                    break
                self._cond.wait(left)
            return self.of(kind)

    def settle(self, quiet, timeout=120.0):
        """Wait until nothing new arrived for ``quiet`` seconds, so that counting afterwards finds
        any duplicate (pick a few group intervals of the rules under test)."""
        deadline = time.time() + timeout
        with self._cond:
            while time.time() < deadline:
                seen = len(self.got)
                self._cond.wait(quiet)
                if len(self.got) == seen:
                    return
        raise AssertionError(f"notifications kept coming for {timeout:.0f} s")

    # -- protocol checks: (HTTP code, answer, accepted?) ------------------------------------
    def check_wecom(self, query, body, _headers):
        if query.get("key") != self.wecom_key:
            return 200, {"errcode": 93000, "errmsg": "invalid webhook url"}, False
        md = body.get("markdown") if isinstance(body, dict) else None
        if body.get("msgtype") != "markdown" or not isinstance(md, dict) or not isinstance(md.get("content"), str):
            return 200, {"errcode": 40008, "errmsg": "invalid message type"}, False
        if len(md["content"].encode()) > 4096:
            return 200, {"errcode": 40058, "errmsg": "content exceed max length 4096"}, False
        return 200, {"errcode": 0, "errmsg": "ok"}, True

    def check_dingtalk(self, query, body, _headers):
        ts, sign = query.get("timestamp"), query.get("sign")
        if not ts or not sign:
            return 200, {"errcode": 310000, "errmsg": "sign not match"}, False
        if abs(int(ts) / 1000 - time.time()) > 3600:
            return 200, {"errcode": 310000, "errmsg": "timestamp expired"}, False
        mac = hmac.new(self.dingtalk_secret.encode(), f"{ts}\n{self.dingtalk_secret}".encode(), hashlib.sha256)
        if not hmac.compare_digest(base64.b64encode(mac.digest()).decode(), sign):
            return 200, {"errcode": 310000, "errmsg": "sign not match"}, False
        md = body.get("markdown") or {}
        if body.get("msgtype") != "markdown" or not md.get("title") or not md.get("text"):
            return 200, {"errcode": 40035, "errmsg": "missing markdown title/text"}, False
        return 200, {"errcode": 0, "errmsg": "ok"}, True

    def check_sms(self, query, body, headers):
        if headers.get("X-Token") != self.sms_token:
            return 401, {"code": 401, "msg": "bad token"}, False
        if not isinstance(body.get("to"), list) or not isinstance(body.get("content"), str):
            return 200, {"code": 1, "msg": "to and content required"}, False
        return 200, {"code": 0, "msg": "queued"}, True

    def check_hook(self, _query, body, headers):
        if self.hook_token and headers.get("Authorization") != f"Bearer {self.hook_token}":
            return 401, {"error": "unauthorized"}, False
        if set(body) != WEBHOOK_KEYS or body.get("version") != "4":
            return 400, {"error": f"not an Alertmanager v4 payload: {sorted(body)}"}, False
        if not all(set(a) == ALERT_KEYS for a in body["alerts"]):
            return 400, {"error": "bad alert objects"}, False
        return 200, {}, True


def free_port():
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class SmtpReceiver:
    """aiosmtpd on a free local port; ``messages`` holds (envelope rcpts, parsed message)."""

    def __init__(self):
        from email import message_from_bytes

        from aiosmtpd.controller import Controller

        outer = self
        self.messages = []
        self._cond = threading.Condition()

        class Handler:
            async def handle_DATA(self, server, session, envelope):
                with outer._cond:
                    outer.messages.append((list(envelope.rcpt_tos), message_from_bytes(envelope.content)))
                    outer._cond.notify_all()
                return "250 OK"

        self.controller = Controller(Handler(), hostname="127.0.0.1", port=free_port())

    def start(self):
        self.controller.start()
        return self

    @property
    def port(self):
        return self.controller.port

    def stop(self):
        self.controller.stop()

    def wait(self, count=1, timeout=30.0):
        deadline = time.time() + timeout
        with self._cond:
            while len(self.messages) < count and time.time() < deadline:
                self._cond.wait(max(0.01, deadline - time.time()))
            return list(self.messages)


class RefusingSmtpServer:
    """An SMTP server that refuses every login and quotes the AUTH line it got in its 535 answer.

    Real servers differ in what they echo; this one echoes the most, so a test
    can show that no form of the password reaches an error text.
    """

    def __init__(self):
        import socketserver

        outer = self
        self.auth_lines = []

        class Handler(socketserver.StreamRequestHandler):
            def handle(self):
                self.wfile.write(b"220 refusing.example ESMTP\r\n")
                while True:
                    line = self.rfile.readline()
                    if not line:
                        return
                    text = line.decode("utf-8", "replace").rstrip("\r\n")
                    verb = text.split(" ", 1)[0].upper()
                    if verb in ("EHLO", "HELO"):
                        self.wfile.write(b"250-refusing.example\r\n250 AUTH PLAIN\r\n")
                    elif verb == "AUTH":
                        outer.auth_lines.append(text)
                        self.wfile.write(f"535 5.7.8 authentication failed for {text}\r\n".encode())
                    elif verb == "QUIT":
                        self.wfile.write(b"221 bye\r\n")
                        return
                    else:
                        self.wfile.write(b"502 5.5.2 not implemented\r\n")

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def port(self):
        return self.server.server_address[1]

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def channel_config(receivers, smtp=None, phones=("13800000000",)):
    """``saltops:notify:channels`` pointing at the local receivers."""
    conf = {
        "wecom": {"type": "wecom", "url": f"{receivers.base}/wecom?key={receivers.wecom_key}"},
        "dingtalk": {"type": "dingtalk", "url": f"{receivers.base}/dingtalk?access_token=t",
                     "secret": receivers.dingtalk_secret, "at_mobiles": ["13800000000"]},
        "sms": {"type": "sms", "url": f"{receivers.base}/sms", "phones": list(phones),
                "headers": {"X-Token": receivers.sms_token},
                "body": '{"to": {{ phones|tojson }}, "content": {{ text|tojson }}}', "ok_json": {"code": 0}},
        "hook": {"type": "webhook", "url": f"{receivers.base}/hook"},
    }
    if receivers.hook_token:
        conf["hook"]["bearer_token"] = receivers.hook_token
    if smtp is not None:
        conf["mail"] = {"type": "smtp", "host": "127.0.0.1", "port": smtp.port, "from": "saltops@example.com",
                        "to": ["ops@example.com", "lead@example.com"]}
    return conf


def sample_payload(n=2, status="firing"):
    """A notification as the pipeline hands it to a channel: ``n`` DiskFull alerts of one group."""
    alerts = [{"status": status, "labels": {"alertname": "DiskFull", "host": f"web{i:02d}", "mount": "/",
                                           "severity": "warning", "idc": "bj-idc1"},
               "annotations": {"summary": f"disk / on web{i:02d} at 95%"}, "startsAt": "2024-05-01T10:00:00.000Z",
               "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "", "fingerprint": f"{i:016x}"}
              for i in range(n)]
    return {"version": "4", "groupKey": 'route:{alertname="DiskFull"}', "truncatedAlerts": 0, "status": status,
            "receiver": "ops", "groupLabels": {"alertname": "DiskFull"},
            "commonLabels": {"alertname": "DiskFull", "severity": "warning", "idc": "bj-idc1"},
            "commonAnnotations": {}, "externalURL": "", "alerts": alerts, "counts": {"firing": n, "resolved": 0}}
