"""Waiting for a deploy's end from outside it: what a caller that started one in the background does.

A ticket whose action is ``deploy.run`` must not count as done when the
deploy merely started: :func:`until_finished` reads the deploy's record
until its status is final, its runner is gone (stale), or the caller's time
is up, and :func:`outcome` tells the caller whether it succeeded, in the
shape of a job outcome (``ok``, ``retcode``, ``output``, ``result``).
Reading only: the deploy goes on in its own runner job whatever the caller
does, so a caller that stops waiting never leaves a deploy half done.
"""

import json
import time

from saltops.deploy import history, lock, status_machine


def until_finished(store, deploy_id, timeout, stale_after, poll=1.0, clock=time.monotonic, sleep=time.sleep):
    """``(deploy, note)``: the deploy as ``deploy.status`` describes it, and why the wait ended early.

    ``note`` is None when the deploy ended (a status in
    :data:`~saltops.deploy.status_machine.TERMINAL`); otherwise it says that
    its runner is gone or that ``timeout`` seconds passed, and what to do.
    """
    deadline = clock() + max(0.0, float(timeout))
    while True:
        with store.connect() as conn:
            described = history.describe(conn, deploy_id)
            run = history.get_run(conn, deploy_id)
        status = described["status"]
        if status in status_machine.TERMINAL:
            return described, None
        if lock.is_stale(run, stale_after):
            return described, (f"deploy {deploy_id} is {status} and its runner is gone: resume or abort it "
                               f"(deploy.resume {deploy_id}, deploy.abort {deploy_id})")
        left = deadline - clock()
        if left <= 0:
            return described, (f"deploy {deploy_id} is still {status} after {timeout:g} s; it goes on in its "
                               f"own runner job: follow it with deploy.status {deploy_id}")
        sleep(min(poll, left))


def outcome(described, note=None):
    """``{"ok", "retcode", "output", "result"}`` of a followed deploy: ok only when it ``succeeded``.

    The output's first line sums it up (a ticket shows it as the action's
    error); the deploy as ``deploy.status`` shows it follows, as JSON.
    """
    status = described["status"]
    ok = note is None and status == status_machine.SUCCEEDED
    by_status = sorted(described.get("hosts_by_status", {}).items())
    counts = ", ".join(f"{n} {s}" for s, n in by_status) or "no hosts"
    head = (f"deploy {described['id']} of {described['app']} {described['version']} to {described['env']}: "
            f"{status} ({counts})")
    if note:
        head += f"; {note}"
    elif not ok and described.get("error"):
        head += f": {described['error']}"
    body = json.dumps(described, sort_keys=True, indent=1, default=str)
    return {"ok": ok, "retcode": 0 if ok else 1, "output": f"{head}\n{body}",
            "result": {"deploy": {"id": described["id"], "status": status, "version": described["version"],
                                  "finished": note is None}}}
