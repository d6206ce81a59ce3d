"""The scheduler: claims due times in the store and drives the runs, one loop per master.

It keeps the enabled definitions' next due times in a heap in memory and
sleeps until the first of them (or the next housekeeping, every
``refresh`` seconds: definitions changed by a runner or another master,
queued runs, heartbeats, kill requests, runs whose master died, pruning).

Claiming a due time is one transaction: a conditional UPDATE moves the
task's ``next_due`` from that due time to the next (the row lock makes one
master win; the others find the row moved and reload it), and the run row
is inserted with a unique claim key.  So a due time fires once however many
masters share the database, never while the task is disabled (the UPDATE
requires ``enabled``), and a restart neither loses nor repeats one: the
next due time lives in the store.

A due time found later than ``misfire_grace`` (no master was running) is
missed: with catch_up ``once`` it runs once now and the schedule continues
from now, with ``skip`` a ``skipped`` run records it.  While a task's
previous run is still going, overlap ``skip`` records a skipped run,
``queue`` queues one run (at most one waits), ``kill`` asks the running
run's owner to kill it and queues the new one.

Each run is driven by a thread: ``start_job(task, hostnames)`` (built in
:mod:`saltops.bridge.taskjobs`) publishes the job and returns an object
with ``jid``, ``published_at``, ``wait(seconds)`` (an :class:`Outcome` or
None), ``kill()`` and ``partial()``.
"""

import heapq
import logging
import os
import socket
import threading
import time

from saltops.tasks import definitions, runs, spec, targets
from saltops.tasks.results import Outcome

log = logging.getLogger(__name__)


def owner_prefix(master_id):
    return f"{socket.gethostname()}:{master_id}:"


class _Run:
    __slots__ = ("job", "run_id", "task", "thread")

    def __init__(self, run_id, task):
        self.run_id = run_id
        self.task = task
        self.job = None
        self.thread = None


class Scheduler:
    def __init__(self, store, settings, start_job, master_id="master", clock=time.time, stopping=None):
        self.store = store
        self.settings = settings
        self.start_job = start_job
        self.clock = clock
        self.prefix = owner_prefix(master_id)
        self.owner = f"{self.prefix}{os.getpid()}:{int(clock())}"
        self.tasks = {}
        self.heap = []
        self.marker = None
        self.running = {}  # run id -> _Run
        self.kills = set()
        self.lock = threading.Lock()
        self.stopping = stopping or threading.Event()
        self._next_housekeeping = 0.0
        self._next_prune = 0.0

    # -- definitions ------------------------------------------------------------------------
    def load(self):
        """Read the enabled definitions and build the heap of next due times."""
        with self.store.connect() as conn:
            marker = definitions.changes_marker(conn)
            rows = definitions.list_all(conn, enabled=True)
        self.tasks = {row["id"]: row for row in rows}
        self.heap = [(row["next_due"], row["id"]) for row in rows if row["next_due"] is not None]
        heapq.heapify(self.heap)
        self.marker = marker

    def refresh(self):
        with self.store.connect() as conn:
            marker = definitions.changes_marker(conn)
        if marker != self.marker:
            self.load()

    def next_due(self):
        while self.heap:
            due, task_id = self.heap[0]
            task = self.tasks.get(task_id)
            if task is not None and task["next_due"] == due:
                return due
            heapq.heappop(self.heap)  # superseded by a reload or a claim
        return None

    # -- claiming ---------------------------------------------------------------------------
    def fire_due(self, now, batch=200):
        """Claim and start everything due at ``now``; returns the run ids started here.

        Due times that come together (a cron minute shared by many tasks) are
        claimed in one transaction per ``batch``, in task-id order (two masters
        lock the rows in the same order: no deadlock), so a burst costs one
        commit rather than one per task.
        """
        due_items = []
        while True:
            due = self.next_due()
            if due is None or due > now:
                break
            _, task_id = heapq.heappop(self.heap)
            due_items.append((task_id, due))
        started = []
        due_items = sorted(set(due_items))  # a reload may have pushed a due time twice
        for start in range(0, len(due_items), batch):
            chunk = due_items[start : start + batch]
            try:
                claimed = self.claim_many([(self.tasks[task_id], due) for task_id, due in chunk], now)
            except Exception:  # the database went away: try again at the next loop
                log.exception("claiming %d due task(s) failed", len(chunk))
                for task_id, due in chunk:
                    heapq.heappush(self.heap, (due, task_id))
                return started
            for run, task in claimed:
                if run["status"] == "running":
                    self._launch(run, task)
                    started.append(run["id"])
        return started

    def claim_many(self, items, now):
        """Claim each ``(task, due)`` in one transaction; ``[(run, task)]`` for those this master won."""
        won, lost = [], []
        with self.store.begin() as conn:
            for task, due in items:
                missed = now - due > self.settings["misfire_grace"]
                next_due = spec.schedule_of_row(task).next_after(now if missed else due)
                if definitions.advance(conn, task["id"], due, next_due):
                    won.append((task, due, missed, next_due))
                else:
                    lost.append(task["id"])
            active = runs.active_many(conn, [task["id"] for task, *_ in won])
            claimed = []
            for task, due, missed, next_due in won:
                trigger = "catch_up" if missed else "schedule"
                if missed and task["catch_up"] == "skip":
                    status, error = "skipped", "missed: no master was running at the due time (catch_up: skip)"
                else:
                    status, error = self._overlap(conn, task, active.get(task["id"], []))
                run_id = runs.insert(conn, task, runs.claim_key(task["id"], due), due, trigger, "scheduler", status,
                                     now, owner=self.owner, error=error)
                claimed.append(({"id": run_id, "status": status, "due_at": due}, task, next_due))
            fresh = [(task_id, definitions.load_one(conn, task_id)) for task_id in lost]
        for task_id, row in fresh:
            self._remember(task_id, row)
        for _run, task, next_due in claimed:
            task["next_due"] = next_due
            if next_due is not None:
                heapq.heappush(self.heap, (next_due, task["id"]))
        return [(run, task) for run, task, _next in claimed]

    def _overlap(self, conn, task, active):
        """The status of a new run of ``task`` given its runs still ``active``."""
        if not active:
            return "running", None
        if any(r["status"] == "queued" for r in active):
            return "skipped", "a run of this task is already waiting (at most one is queued)"
        previous = active[0]["id"]
        if task["overlap"] == "skip":
            return "skipped", f"run {previous} is still running (overlap: skip)"
        if task["overlap"] == "kill":
            runs.request_kill(conn, task["id"])
        return "queued", None

    def _remember(self, task_id, row):
        """Take a definition as another master left it (None: removed)."""
        if row is None or not row["enabled"]:
            self.tasks.pop(task_id, None)
            return
        self.tasks[row["id"]] = row
        if row["next_due"] is not None:
            heapq.heappush(self.heap, (row["next_due"], row["id"]))

    def start_queued(self, now):
        """Start the waiting runs whose task has nothing running any more."""
        started = []
        with self.store.connect() as conn:
            waiting = runs.startable(conn)
        for run in waiting:
            with self.store.begin() as conn:
                task = definitions.load_one(conn, run["task_id"])
                if task is None or not task["enabled"]:
                    why = "the task was removed" if task is None else "the task is disabled"
                    if runs.start(conn, run["id"], self.owner, now):
                        runs.finish(conn, run["id"], "skipped", now, error=f"not started: {why}")
                    continue
                if not runs.start(conn, run["id"], self.owner, now):
                    continue
            self._launch(run, task)
            started.append(run["id"])
        return started

    # -- driving a run ----------------------------------------------------------------------
    def _launch(self, run, task):
        entry = _Run(run["id"], task)
        with self.lock:
            self.running[run["id"]] = entry
        entry.thread = threading.Thread(target=self._drive, args=(entry,),
                                        name=f"saltops-task-{task['name']}", daemon=True)
        entry.thread.start()

    def _drive(self, entry):
        task, run_id = entry.task, entry.run_id
        limit = self.settings["output_limit"]
        started = self.clock()
        status, outcome, error = "failed", None, None
        abandoned = False
        try:
            hostnames = None
            if task["kind"] == "minion":
                with self.store.connect() as conn:
                    hostnames = targets.resolve(conn, targets.parse(task["targets"]))
                if not hostnames:
                    raise LookupError(f"targets {task['targets']!r} match no host in the CMDB now")
            entry.job = job = self.start_job(task, hostnames)
            if job.jid:
                with self.store.begin() as conn:
                    runs.set_jid(conn, run_id, job.jid)
            deadline = started + task["timeout"]
            while True:
                outcome = job.wait(0.2)
                if outcome is not None:
                    status = "succeeded" if outcome.ok else "failed"
                    break
                if self.stopping.is_set():
                    # The master is stopping: the run stays 'running' and the next start marks it interrupted.
                    abandoned = True
                    return
                if run_id in self.kills:
                    job.kill()
                    status, outcome, error = "killed", job.partial(), "killed: a newer run replaced it (overlap: kill)"
                    break
                if self.clock() >= deadline:
                    job.kill()
                    status, outcome = "timeout", job.partial()
                    error = f"timed out after {task['timeout']} s; the job was killed"
                    break
        except Exception as err:  # noqa: BLE001  (the run fails with the reason; the loop goes on)
            log.warning("task %s run %s failed to run: %s", task["name"], run_id, err)
            status, error = "failed", runs.trim(f"{type(err).__name__}: {err}", limit)
        finally:
            if not abandoned:
                self._record(task, run_id, status, outcome or Outcome(False, None), error)
            with self.lock:
                self.running.pop(run_id, None)
                self.kills.discard(run_id)

    def _record(self, task, run_id, status, outcome, error):
        for attempt in range(30):
            try:
                with self.store.begin() as conn:
                    if runs.finish(conn, run_id, status, self.clock(), retcode=outcome.retcode, hosts=outcome.hosts,
                                   output=outcome.output, error=error) and status != "killed":
                        definitions.record_outcome(conn, task["id"], status in runs.FAILED)
                return
            except Exception as err:  # noqa: BLE001  (the database is away: keep the result a while)
                log.warning("task %s run %s: result not recorded yet (%s); retrying", task["name"], run_id, err)
                if self.stopping.wait(min(10, 1 + attempt)):
                    return

    # -- housekeeping -----------------------------------------------------------------------
    def recover(self, now):
        """At start: runs left ``running`` by this master's previous process are interrupted."""
        with self.store.begin() as conn:
            found = runs.interrupt(conn, now, owner_prefix=self.prefix)
            for run in found:
                definitions.record_outcome(conn, run["task_id"], True)
        return found

    def housekeeping(self, now):
        self.refresh()
        with self.lock:
            mine = list(self.running)
        with self.store.begin() as conn:
            runs.heartbeat(conn, mine, now)
            kills = runs.kills_requested(conn, mine)
            stale = runs.interrupt(conn, now, stale_before=now - self.settings["stale_after"], exclude=mine)
            for run in stale:
                definitions.record_outcome(conn, run["task_id"], True)
        with self.lock:
            self.kills |= kills
        self.start_queued(now)
        if now >= self._next_prune:
            self._next_prune = now + 3600
            with self.store.begin() as conn:
                removed = runs.prune(conn, now, self.settings["keep_days"], self.settings["keep_runs"])
            if removed:
                log.info("task history: %d old run(s) pruned", removed)

    def step(self, now):
        """One pass: housekeeping when due, then fire what is due; returns when to wake next."""
        if now >= self._next_housekeeping:
            self._next_housekeeping = now + min(self.settings["refresh"], self.settings["heartbeat"])
            try:
                self.housekeeping(now)
            except Exception:  # the database is away: everything is tried again next time
                log.exception("task scheduler housekeeping failed")
        self.fire_due(now)
        due = self.next_due()
        wake = self._next_housekeeping if due is None else min(due, self._next_housekeeping)
        return wake

    def run(self):
        """Loop until :attr:`stopping` is set."""
        while True:
            try:
                self.load()
                self.recover(self.clock())
                break
            except Exception:
                log.exception("task scheduler cannot read the store yet")
                if self.stopping.wait(5):
                    return
        while not self.stopping.is_set():
            wake = self.step(self.clock())
            self.stopping.wait(max(0.0, min(wake - self.clock(), self.settings["refresh"])))

    def join(self, timeout=10):
        """Wait for the runs this scheduler drives to end (tests, benchmarks, shutdown)."""
        with self.lock:
            threads = [entry.thread for entry in self.running.values() if entry.thread is not None]
        for thread in threads:
            thread.join(timeout)

    def stop(self, timeout=5):
        self.stopping.set()
        with self.lock:
            threads = [entry.thread for entry in self.running.values() if entry.thread is not None]
        for thread in threads:
            thread.join(timeout)
