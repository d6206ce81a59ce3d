"""
The SaltOps CMDB: hosts, their roles and ISP lines, as the single source of truth.

Thin runner over :mod:`saltops.cmdb` (``docs/cmdb.md``): it passes the acting
user (Salt's ``__user__``: the eauth user through salt-api, the OS/sudo user
from the CLI), Salt's clients (:class:`saltops.saltcalls.SaltCalls`) and
progress to the core, and turns its errors into a refusal.

This module always loads: a runner that vanished because the database was
down at master start would turn every ``cmdb.*`` call into "not available".
Instead each call checks the configuration and the database and fails with a
message that says what is wrong.
"""

from saltops import runnerkit
from saltops.bridge.calls import minion_keys, salt_calls
from saltops.cmdb import api, balancers
from saltops.pillar import outage
from saltops.runnerkit import refuses

__virtualname__ = "cmdb"
__func_alias__ = {"list_": "list", "import_": "import"}


def __virtual__():
    # Loads even when the config or the database is broken: every call then says
    # what is wrong instead of the runner silently missing (see docs/cmdb.md).
    return __virtualname__


_call = runnerkit.call


def _context():
    return runnerkit.open_store(__opts__)  # noqa: F821


def _actor():
    return runnerkit.actor(globals())


_clean = runnerkit.clean_kwargs


def _salt():
    return salt_calls(__opts__, runnerkit.progress_to(globals()))  # noqa: F821


def _written(store, summary):
    return _call(api.announce, store, summary, _salt())


@refuses
def add(hostname, ip=None, roles=None, platform=None, machine_type=None, idc=None, env=None, owner=None,
        status="online", lines=None, apps=None):
    """
    Add a host to the CMDB.  Every field is validated; the host must be new.
    ``roles``: a list or ``base,web``; ``lines``: ISP line -> address;
    ``apps``: app name -> its settings on this host.

    CLI Example:

    .. code-block:: bash

        salt-run cmdb.add web01.bj.example.com ip=10.10.1.11 roles=base,web platform=Debian-12 \\
            machine_type=vm idc=bj-idc1 env=prod owner=web-team lines='{telecom: 203.0.113.11}' \\
            apps='{shop: {port: 8000}}'
    """
    record = {"hostname": hostname, "ip": ip, "roles": roles, "platform": platform, "machine_type": machine_type,
              "idc": idc, "env": env, "owner": owner, "status": status, "lines": lines, "apps": apps}
    conf, store = _context()
    return _written(store, _call(api.add, store, conf, _actor(), record))


@refuses
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
    return _written(store, _call(api.update, store, conf, _actor(), hostname, _clean(changes)))


@refuses
def remove(hostname, purge=False):
    """
    Decommission hosts (a comma-separated list); ``purge=True`` deletes the records instead.

    CLI Example:

    .. code-block:: bash

        salt-run cmdb.remove web09.bj.example.com
        salt-run cmdb.remove web09.bj.example.com,web10.bj.example.com purge=True
    """
    conf, store = _context()
    return _written(store, _call(api.remove, store, conf, _actor(), hostname, purge=purge))


@refuses
def show(hostname):
    """
    Show one host's record.

    CLI Example:

    .. code-block:: bash

        salt-run cmdb.show web01.bj.example.com
    """
    return _call(api.show, _context()[1], hostname)


@refuses
def list_(**filters):
    """
    List the hosts matching every filter (role, line, idc, env, status, platform, app,
    machine_type, owner); a value may list alternatives separated by commas.

    CLI Example:

    .. code-block:: bash

        salt-run cmdb.list role=web env=prod
        salt-run cmdb.list line=telecom,unicom status=online
    """
    return _call(api.list_hosts, _context()[1], _clean(filters))


@refuses
def targets(sep=None, **filters):
    """
    Minion ids (== CMDB hostnames) matching the filters, decommissioned hosts left out
    unless ``status`` asks for them; with ``sep`` one string, for ``--out=txt`` in scripts.

    CLI Example:

    .. code-block:: bash

        salt-run cmdb.targets role=web env=prod
        salt -L "$(salt-run --out=txt cmdb.targets role=web sep=,)" test.ping
    """
    names = _call(api.targets, _context()[1], _clean(filters))
    return names if sep is None else str(sep).join(names)


@refuses
def import_(path=None, text=None, format=None, dry_run=False, mode="upsert"):  # pylint: disable=redefined-builtin
    """
    Import hosts from CSV, YAML or JSON, all or nothing: every bad row is reported with
    its line and nothing is written.  ``path``: a file in the import directory
    (``saltops:cmdb:import_roots``); ``text``: the document itself.  ``mode``: upsert,
    add or update; ``dry_run=True`` shows the changes without writing.

    CLI Example:

    .. code-block:: bash

        salt-run cmdb.import /var/cache/salt/master/saltops/import/hosts.csv dry_run=True
        salt-run cmdb.import text="$(cat hosts.csv)" format=csv
    """
    conf, store = _context()
    summary = _call(
        api.import_hosts, store, conf, _actor(), path=path, text=text, fmt=format, dry_run=dry_run, mode=mode
    )
    return _written(store, summary)


@refuses
def export(format="yaml", **filters):  # pylint: disable=redefined-builtin
    """
    Export the hosts matching the filters (as for ``cmdb.list``) as CSV, YAML or JSON
    text that ``cmdb.import`` reads back unchanged.

    CLI Example:

    .. code-block:: bash

        salt-run --out=txt cmdb.export format=csv > hosts.csv
    """
    return _call(api.export_hosts, _context()[1], format, _clean(filters))


@refuses
def history(hostname=None, actor=None, since=None, limit=100):
    """
    The audit log, newest first; ``since`` is an ISO 8601 time or an age (``30m``, ``7d``).

    CLI Example:

    .. code-block:: bash

        salt-run cmdb.history web01.bj.example.com
        salt-run cmdb.history actor=alice since=7d limit=20
    """
    return _call(api.history, _context()[1], hostname=hostname, actor=actor, since=since, limit=limit)


@refuses
def drift(timeout=None):
    """
    Compare the CMDB with the minion keys and the grains of the minions that answer
    within ``timeout`` seconds (default ``saltops:cmdb:drift_timeout``); see docs/cmdb.md.

    CLI Example:

    .. code-block:: bash

        salt-run cmdb.drift timeout=10 --out=json
    """
    conf, store = _context()
    return _call(api.drift, store, conf, minion_keys(__opts__), _salt(), timeout)  # noqa: F821


@refuses
def refresh(version, wait=False, timeout=10, apply_timeout=300, test=None, once=False):
    """
    Refresh the pillar of the minions the change that made CMDB ``version`` touched
    (from the audit log) and apply the balancer state on the balancers whose backends
    changed (docs/hecd.md).  ``wait``: wait for the state runs (``apply_results``);
    ``test``: run them with test=True; ``once``: act only if this version's refresh is
    still owed (the reactor passes it: a forged or replayed event does nothing).

    CLI Example:

    .. code-block:: bash

        salt-run cmdb.refresh version=42
        salt-run cmdb.refresh version=42 wait=True test=True
    """
    conf, store = _context()
    return _call(balancers.refresh, store, conf, _salt(), version, wait=wait, timeout=timeout,
                 apply_timeout=apply_timeout, test=test, once=once, actor=_actor())


@refuses
def refresh_after_outage():
    """
    Refresh every minion's pillar (``clean_cache``) once after a CMDB outage this master
    recorded as ended; otherwise return ``skipped``.  The reactor calls it on
    ``saltops/cmdb/recovered``, whose data it does not read.

    CLI Example:

    .. code-block:: bash

        salt-run cmdb.refresh_after_outage
    """
    conf, _ = _context()
    return _call(outage.refresh_after_outage, conf["cmdb"]["snapshot_file"], _salt())
