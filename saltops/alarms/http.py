"""The engine's HTTP endpoint: ``GET /metrics``, ``GET /-/healthy`` and the Alertmanager webhook.

``POST /api/v1/alertmanager`` takes Alertmanager's webhook payload (version
4), so alerts from an existing Prometheus go through the same routing,
silences and channels.  :func:`serve` decides what is served from the
``saltops:alarms`` settings:

* the webhook only with a ``webhook_token``; a request must carry
  ``Authorization: Bearer <token>``;
* ``/metrics`` with ``metrics_token`` behind the same kind of token, or
  without one when the endpoint listens on loopback only;
* nothing at all on a non-loopback address unless ``behind_tls_proxy`` says
  TLS is terminated in front of it.

Tokens are compared as SHA-256 digests with :func:`hmac.compare_digest`, so
the comparison takes the same time whatever the token sent.  Neither a
token nor any part of a request body appears in an answer or in the log.
The server itself (timeouts, pool, connection cap) is
:mod:`saltops.alarms.http_server`.
"""

import hashlib
import hmac
import ipaddress
import json
import logging
import socket
import threading

from saltops import metrics
from saltops.alarms.pipeline import validate_alertmanager

log = logging.getLogger(__name__)

WEBHOOK_PATH = "/api/v1/alertmanager"
METRICS_PATH = "/metrics"
HEALTH_PATH = "/-/healthy"
_READ_SIZE = 64 * 1024
_CONTAINERS_PER_ALERT = 16
_JSON = "application/json"
_STATUS = {200: "200 OK", 400: "400 Bad Request", 401: "401 Unauthorized", 404: "404 Not Found",
           405: "405 Method Not Allowed", 408: "408 Request Timeout", 413: "413 Payload Too Large"}


def _digest(token):
    return hashlib.sha256(token.encode("latin-1", "replace")).digest()


def _bearer(environ):
    """The credentials of an ``Authorization: Bearer ...`` header, or ''."""
    scheme, _, credentials = environ.get("HTTP_AUTHORIZATION", "").strip().partition(" ")
    return credentials.strip() if scheme.lower() == "bearer" else ""


def _authorized(environ, digest):
    return hmac.compare_digest(_digest(_bearer(environ)), digest)


class _Refused(Exception):
    def __init__(self, code, reason, message):
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message


class App:
    """The WSGI application.  ``submit(alerts)`` receives validated webhook alerts.

    ``webhook_token`` None leaves the webhook off; ``metrics_token`` None with
    ``metrics_open`` False leaves ``/metrics`` off.  ``on_reject(reason)``
    counts refused webhook requests, ``on_refuse(reason)`` everything else
    the endpoint refuses.
    """

    def __init__(self, submit, *, webhook_token=None, metrics_token=None, metrics_open=True,
                 max_body=16 * 1024 * 1024, max_alerts=20000, on_reject=None, on_refuse=None):
        self.submit = submit
        self.webhook_digest = _digest(webhook_token) if webhook_token else None
        self.metrics_digest = _digest(metrics_token) if metrics_token else None
        self.metrics_open = metrics_open
        self.max_body = max_body
        self.max_alerts = max_alerts
        self.on_reject = on_reject or (lambda _reason: None)
        self.on_refuse = on_refuse or (lambda _reason: None)
        # Parsed payloads take several times their size in memory: at most two at a time.
        self.parsing = threading.BoundedSemaphore(2)
        self.routes = {METRICS_PATH: ("GET", self.get_metrics), HEALTH_PATH: ("GET", self.get_healthy),
                       WEBHOOK_PATH: ("POST", self.post_alertmanager)}

    def __call__(self, environ, start_response):
        route = self.routes.get(environ.get("PATH_INFO", ""))
        if route is None:
            return _answer(start_response, 404, {"error": "not found"})
        method, handler = route
        if environ.get("REQUEST_METHOD") != method:
            self.on_refuse("method")
            return _answer(start_response, 405, {"error": f"use {method}"}, [("Allow", method)])
        code, body, ctype, headers = handler(environ)
        return _answer(start_response, code, body, headers, ctype)

    # -- routes -------------------------------------------------------------------------------
    def get_healthy(self, _environ):
        return 200, b"ok\n", "text/plain", []

    def get_metrics(self, environ):
        if self.metrics_digest is None and not self.metrics_open:
            self.on_refuse("off")
            return 404, {"error": "/metrics is off: it needs saltops:alarms:metrics_token on this address"}, \
                _JSON, []
        if self.metrics_digest is not None and not _authorized(environ, self.metrics_digest):
            self.on_refuse("unauthorized")
            return _unauthorized()
        ctype, body = metrics.exposition()
        return 200, body, ctype, []

    def post_alertmanager(self, environ):
        if self.webhook_digest is None:
            self.on_reject("off")
            return 404, {"error": "the Alertmanager webhook is off: it needs saltops:alarms:webhook_token"}, \
                _JSON, []
        if not _authorized(environ, self.webhook_digest):
            self.on_reject("unauthorized")
            return _unauthorized()
        try:
            raw = self._read_body(environ)
            self._check_containers(raw)
            with self.parsing:
                alerts = validate_alertmanager(_parse_json(raw), max_alerts=self.max_alerts)
        except _Refused as err:
            self.on_reject(err.reason)
            return err.code, {"error": err.message}, _JSON, []
        except ValueError as err:  # the payload's shape; the messages name places, never values
            self.on_reject("invalid")
            return 400, {"error": str(err)[:300]}, _JSON, []
        self.submit(alerts)
        return 200, {"accepted": len(alerts)}, _JSON, []

    # -- the body -----------------------------------------------------------------------------
    def _check_containers(self, raw):
        """Refuse a body with far more JSON arrays and objects than its alerts need.

        An alert is three containers (itself, labels, annotations); brackets inside strings
        count too, hence the margin.  Without this check 16 MiB of ``[],`` would become
        5 million lists, about 360 MiB, in one request.
        """
        if raw.count(b"[") + raw.count(b"{") > _CONTAINERS_PER_ALERT * self.max_alerts + 1024:
            raise _Refused(400, "invalid", f"too many JSON arrays and objects for {self.max_alerts} alerts")

    def _read_body(self, environ):
        """The whole request body (Content-Length or chunked), at most ``max_body`` bytes."""
        stream = environ["wsgi.input"]
        declared = environ.get("CONTENT_LENGTH")
        length = None
        if declared not in (None, ""):
            try:
                length = int(declared)
            except ValueError:
                raise _Refused(400, "invalid", "malformed Content-Length") from None
            if length > self.max_body:  # cheroot refuses these first; kept for other servers
                raise _Refused(413, "too_large", self.too_large_message)
        elif not environ.get("wsgi.input_terminated"):
            length = 0
        pieces, total = [], 0
        try:
            while length is None or total < length:
                want = _READ_SIZE if length is None else min(_READ_SIZE, length - total)
                piece = stream.read(want)
                if not piece:
                    break
                total += len(piece)
                if total > self.max_body:
                    raise _Refused(413, "too_large", self.too_large_message)
                pieces.append(piece)
        except TimeoutError:
            raise _Refused(408, "timeout", "the body did not arrive within read_timeout") from None
        except _Refused:
            raise
        except ValueError:
            raise _Refused(400, "invalid", "malformed chunked body") from None
        except Exception as err:
            if _too_large(err):
                raise _Refused(413, "too_large", self.too_large_message) from None
            raise
        if length is not None and total < length:
            raise _Refused(400, "invalid", "the body ended before its Content-Length")
        return b"".join(pieces)

    @property
    def too_large_message(self):
        return (f"the body is larger than saltops:alarms:max_body_bytes ({self.max_body} bytes); "
                "raise it, or lower max_alerts in Alertmanager's webhook_config")


def _too_large(err):
    """cheroot's chunked reader signals its size limit with MaxSizeExceeded or an OSError."""
    from cheroot.errors import MaxSizeExceeded

    return isinstance(err, MaxSizeExceeded) or (
        isinstance(err, OSError) and err.args[:1] == ("Request Entity Too Large",))


def _parse_json(raw):
    try:
        return json.loads(raw)
    except RecursionError:
        raise _Refused(400, "invalid", "the body is nested too deeply to be an Alertmanager payload") from None
    except json.JSONDecodeError as err:
        raise _Refused(400, "invalid", f"the body is not valid JSON (line {err.lineno}, column {err.colno})") \
            from None
    except ValueError:  # UnicodeDecodeError and the like
        raise _Refused(400, "invalid", "the body is not UTF-8 JSON") from None


def _unauthorized():
    return 401, {"error": "a valid bearer token is required"}, _JSON, [("WWW-Authenticate", 'Bearer realm="saltops"')]


def _answer(start_response, code, body, headers=(), ctype=_JSON):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    start_response(_STATUS[code], [("Content-Type", ctype), ("Content-Length", str(len(data))), *headers])
    return [data]


# -- exposure policy and start-up ---------------------------------------------------------------
def is_loopback(host):
    """True when every address ``host`` resolves to is a loopback address ('' and 0.0.0.0 are not)."""
    if not host:
        return False
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError):
        return False
    try:
        return bool(infos) and all(ipaddress.ip_address(info[4][0].split("%", 1)[0]).is_loopback
                                   for info in infos)
    except ValueError:
        return False


class Endpoint:
    """The cheroot server and the application behind it; :meth:`start` binds and serves."""

    def __init__(self, host, port, submit, *, webhook_token=None, metrics_token=None, metrics_open=True,
                 max_body=16 * 1024 * 1024, max_alerts=20000, read_timeout=10, request_timeout=60,
                 threads=8, max_connections=512, on_reject=None, on_refuse=None):
        from saltops.alarms.http_server import BoundedServer

        self.app = App(submit, webhook_token=webhook_token, metrics_token=metrics_token,
                       metrics_open=metrics_open, max_body=max_body, max_alerts=max_alerts,
                       on_reject=on_reject, on_refuse=on_refuse)
        self.server = BoundedServer((host, port), self.app, threads=threads, read_timeout=read_timeout,
                                    request_timeout=request_timeout, max_connections=max_connections,
                                    max_body=max_body, too_large_message=self.app.too_large_message,
                                    on_refuse=on_refuse)

    @property
    def port(self):
        return self.server.port

    def start(self):
        self.server.start()
        return self

    def stop(self):
        self.server.stop()


def serve(conf, submit, on_reject=None, on_refuse=None):
    """Start the endpoint the ``saltops:alarms`` settings ``conf`` allow; None when nothing is served.

    Every refusal is logged at WARNING or ERROR with what to change; the
    engine goes on without the endpoint (beacon alarms do not need it).
    """
    host, port = conf["listen_host"], conf["listen_port"]
    if not port:
        log.info("alarm HTTP endpoint off (saltops:alarms:listen_port is 0)")
        return None
    where = f"{host}:{port}"
    try:
        import cheroot  # noqa: F401
    except ImportError as err:
        log.error("alarm HTTP endpoint not started on %s: it needs cheroot, which cannot be imported (%s); "
                  "install it (pip install cheroot, or saltops[api]) or set saltops:alarms:listen_port: 0",
                  where, err)
        return None
    loopback = is_loopback(host)
    if not loopback and not conf["behind_tls_proxy"]:
        log.error("alarm HTTP endpoint not started on %s: a non-loopback address is refused without TLS in "
                  "front; listen on 127.0.0.1, or put a TLS-terminating reverse proxy in front and set "
                  "saltops:alarms:behind_tls_proxy: true (docs/alarms.md)", where)
        return None
    webhook_token = conf["webhook_token"]
    if not webhook_token:
        log.warning("Alertmanager webhook not served on %s: saltops:alarms:webhook_token is not set "
                    "(POST %s answers 404)", where, WEBHOOK_PATH)
    metrics_token = conf["metrics_token"]
    metrics_open = loopback and not metrics_token
    if not loopback and not metrics_token:
        log.warning("/metrics not served on %s: a non-loopback address needs saltops:alarms:metrics_token", where)
    try:
        endpoint = Endpoint(
            host, port, submit, webhook_token=webhook_token, metrics_token=metrics_token,
            metrics_open=metrics_open, max_body=conf["max_body_bytes"], max_alerts=conf["webhook_max_alerts"],
            read_timeout=conf["read_timeout"], request_timeout=conf["request_timeout"],
            threads=conf["http_threads"], max_connections=conf["max_connections"],
            on_reject=on_reject, on_refuse=on_refuse,
        ).start()
    except OSError as err:
        log.error("alarm HTTP endpoint not started: cannot listen on %s: %s", where, err)
        return None
    log.info("alarm HTTP endpoint on %s: webhook %s, /metrics %s", where,
             "on (bearer token)" if webhook_token else "off",
             "bearer token" if metrics_token else ("open (loopback)" if metrics_open else "off"))
    return endpoint
