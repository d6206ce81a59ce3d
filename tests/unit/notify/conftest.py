"""Fixtures for the notification tests: one migrated store per backend, its notify tables emptied."""

import pytest
import sqlalchemy as sa

NOTIFY_TABLES = ("notify_deliveries", "notify_outbox")


@pytest.fixture(params=["sqlite", pytest.param("mysql", marks=pytest.mark.mysql)])
def store(request, backend_stores):
    s = backend_stores(request.param, "notify")
    with s.begin() as conn:
        for name in NOTIFY_TABLES:
            conn.execute(sa.text(f"DELETE FROM {name}"))
    return s
