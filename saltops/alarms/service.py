"""The alarm service: the long-running loop behind the Salt engine.

Three threads carry an event to a notification:

* a reader (:class:`saltops.bridge.bus.BusReader`, or :meth:`AlarmService.reader`
  over any ``get_event`` callable) appends bus events to a queue;
* the main loop wakes every ``tick``, runs what was queued through the
  pipeline (validate, evaluate), evaluates time, flushes due groups and hands
  the tick's batch to the writer;
* the writer (:class:`saltops.alarms.writer.WriteBehind`) commits the batch in
  one transaction and only then gives the new notifications to the delivery
  workers.

Nothing per event touches the database and the loop never waits for a
commit, so ingestion keeps up with thousands of events a second; state is
one tick behind on disk (more only while the database is slow or down, when
ticks are merged into one write).
"""

import collections
import logging
import os
import threading
import time

from saltops import metrics
from saltops.alarms import http, persist, rules, settings
from saltops.alarms import silence as silence_mod
from saltops.alarms.ingest import AcceptedKeys, Ingest
from saltops.alarms.labels import CmdbLabels
from saltops.alarms.lease import Lease
from saltops.alarms.model import FIRING, PIPELINE_SOURCES, RESOLVED
from saltops.alarms.pipeline import Pipeline
from saltops.alarms.writer import WriteBehind
from saltops.notify import registry
from saltops.notify.worker import Deliverer, RetryPolicy
from saltops.pillar.cache import labels_cache
from saltops.store import outbox as event_outbox

log = logging.getLogger(__name__)

# saltops/alarm/<fingerprint>/firing|resolved: the events this engine puts in the outbox and fires.
ALARM_TAGS = "saltops/alarm/"


class _Figures:
    """Prometheus figures of the service (live), plus a scrape-time view of the pipeline."""

    def __init__(self, service):
        self.sent = metrics.counter("saltops_notifications_total", "Notification delivery attempts",
                                    ["channel", "result"])
        self.delivery = metrics.histogram("saltops_notification_delivery_seconds",
                                          "Time to deliver one notification", ["channel"],
                                          buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
        self.db_errors = metrics.counter("saltops_alarm_store_errors_total",
                                         "Write-behind transactions that failed (retried)")
        self.write_time = metrics.histogram("saltops_alarm_write_seconds",
                                            "Time of one write-behind transaction (a tick's batch, or merged ones)",
                                            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
        self.http_rejects = metrics.counter("saltops_alarm_webhook_rejected_total",
                                            "Alertmanager webhook requests refused", ["reason"])
        self.http_refused = metrics.counter("saltops_alarm_http_refused_total",
                                            "Connections and requests the HTTP endpoint cut off or refused "
                                            "(other than webhook requests)", ["reason"])
        self.rules_errors = metrics.counter("saltops_alarm_rules_reload_errors_total",
                                            "Rules file reloads refused because the file was invalid")
        metrics.register("alarms", service.collect)

    def delivered(self, channel, ok, seconds, give_up):
        result = "ok" if ok else ("failed" if give_up else "retry")
        self.sent.labels(channel, result).inc()
        self.delivery.labels(channel).observe(seconds)


class AlarmService:
    def __init__(self, conf, store, labels=None, accepted=None, fire=None, clock=time.time, holder=None):
        self.conf = conf
        self.alarms_conf, self.notify_conf = settings.load(conf)
        self.store = store
        self.clock = clock
        # fire(tag, data) on the master bus (saltops.bridge.bus.MasterBus), or None; raises when not sent.
        self.fire = fire
        if not self.alarms_conf["rules_file"]:
            raise rules.ValidationError("no alarm rules", ["set saltops:alarms:rules_file"])
        self.channels = registry.build(self.notify_conf["channels"], timeout=self.notify_conf["timeout"])
        self.ruleset = rules.load_file(self.alarms_conf["rules_file"], channels=set(self.channels))
        self._rules_mtime = _mtime(self.alarms_conf["rules_file"])
        if labels is None and self.alarms_conf["cmdb_labels"]:
            labels = CmdbLabels(labels_cache(conf, store))
        self.labels = labels
        self.ingest = Ingest(self.ruleset.by_tag, max_bytes=self.alarms_conf["max_event_bytes"],
                             accepted=accepted, clock=clock)
        self.pipeline = self._new_pipeline()
        # Masters sharing the database: only the lease holder evaluates (saltops.alarms.lease).
        self.lease = Lease(store, self.alarms_conf["lease"], holder=holder, clock=clock)
        self.active = None  # None until the first tick decided; then whether this engine evaluates
        self.standby_dropped = 0
        retry = self.notify_conf["retry"]
        self.figures = _Figures(self)
        self.deliverer = Deliverer(store, self.channels,
                                   RetryPolicy(retry["max_attempts"], retry["backoff"], retry["max_backoff"]),
                                   workers=self.notify_conf["workers"], on_result=self.figures.delivered,
                                   clock=clock, lease=self.notify_conf["claim_timeout"])
        # deque: append (reader thread) and popleft (loop) are atomic, and cheaper than a Queue.
        self.queue = collections.deque()
        self.writer = WriteBehind(store, on_committed=self._committed, on_error=self._write_failed,
                                  retry_delay=min(1.0, self.alarms_conf["tick"] * 5), write=self._write)
        self.stopping = threading.Event()
        self.endpoint = None
        self._silence_marker = None
        self._last_silence_check = 0.0
        self._last_prune = 0.0
        self._events_pending = False
        self.last_batch_at = None
        self.bus_reader = None

    def _write(self, store, pending):
        # Each write renews the lease, or is refused when another master's engine holds it.
        return persist.write_pending(store, pending, fence=self.lease.fence)

    def _new_pipeline(self):
        return Pipeline(self.ruleset, self.ingest, labels=self.labels, started=self.clock(),
                        external_url=self.alarms_conf["external_url"])

    # -- life cycle -------------------------------------------------------------------------
    def _restore(self, now):
        """Alarm state as the database has it: at start, and when taking over from another master."""
        with self.store.connect() as conn:
            alerts, hosts, entries = persist.load(conn)
        self.pipeline.restore(alerts, hosts, entries, now)
        self.reload_silences(force=True)
        return alerts

    def start(self):
        now = self.clock()
        with self.store.begin() as conn:
            persist.prune(conn, now, self.alarms_conf["keep_days"])
        alerts = self._restore(now)
        self.writer.start()
        self.deliverer.start()
        self.deliverer.poll_once()
        self.endpoint = http.serve(self.alarms_conf, self.submit_alertmanager,
                                   on_reject=lambda r: self.figures.http_rejects.labels(r).inc(),
                                   on_refuse=lambda r: self.figures.http_refused.labels(r).inc())
        metrics.use_store(self.store)
        log.info("alarm service started: %d rules, %d alarms restored, %d channels",
                 len(self.ruleset.rules), len(alerts), len(self.channels))

    def stop(self):
        self.stopping.set()
        try:
            self.drain(budget=5.0)
            self.step(self.clock())
        except Exception as err:
            log.warning("last tick failed: %s", err)
        if not self.writer.stop():
            log.warning("alarm state of the last tick(s) not written before stopping")
        self.lease.release()
        try:
            self._fire_events()
        except Exception as err:
            log.warning("alarm events not fired before stopping: %s", err)
        if self.endpoint is not None:
            self.endpoint.stop()
        self.deliverer.stop()

    # -- input ------------------------------------------------------------------------------
    def submit_event(self, tag, data):
        self.queue.append((tag, data))

    def submit_alertmanager(self, alerts):
        self.queue.append((None, alerts))

    def attach_reader(self, reader):
        """Count the reconnects of the bus reader feeding this service (:class:`saltops.bridge.bus.BusReader`)."""
        self.bus_reader = reader
        return reader

    def submit_garbage(self, error=None):
        """A bus frame that could not even be decoded: counted as ``garbage``."""
        self.queue.append((None, None, error))

    def reader(self, get_event):
        """Pump ``get_event()`` (returns {'tag', 'data'} or None) into the queue until stopped."""
        while not self.stopping.is_set():
            try:
                item = get_event()
            except Exception as err:
                log.warning("event bus read failed: %s", err)
                time.sleep(0.5)
                continue
            if item is None:
                continue
            if isinstance(item, dict):
                self.queue.append((item.get("tag"), item.get("data")))
            else:
                self.queue.append((None, None, item))

    # -- the loop ---------------------------------------------------------------------------
    def drain(self, budget=None):
        """Feed queued events to the pipeline until the queue is empty (or ``budget`` seconds passed)."""
        pipeline = self.pipeline
        popleft = self.queue.popleft
        event = pipeline.event
        budget = self.alarms_conf["tick"] if budget is None else budget
        deadline = time.monotonic() + budget
        got = 0
        if self.active is False:
            # On standby the holder's engine evaluates the same events: drop them.
            while True:
                try:
                    popleft()
                except IndexError:
                    self.standby_dropped += got
                    return got
                got += 1
        while True:
            try:
                item = popleft()
            except IndexError:
                return got
            got += 1
            if len(item) == 2 and item[0] is None:
                self._external(item[1])
            elif len(item) == 2:
                event(item[0], item[1])
            else:
                pipeline.counters.reject("garbage")
            # A backlog is worked off across ticks, so that groups still flush on time.
            if not got & 255 and time.monotonic() >= deadline:
                return got

    def _external(self, alerts):
        now = self.clock()
        for labels, annotations, status, starts, ends in alerts:
            self.pipeline.evaluator.external(labels, annotations, status, starts, ends, now)
        self.pipeline.counters.accepted += len(alerts)

    def run(self, get_event=None):
        """Run until :attr:`stopping` is set; ``get_event`` starts a reader thread.

        The loop sleeps until the next tick and then works off everything
        queued: events are only turned into notifications at a tick anyway, and
        waking once per tick instead of once per event leaves the reader (and
        the rest of the master) the CPU.
        """
        if get_event is not None:
            threading.Thread(target=self.reader, args=(get_event,), name="saltops-alarms-reader",
                             daemon=True).start()
        if self.fire is not None:
            self._events_pending = True  # events committed by a previous run
            threading.Thread(target=self._fire_loop, name="saltops-alarms-fire", daemon=True).start()
        tick = self.alarms_conf["tick"]
        next_tick = time.monotonic() + tick
        while not self.stopping.wait(max(0.0, next_tick - time.monotonic())):
            next_tick = time.monotonic() + tick
            try:
                self.drain()
                self.step(self.clock())
            except Exception:  # keep running: one bad tick must not stop the alarms
                log.exception("alarm tick failed")

    def step(self, now):
        """One tick: housekeeping, evaluate, flush, and hand the batch to the writer.

        On standby (another master's engine holds the lease) the tick does nothing; the
        tick that takes the lease over first rebuilds the state from the database.
        """
        if not self._evaluating(now):
            return None
        self.reload_silences()
        self.maybe_reload_rules()
        batch = self.pipeline.tick(now)
        if not batch:
            return None
        self.writer.submit(persist.Pending(batch, now, self._alarm_events(batch)))
        return batch

    def _evaluating(self, now):
        held = self.lease.held(now)
        if held and self.active is False:
            # Take over: what the previous holder committed, not what this engine read meanwhile.
            self.pipeline = self._new_pipeline()
            alerts = self._restore(now)
            log.info("alarm engine taking over: %d alarms restored from the database", len(alerts))
        self.active = held
        return held

    def _committed(self, queued, pending):
        """In the writer thread, after a commit: deliver, announce, prune."""
        self.last_batch_at = pending.now
        self.figures.write_time.observe(self.writer.last_seconds)
        if pending.events:
            self._events_pending = True
        if queued:
            self.deliverer.submit(queued)
        if pending.now - self._last_prune > 3600:
            self._last_prune = pending.now
            try:
                with self.store.begin() as conn:
                    persist.prune(conn, pending.now, self.alarms_conf["keep_days"])
            except Exception as err:
                log.warning("alarm history not pruned: %s", err)

    def _write_failed(self, _err):
        self.figures.db_errors.inc()

    def _alarm_events(self, batch):
        """Reactor events for the rules that ask for them (``fire_event``, implied by ``remediate``).

        Opt-in per rule because the reactor runs ~25 runner calls a second: a storm
        of per-alarm events would only queue up there.
        """
        if not self.alarms_conf["fire_events"] or self.fire is None:
            return []
        wanted = self._event_rules
        out = []
        for row in batch.history:
            alert = batch.alerts.get(row["fingerprint"])
            if alert is None or alert.source not in PIPELINE_SOURCES:
                # An external alert named like a rule is not that rule's alarm: no reactor event.
                continue
            if row["event"] in (FIRING, RESOLVED) and row["rule"] in wanted:
                labels = row["labels"]
                out.append((f"{ALARM_TAGS}{row['fingerprint']}/{row['event']}", {
                    "fingerprint": row["fingerprint"], "alertname": labels.get("alertname"),
                    "host": labels.get("host"), "severity": labels.get("severity"), "labels": labels,
                    "value": row["value"],
                }))
        return out

    @property
    def _event_rules(self):
        return {r.name for r in self.ruleset.rules if r.fire_event}

    def _fire_loop(self):
        outage = Backoff(self.FIRE_BACKOFF, self.FIRE_MAX_BACKOFF)
        while not self.stopping.wait(outage.delay if outage.failures else 0.05):
            if self._events_pending or outage.failures:
                self.fire_pending(outage)

    FIRE_BACKOFF = 0.5  # first wait after a failed fire (seconds), doubled per failure
    FIRE_MAX_BACKOFF = 30.0

    def fire_pending(self, outage):
        """Fire what the outbox holds; ``outage`` (a :class:`Backoff`) tracks failures.

        One warning when firing starts failing and one line when it works
        again: a bus or database outage must not write a line per attempt.
        """
        try:
            fired = self._fire_events()
        except Exception as err:  # the database or the bus is down: try again, later each time
            self._events_pending = True
            if outage.failed() == 1:
                log.warning("alarm events cannot be fired (retrying, at most every %.0fs, until it works): %s",
                            outage.maximum, err)
            else:
                log.debug("alarm events still not fired (attempt %d): %s", outage.failures, err)
            return None
        if outage.failures:
            log.warning("alarm events fired again after %d failed attempts", outage.failures)
            outage.reset()
        return fired

    def _fire_events(self, limit=500):
        """Fire committed ``saltops/alarm/...`` events in order (:func:`saltops.store.outbox.flush`).

        Runs in its own thread (firing is synchronous IPC); the main loop only
        sets ``_events_pending``.  The first event the bus refuses ends the
        round and the error is raised after the ones before it were marked
        sent, so nothing is fired twice by this loop and nothing is skipped.
        """
        if self.fire is None:
            return 0
        self._events_pending = False
        fired = 0
        try:
            fired = event_outbox.flush(self.store, self.fire, limit=limit, prefix=ALARM_TAGS, raise_errors=True)
        except BaseException:
            self._events_pending = True
            raise
        if fired == limit:
            self._events_pending = True
        return fired

    # -- housekeeping -----------------------------------------------------------------------
    def reload_silences(self, force=False):
        now = self.clock()
        if not force and now - self._last_silence_check < 1.0:
            return False
        self._last_silence_check = now
        try:
            with self.store.connect() as conn:
                marker = silence_mod.marker(conn)
                if not force and marker == self._silence_marker:
                    # Silences that started or ended since are handled by active(now).
                    return False
                self.pipeline.silences.set(silence_mod.load_active(conn, now))
                self._silence_marker = marker
                return True
        except Exception as err:
            log.warning("silences not reloaded: %s", err)
            return False

    def maybe_reload_rules(self):
        path = self.alarms_conf["rules_file"]
        mtime = _mtime(path)
        if mtime == self._rules_mtime:
            return False
        self._rules_mtime = mtime
        try:
            ruleset = rules.load_file(path, channels=set(self.channels))
        except rules.ValidationError as err:
            self.figures.rules_errors.inc()
            log.error("alarm rules not reloaded, keeping the running rules: %s", err)
            return False
        self.ruleset = ruleset
        self.ingest.tag_rules = list(ruleset.by_tag)
        self.pipeline.reload(ruleset)
        log.info("alarm rules reloaded from %s: %d rules", path, len(ruleset.rules))
        return True

    # -- metrics ----------------------------------------------------------------------------
    def collect(self):
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        c = self.pipeline.counters
        yield CounterMetricFamily("saltops_alarm_events_accepted", "Events used by the alarm pipeline",
                                  value=c.accepted)
        yield CounterMetricFamily("saltops_alarm_events_ignored", "Bus events the alarm pipeline does not watch",
                                  value=c.ignored)
        rejected = CounterMetricFamily("saltops_alarm_events_rejected",
                                       "Events refused as malformed or forged", labels=["reason"])
        for reason, count in sorted(c.rejected.items()):
            rejected.add_metric([reason], count)
        yield rejected
        trans = CounterMetricFamily("saltops_alarm_transitions", "Alarm state changes", labels=["state"])
        for state, count in sorted(c.transitions.items()):
            trans.add_metric([state], count)
        yield trans
        muted = CounterMetricFamily("saltops_alarm_muted", "Alerts muted at flush time", labels=["by"])
        for by, count in sorted(c.muted.items()):
            muted.add_metric([by], count)
        yield muted
        yield CounterMetricFamily("saltops_alarm_notifications", "Notifications decided by group flushes",
                                  value=c.notifications)
        active = GaugeMetricFamily("saltops_alarms", "Alarms in memory by state and severity",
                                   labels=["state", "severity"])
        for (state, sev), count in sorted(self.pipeline.evaluator.counts().items()):
            active.add_metric([state, sev], count)
        yield active
        yield GaugeMetricFamily("saltops_alarm_groups", "Aggregation groups", value=len(self.pipeline.dispatcher.groups))
        yield GaugeMetricFamily("saltops_alarm_queue", "Events waiting in the engine queue", value=len(self.queue))
        yield GaugeMetricFamily("saltops_alarm_engine_active",
                                "1 while this engine holds the lease and evaluates, 0 on standby",
                                value=1 if self.active else 0)
        yield CounterMetricFamily("saltops_alarm_events_standby",
                                  "Events dropped on standby (the engine holding the lease evaluates them)",
                                  value=self.standby_dropped)
        yield CounterMetricFamily("saltops_alarm_writes_merged",
                                  "Batches merged into the next write because the database was busy or down",
                                  value=self.writer.merged)
        if self.bus_reader is not None:
            yield CounterMetricFamily("saltops_alarm_bus_reconnects",
                                      "Event bus subscriptions lost and opened again (events in between are lost)",
                                      value=self.bus_reader.reconnects)
        yield GaugeMetricFamily("saltops_notifications_in_flight", "Notifications being delivered",
                                value=self.deliverer.pending())
        try:
            from saltops.notify import queue as notify_queue

            with self.store.connect() as conn:
                by_status = notify_queue.counts(conn)
            box = GaugeMetricFamily("saltops_notify_outbox", "Notification outbox rows by status",
                                    labels=["status"])
            for status, count in sorted(by_status.items()):
                box.add_metric([status], count)
            yield box
        except Exception as err:
            log.debug("outbox figures unavailable: %s", err)


class Backoff:
    """Bounded exponential back-off: ``initial``, doubled per failure, at most ``maximum`` seconds."""

    def __init__(self, initial, maximum):
        self.initial = initial
        self.maximum = maximum
        self.failures = 0

    @property
    def delay(self):
        if not self.failures:
            return 0.0
        return min(self.maximum, self.initial * 2 ** min(self.failures - 1, 30))

    def failed(self):
        """Count a failure; returns how many in a row (1: an outage begins)."""
        self.failures += 1
        return self.failures

    def reset(self):
        self.failures = 0


def _mtime(path):
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return None


def accepted_keys(opts):
    """The accepted-key check for a master's ``opts`` (None when turned off)."""
    return AcceptedKeys(opts.get("pki_dir") or "/etc/salt/pki/master")
