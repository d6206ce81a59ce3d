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

log = logging.getLogger(__name__)


def normalise(value):
    """A minion's return as a report dict (a string is an error from Salt or the module)."""
    if isinstance(value, dict) and "result" in value:
        return value
    if isinstance(value, str):
        return {"result": False, "comment": value.strip()[:2000], "steps": []}
    return {"result": False, "comment": f"unexpected return: {value!r}"[:2000], "steps": []}


class LocalExecutor:
    """The engine's executor over ``salt.client.LocalClient``."""

    def __init__(self, opts, return_timeout=30, chunk_size=500, client=None):
        import salt.client

        self.client = client or salt.client.get_local_client(mopts=opts)
        self.return_timeout = return_timeout
        self.chunk_size = chunk_size

    def _publish(self, hostnames, fun, args, kwarg):
        pub = self.client.run_job(
            list(hostnames),
            fun,
            arg=list(args),
            tgt_type="list",
            kwarg=kwarg,
            timeout=self.return_timeout,
            listen=True,
        )
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
        results = {name: None for name in hostnames}
        deadline = published + timeout
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
                        results[minion_id] = normalise(data["ret"])
            if idle:
                time.sleep(0.01)
        for it in iters:
            it.close()
        return results

    def run_plain(self, hostnames, fun, args, timeout):
        """A plain Salt call (no settings); returns ``{hostname: return}``."""
        return self.client.cmd(list(hostnames), fun, arg=list(args), tgt_type="list", timeout=timeout)
