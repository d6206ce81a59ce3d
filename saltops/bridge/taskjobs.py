"""The jobs a scheduled task starts: a runner call in its own process, or a minion job.

:func:`job_starter` returns the ``start_job(task, hostnames)`` that
:class:`saltops.tasks.driver.Scheduler` calls.  Both kinds of job answer
``wait(seconds)`` (an :class:`~saltops.tasks.results.Outcome` once done),
``kill()`` and ``partial()`` (what is known when it is stopped early).

* A runner call runs ``RunnerClient.cmd`` in a child process, so a timeout
  or overlap ``kill`` can stop it and a crash in it cannot take the scheduler
  down.  The child comes from a fork server (a clean, single-threaded process
  that has imported Salt's runner client), not from a fork of the scheduler:
  a fork taken while another thread of the scheduler holds a lock (SQLite's,
  the logging module's) inherits that lock held forever, and the child hung
  in ``sqlite3.connect`` about one run in five.
  The return comes back through a pipe; ``__user__`` is the person who
  defined the task.
* A minion job is published with ``LocalClient.run_job`` (one client for
  all runs, :class:`Publisher`) to the hostnames the CMDB targets resolved
  to; one subscriber on the master bus (:class:`Returns`) hands each job its
  returns.  ``kill`` publishes ``saltutil.kill_job <jid>`` to the hosts that
  have not answered.
"""

import logging
import multiprocessing
import queue
import threading
import time

from saltops.tasks.results import NO_RETURN, minion_outcome, runner_outcome

log = logging.getLogger(__name__)

_CHILDREN = multiprocessing.get_context("forkserver")
# The fork server imports these once; each runner child forked from it starts warm.
_CHILDREN.set_forkserver_preload(["salt.runner", "saltops.runnerkit", __name__])


def _runner_child(opts, fun, args, kwargs, user, conn):
    try:
        import salt.runner

        client = salt.runner.RunnerClient(opts)
        data = client.cmd(fun, arg=list(args), kwarg=dict(kwargs), pub_data={"user": user}, print_event=False,
                          full_return=True)
        ret = data.get("return") if isinstance(data, dict) else data
        retcode = data.get("retcode", 0 if data.get("success", True) else 1) if isinstance(data, dict) else 0
        if isinstance(ret, dict) and isinstance(ret.get("retcode"), int) and ret.get("retcode"):
            retcode = ret["retcode"]
        conn.send(("ok", ret, retcode))
    except BaseException as err:  # noqa: BLE001  (reported as the run's failure)
        try:
            conn.send(("error", f"{type(err).__name__}: {err}", 1))
        except Exception:  # noqa: BLE001
            pass
    finally:
        conn.close()


def _plain(opts):
    """``opts`` as plain data for the child (Salt's opts may be a dict subclass)."""
    return {key: value for key, value in opts.items() if not callable(value)}


class RunnerJob:
    """``daemon=False`` for a call that starts a runner job of its own (``deploy.run background=True``):
    Python forbids a daemonic process children, and Salt starts that job from a child of the caller."""

    def __init__(self, opts, task, limit, daemon=True):
        self.limit = limit
        self.jid = None
        # What the runner returned (its data, before it is read as an outcome), once it did.
        self.returned = None
        parent, child = _CHILDREN.Pipe(duplex=False)
        self.conn = parent
        self.proc = _CHILDREN.Process(target=_runner_child, name=f"saltops-task-{task['name']}",
                                  args=(_plain(opts), task["fun"], task["args"], task["kwargs"], task["defined_by"], child),
                                  daemon=daemon)
        self.proc.start()
        child.close()
        self.published_at = time.time()
        self.jid = f"pid{self.proc.pid}"

    def wait(self, seconds):
        if self.conn.poll(seconds):
            try:
                kind, ret, retcode = self.conn.recv()
            except EOFError:
                kind, ret, retcode = "error", "the runner process ended without a return", 1
            self.proc.join(5)
            if kind == "error":
                return runner_outcome({"result": False, "error": ret}, retcode, self.limit)
            self.returned = ret
            return runner_outcome(ret, retcode, self.limit)
        if not self.proc.is_alive():
            self.proc.join()
            return runner_outcome({"result": False, "error": f"the runner process died (exit {self.proc.exitcode})"},
                                  1, self.limit)
        return None

    def kill(self):
        if self.proc.is_alive():
            self.proc.terminate()
            self.proc.join(5)
            if self.proc.is_alive():
                self.proc.kill()
                self.proc.join(5)

    def partial(self):
        return runner_outcome({"result": False, "error": "stopped before it returned"}, 1, self.limit)


class Returns:
    """Minion returns read off the master bus by one subscriber, handed to the job that waits for them.

    One subscription for all jobs (rather than a LocalClient listening per
    job) keeps a burst of due tasks cheap.  Returns that arrive before their
    job registered its jid are kept for ``keep`` seconds.
    """

    def __init__(self, opts, stopping, keep=300):
        from saltops.bridge.bus import BusReader

        self.keep = keep
        self.cond = threading.Condition()
        self.boxes = {}  # jid -> {minion id: return data}
        self.early = {}  # jid -> (first seen, {minion id: return data})
        self.reader = BusReader(opts, self._sink, self._garbage, stopping).start()

    @staticmethod
    def _garbage(err):
        log.debug("task returns: unreadable bus frame: %s", err)

    def _sink(self, tag, data):
        if not tag.startswith("salt/job/") or "/ret/" not in tag or not isinstance(data, dict):
            return
        jid, minion = tag.split("/")[2], data.get("id")
        with self.cond:
            box = self.boxes.get(jid)
            if box is None:
                now = time.monotonic()
                self.early.setdefault(jid, (now, {}))[1][minion] = data
                if len(self.early) > 1000:
                    self.early = {j: v for j, v in self.early.items() if now - v[0] < self.keep}
                return
            box[minion] = data
            self.cond.notify_all()

    def register(self, jid):
        with self.cond:
            box = self.boxes[jid] = dict(self.early.pop(jid, (0, {}))[1])
            return box

    def wait(self, jid, expected, seconds):
        """The returns so far once all of ``expected`` answered, or after ``seconds``; and whether all did."""
        deadline = time.monotonic() + seconds
        with self.cond:
            box = self.boxes[jid]
            while not expected.issubset(box):
                left = deadline - time.monotonic()
                if left <= 0:
                    return dict(box), False
                self.cond.wait(left)
            return dict(box), True

    def forget(self, jid):
        with self.cond:
            self.boxes.pop(jid, None)


class Publisher:
    """LocalClients publishing the jobs of the task runs, ``size`` at a time.

    A client is not thread-safe, so each publication borrows one; several let
    a burst of due tasks use the master's request workers in parallel.
    """

    def __init__(self, opts, client=None, size=3):
        import salt.client

        clients = [client] if client is not None else [salt.client.get_local_client(mopts=opts)
                                                       for _ in range(max(1, size))]
        self.free = queue.SimpleQueue()
        for each in clients:
            self.free.put(each)

    def publish(self, hostnames, fun, args, kwargs, timeout):
        client = self.free.get()
        try:
            return client.run_job(list(hostnames), fun, arg=list(args), kwarg=dict(kwargs), tgt_type="list",
                                  timeout=timeout, listen=False)
        finally:
            self.free.put(client)


class MinionJob:
    def __init__(self, publisher, returns, task, hostnames, limit, return_timeout):
        self.publisher = publisher
        self.returns_bus = returns
        self.hostnames = list(hostnames)
        self.limit = limit
        self.returns = {}
        pub = publisher.publish(self.hostnames, task["fun"], task["args"], task["kwargs"], return_timeout)
        self.published_at = time.time()
        if not pub or not pub.get("jid"):
            raise RuntimeError(f"{task['fun']} was not published: none of the {len(self.hostnames)} target(s) has "
                               "an accepted key on this master, or the master is not running")
        self.jid = str(pub["jid"])
        self.expected = set(pub.get("minions") or self.hostnames)
        returns.register(self.jid)
        self.done = False

    def wait(self, seconds):
        box, complete = self.returns_bus.wait(self.jid, self.expected, seconds)
        # A return event carries ``return`` (LocalClient's iterators rename it ``ret``).
        self.returns = {minion: {"ret": data.get("return"), "retcode": data.get("retcode", 0),
                                 "success": data.get("success", True)}
                        for minion, data in box.items() if "return" in data}
        if not complete:
            return None
        self.returns_bus.forget(self.jid)
        return minion_outcome(self.hostnames, self.returns, self.limit)

    def kill(self):
        waiting = sorted(set(self.hostnames) - set(self.returns))
        if waiting:
            try:
                self.publisher.publish(waiting, "saltutil.kill_job", [self.jid], {}, 5)
            except Exception as err:  # noqa: BLE001  (best effort: the run is recorded as stopped anyway)
                log.warning("could not kill job %s on %s: %s", self.jid, waiting, err)
        self.returns_bus.forget(self.jid)

    def partial(self):
        return minion_outcome(self.hostnames, self.returns, self.limit,
                              missing="no return: the job was stopped before this host answered")


def job_starter(opts, settings, stopping=None, client=None, return_timeout=10):
    """The ``start_job(task, hostnames)`` of the scheduler on the master of ``opts``.

    ``stopping`` (an Event) ends the bus subscription that minion jobs share.
    """
    stopping = stopping or threading.Event()
    shared = {}
    lock = threading.Lock()

    def minion_side():
        with lock:
            if not shared:
                returns = Returns(opts, stopping)
                returns.reader.connected.wait(30)
                shared["returns"] = returns
                shared["publisher"] = Publisher(opts, client, size=settings["publishers"])
        return shared["publisher"], shared["returns"]

    def start_job(task, hostnames):
        if task["kind"] == "runner":
            return RunnerJob(opts, task, settings["output_limit"])
        publisher, returns = minion_side()
        return MinionJob(publisher, returns, task, hostnames, settings["output_limit"], return_timeout)

    return start_job


__all__ = ["NO_RETURN", "MinionJob", "RunnerJob", "job_starter"]
