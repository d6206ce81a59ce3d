"""
The SaltOps CMDB: hosts, their roles and ISP lines, as the single source of truth.

Thin runner over :mod:`saltops.cmdb`; see ``docs/cmdb.md``.  Every write is one
transaction with an audit row per host naming the acting user (from Salt's
``__user__``: the eauth user through salt-api, the OS/sudo user from the CLI),
and fires ``saltops/cmdb/changed`` on the master event bus after it commits.

This module always loads: a runner that vanished because the database was
down at master start would turn every ``cmdb.*`` call into "not available".
Instead each call checks the configuration and the database and fails with a
message that says what is wrong.
"""

import logging

import salt.client
import salt.key
import salt.utils.event
from salt.exceptions import CommandExecutionError, SaltClientError, SaltInvocationError

from saltops import runnerkit
from saltops.cmdb import api
from saltops.cmdb import drift as cmdb_drift
from saltops.errors import StoreUnavailable
from saltops.identity import acting_user
from saltops.runnerkit import reports_failures
from saltops.store import outbox

log = logging.getLogger(__name__)

__virtualname__ = "cmdb"
__func_alias__ = {"list_": "list", "import_": "import"}


def __virtual__():
    # Loads even when the config or the database is broken: every call then says
    # what is wrong instead of the runner silently missing (see docs/cmdb.md).
    return __virtualname__


def _context():
    return runnerkit.open_store(__opts__)  # noqa: F821


_call = runnerkit.call


def _actor():
    return acting_user(globals().get("__user__"))


def _clean(kwargs):
    """Drop the ``__pub_*`` keys Salt adds to ``**kwargs``."""
    return {k: v for k, v in kwargs.items() if not str(k).startswith("__")}


def _flush(store):
    """Fire the committed changes' events on the master bus; return how many are still pending."""
    event = salt.utils.event.get_master_event(__opts__, __opts__["sock_dir"], listen=False)  # noqa: F821
    try:

        def fire(tag, data):
            if not event.fire_event(dict(data), tag):
                raise CommandExecutionError("the master event bus did not take the event")

        outbox.flush(store, fire)
    finally:
        event.destroy()
    try:
        return outbox.pending_count(store)
    except StoreUnavailable:
        return None


def _after_write(store, summary):
    if summary.get("dry_run") or not (
        summary.get("added") or summary.get("updated") or summary.get("removed") or summary.get("purged")
    ):
        return summary
    pending = _flush(store)
    if pending:
        summary["events_pending"] = pending
        summary["warning"] = (
            f"the change is committed but {pending} saltops/cmdb/changed event(s) could not be fired "
            "(is the master running?); the next CMDB write fires them"
        )
    return summary


@reports_failures
def add(
    hostname,
    ip=None,
    roles=None,
    platform=None,
    machine_type=None,
    idc=None,
    env=None,
    owner=None,
    status="online",
    lines=None,
    apps=None,
):
    """
    Add a host to the CMDB.  Every field is validated; the host must be new.

    roles
        A list, or a comma-separated string: ``roles=base,web``.
    lines
        ISP line -> address: ``lines='{telecom: 203.0.113.11, unicom: 198.51.100.11}'``.
    apps
        App name -> its settings on this host: ``apps='{shop: {port: 8000}}'``.

    CLI Example:

    .. code-block:: bash

        salt-run cmdb.add web01.bj.example.com ip=10.10.1.11 roles=base,web platform=Debian-12 \\
            machine_type=vm idc=bj-idc1 env=prod owner=web-team lines='{telecom: 203.0.113.11}'
    """
    record = {
        "hostname": hostname,
        "ip": ip,
        "roles": roles,
        "platform": platform,
        "machine_type": machine_type,
        "idc": idc,
        "env": env,
        "owner": owner,
        "status": status,
        "lines": lines,
        "apps": apps,
    }
    record = {k: v for k, v in record.items() if v is not None}
    conf, store = _context()
    return _after_write(store, _call(api.add, store, conf, _actor(), record))


@reports_failures
def update(hostname, **changes):
    """
    Change fields of one host; the fields not given keep their values.
    ``lines`` and ``apps`` are replaced whole.

    CLI Example:

    .. code-block:: bash

        salt-run cmdb.update web01.bj.example.com status=maintenance
        salt-run cmdb.update web01.bj.example.com roles=base,web,cache apps='{shop: {port: 8001}}'
    """
    conf, store = _context()
    return _after_write(store, _call(api.update, store, conf, _actor(), hostname, _clean(changes)))


@reports_failures
def remove(hostname, purge=False):
    """
    Decommission hosts (status ``decommissioned``; the record and its history
    stay).  ``purge=True`` deletes the records instead.  Several hosts:
    a comma-separated list.

    CLI Example:

    .. code-block:: bash

        salt-run cmdb.remove web09.bj.example.com
        salt-run cmdb.remove web09.bj.example.com,web10.bj.example.com purge=True
    """
    conf, store = _context()
    return _after_write(store, _call(api.remove, store, conf, _actor(), hostname, purge=purge))


@reports_failures
def show(hostname):
    """
    Show one host's record.

    CLI Example:

    .. code-block:: bash

        salt-run cmdb.show web01.bj.example.com
    """
    _, store = _context()
    return _call(api.show, store, hostname)


@reports_failures
def list_(**filters):
    """
    List host records matching every filter given.

    Filters: role, line, idc, env, status, platform, app, machine_type, owner.
    A filter value may list several values separated by commas (any of them).

    CLI Example:

    .. code-block:: bash

        salt-run cmdb.list role=web env=prod
        salt-run cmdb.list line=telecom,unicom status=online
    """
    _, store = _context()
    return _call(api.list_hosts, store, _clean(filters))


@reports_failures
def targets(sep=None, **filters):
    """
    Minion ids (== CMDB hostnames) matching the filters, for targeting.
    Decommissioned hosts are left out unless ``status`` asks for them.

    Returns a list; with ``sep`` one string joined by ``sep``, which
    ``--out=txt`` prints bare, for shell scripts.

    CLI Example:

    .. code-block:: bash

        salt-run cmdb.targets role=web env=prod
        salt -L "$(salt-run --out=txt cmdb.targets role=web sep=,)" test.ping
        for h in $(salt-run --out=txt cmdb.targets idc=bj-idc1 sep=' '); do echo "$h"; done
    """
    _, store = _context()
    names = _call(api.targets, store, _clean(filters))
    if sep is None:
        return names
    return str(sep).join(names)


@reports_failures
def import_(path=None, text=None, format=None, dry_run=False, mode="upsert"):  # pylint: disable=redefined-builtin
    """
    Import hosts from CSV, YAML or JSON, all or nothing: if any row is bad,
    every bad row is reported with its line number and nothing is written.

    path
        A file on the master (format from its extension: .csv, .yaml/.yml, .json).
    text
        The document itself, instead of a path.
    format
        csv, yaml or json (needed for ``text`` when it cannot be told).
    dry_run
        Show what would be added and changed (field: [before, after]) without writing.
    mode
        upsert (default), add (every host must be new) or update (every host must exist).

    CLI Example:

    .. code-block:: bash

        salt-run cmdb.import /srv/cmdb/hosts.csv dry_run=True
        salt-run cmdb.import /srv/cmdb/hosts.yaml
        salt-run cmdb.import text="$(cat hosts.csv)" format=csv
    """
    conf, store = _context()
    summary = _call(
        api.import_hosts, store, conf, _actor(), path=path, text=text, fmt=format, dry_run=dry_run, mode=mode
    )
    return _after_write(store, summary)


@reports_failures
def export(format="yaml", **filters):  # pylint: disable=redefined-builtin
    """
    Export host records as CSV, YAML or JSON text that ``cmdb.import`` reads
    back unchanged.  Filters as for ``cmdb.list``.

    CLI Example:

    .. code-block:: bash

        salt-run --out=txt cmdb.export format=csv > hosts.csv
        salt-run --out=txt cmdb.export format=yaml role=web > web.yaml
    """
    _, store = _context()
    return _call(api.export_hosts, store, format, _clean(filters))


@reports_failures
def history(hostname=None, actor=None, since=None, limit=100):
    """
    The CMDB audit log, newest first: who changed which host when, before -> after.

    since
        An ISO 8601 time (``2024-05-01``, ``2024-05-01T08:00:00Z``) or an age (``30m``, ``12h``, ``7d``).

    CLI Example:

    .. code-block:: bash

        salt-run cmdb.history web01.bj.example.com
        salt-run cmdb.history actor=alice since=7d limit=20
    """
    _, store = _context()
    return _call(api.history, store, hostname=hostname, actor=actor, since=since, limit=limit)


def _local_client():
    try:
        return salt.client.get_local_client(mopts=__opts__)  # noqa: F821
    except SaltClientError as err:
        raise CommandExecutionError(f"cannot reach the Salt master to talk to minions: {err}") from None


def _answered(raw):
    """``{minion: return}`` for the minions that really answered.

    With ``full_return`` an answer is ``{"ret": ..., "retcode": ...}``; Salt
    marks a minion that did not answer with ``False``, ``{"failed": True}`` or
    ``{"out": "no_return", "ret": "Minion did not return..."}``.
    """
    return {
        minion: data["ret"]
        for minion, data in (raw or {}).items()
        if isinstance(data, dict)
        and "ret" in data
        and not data.get("failed")
        and data.get("out") != "no_return"
    }


@reports_failures
def drift(timeout=None):
    """
    Compare the CMDB with reality and report every disagreement:

    - ``unknown_minions``: accepted minion keys with no CMDB record;
    - ``missing_key``: online CMDB hosts without an accepted key (and its state);
    - ``not_responding``: online CMDB hosts with a key that did not answer;
    - ``decommissioned_with_key``: decommissioned hosts whose key is still accepted;
    - ``ip_mismatch``: the CMDB ``ip`` is not among the minion's ipv4/ipv6 grains;
    - ``os_mismatch``: the minion's ``osfinger`` grain differs from the CMDB ``platform``;
    - ``bad_answers``: minions whose grains were not of the expected type.

    timeout
        Seconds to wait for minions (default ``saltops:cmdb:drift_timeout``, 5).

    CLI Example:

    .. code-block:: bash

        salt-run cmdb.drift
        salt-run cmdb.drift timeout=10 --out=json
    """
    conf, store = _context()
    try:
        timeout = int(timeout if timeout is not None else conf["cmdb"]["drift_timeout"])
    except (TypeError, ValueError):
        raise SaltInvocationError(f"timeout={timeout!r} is not a number of seconds") from None
    if not 1 <= timeout <= 600:
        raise SaltInvocationError("timeout must be between 1 and 600 seconds")
    records = _call(api.list_hosts, store, {})
    listed = salt.key.get_key(__opts__).list_keys()  # noqa: F821
    keys = {
        "accepted": listed.get("minions", []),
        "pending": listed.get("minions_pre", []),
        "rejected": listed.get("minions_rejected", []),
        "denied": listed.get("minions_denied", []),
    }
    probe = cmdb_drift.targets_to_probe(records, keys["accepted"])
    answers = {}
    if probe:
        client = _local_client()
        try:
            raw = client.cmd(
                probe,
                "grains.item",
                list(cmdb_drift.GRAINS),
                tgt_type="list",
                timeout=timeout,
                gather_job_timeout=timeout,
                full_return=True,
            )
            answers = _answered(raw)
        except SaltClientError as err:
            raise CommandExecutionError(f"could not ask the minions for their grains: {err}") from None
    return cmdb_drift.compare(records, keys, answers or {}, probe)


# ``state.apply queue=N``: a balancer already running a state waits for it to
# finish instead of refusing (two quick CMDB changes must both reach haproxy);
# with N runs already waiting, the next one is refused and reported.
_APPLY_QUEUE = 10


def _seconds(name, value, top):
    try:
        value = int(value)
    except (TypeError, ValueError):
        raise SaltInvocationError(f"{name}={value!r} is not a number of seconds") from None
    if not 1 <= value <= top:
        raise SaltInvocationError(f"{name} must be between 1 and {top} seconds")
    return value


def _refresh_pillar(client, tgt, tgt_type, names, everyone, timeout, block):
    """Publish ``saltutil.refresh_pillar``; with ``block`` wait for the minions to finish it.

    Returns ``(jid, refreshed, failed, no_answer)``; the last three are ``None``
    for a publish that did not wait.
    """
    if not block:
        return client.cmd_async(tgt, "saltutil.refresh_pillar", tgt_type=tgt_type) or None, None, None, None
    # wait=True on the minion: the job returns once the minion has compiled its
    # new pillar, so what runs next on it sees the change.
    raw = client.cmd(
        tgt,
        "saltutil.refresh_pillar",
        kwarg={"wait": True, "timeout": timeout},
        tgt_type=tgt_type,
        timeout=timeout + 5,
        full_return=True,
    )
    returns = _answered(raw)
    refreshed = sorted(m for m, ret in returns.items() if ret is True)
    failed = sorted(m for m, ret in returns.items() if ret is not True)
    no_answer = sorted(set(names) - set(returns)) if not everyone else []
    return None, refreshed, failed, no_answer


def _apply_balancers(client, plan, refreshed, wait, apply_timeout, test):
    """``state.apply`` the planned balancer states on the balancers whose pillar was refreshed."""
    out = {"applied": {}, "apply_skipped": dict(plan["skipped"]), "apply_test": test}
    groups = {}
    for minion, states in plan["apply"].items():
        if minion not in refreshed:
            out["apply_skipped"][minion] = "its pillar refresh was not confirmed: state not applied"
            continue
        sls = ",".join(states)
        out["applied"][minion] = sls
        groups.setdefault(sls, []).append(minion)
    if wait:
        out["apply_results"] = {}
    else:
        out["apply_jids"] = {}
    for sls, minions in sorted(groups.items()):
        kwarg = {"queue": _APPLY_QUEUE}
        if test:
            kwarg["test"] = True
        if wait:
            raw = client.cmd(
                minions,
                "state.apply",
                [sls],
                kwarg=kwarg,
                tgt_type="list",
                timeout=apply_timeout,
                full_return=True,
            )
            for minion in minions:
                data = (raw or {}).get(minion)
                if minion in _answered({minion: data}):
                    out["apply_results"][minion] = api.summarize_state_return(
                        data["ret"], data.get("retcode")
                    )
                else:
                    out["apply_results"][minion] = {
                        "result": False,
                        "retcode": None,
                        "states": 0,
                        "changed": [],
                        "failed": {},
                        "errors": [f"no answer within {apply_timeout} s (see salt-run jobs.active)"],
                    }
        else:
            out["apply_jids"][sls] = (
                client.cmd_async(minions, "state.apply", [sls], kwarg=kwarg, tgt_type="list") or None
            )
    if wait:
        failed = sorted(m for m, r in out["apply_results"].items() if not r["result"])
        if failed:
            out["warning"] = (
                f"the balancer state failed on {', '.join(failed)}: their previous configuration "
                "stays in place (see apply_results)"
            )
    return out


@reports_failures
def refresh(version, wait=False, timeout=10, apply_timeout=300, test=None):
    """
    Refresh the pillar of the minions a CMDB change affects: the hosts the
    change that produced ``version`` touched (read from the audit log) and the
    balancers whose backends may have changed.  The reactor calls this on
    ``saltops/cmdb/changed`` passing only the version, so a forged event
    cannot choose the targets.

    When the change touched the backends of balancers (hosts of a role in
    ``saltops:cmdb:lb_serves``), the refresh is waited for and the state of
    ``saltops:cmdb:balancer_states`` (default ``lb``) is then applied on those
    balancers (online or in maintenance, whose refresh was confirmed), so that
    haproxy follows the CMDB; ``applied`` says which balancer got which state.

    wait
        Wait for the minions and return who refreshed and, for balancers, the
        result of each state run (``apply_results``).  Without it the state
        runs are published and their job ids returned (``apply_jids``).
    timeout
        Seconds to wait for the pillar refresh (default 10).
    apply_timeout
        Seconds ``wait=True`` waits for the balancer state runs (default 300).
    test
        Run the balancer states with ``test=True`` (what would change, nothing
        changed); default ``saltops:cmdb:balancer_test`` (false).

    CLI Example:

    .. code-block:: bash

        salt-run cmdb.refresh version=42
        salt-run cmdb.refresh version=42 wait=True
        salt-run cmdb.refresh version=42 wait=True test=True
    """
    conf, store = _context()
    if test is None:
        test = conf["cmdb"]["balancer_test"]
    if not isinstance(test, bool):
        raise SaltInvocationError(f"test={test!r} must be True or False")
    timeout = _seconds("timeout", timeout, 600)
    apply_timeout = _seconds("apply_timeout", apply_timeout, 3600)
    plan = _call(api.refresh_plan, store, conf, version)
    names = sorted(set(plan["hosts"]) | set(plan["balancers"]))
    result = {
        "version": plan["version"],
        "targets": names,
        "balancers": plan["balancers"],
        "all": plan["all"],
    }
    if not names:
        result["jid"] = None
        return result
    tgt, tgt_type = ("*", "glob") if plan["all"] else (names, "list")
    client = _local_client()
    # Balancers to update: wait for the refresh even when the caller does not.
    block = bool(wait) or bool(plan["apply"])
    try:
        jid, refreshed, failed, no_answer = _refresh_pillar(
            client, tgt, tgt_type, names, plan["all"], timeout, block
        )
    except SaltClientError as err:
        raise CommandExecutionError(f"could not publish saltutil.refresh_pillar: {err}") from None
    result["jid"] = jid
    if block:
        result.update(refreshed=refreshed, failed=failed, no_answer=no_answer)
    if not plan["apply"] and not plan["skipped"]:
        return result
    try:
        result.update(_apply_balancers(client, plan, set(refreshed or []), bool(wait), apply_timeout, test))
    except SaltClientError as err:
        raise CommandExecutionError(
                f"the pillar was refreshed but the balancer state could not be published: {err}"
            ) from None
    return result
