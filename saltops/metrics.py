"""Prometheus metrics for SaltOps: one registry, and a hook for every part's figures.

The alarm engine serves :data:`REGISTRY` over HTTP (``/metrics``).  A part of
SaltOps adds its figures in one of two ways:

* live figures of the engine process: :func:`counter`, :func:`gauge`,
  :func:`histogram` (get-or-create, so importing twice is harmless);
* figures read at scrape time (from the database, usually): a module
  ``saltops/<part>/metrics.py`` with ``collect(store)`` yielding
  ``prometheus_client`` metric families is found by :func:`use_store`
  (parts: see :data:`PARTS`), or any callable given to :func:`register`.

A collector that raises does not break the scrape: it is skipped and
``saltops_metrics_collector_errors_total{collector}`` counts it.
"""

import importlib
import logging
import threading

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST

log = logging.getLogger(__name__)

REGISTRY = CollectorRegistry(auto_describe=False)
PARTS = ("cmdb", "deploy", "confpush", "tickets", "alarms")

_LOCK = threading.Lock()
_METRICS = {}
_COLLECTORS = {}
_ERRORS = {}


def _get(kind, name, doc, labelnames, **kwargs):
    with _LOCK:
        metric = _METRICS.get(name)
        if metric is None:
            metric = kind(name, doc, labelnames=tuple(labelnames), registry=REGISTRY, **kwargs)
            _METRICS[name] = metric
        elif not isinstance(metric, kind):
            raise ValueError(f"metric {name} already exists as {type(metric).__name__}")
        return metric


def counter(name, doc, labelnames=()):
    return _get(Counter, name, doc, labelnames)


def gauge(name, doc, labelnames=()):
    return _get(Gauge, name, doc, labelnames)


def histogram(name, doc, labelnames=(), buckets=Histogram.DEFAULT_BUCKETS):
    return _get(Histogram, name, doc, labelnames, buckets=buckets)


def register(name, collect):
    """Add (or replace) a scrape-time collector: ``collect()`` yields metric families."""
    with _LOCK:
        _COLLECTORS[name] = collect


def unregister(name):
    with _LOCK:
        _COLLECTORS.pop(name, None)


class _Hooks:
    def collect(self):
        with _LOCK:
            items = list(_COLLECTORS.items())
        for name, collect in items:
            try:
                families = list(collect())
            except Exception as err:  # one broken part must not hide the others
                log.warning("metrics collector %s failed: %s", name, err)
                _ERRORS[name] = _ERRORS.get(name, 0) + 1
                continue
            yield from families
        errors = CounterMetricFamily("saltops_metrics_collector_errors", "Scrape-time collectors that failed",
                                     labels=["collector"])
        for name, count in sorted(_ERRORS.items()):
            errors.add_metric([name], count)
        yield errors


REGISTRY.register(_Hooks())


def cmdb_hosts(store):
    """CMDB figures straight from the core tables: hosts by status and the change counter."""
    import sqlalchemy as sa

    from saltops.store.schema import hosts, meta

    with store.connect() as conn:
        rows = conn.execute(sa.select(hosts.c.status, sa.func.count()).group_by(hosts.c.status)).all()
        version = conn.execute(sa.select(meta.c.value).where(meta.c.name == "cmdb_version")).scalar()
    family = GaugeMetricFamily("saltops_cmdb_hosts", "CMDB hosts by status", labels=["status"])
    for status, count in rows:
        family.add_metric([status], count)
    yield family
    yield GaugeMetricFamily("saltops_cmdb_version", "CMDB change counter", value=version or 0)


def use_store(store):
    """Register the database-backed collectors: CMDB hosts, and each part's ``metrics.collect``."""
    register("cmdb_hosts", lambda: cmdb_hosts(store))
    found = []
    for part in PARTS:
        try:
            module = importlib.import_module(f"saltops.{part}.metrics")
        except ModuleNotFoundError as err:
            if err.name and err.name.startswith(f"saltops.{part}"):
                continue
            raise
        collect = getattr(module, "collect", None)
        if callable(collect):
            register(f"{part}", lambda collect=collect: collect(store))
            found.append(part)
    return found


def exposition(registry=REGISTRY):
    """``(content_type, body)`` of the Prometheus text format."""
    return CONTENT_TYPE_LATEST, generate_latest(registry)
