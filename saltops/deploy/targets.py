"""Deploy targets from the CMDB: hosts whose ``apps`` include the app, ``online``, in the env."""

from saltops.cmdb import repo


def targets(conn, app, env):
    """Full CMDB records of the hosts a deploy of ``app`` to ``env`` goes to."""
    return [rec for rec in repo.list_hosts(conn, app=app, env=env, status="online") if app in rec["apps"]]
