"""Helpers shared by the CMDB tests: stores on SQLite and MariaDB, sample hosts, row counts."""

import sqlalchemy as sa

from saltops import config
from saltops.cmdb.model import Rules
from saltops.cmdb.schema import host_apps, host_lines, host_roles, hosts, tombstones
from saltops.store.schema import audit_log, event_outbox, meta
from tests.support.hosts import host_record

CONF = config.load({"cachedir": "/nonexistent", "saltops": {"db_url": "sqlite://"}})
RULES = Rules.from_config(CONF)
LB_SERVES = CONF["cmdb"]["lb_serves"]

# Strings that must be stored verbatim where a field accepts them, and rejected cleanly elsewhere.
INJECTIONS = [
    "x'; DROP TABLE cmdb_hosts; --",
    'x" OR "1"="1',
    "web01) OR 1=1 --",
    "%' UNION SELECT 1 --",
    "\\'; SELECT SLEEP(5); #",
]
NON_ASCII = ["张三", "José-Núñez", "Ωμέγα", "运维团队"]


def host(name="web01.bj.example.com", **over):
    return host_record(
        name,
        **{
            "ip": "10.10.1.11",
            "lines": {"telecom": "203.0.113.11", "unicom": "198.51.100.11"},
            **over,
        },
    )


def many(count, prefix="web", start=1, **over):
    return [
        host(f"{prefix}{i:05d}.bj.example.com", ip=f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}", **over)
        for i in range(start, start + count)
    ]


def counts(store):
    """Everything an unchanged CMDB keeps the same: the version and the row count of each table."""
    with store.connect() as conn:
        out = {
            "version": conn.execute(sa.select(meta.c.value).where(meta.c.name == "cmdb_version")).scalar_one()
        }
        for table in (hosts, host_roles, host_lines, host_apps, tombstones, audit_log, event_outbox):
            out[table.name] = conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
    return out


def wipe(store):
    """Empty the CMDB tables (the version counter keeps counting)."""
    with store.begin() as conn:
        for table in (host_roles, host_lines, host_apps, hosts, tombstones, audit_log, event_outbox):
            conn.execute(table.delete())
