"""Running Salt high data (``state.high``) on hosts through LocalClient, for config pushes.

Each host gets its own job (its files differ); all jobs of a call are
published first and gathered together, so a call takes as long as its
slowest host.  A host that has not answered by ``timeout`` is ``None``.

A push publishes and gathers in two steps (:meth:`HighExecutor.publish_high`,
:meth:`HighExecutor.gather_high`) so that it can record the job ids in
between: a later process (``confpush.resume``/``abort`` after the runner
died) gathers the same jobs, reading returns that came while nobody listened
from the master's job cache.
"""

import logging
import time

from saltops.bridge.local import gather_returns

log = logging.getLogger(__name__)


class HighExecutor:
    """``run_high({hostname: high}, test, timeout)`` over ``salt.client.LocalClient``."""

    def __init__(self, opts, return_timeout=60, client=None):
        import salt.client  # pylint: disable=import-outside-toplevel

        self.client = client or salt.client.get_local_client(mopts=opts)
        self.return_timeout = return_timeout

    def run_high(self, highs, test, timeout):
        started = time.monotonic()
        return self.gather_high(self.publish_high(highs, test), started + timeout, hosts=highs)

    def publish_high(self, highs, test):
        """Publish one ``state.high`` job per host: ``{hostname: jid}`` (a host Salt refused is left out)."""
        jobs = {}
        for name, high in highs.items():
            pub = self.client.run_job(
                [name],
                "state.high",
                arg=[high],
                tgt_type="list",
                kwarg={"test": bool(test)},
                timeout=self.return_timeout,
                listen=True,
            )
            if not pub or "jid" not in pub:
                log.warning("could not publish state.high to %s", name)
                continue
            jobs[name] = pub["jid"]
        return jobs

    def gather_high(self, jobs, deadline, hosts=None, cached=False):
        """``{hostname: return or None}`` of the jobs ``{hostname: jid}``, until ``deadline`` (monotonic).

        With ``cached`` (the jobs were published by a process that is gone),
        returns already in the master's job cache count first.  Salt's own
        check (``saltutil.find_job`` after ``return_timeout``) ends the wait
        for a host that no longer runs its job; the job cache is read once more
        for the hosts still missing then: on a loaded master a return can land
        there while the check decides the minion is done (seen in the
        benchmark at a load average of 90: every host of a batch "did not
        answer" although each had returned).
        """
        results = {name: None for name in (hosts if hosts is not None else jobs)}
        if cached:
            results.update(self._cached(jobs, results))
        iters = [
            self.client.get_iter_returns(
                jid, {name}, timeout=self.return_timeout, tgt=[name], tgt_type="list", block=False
            )
            for name, jid in jobs.items()
            if results.get(name) is None
        ]
        for name, ret in gather_returns(iters, [n for n in jobs if results.get(n) is None], deadline).items():
            if ret is not None:
                results[name] = ret
        if any(results.get(name) is None for name in jobs):
            results.update(self._cached(jobs, results))
        return results

    def _cached(self, jobs, results):
        found = {}
        for name, jid in jobs.items():
            if results.get(name) is not None:
                continue
            try:
                entry = self.client.get_cache_returns(jid).get(name) or {}
            except Exception as err:  # noqa: BLE001 - Salt raises SaltClientError or the returner's own
                log.warning("could not read job %s of %s from the job cache: %s", jid, name, err)
                continue
            if entry.get("ret") is not None:
                found[name] = entry["ret"]
        return found
