"""Running the minion module on many hosts through Salt's LocalClient.

A call is one published job per ``chunk_size`` hosts: with the app's
settings when every host has the same, else with each host's own under
``settings_by_host`` (the minion takes its entry).  All jobs of a call are
published first and their returns gathered together, so a call takes as long
as its slowest host.  A host that
has not answered when Salt gives up on it (``return_timeout`` plus Salt's
``saltutil.find_job`` check), or when ``timeout`` passes, is reported as
``None``: the engine counts it as failed.
"""

import json
import logging
import time

from saltops.errors import SaltOpsError

log = logging.getLogger(__name__)


# LocalExecutor.shared: {(pid, return_timeout, chunk_size, master_wait): executor}.
_SHARED = {}


class MasterUnavailable(SaltOpsError):
    """The master did not take a publication within the executor's ``master_wait``."""


def normalise(value):
    """A minion's return as a report dict (a string is an error from Salt or the module)."""
    if isinstance(value, dict) and "result" in value:
        return value
    if isinstance(value, str):
        return {"result": False, "comment": value.strip()[:2000], "steps": []}
    return {"result": False, "comment": f"unexpected return: {value!r}"[:2000], "steps": []}


def gather_returns(iters, hostnames, deadline, convert=lambda ret: ret):
    """Drain LocalClient's non-blocking return iterators (``get_iter_returns(block=False)``)
    of jobs published together until each ended or ``deadline`` (``time.monotonic()``)
    passed: ``{hostname: convert(return) or None}``, ``None`` for a host that did not answer."""
    results = {name: None for name in hostnames}
    iters = list(iters)
    while iters and time.monotonic() < deadline:
        idle = True
        for it in list(iters):
            try:
                item = next(it)
            except StopIteration:
                iters.remove(it)
                continue
            if not item:
                continue
            idle = False
            for minion_id, data in item.items():
                if minion_id in results and isinstance(data, dict) and "ret" in data:
                    results[minion_id] = convert(data["ret"])
        if idle:
            time.sleep(0.01)
    for it in iters:
        it.close()
    return results


class LocalExecutor:
    """The engine's executor over ``salt.client.LocalClient``."""

    @classmethod
    def shared(cls, opts, dconf, return_timeout=None):
        """One executor per process and settings: its LocalClient's bus connection is reused."""
        import os

        timeout = float(return_timeout or dconf["return_timeout"])
        key = (os.getpid(), timeout, dconf["chunk_size"], dconf["master_wait"])
        found = _SHARED.get(key)
        if found is None:
            found = _SHARED[key] = cls(
                opts, return_timeout=timeout, chunk_size=dconf["chunk_size"], master_wait=dconf["master_wait"]
            )
        return found

    def fire(self, tag, data):
        """Fire on the master bus through the LocalClient's own connection (no second one per deploy)."""
        if not self.client.event.fire_event(data, tag):
            raise MasterUnavailable(f"the master event bus did not take {tag}")

    def __init__(self, opts, return_timeout=30, chunk_size=500, client=None, master_wait=60):
        import salt.client

        self.opts = opts
        self.client = client or salt.client.get_local_client(mopts=opts)
        self.return_timeout = return_timeout
        self.chunk_size = chunk_size
        self.master_wait = master_wait

    def reconnect(self):
        """A fresh LocalClient: the old one's event bus may have died with a restarted master."""
        import salt.client

        if self.opts is None:
            return
        old, self.client = self.client, salt.client.get_local_client(mopts=self.opts)
        try:
            old.destroy()
        except Exception as err:  # noqa: BLE001 - the old connection is being dropped anyway
            log.debug("closing the old LocalClient: %s", err)

    def _publish(self, hostnames, fun, args, kwarg):
        """Publish one job; while the master does not answer (a restart), retry for ``master_wait`` s.

        Publishing again is safe: every ``saltops_release`` step is idempotent.
        """
        from salt.exceptions import SaltClientError

        deadline = time.monotonic() + self.master_wait
        while True:
            try:
                pub = self.client.run_job(
                    list(hostnames),
                    fun,
                    arg=list(args),
                    tgt_type="list",
                    kwarg=kwarg,
                    timeout=self.return_timeout,
                    listen=True,
                )
                break
            except SaltClientError as err:
                if time.monotonic() >= deadline:
                    raise MasterUnavailable(
                        f"the master did not take {fun} for {len(hostnames)} host(s) within "
                        f"{self.master_wait:.0f} s ({str(err).split('.')[0]}); nothing of that step ran"
                    ) from None
                log.warning("publishing %s: %s; retrying while the master comes back", fun, err)
                time.sleep(2)
        if not pub or "jid" not in pub:
            log.warning("could not publish %s to %d host(s)", fun, len(hostnames))
            return None
        return pub

    def call(self, fun, hostnames, args, settings_by_host, timeout, kwargs=None):
        """Run ``fun`` on ``hostnames``; return ``{hostname: report or None}``.

        ``kwargs`` are passed to every host, beside its ``settings``.
        """
        return self.gather(self.publish(fun, hostnames, args, settings_by_host, kwargs), timeout)

    def publish(self, fun, hostnames, args, settings_by_host, kwargs=None):
        """Publish the jobs of a call and return a handle for :meth:`gather`.

        The engine records a step in the database between the two, while the
        minions work.
        """
        groups = {}
        for name in hostnames:
            key = json.dumps(settings_by_host.get(name) or {}, sort_keys=True)
            groups.setdefault(key, []).append(name)
        jobs = []
        if len(groups) == 1:
            # One set of settings for every host: it travels once per publication.
            ((key, names),) = groups.items()
            for start in range(0, len(names), self.chunk_size):
                jobs.append((names[start : start + self.chunk_size], {"settings": json.loads(key)}))
        else:
            # Settings that differ: one publication per chunk carries each host's own
            # (the same bytes as one publication per host, without their per-job cost).
            names = list(hostnames)
            for start in range(0, len(names), self.chunk_size):
                chunk = names[start : start + self.chunk_size]
                jobs.append((chunk, {"settings_by_host": {n: settings_by_host.get(n) or {} for n in chunk}}))
        iters = []
        for chunk, extra in jobs:
            pub = self._publish(chunk, fun, args, dict(kwargs or {}, **extra))
            if pub is None:
                continue
            iters.append(
                self.client.get_iter_returns(
                    pub["jid"],
                    set(pub.get("minions") or chunk),
                    timeout=self.return_timeout,
                    tgt=chunk,
                    tgt_type="list",
                    block=False,
                )
            )
        return list(hostnames), iters, time.monotonic()

    def gather(self, handle, timeout):
        """The returns of a published call: ``{hostname: report or None}``."""
        hostnames, iters, published = handle
        return gather_returns(iters, hostnames, published + timeout, normalise)

    def run_plain(self, hostnames, fun, args, timeout):
        """A plain Salt call (no settings); returns ``{hostname: return}``."""
        return self.client.cmd(list(hostnames), fun, arg=list(args), tgt_type="list", timeout=timeout)
