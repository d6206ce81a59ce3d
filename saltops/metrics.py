"""Prometheus metrics for SaltOps: one registry, and a hook for every part's figures.

The alarm engine serves :data:`REGISTRY` over HTTP (``/metrics``).  A part of
SaltOps adds its figures in one of two ways:

* live figures of the engine process: :func:`counter`, :func:`gauge`,
  :func:`histogram` (get-or-create, so importing twice is harmless);
* figures read at scrape time (from the database, usually): a module
  ``saltops/<part>/metrics.py`` with ``collect(store)`` yielding
  ``prometheus_client`` metric families is found by :func:`use_store`
  (every subpackage of ``saltops`` that has one), or any callable given to
  :func:`register`.

A collector that raises does not break the scrape: it is skipped and
``saltops_metrics_collector_errors_total{collector}`` counts it.
"""

import importlib
import importlib.util
import logging
import pkgutil
import threading

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST

log = logging.getLogger(__name__)

REGISTRY = CollectorRegistry(auto_describe=False)

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


def parts_with_metrics():
    """Names of the ``saltops`` subpackages that have a ``metrics`` module."""
    import saltops  # pylint: disable=import-outside-toplevel

    found = []
    for info in pkgutil.iter_modules(saltops.__path__):
        if info.ispkg and importlib.util.find_spec(f"saltops.{info.name}.metrics") is not None:
            found.append(info.name)
    return sorted(found)


def use_store(store):
    """Register each part's scrape-time ``metrics.collect(store)``; returns the parts found."""
    found = []
    for part in parts_with_metrics():
        module = importlib.import_module(f"saltops.{part}.metrics")
        collect = getattr(module, "collect", None)
        if callable(collect):
            register(part, lambda collect=collect: collect(store))
            found.append(part)
    return found


def exposition(registry=REGISTRY):
    """``(content_type, body)`` of the Prometheus text format."""
    return CONTENT_TYPE_LATEST, generate_latest(registry)
