"""Labels from the CMDB: ``hostname -> {role, lines, idc, env, owner, status, platform}``.

A labels provider is any callable taking a hostname and returning a dict of
string labels (empty for a host the CMDB does not know).  :class:`CmdbLabels`
is the real one: it keeps every host's labels in memory, reloads them when the
CMDB change counter (``saltops_meta.cmdb_version``) moves, and keeps serving
the last good copy while the database is unreachable, so an alarm never waits
for the CMDB.
"""

import logging
import threading
import time

import sqlalchemy as sa

from saltops.store.schema import host_lines, host_roles, hosts, meta

log = logging.getLogger(__name__)

# The labels the CMDB adds to every alarm of a known host.
CMDB_LABELS = ("role", "lines", "idc", "env", "owner", "status", "platform")


def no_labels(_hostname):
    """The provider used when no CMDB is configured."""
    return {}


def record_labels(record):
    """Alarm labels for one CMDB record (as in docs/pillar.md)."""
    roles = record.get("roles") or []
    lines = record.get("lines") or {}
    return {
        "role": ",".join(sorted(str(r) for r in roles)),
        "lines": ",".join(sorted(str(k) for k in lines)),
        "idc": str(record.get("idc") or ""),
        "env": str(record.get("env") or ""),
        "owner": str(record.get("owner") or ""),
        "status": str(record.get("status") or ""),
        "platform": str(record.get("platform") or ""),
    }


def load_all(conn):
    """Every CMDB host's labels, read in three queries."""
    records = {}
    ids = {}
    for row in conn.execute(
        sa.select(hosts.c.id, hosts.c.hostname, hosts.c.idc, hosts.c.env, hosts.c.owner,
                  hosts.c.status, hosts.c.platform)
    ):
        ids[row.id] = row.hostname
        records[row.hostname] = {"idc": row.idc, "env": row.env, "owner": row.owner,
                                 "status": row.status, "platform": row.platform,
                                 "roles": [], "lines": {}}
    for row in conn.execute(sa.select(host_roles.c.host_id, host_roles.c.role)):
        if row.host_id in ids:
            records[ids[row.host_id]]["roles"].append(row.role)
    for row in conn.execute(sa.select(host_lines.c.host_id, host_lines.c.line, host_lines.c.address)):
        if row.host_id in ids:
            records[ids[row.host_id]]["lines"][row.line] = row.address
    return {name: record_labels(rec) for name, rec in records.items()}


class CmdbLabels:
    """A labels provider over the CMDB tables, refreshed on change."""

    def __init__(self, store, check_interval=5.0, clock=time.monotonic):
        self.store = store
        self.check_interval = check_interval
        self.clock = clock
        self._labels = {}
        self._version = None
        self._checked = None
        self._lock = threading.Lock()
        self.refresh()

    def _current_version(self, conn):
        return conn.execute(sa.select(meta.c.value).where(meta.c.name == "cmdb_version")).scalar()

    def refresh(self, force=False):
        """Reload when the CMDB changed; return True when new data was loaded."""
        with self._lock:
            self._checked = self.clock()
            try:
                with self.store.connect() as conn:
                    version = self._current_version(conn)
                    if not force and version is not None and version == self._version:
                        return False
                    self._labels = load_all(conn)
                    self._version = version
                    return True
            except Exception as err:  # keep serving the last good labels
                log.warning("CMDB labels not refreshed, serving the last good copy: %s", err)
                return False

    def maybe_refresh(self):
        if self._checked is None or self.clock() - self._checked >= self.check_interval:
            self.refresh()

    @property
    def version(self):
        return self._version

    def known(self, hostname):
        return hostname in self._labels

    def __call__(self, hostname):
        return self._labels.get(hostname, {})
