"""Fixtures for the alarm unit tests: a fixed clock, pipelines, and one store per backend."""

import pytest
import sqlalchemy as sa
from alarms_testkit import clock, make_pipeline  # noqa: F401  (fixtures)

ALARM_TABLES = ("alarm_leases", "alarm_remediations", "notify_deliveries", "notify_outbox", "alarm_hosts", "alarm_nflog", "alarm_silences",
                "alarm_history", "alarm_alarms", "event_outbox", "audit_log", "cmdb_host_roles",
                "cmdb_host_lines", "cmdb_host_apps", "cmdb_tombstones", "cmdb_hosts")


@pytest.fixture(params=["sqlite", pytest.param("mysql", marks=pytest.mark.mysql)])
def store(request, backend_stores):
    s = backend_stores(request.param, "alarms")
    with s.begin() as conn:
        for name in ALARM_TABLES:
            conn.execute(sa.text(f"DELETE FROM {name}"))
    return s
