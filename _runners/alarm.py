"""
SaltOps alarms: firing alarms, history, acks, silences, channel tests, rules checks, remediation.

Thin runner over :mod:`saltops.alarms`; the pipeline itself runs in the
``saltops_alarms`` engine (see ``docs/alarms.md``).  Changes made here (acks,
silences) are written to the database with an audit row naming the acting
user, and the engine picks them up within a second.
"""


from saltops import runnerkit
from saltops.bridge.calls import salt_calls
from saltops.runnerkit import Refused, refuses

__virtualname__ = "alarm"
__func_alias__ = {"list_": "list"}

_call = runnerkit.call


def __virtual__():
    # Always loads: a broken setting is reported by each call, not by a missing runner.
    return __virtualname__


def _open():
    return runnerkit.open_store(__opts__)  # noqa: F821  (saltops config, store)


def _user():
    return runnerkit.actor(globals())


def _settings():
    from saltops.alarms import settings

    return _call(settings.load, _open()[0])


def _rules():
    from saltops.alarms import rules

    alarms, notify = _settings()
    return _call(rules.load_file, alarms["rules_file"], set(notify["channels"]))


@refuses
def list_(state="firing", severity=None, host=None, alertname=None, limit=200):
    """
    Alarms by state (``firing`` by default; ``pending``, ``resolved``, ``all``).

    CLI Example:

    .. code-block:: bash

        salt-run alarm.list
        salt-run alarm.list state=all host=web01.bj.example.com severity=critical
    """
    from saltops.alarms import query

    with _open()[1].connect() as conn:
        return _call(query.list_alarms, conn, state, severity, host, alertname, limit)


@refuses
def history(fingerprint=None, host=None, since=None, limit=100):
    """
    State changes of alarms, newest first (pending, firing, resolved, acked).

    CLI Example:

    .. code-block:: bash

        salt-run alarm.history since=1h
        salt-run alarm.history fingerprint=3f2a9c0d1e4b5a6f
    """
    from saltops.alarms import query

    with _open()[1].connect() as conn:
        return _call(query.history_rows, conn, fingerprint, host, since, limit)


@refuses
def ack(fingerprint, comment=""):
    """
    Acknowledge a firing alarm: no more repeats until it resolves (its resolution is still sent).

    CLI Example:

    .. code-block:: bash

        salt-run alarm.ack 3f2a9c0d1e4b5a6f comment="replacing the disk"
    """
    from saltops.alarms import query, silence

    fp = _call(query.check_fingerprint, fingerprint)
    with _open()[1].begin() as conn:
        sid = _call(silence.ack, conn, _user(), fp, str(comment or ""))
    return {"fingerprint": fp, "acked_by": _user(), "silence": sid}


@refuses
def silence_add(matchers, duration="1h", comment=None, starts=None):
    """
    Silence alarms matching every matcher for ``duration``; returns the silence id.

    ``matchers``: Alertmanager syntax, comma separated (or a list):
    ``name="value"``, ``name!="value"``, ``name=~"regex"``, ``name!~"regex"``.
    On the command line pass it as ``matchers=...``: salt-run would read a bare
    ``host="web01"`` as a keyword argument named ``host``.

    CLI Example:

    .. code-block:: bash

        salt-run alarm.silence_add matchers='host="web01.bj.example.com",alertname=~"Disk.*"' duration=2h comment="disk swap"
    """
    from saltops.alarms import silence

    with _open()[1].begin() as conn:
        created = _call(silence.create, conn, _user(), matchers, duration, comment, starts=starts)
    return runnerkit.iso_times(created, "starts_at", "ends_at")


@refuses
def silence_list(state="active"):
    """
    Silences (and acks): ``active`` (default), ``pending``, ``expired`` or ``all``.

    CLI Example:

    .. code-block:: bash

        salt-run alarm.silence_list state=all
    """
    from saltops.alarms import silence

    with _open()[1].connect() as conn:
        return runnerkit.iso_times(_call(silence.listing, conn, state), "starts_at", "ends_at")


@refuses
def silence_expire(silence_id):
    """
    End a silence now.

    CLI Example:

    .. code-block:: bash

        salt-run alarm.silence_expire 6a1c3d2e-0d4f-4d8e-9a31-0c1f2e3d4b5a
    """
    from saltops.alarms import silence

    with _open()[1].begin() as conn:
        changed = _call(silence.expire, conn, _user(), str(silence_id))
    return {"id": silence_id, "expired": changed}


@refuses
def test(channel, message="SaltOps test notification"):
    """
    Send a test message through one notification channel now, and log the delivery.

    CLI Example:

    .. code-block:: bash

        salt-run alarm.test wecom-ops
    """
    from saltops.alarms import channel_check

    _alarms, notify = _settings()
    host = __opts__.get("id", "master")  # noqa: F821
    return _call(channel_check.send, _open()[1], notify, channel, message, host)


@refuses
def rules_check(path=None):
    """
    Validate the rules file (``saltops:alarms:rules_file``, or ``path``) against the configured channels.

    CLI Example:

    .. code-block:: bash

        salt-run alarm.rules_check path=/tmp/new-rules.yml
    """
    from saltops.alarms import rules

    alarms, notify = _settings()
    path = path or alarms["rules_file"]
    if not path:
        raise Refused("no rules file: set saltops:alarms:rules_file or pass path=")
    ruleset = _call(rules.load_file, path, set(notify["channels"]))
    return {"valid": True, **ruleset.summary()}


@refuses
def notifications(status=None, limit=50):
    """
    The notification outbox (pending, sent, failed) with each row's last error.

    CLI Example:

    .. code-block:: bash

        salt-run alarm.notifications status=pending
        salt-run alarm.notifications status=sending
    """
    from saltops.notify import queue as notify_queue

    if status not in (None, *notify_queue.STATUSES):
        raise Refused(f"status must be one of {', '.join(notify_queue.STATUSES)}")
    with _open()[1].connect() as conn:
        return {"counts": notify_queue.counts(conn), "rows": notify_queue.listing(conn, status, limit),
                "deliveries": notify_queue.log(conn, limit=limit)}


@refuses
def remediate(fingerprint):
    """
    Run a firing alarm's ``remediate:`` action on its host, once per firing episode and cooldown.

    For ``reactor/``: the event is a hint.  What runs, and whether, is decided
    from the database and the rules file (:mod:`saltops.alarms.remediation`);
    a repeated or forged event gets ``remediated: False`` and the reason.

    CLI Example:

    .. code-block:: bash

        salt-run alarm.remediate 3f2a9c0d1e4b5a6f
    """
    from saltops.alarms import remediation

    ruleset = _rules()

    calls = salt_calls(__opts__)  # noqa: F821

    def execute(host, function, args):
        answer = calls.run([host], function, args, timeout=60).get(host)
        return None if answer is None else answer[0]

    return _call(remediation.remediate, _open()[1], ruleset, fingerprint, execute, _user())
