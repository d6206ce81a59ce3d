"""
SaltOps alarms: firing alarms, history, acks, silences, channel tests, rules checks.

Thin runner over :mod:`saltops.alarms`; the pipeline itself runs in the
``saltops_alarms`` engine (see ``docs/alarms.md``).  Changes made here (acks,
silences) are written to the database with an audit row naming the acting
user, and the engine picks them up within a second.
"""

import logging
import time

import salt.client
from salt.exceptions import CommandExecutionError, SaltInvocationError

from saltops import runnerkit
from saltops.identity import acting_user
from saltops.runnerkit import reports_failures

log = logging.getLogger(__name__)

__virtualname__ = "alarm"
__func_alias__ = {"list_": "list"}


def __virtual__():
    # Always loads: a broken setting is reported by each call, not by a missing runner.
    return __virtualname__


def _conf():
    return runnerkit.open_store(__opts__)[0]  # noqa: F821


def _store():
    return runnerkit.open_store(__opts__)[1]  # noqa: F821


_call = runnerkit.call


def _user():
    try:
        user = __user__
    except NameError:
        user = None
    return acting_user(user)


def _settings(conf):
    from saltops.alarms import settings

    return _call(settings.load, conf)


@reports_failures
def list_(state="firing", severity=None, host=None, alertname=None, limit=200):
    """
    Alarms by state (``firing`` by default; ``pending``, ``resolved``, ``all``).

    CLI Example:

    .. code-block:: bash

        salt-run alarm.list
        salt-run alarm.list state=all host=web01.bj.example.com severity=critical
    """
    from saltops.alarms import query

    with _store().connect() as conn:
        return _call(query.list_alarms, conn, state, severity, host, alertname, limit)


@reports_failures
def history(fingerprint=None, host=None, since=None, limit=100):
    """
    State changes of alarms, newest first (pending, firing, resolved, acked).

    CLI Example:

    .. code-block:: bash

        salt-run alarm.history since=1h
        salt-run alarm.history fingerprint=3f2a9c0d1e4b5a6f
    """
    from saltops.alarms import query

    with _store().connect() as conn:
        return _call(query.history_rows, conn, fingerprint, host, since, limit)


@reports_failures
def ack(fingerprint, comment=""):
    """
    Acknowledge a firing alarm: no more repeats until it resolves (its resolution is still sent).

    CLI Example:

    .. code-block:: bash

        salt-run alarm.ack 3f2a9c0d1e4b5a6f comment="replacing the disk"
    """
    from saltops.alarms import query, silence

    query_fp = _call(query.check_fingerprint, fingerprint)
    with _store().begin() as conn:
        sid = _call(silence.ack, conn, _user(), query_fp, str(comment or ""))
    return {"fingerprint": query_fp, "acked_by": _user(), "silence": sid}


def _split_matchers(text):
    out, cur, quoted, escaped = [], "", False, False
    for ch in text:
        if escaped:
            cur += ch
            escaped = False
        elif ch == "\\":
            cur += ch
            escaped = True
        elif ch == '"':
            cur += ch
            quoted = not quoted
        elif ch == "," and not quoted:
            out.append(cur.strip())
            cur = ""
        else:
            cur += ch
    if cur.strip():
        out.append(cur.strip())
    return out


@reports_failures
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
    from saltops.alarms.matchers import parse_duration

    if isinstance(matchers, str):
        matchers = _split_matchers(matchers)
    try:
        seconds = parse_duration(duration, "duration")
    except ValueError as err:
        raise SaltInvocationError(str(err)) from None
    now = time.time()
    begin = now + parse_duration(starts, "starts") if starts else now
    with _store().begin() as conn:
        sid = _call(silence.add, conn, _user(), matchers, begin + seconds, comment or "", starts_at=begin, now=now)
    return {"id": sid, "ends_at": begin + seconds, "created_by": _user()}


@reports_failures
def silence_list(state="active"):
    """
    Silences (and acks): ``active`` (default), ``pending``, ``expired`` or ``all``.

    CLI Example:

    .. code-block:: bash

        salt-run alarm.silence_list
        salt-run alarm.silence_list state=all
    """
    import sqlalchemy as sa

    from saltops.alarms import silence
    from saltops.alarms.schema import silences

    if state not in ("active", "pending", "expired", "all"):
        raise SaltInvocationError("state must be active, pending, expired or all")
    now = time.time()
    with _store().connect() as conn:
        rows = conn.execute(sa.select(silences).order_by(silences.c.created_at.desc()).limit(500)).all()
    items = [silence.to_dict(row, now) for row in rows]
    return [i for i in items if state == "all" or i["state"] == state]


@reports_failures
def silence_expire(silence_id):
    """
    End a silence now.

    CLI Example:

    .. code-block:: bash

        salt-run alarm.silence_expire 6a1c3d2e-0d4f-4d8e-9a31-0c1f2e3d4b5a
    """
    from saltops.alarms import silence

    with _store().begin() as conn:
        changed = _call(silence.expire, conn, _user(), str(silence_id))
    return {"id": silence_id, "expired": changed}


@reports_failures
def test(channel, message="SaltOps test notification"):
    """
    Send a test message through one notification channel now, and log the delivery.

    CLI Example:

    .. code-block:: bash

        salt-run alarm.test wecom-ops
    """
    from saltops.alarms.model import iso
    from saltops.notify import outbox, registry
    from saltops.notify.base import DeliveryError

    conf = _conf()
    _alarms, notify = _settings(conf)
    channels = notify["channels"]
    if channel not in channels:
        raise SaltInvocationError(f"no channel {channel!r} under saltops:notify:channels (defined: {sorted(channels)})")
    chan = _call(registry.build, {channel: channels[channel]}, notify["timeout"])[channel]
    now = time.time()
    payload = {
        "version": "4", "groupKey": "saltops-test", "truncatedAlerts": 0, "status": "firing",
        "receiver": "test", "groupLabels": {"alertname": "SaltOpsTest"},
        "commonLabels": {"alertname": "SaltOpsTest", "severity": "info"},
        "commonAnnotations": {"summary": str(message)}, "externalURL": "",
        "alerts": [{"status": "firing", "labels": {"alertname": "SaltOpsTest", "severity": "info",
                                                    "host": __opts__.get("id", "master")},  # noqa: F821
                    "annotations": {"summary": str(message)}, "startsAt": iso(now),
                    "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "", "fingerprint": "0" * 16}],
    }
    started = time.monotonic()
    error = None
    try:
        chan.send(payload)
    except DeliveryError as err:
        error = str(err)
    elapsed = time.monotonic() - started
    try:
        with _store().begin() as conn:
            outbox.record_attempt(conn, None, channel, 1, error is None, error, elapsed * 1000, time.time())
    except CommandExecutionError as err:
        log.warning("test delivery not logged: %s", err)
    if error:
        raise CommandExecutionError(f"test message not delivered: {error}")
    return {"channel": channel, "delivered": True, "seconds": round(elapsed, 3)}


@reports_failures
def rules_check(path=None):
    """
    Validate the rules file (``saltops:alarms:rules_file``, or ``path``) against the configured channels.

    CLI Example:

    .. code-block:: bash

        salt-run alarm.rules_check
        salt-run alarm.rules_check path=/tmp/new-rules.yml
    """
    from saltops.alarms import rules

    conf = _conf()
    alarms, notify = _settings(conf)
    path = path or alarms["rules_file"]
    if not path:
        raise SaltInvocationError("no rules file: set saltops:alarms:rules_file or pass path=")
    ruleset = _call(rules.load_file, path, set(notify["channels"]))
    return {"valid": True, **ruleset.summary()}


@reports_failures
def notifications(status=None, limit=50):
    """
    The notification outbox (pending, sent, failed) with each row's last error.

    CLI Example:

    .. code-block:: bash

        salt-run alarm.notifications status=pending
    """
    from saltops.notify import outbox

    if status not in (None, "pending", "sent", "failed"):
        raise SaltInvocationError("status must be pending, sent or failed")
    with _store().connect() as conn:
        return {"counts": outbox.counts(conn), "rows": outbox.listing(conn, status, limit),
                "deliveries": outbox.log(conn, limit=limit)}


@reports_failures
def remediate(fingerprint):
    """
    Run the ``remediate:`` action of a firing alarm's rule on the alarm's host.

    Meant for ``reactor/``: the reactor passes only the fingerprint from the
    ``saltops/alarm/<fingerprint>/firing`` tag; the host and the arguments come
    from the alarm stored by the engine and from the rules file, never from
    the event, so a forged event can only repeat a real alarm's action.

    CLI Example:

    .. code-block:: bash

        salt-run alarm.remediate 3f2a9c0d1e4b5a6f
    """
    from saltops.alarms import query, rules

    conf = _conf()
    alarms_conf, notify = _settings(conf)
    ruleset = _call(rules.load_file, alarms_conf["rules_file"], set(notify["channels"]))
    with _store().connect() as conn:
        row = _call(query.get_alarm, conn, fingerprint)
    host, function, args = _call(query.remediation, ruleset, row)
    client = salt.client.LocalClient(mopts=__opts__)  # noqa: F821
    result = client.cmd(host, function, args, timeout=60)
    return {"fingerprint": fingerprint, "host": host, "function": function, "args": args,
            "result": result.get(host)}
