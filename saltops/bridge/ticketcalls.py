"""The executor of ticket actions: the approved runner call, or a state run on CMDB hosts, through Salt.

:func:`executor` returns the ``execute(call)`` that
:class:`saltops.tickets.workflow.Workflow` hands each claimed action.  A runner
call runs as the applicant (``__user__`` of the call is the applicant, so the
runner's own audit names them) in a child process through Salt's
``RunnerClient`` (the scheduled tasks' :class:`~saltops.bridge.taskjobs.RunnerJob`);
a state run goes to the hostnames the CMDB targets resolved to through
``LocalClient`` and counts as failed on any host that did not answer or
whose states failed.

A ticket's action is done when its work is: ``deploy.run`` is called with
``background=True`` (the deploy is driven by a runner job of its own, which
the action's time limit never kills half way), and the action then waits in
the store for the deploy's end (:mod:`saltops.deploy.follow`): it succeeds
when the deploy ``succeeded``, and fails when the deploy failed or rolled
back, lost its runner, or was still going when the time was up.
"""

import json
import time

from saltops.bridge.taskjobs import RunnerJob
from saltops.deploy import config as deploy_config
from saltops.deploy import follow as deploy_follow
from saltops.tasks.results import minion_outcome

OUTPUT_LIMIT = 64 * 1024


def _deploy_follower(store, conf):
    def follow(returned, seconds):
        # The deploy's id once it was recorded, even when it has failed already; a refused request has none.
        deploy_id = returned.get("id") if isinstance(returned, dict) else None
        if isinstance(deploy_id, bool) or not isinstance(deploy_id, int):
            return None
        # deploy.run has just read the same settings: they are valid.
        stale_after = deploy_config.load(conf)["lock_stale_after"]
        return deploy_follow.outcome(*deploy_follow.until_finished(store, deploy_id, seconds, stale_after))

    return follow


# Runner functions whose work goes on in a job of their own: the keyword that
# asks for that, and how the action waits for the work's end (``follow(returned,
# seconds)``: the outcome, or None when the call started nothing and its own answer stands).
_BACKGROUND = {"deploy.run": ("background", _deploy_follower)}


def _runner(opts, call, timeout, followers):
    kwargs = dict(call["kwargs"])
    follower = followers.get(call["fun"])
    if follower is not None:
        kwargs[_BACKGROUND[call["fun"]][0]] = True
    task = {"name": f"ticket-{call['ticket_id']}", "fun": call["fun"], "args": call["args"], "kwargs": kwargs,
            "defined_by": call["run_as"]}
    job = RunnerJob(opts, task, OUTPUT_LIMIT, daemon=follower is None)
    deadline = time.monotonic() + timeout
    outcome = None
    while outcome is None and time.monotonic() < deadline:
        outcome = job.wait(min(1.0, max(0.0, deadline - time.monotonic())))
    if outcome is None:
        job.kill()
        return {"ok": False, "retcode": 1, "output": f"{call['fun']} did not return within {timeout} s; stopped"}
    followed = None if follower is None else follower(job.returned, max(0.0, deadline - time.monotonic()))
    if followed is not None:
        return followed
    return {"ok": outcome.ok, "retcode": outcome.retcode, "output": outcome.output}


def _state(opts, call, timeout, local_client):
    import salt.client

    client = local_client or salt.client.get_local_client(mopts=opts)
    try:
        raw = client.cmd(call["targets"], call["fun"], list(call["args"]), tgt_type="list",
                         kwarg=dict(call["kwargs"]), timeout=timeout, full_return=True) or {}
    finally:
        if local_client is None:
            client.destroy()
    returns = {m: d for m, d in raw.items() if isinstance(d, dict) and "ret" in d}
    outcome = minion_outcome(call["targets"], returns, OUTPUT_LIMIT)
    text = outcome.output + "\n" + json.dumps(outcome.hosts, sort_keys=True, indent=1, default=str)
    return {"ok": outcome.ok, "retcode": outcome.retcode, "output": text}


def executor(opts, store, conf, timeout=600, local_client=None):
    """``execute(call)`` for the ticket workflow, over the master's ``opts``, the SaltOps ``store`` and
    configuration ``conf`` (where a background job's end is read)."""
    followers = {fun: make(store, conf) for fun, (_flag, make) in _BACKGROUND.items()}

    def execute(call):
        if call.get("targets") is not None:
            return _state(opts, call, timeout, local_client)
        return _runner(opts, call, timeout, followers)

    return execute
