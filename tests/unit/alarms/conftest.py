"""Fixtures for the alarm unit tests: a fixed clock, pipelines, and one store per backend."""

import pytest
import sqlalchemy as sa
from alarms_testkit import clock, make_pipeline  # noqa: F401  (fixtures)

from saltops.store.engine import Store

ALARM_TABLES = ("notify_deliveries", "notify_outbox", "alarm_hosts", "alarm_nflog", "alarm_silences",
                "alarm_history", "alarm_alarms", "event_outbox", "audit_log", "cmdb_host_roles",
                "cmdb_host_lines", "cmdb_host_apps", "cmdb_tombstones", "cmdb_hosts")


@pytest.fixture(scope="session")
def alarm_backends(tmp_path_factory, make_mysql_database):
    made = {}

    def get(kind):
        if kind not in made:
            if kind == "sqlite":
                url = f"sqlite:///{tmp_path_factory.mktemp('alarms')}/saltops.db"
            else:
                url = make_mysql_database("saltops_alarms").url
            store = Store(url)
            store.migrate()
            made[kind] = store
        return made[kind]

    yield get
    for store in made.values():
        store.dispose()


@pytest.fixture(params=["sqlite", pytest.param("mysql", marks=pytest.mark.mysql)])
def store(request, alarm_backends):
    s = alarm_backends(request.param)
    with s.begin() as conn:
        for name in ALARM_TABLES:
            conn.execute(sa.text(f"DELETE FROM {name}"))
    return s
