"""Scheduled tasks: periodic runner calls and minion jobs on CMDB targets.

``settings`` (the ``saltops:tasks`` block), ``schedule`` (cron, interval and
one-off fire times), ``targets`` (CMDB filters resolved when a task fires),
``spec`` (checking a definition), ``definitions`` (the ``task_defs`` table),
``runs`` (the ``task_runs`` table: claims, results, history, pruning),
``driver`` (the scheduler loop behind the ``saltops_tasks`` engine) and
``alarm`` (failing tasks as alarms).  Nothing here imports Salt: the engine
and the runner hand in executors and function checkers built in
:mod:`saltops.bridge`.

Other capabilities register their periodic runner calls with
:func:`saltops.tasks.definitions.ensure_runner_task`.
"""
