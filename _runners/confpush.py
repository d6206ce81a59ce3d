# ruff: noqa: F821  (__opts__, __context__, __jid_event__ are injected by the Salt loader)
"""
Config push: versioned config sets per app and env, pushed to the CMDB's hosts
through Salt's ``file.managed``, with diff, drift, history and rollback.

The logic lives in :mod:`saltops.confpush`; this module parses arguments,
builds the Salt clients and reports progress.  A refused call returns
``{"result": False, "error": ..., "retcode": 1}``.  See ``docs/confpush.md``.
"""

import yaml

from saltops import runnerkit
from saltops.bridge import background
from saltops.bridge.bus import announce_outbox
from saltops.confpush import config as cp_config
from saltops.confpush import lock as cp_lock
from saltops.confpush.api import ConfPush
from saltops.confpush.schema import HEAD as CONFPUSH_HEAD
from saltops.errors import ConfigError
from saltops.runnerkit import Refused, refuses

__virtualname__ = "confpush"
__func_alias__ = {"set_": "set", "history_": "history", "import_": "import"}


def __virtual__():
    return __virtualname__


def _progress(phase, data):
    message = runnerkit.progress_line(f"confpush {data.get('id')}", phase, data, ("id",))
    runnerkit.fire_progress(globals(), {"message": message, "phase": phase, **data})


def _service():
    conf, store = runnerkit.open_store(__opts__, newest=CONFPUSH_HEAD)
    try:
        settings = cp_config.load(conf)
    except ConfigError as err:
        raise Refused(f"SaltOps configuration is invalid: {err}") from None

    def executor():
        from saltops.bridge.states import HighExecutor  # pylint: disable=import-outside-toplevel

        return HighExecutor(__opts__, return_timeout=settings["return_timeout"])

    def announce():
        # A batch's events; any left in the outbox go with the push's final flush or the next call.
        announce_outbox(__opts__, store, "the config push's batch events")

    actor = runnerkit.actor(globals())
    return ConfPush(store, settings, conf["cmdb"]["envs"], actor, executor, _progress, announce)


def _do(method, *args, **kwargs):
    """Call ``ConfPush.<method>``, fire its committed events, mark a failed push as a failed job."""
    service = _service()
    result = runnerkit.call(getattr(service, method), *args, **kwargs)
    pending = announce_outbox(__opts__, service.store, "the config push's events")
    if pending and isinstance(result, dict):
        # Committed; the next call (any runner that flushes the outbox) fires them.
        result = dict(result, events_pending=pending)
    if isinstance(result, dict) and "failed" in (
        result.get("status"),
        (result.get("push") or {}).get("status"),
    ):
        result["retcode"] = 1
        __context__["retcode"] = 1
    return result


def _in_background(method, app, env, *args, **kwargs):
    """Check, render and record the push here; a runner job of its own drives it (``confpush.resume``)."""
    job = background.new_job(__opts__)
    result = _do(method, app, env, *args, handoff=cp_lock.handoff_owner(job["jid"]), **kwargs)
    push_id = result["id"]
    background.start(__opts__, job, "confpush.resume", [app, env, push_id], runnerkit.actor(globals()))
    result.update(
        jid=job["jid"],
        tag=job["tag"],
        comment=f"config push {push_id} goes on in runner job {job['jid']}; "
        f"follow it with confpush.status {push_id}",
    )
    return result


@refuses
def set_(app, env, spec):
    """
    Store a new version of the config set of ``app`` in ``env``: a mapping (or
    YAML text) with ``files`` (path, template, user, group, mode, validator,
    action, service, reload_cmd, tmp_dir), ``values``, ``roots``,
    ``health_cmd`` and ``comment``.  An identical set stores nothing.

    CLI Example:

    .. code-block:: bash

        salt-run confpush.set app=shop env=test spec="$(cat shop-set.yml)"
    """
    if isinstance(spec, str):
        try:
            spec = yaml.safe_load(spec)
        except yaml.YAMLError as err:
            raise Refused(f"spec is not valid YAML: {err}") from None
    return _do("store_set", app, env, spec)


@refuses
def show(app, env, version=None):
    """
    The stored set of ``app`` in ``env`` (newest, or ``version``).

    CLI Example:

    .. code-block:: bash

        salt-run confpush.show app=shop env=test version=3
    """
    return _do("show", app, env, runnerkit.whole_number("version", version))


@refuses
def versions(app, env):
    """
    The stored versions of a set, newest first (who, when, sha256).

    CLI Example:

    .. code-block:: bash

        salt-run confpush.versions app=shop env=test
    """
    return _do("versions", app, env)


@refuses
def diff(app, env, version=None, hosts=None):
    """
    Per host, the unified diff between what a push would write and what is on
    disk now, read from the minions (``file.managed`` with ``test=True``).
    Changes nothing.  Files holding secrets show only whether they would change.

    CLI Example:

    .. code-block:: bash

        salt-run confpush.diff app=shop env=test
    """
    return _do("diff", app, env, runnerkit.whole_number("version", version), runnerkit.names("hosts", hosts))


@refuses
def push(app, env, version=None, hosts=None, batch_size=None, max_share=None, background=False):
    """
    Push the set (newest, or ``version``) to the CMDB hosts running ``app`` in
    ``env`` (or the listed ``hosts``), batch by batch across ISP lines and IDCs.
    Every template is rendered first; a failed validator or health check puts
    the host's files back and stops the push.  ``batch_size`` and ``max_share``
    (no batch takes more than this share of an ISP line or IDC) override
    ``saltops:confpush``.

    background
        ``True`` returns the push (``id``, status ``running``) and the ``jid``
        of the runner job that drives it as soon as it is checked, rendered and
        recorded (lock taken); follow it with ``confpush.status <id>``.  For
        salt-api and other callers that cannot wait for the whole push.

    CLI Example:

    .. code-block:: bash

        salt-run confpush.push app=shop env=test
        salt-run confpush.push app=shop env=test hosts=web01,web02 batch_size=1
        salt-run confpush.push app=shop env=test background=True
    """
    args = (app, env, runnerkit.whole_number("version", version), runnerkit.names("hosts", hosts), batch_size)
    if runnerkit.flag("background", background):
        return _in_background("push", *args, max_share=max_share)
    return _do("push", *args, max_share=max_share)


@refuses
def status(id=None, app=None, env=None):  # pylint: disable=redefined-builtin
    """
    One config push as it stands: status, the batch it is at, each host's
    status, whether its runner still runs.  Without ``id``, every unfinished
    push (of ``app``/``env`` when given).  Changes nothing.

    CLI Example:

    .. code-block:: bash

        salt-run confpush.status 42
        salt-run confpush.status app=shop env=test
    """
    push_id = None if id is None else runnerkit.record_id("config push", id)
    return runnerkit.call(_service().status, push_id, app, env)


@refuses
def history_(app, env, host=None, limit=20):
    """
    The pushes of a set, newest first: who, which version, each host's files
    with their sha256 and status.

    CLI Example:

    .. code-block:: bash

        salt-run confpush.history app=shop env=test host=web01 limit=5
    """
    return _do("history", app, env, host, runnerkit.whole_number("limit", limit, 20))


@refuses
def rollback(app, env, to, hosts=None, background=False):
    """
    Put every target host back to the files pushed from set version ``to``,
    byte for byte (hosts with no record of it get that version rendered anew).

    background
        ``True`` returns the rollback's push id and the ``jid`` of the runner
        job that drives it at once, as ``confpush.push`` does.

    CLI Example:

    .. code-block:: bash

        salt-run confpush.rollback app=shop env=test to=2
        salt-run confpush.rollback app=shop env=test to=2 background=True
    """
    args = (app, env, runnerkit.whole_number("to", to), runnerkit.names("hosts", hosts))
    if runnerkit.flag("background", background):
        return _in_background("rollback", *args)
    return _do("rollback", *args)


@refuses
def resume(app, env, id=None):  # pylint: disable=redefined-builtin
    """
    Continue a push whose runner died or was stopped (a killed ``salt-run``, a
    restarted master): the batch it had published is read back from Salt's
    job cache (waiting for jobs still running), its failed hosts get their
    files back, then the later batches are pushed as planned, byte for byte.
    Without ``id``, the push holding the app/env's lock.  A push whose runner
    still runs is refused, and so is one recorded by ``background=True`` for
    another runner job (that job runs this function under its own jid).

    CLI Example:

    .. code-block:: bash

        salt-run confpush.resume app=shop env=test
        salt-run confpush.resume app=shop env=test id=42
    """
    # A push started with background=True was recorded for this job to drive.
    jid = globals().get("__jid__")
    return _do("resume", app, env, runnerkit.whole_number("id", id), handoff=cp_lock.handoff_owner(jid) if jid else None)


@refuses
def abort(app, env, id=None):  # pylint: disable=redefined-builtin
    """
    End a push whose runner died or was stopped: the batch it had published is
    read back and settled (failed hosts get their files back), no other host is
    touched, the push is recorded ``aborted`` and the app/env's lock released.
    Hosts of finished batches keep their new files (``confpush.rollback``
    puts them back).

    CLI Example:

    .. code-block:: bash

        salt-run confpush.abort app=shop env=test
    """
    return _do("abort", app, env, runnerkit.whole_number("id", id))


@refuses
def drift(app, env, hosts=None):
    """
    Hosts whose files differ from what the last push wrote there (hand edits,
    deleted files), as ``file.managed`` with ``test=True`` reports them.

    CLI Example:

    .. code-block:: bash

        salt-run confpush.drift app=shop env=test
    """
    return _do("drift", app, env, runnerkit.names("hosts", hosts))


@refuses
def migrate(app, env, to_env=None, hosts=None, confirm=False):
    """
    Copy the set to another env (``to_env``) or push it to new ``hosts``.
    Without ``confirm=True`` it only shows what would change (set and per-host diff).

    CLI Example:

    .. code-block:: bash

        salt-run confpush.migrate app=shop env=test to_env=staging
        salt-run confpush.migrate app=shop env=test to_env=staging confirm=True
    """
    return _do("migrate", app, env, to_env, runnerkit.names("hosts", hosts), runnerkit.flag("confirm", confirm))


@refuses
def import_(app, env, path):
    """
    Store a new version of a set from a directory on the master holding
    ``confpush.yml`` and the template files it names.

    CLI Example:

    .. code-block:: bash

        salt-run confpush.import app=shop env=test path=/srv/confsets/shop
    """
    return _do("import_dir", app, env, path)


@refuses
def export(app, env, path, version=None):
    """
    Write a set into an empty (or new) directory on the master: ``confpush.yml``
    plus one file per template.

    CLI Example:

    .. code-block:: bash

        salt-run confpush.export app=shop env=test path=/tmp/shop-set
    """
    return _do("export_dir", app, env, path, runnerkit.whole_number("version", version))


@refuses
def on_cmdb_change(version):
    """
    Push each app's set to the hosts a CMDB change gave that app (a new host,
    an added app).  The reactor calls it with the change's version only; the
    hosts are read from the audit log.

    CLI Example:

    .. code-block:: bash

        salt-run confpush.on_cmdb_change version=42
    """
    return _do("on_cmdb_change", runnerkit.whole_number("version", version))
