"""A throw-away MariaDB server that a test may stop and start at will.

Outage tests must not stop the shared server on 127.0.0.1:3306, so this starts
a private ``mariadbd`` on a free loopback port with its own data directory
(made by ``mariadb-install-db``), socket and log, all under one temporary
directory::

    with MariaDBInstance() as db:          # installed and started
        url = db.url("saltops")            # creates the database, returns its URL
        db.stop()                          # the database "goes away"
        db.start()                         # ... and comes back with its data
        db.kill()                          # SIGKILL, as in a crash

``stop()`` waits until the port is closed, ``start()`` until the server
answers, so a test never races the server.  Everything is removed by
``close()`` (or the ``with`` block).  :func:`available` says whether the
binaries are installed, for a clear skip/fail message.
"""

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pymysql

BINARIES = ("mariadbd", "mariadb-install-db")
_SEARCH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/local/sbin", "/sbin"])


def _which(name):
    return shutil.which(name, path=_SEARCH)


def available():
    """``None`` when a private server can be started here, else why not."""
    missing = [name for name in BINARIES if _which(name) is None]
    if missing:
        return f"MariaDB server binaries not installed: {', '.join(missing)} (apt-get install mariadb-server)"
    return None


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class MariaDBInstance:
    """One private ``mariadbd`` (no grant tables: any user, no password, loopback only)."""

    def __init__(self, base_dir=None, port=None, buffer_pool="64M", server_options=()):
        problem = available()
        if problem:
            raise RuntimeError(problem)
        self.base_dir = base_dir or tempfile.mkdtemp(prefix="mdb-", dir="/tmp")
        self._own_dir = base_dir is None
        self.datadir = os.path.join(self.base_dir, "data")
        # AF_UNIX paths are limited to ~100 bytes: keep the socket short.
        self.socket = os.path.join(self.base_dir, "sock")
        self.log_file = os.path.join(self.base_dir, "error.log")
        self.pid_file = os.path.join(self.base_dir, "mariadbd.pid")
        self.port = port or free_port()
        self.buffer_pool = buffer_pool
        # More mariadbd options (replication: --server-id, --log-bin...).
        self.server_options = list(server_options)
        self.process = None
        self._installed = False

    # -- lifecycle -----------------------------------------------------------

    def install(self):
        if self._installed:
            return
        cmd = [
            _which("mariadb-install-db"),
            "--no-defaults",
            f"--datadir={self.datadir}",
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
        ]
        if os.geteuid() == 0:
            cmd.append("--user=root")
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"mariadb-install-db failed ({result.returncode}): {result.stderr[-2000:]}")
        self._installed = True

    def start(self, timeout=60):
        """Start the server (installing the data dir the first time) and wait for it."""
        if self.running():
            return self
        self.install()
        cmd = [
            _which("mariadbd"),
            "--no-defaults",
            f"--datadir={self.datadir}",
            f"--socket={self.socket}",
            f"--port={self.port}",
            "--bind-address=127.0.0.1",
            "--skip-grant-tables",
            "--skip-name-resolve",
            f"--pid-file={self.pid_file}",
            f"--log-error={self.log_file}",
            f"--innodb-buffer-pool-size={self.buffer_pool}",
            "--innodb-log-file-size=48M",
            "--max-connections=500",
        ]
        if not any(opt.startswith("--log-bin") for opt in self.server_options):
            cmd.append("--skip-log-bin")
        cmd.extend(self.server_options)
        if os.geteuid() == 0:
            cmd.append("--user=root")
        self.process = subprocess.Popen(  # pylint: disable=consider-using-with
            cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"mariadbd exited with {self.process.returncode}:\n{self._log_tail()}")
            if self.ping():
                return self
            time.sleep(0.1)
        self.kill()
        raise RuntimeError(f"mariadbd did not answer within {timeout}s:\n{self._log_tail()}")

    def stop(self, timeout=60):
        """Shut the server down cleanly (SIGTERM) and wait until the port is closed."""
        self._signal(signal.SIGTERM, timeout)

    def kill(self, timeout=30):
        """Kill the server (SIGKILL), as in a crash."""
        self._signal(signal.SIGKILL, timeout)

    def _signal(self, sig, timeout):
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)
        self.process = None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self._port_open():
            time.sleep(0.05)

    def running(self):
        return self.process is not None and self.process.poll() is None

    def close(self):
        """Stop the server and remove its directory."""
        try:
            self.kill()
        finally:
            if self._own_dir:
                shutil.rmtree(self.base_dir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()

    # -- clients -------------------------------------------------------------

    def connect(self, database=None, **extra):
        """A PyMySQL connection over TCP (autocommit)."""
        return pymysql.connect(
            host="127.0.0.1",
            port=self.port,
            user="root",
            database=database,
            connect_timeout=3,
            ssl_disabled=True,
            autocommit=True,
            **extra,
        )

    def ping(self):
        try:
            self.connect().close()
            return True
        except pymysql.MySQLError:
            return False

    def create_database(self, name):
        if not name.replace("_", "").isalnum():
            raise ValueError(f"bad database name {name!r}")
        conn = self.connect()
        try:
            with conn.cursor() as cur:
                cur.execute(
                    f"CREATE DATABASE IF NOT EXISTS `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
                )
        finally:
            conn.close()

    def url(self, database, create=True):
        """SQLAlchemy URL of ``database`` on this server (created unless ``create=False``)."""
        if create:
            self.create_database(database)
        return f"mysql+pymysql://root@127.0.0.1:{self.port}/{database}"

    # -- helpers -------------------------------------------------------------

    def _port_open(self):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.settimeout(0.2)
            return sock.connect_ex(("127.0.0.1", self.port)) == 0

    def _log_tail(self, lines=30):
        try:
            with open(self.log_file, encoding="utf-8", errors="replace") as fh:
                return "".join(fh.readlines()[-lines:])
        except OSError:
            return "(no error log)"

    def __repr__(self):
        return f"MariaDBInstance(port={self.port}, base_dir={self.base_dir!r})"
