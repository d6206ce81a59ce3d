"""The alarm engine's HTTP server: cheroot, with every resource a client can hold bounded.

cheroot (CherryPy's WSGI server) brings the worker pool, socket timeouts,
chunked request bodies and a selector that keeps idle keep-alive connections
out of the workers.  This module adds what a server facing untrusted clients
still needs:

* A new connection waits in that selector, not in a worker, until it has
  sent something.  cheroot hands a new connection straight to a worker, so
  ``threads`` clients that connect and say nothing would block every request
  behind them for ``read_timeout``; parked, an idle client costs a file
  descriptor and is closed after ``read_timeout`` like an idle keep-alive one.
* At most ``max_connections`` connections are open; a connection beyond that
  is closed at once, before anything is read from it.
* A request that holds a worker longer than ``request_timeout`` (a client
  trickling its headers or its body one byte at a time, each read inside
  ``read_timeout``) has its socket shut down.
* Every error answer closes the connection, so a body the application
  refused without reading it (a bad token, a body too large) is never
  drained.
"""

import logging
import socket
import threading
import time

from cheroot import server as cheroot_server
from cheroot import wsgi

log = logging.getLogger(__name__)

# How often the request deadlines are checked (seconds).
_REAP_INTERVAL = 0.5
# At most one "connection limit reached" warning per this many seconds.
_WARN_EVERY = 60.0


class _Request(cheroot_server.HTTPRequest):
    def send_headers(self):
        if int(self.status[:3]) >= 400:
            self.close_connection = True
        super().send_headers()

    def simple_response(self, status, msg=""):
        # cheroot answers a Content-Length over max_request_body_size itself, before the
        # application runs; say which setting that is.  (Its 413 for headers keeps its text.)
        if str(status)[:3] == "413" and str(msg).startswith("The entity"):
            msg = self.server.too_large_message
        super().simple_response(status, msg)


class _Connection(cheroot_server.HTTPConnection):
    RequestHandlerClass = _Request
    parked = False  # True once it went through the selector's first wait
    busy_since = None  # time.monotonic() when a worker took it, None while idle

    def close(self):
        self.server.forget(self)
        super().close()


class BoundedServer(wsgi.Server):
    """A cheroot WSGI server with parked new connections, a connection cap and request deadlines.

    ``on_refuse(reason)`` is called with ``connection_limit`` or
    ``request_timeout`` for what the server itself cut off.
    """

    ConnectionClass = _Connection

    def __init__(self, bind_addr, app, *, threads, read_timeout, request_timeout, max_connections,
                 max_body, too_large_message, on_refuse=None, name="saltops-alarms"):
        super().__init__(bind_addr, app, numthreads=threads, max=threads, server_name=name,
                         request_queue_size=128, timeout=read_timeout, shutdown_timeout=5)
        self.version = name
        self.request_timeout = request_timeout
        self.max_connections = max_connections
        self.keep_alive_conn_limit = max_connections
        self.max_request_body_size = max_body
        self.max_request_header_size = 64 * 1024
        self.too_large_message = too_large_message
        self.on_refuse = on_refuse or (lambda _reason: None)
        self._open = set()
        self._open_lock = threading.Lock()
        self._stopping = threading.Event()
        self._last_limit_warning = 0.0
        self._threads = []

    # -- connections --------------------------------------------------------------------------
    def process_conn(self, conn):
        if not conn.parked:
            conn.parked = True
            with self._open_lock:
                admitted = len(self._open) < self.max_connections
                if admitted:
                    self._open.add(conn)
            if not admitted:
                self._refused_at_limit()
                conn.close()
                return
            self.put_conn(conn)  # into the selector: a worker takes it once it is readable
            return
        conn.busy_since = time.monotonic()
        super().process_conn(conn)

    def put_conn(self, conn):
        conn.busy_since = None
        super().put_conn(conn)

    def forget(self, conn):
        with self._open_lock:
            self._open.discard(conn)

    def open_connections(self):
        with self._open_lock:
            return len(self._open)

    def _refused_at_limit(self):
        self.on_refuse("connection_limit")
        now = time.monotonic()
        if now - self._last_limit_warning >= _WARN_EVERY:
            self._last_limit_warning = now
            log.warning("alarm HTTP endpoint: %d connections open (max_connections); new connections are "
                        "closed until some end", self.max_connections)

    def _reap(self):
        while not self._stopping.wait(_REAP_INTERVAL):
            deadline = time.monotonic() - self.request_timeout
            with self._open_lock:
                late = [c for c in self._open if c.busy_since is not None and c.busy_since < deadline]
            for conn in late:
                conn.busy_since = None
                self.on_refuse("request_timeout")
                log.debug("alarm HTTP endpoint: request from %s cut off after %ss", conn.remote_addr,
                          self.request_timeout)
                try:
                    conn.socket.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    # -- life cycle ---------------------------------------------------------------------------
    def start(self):
        """Bind (an OSError says why not) and serve in background threads."""
        self.prepare()
        for target, name in ((self.serve, "saltops-alarms-http"), (self._reap, "saltops-alarms-http-reaper")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self):
        self._stopping.set()
        super().stop()
        for thread in self._threads:
            thread.join(5)

    @property
    def port(self):
        return self.bind_addr[1]

    def error_log(self, msg="", level=logging.INFO, traceback=False):
        # cheroot writes to stderr by default.  Client faults (bad request lines, resets) are
        # for debugging only; a traceback means a fault of this endpoint.
        if level >= logging.ERROR:
            log.error("alarm HTTP endpoint: %s", msg, exc_info=traceback)
        elif level >= logging.WARNING:
            log.warning("alarm HTTP endpoint: %s", msg)
        else:
            log.debug("alarm HTTP endpoint: %s", msg)
