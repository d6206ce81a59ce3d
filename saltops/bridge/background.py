"""Runner jobs that go on after the call that started them returned.

A long runner called through salt-api's synchronous ``runner`` client ends in
a 504 after ``rest_timeout`` while the work goes on, and the caller never
learns what it started.  Such a runner records its work first (so it has an
id to return) and hands the rest to a job of its own, started with Salt's
``RunnerClient.asynchronous``: a detached process on the master host that
runs one runner function with the caller as ``__user__``, fires the usual
``salt/run/<jid>/...`` events and leaves its return in the job cache.
"""

import salt.runner
import salt.utils.event
import salt.utils.jid


def new_job(opts):
    """``{"jid", "tag"}`` of a runner job to be started by :func:`start`; the jid is known beforehand."""
    jid = salt.utils.jid.gen_jid(opts)
    return {"jid": jid, "tag": salt.utils.event.tagify(jid, prefix="run")}


def start(opts, job, fun, args, user):
    """Run runner ``fun(*args)`` as ``user`` in a detached process under ``job``; return ``job``."""
    # The job runs in a daemonized process of its own (a copy of the client): closing
    # this one once the job has started leaves the job alone.
    with salt.runner.RunnerClient(opts) as client:
        return client.asynchronous(fun, {"arg": list(args), "kwarg": {}}, user=user, pub=dict(job))
