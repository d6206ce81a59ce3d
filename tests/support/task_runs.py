"""Driving the task scheduler by hand in tests: step it until a task's run has finished."""

import time

from saltops.tasks import control


def run_until_done(scheduler, store, name, timeout=60):
    """The newest finished run of task ``name``, stepping ``scheduler`` until there is one."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        scheduler.step(time.time())
        done = [r for r in control.history(store, name) if r["status"] not in ("queued", "running")]
        if done:
            return done[0]
        time.sleep(0.1)
    raise AssertionError(f"no finished run of {name}: {control.history(store, name)}")
