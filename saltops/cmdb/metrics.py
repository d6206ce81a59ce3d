"""The CMDB's figures for ``/metrics``, read at scrape time: hosts by status and the change counter."""

import sqlalchemy as sa
from prometheus_client.core import GaugeMetricFamily

from saltops.cmdb import version as cmdb_version
from saltops.cmdb.schema import hosts


def collect(store):
    """Metric families for :func:`saltops.metrics.use_store`."""
    with store.connect() as conn:
        rows = conn.execute(sa.select(hosts.c.status, sa.func.count()).group_by(hosts.c.status)).all()
        version = cmdb_version.current(conn)
    family = GaugeMetricFamily("saltops_cmdb_hosts", "CMDB hosts by status", labels=["status"])
    for status, count in rows:
        family.add_metric([status], count)
    yield family
    yield GaugeMetricFamily("saltops_cmdb_version", "CMDB change counter", value=version)
