"""The engine's HTTP endpoint: ``GET /metrics``, ``GET /-/healthy`` and the Alertmanager webhook.

``POST /api/v1/alertmanager`` takes Alertmanager's webhook payload (version
4), so alerts from an existing Prometheus go through the same routing,
silences and channels.  With ``webhook_token`` set, the request must carry
``Authorization: Bearer <token>``.
"""

import hmac
import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from saltops import metrics
from saltops.alarms.pipeline import validate_alertmanager

log = logging.getLogger(__name__)
MAX_BODY = 1024 * 1024
WEBHOOK_PATH = "/api/v1/alertmanager"


class _Handler(BaseHTTPRequestHandler):
    server_version = "saltops-alarms"

    def log_message(self, fmt, *args):
        log.debug("http %s - " + fmt, self.address_string(), *args)

    def _reply(self, code, body, ctype="application/json"):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path.split("?", 1)[0] == "/metrics":
            ctype, body = metrics.exposition()
            self._reply(200, body, ctype)
        elif self.path == "/-/healthy":
            self._reply(200, b"ok\n", "text/plain")
        else:
            self._reply(404, {"error": "not found"})

    def do_POST(self):
        if self.path.split("?", 1)[0] != WEBHOOK_PATH:
            self._reply(404, {"error": "not found"})
            return
        token = self.server.token
        if token:
            got = self.headers.get("Authorization", "")
            if not hmac.compare_digest(got.encode(), f"Bearer {token}".encode()):
                self.server.count("unauthorized")
                self._reply(401, {"error": "a valid bearer token is required"})
                return
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            length = -1
        if length < 0 or length > MAX_BODY:
            self.server.count("too_large")
            self._reply(413, {"error": f"the body must be at most {MAX_BODY} bytes"})
            return
        raw = self.rfile.read(length)
        try:
            payload = json.loads(raw)
            alerts = validate_alertmanager(payload)
        except ValueError as err:
            self.server.count("invalid")
            self._reply(400, {"error": str(err)[:500]})
            return
        self.server.submit(alerts)
        self._reply(200, {"accepted": len(alerts)})


class Endpoint:
    """A threaded HTTP server; ``submit(alerts)`` receives validated webhook alerts."""

    def __init__(self, host, port, submit, token=None, on_reject=None):
        self.httpd = ThreadingHTTPServer((host, port), _Handler)
        self.httpd.daemon_threads = True
        self.httpd.token = token
        self.httpd.submit = submit
        self.httpd.count = on_reject or (lambda _reason: None)
        self.thread = None

    @property
    def port(self):
        return self.httpd.server_address[1]

    def start(self):
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="saltops-alarms-http",
                                       daemon=True)
        self.thread.start()
        return self

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()
