"""A private MariaDB primary and a replica of it, for the read-replica tests.

The machine's server on 127.0.0.1:3306 runs without a binary log, which cannot
be turned on without restarting it, so both ends are private servers
(:class:`~tests.support.mariadb_instance.MariaDBInstance`) on free ports::

    with ReplicaPair() as pair:
        primary_url = pair.primary.url("saltops")   # created on the primary, replicated
        pair.wait_caught_up()                       # the replica applied every write so far
        pair.pause()                                # replica lags: writes stay on the primary
        pair.resume()                               # ... and are applied again

Replication is GTID based (``MASTER_USE_GTID=slave_pos``), row format, and
starts before any database exists, so everything made on the primary
(``CREATE DATABASE``, migrations, writes) reaches the replica.
"""

import time

from tests.support.mariadb_instance import MariaDBInstance


class ReplicaPair:
    """A primary (binary log on, server id 1) and a read-only replica (server id 2)."""

    def __init__(self):
        self.primary = MariaDBInstance(server_options=["--server-id=1", "--log-bin=binlog", "--binlog-format=ROW"])
        self.replica = MariaDBInstance(server_options=["--server-id=2", "--read-only=ON", "--skip-slave-start"])

    def start(self):
        self.primary.start()
        self.replica.start()
        self._sql(
            self.replica,
            f"CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT={self.primary.port}, "
            "MASTER_USER='root', MASTER_PASSWORD='', MASTER_CONNECT_RETRY=1, MASTER_USE_GTID=slave_pos",
            "START SLAVE",
        )
        return self

    def close(self):
        try:
            self.replica.close()
        finally:
            self.primary.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()

    def pause(self):
        """Stop applying the primary's writes on the replica (it goes on receiving them)."""
        self._sql(self.replica, "STOP SLAVE SQL_THREAD")

    def resume(self):
        self._sql(self.replica, "START SLAVE SQL_THREAD")

    def wait_caught_up(self, timeout=60):
        """Wait until the replica applied everything the primary wrote so far."""
        position = self._value(self.primary, "SELECT @@gtid_binlog_pos")
        if not position:
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._value(self.replica, "SELECT MASTER_GTID_WAIT(%s, 1)", position) == 0:
                return
        raise AssertionError(f"the replica did not reach {position} within {timeout}s: {self.status()}")

    def status(self):
        """The replica's ``SHOW SLAVE STATUS`` as a dict (for failure messages)."""
        conn = self.replica.connect()
        try:
            with conn.cursor() as cur:
                cur.execute("SHOW SLAVE STATUS")
                row = cur.fetchone()
                return dict(zip([c[0] for c in cur.description], row)) if row else {}
        finally:
            conn.close()

    @staticmethod
    def _sql(server, *statements):
        conn = server.connect()
        try:
            with conn.cursor() as cur:
                for statement in statements:
                    cur.execute(statement)
        finally:
            conn.close()

    @staticmethod
    def _value(server, sql, *args):
        conn = server.connect()
        try:
            with conn.cursor() as cur:
                cur.execute(sql, args or None)
                return cur.fetchone()[0]
        finally:
            conn.close()
