"""
SaltOps scheduled tasks: a Salt engine that fires the tasks defined with the ``task`` runner.

Thin adapter over :class:`saltops.tasks.driver.Scheduler`: one long-lived
loop per master that sleeps until the next due time, claims it in the
database (so masters sharing the database fire each due time once), and
drives the runs (runner calls in child processes, minion jobs through
LocalClient).  Failing tasks are sent to the alarm engine's webhook.

Enable it in the master config::

    engines:
      - saltops_tasks: {}

See ``docs/tasks.md``.
"""

import logging
import threading

from saltops import config as saltops_config
from saltops.errors import SaltOpsError
from saltops.runnerkit import declined

log = logging.getLogger(__name__)

__virtualname__ = "saltops_tasks"


def __virtual__():
    try:
        from saltops.tasks import settings

        conf = saltops_config.load(__opts__)  # noqa: F821
        saltops_config.db_url(conf)
        settings.load(conf)
    except SaltOpsError as err:
        return declined(__virtualname__, f"invalid configuration: {err}", log)
    return __virtualname__


def start(**kwargs):
    """Run the scheduler until the master stops the engine."""
    from saltops.bridge.taskjobs import job_starter
    from saltops.store import get_store
    from saltops.tasks import alarm, settings
    from saltops.tasks.driver import Scheduler

    opts = __opts__  # noqa: F821
    conf = saltops_config.load(opts)
    task_settings = settings.load(conf)
    store = get_store(conf["db_url"], conf["db_options"])
    stopping = threading.Event()
    scheduler = Scheduler(store, task_settings, job_starter(opts, task_settings, stopping),
                          master_id=opts.get("id", "master"), stopping=stopping)
    if task_settings["alarm_url"]:
        send = alarm.http_sender(task_settings["alarm_url"], task_settings["alarm_token"])
        alarm.AlarmLoop(store, send, task_settings, scheduler.stopping).start()
    log.info("saltops_tasks engine started (owner %s)", scheduler.owner)
    try:
        scheduler.run()
    finally:
        scheduler.stop()
        log.info("saltops_tasks engine stopped")
