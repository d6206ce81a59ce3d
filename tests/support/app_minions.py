"""Real minions that run the deploy tests' app: their CMDB records, the hooks pillar, starting them.

Shared by the deploy integration tests (on the session's master) and the
deploy ticket test (on a master of its own, on MariaDB).  Each host gets
its own folder and port on this machine for the app
(``tests/functional/deploy/deploy_appkit.py``).
"""

import contextlib
import os

from tests.functional.deploy import deploy_appkit as kit


def app_host_records(deploy_dir, places, app, env, **settings):
    """``{hostname: CMDB record}``: a host running ``app`` per ``places`` entry (hostname: (idc, line))."""
    records = {}
    for name, (idc, line) in places.items():
        app_settings = kit.app_settings(os.path.join(deploy_dir, "hosts", name), kit.free_port(), **settings)
        records[name] = {
            "hostname": name,
            "ip": "127.0.0.1",
            "lines": {line: "127.0.0.1"},
            "roles": ["web"],
            "platform": "Debian-12",
            "machine_type": "vm",
            "idc": idc,
            "env": env,
            "status": "online",
            "owner": "web-team",
            "apps": {app: app_settings},
        }
    return records


@contextlib.contextmanager
def hooks_pillar(master):
    """The app hosts' hooks (``saltops:deploy:hooks``) in ``master``'s scratch pillar tree, beside ours."""
    root = master.config["pillar_roots"]["base"][0]
    paths = kit.write_hooks_pillar(root, also=["saltops"])
    try:
        yield paths
    finally:
        for path in paths:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)


@contextlib.contextmanager
def started_minions(master, names, cli=None):
    """Start a minion per name on ``master`` with SaltOps' execution modules synced; ``{name: factory}``."""
    from tests.support import saltenv

    cli = cli or master.salt_cli(timeout=120)
    with saltenv.started_minions(master, names) as factories:
        for name in names:
            ret = cli.run("saltutil.sync_modules", minion_tgt=name)
            assert ret.returncode == 0, ret
            assert "modules.saltops_release" in ret.data, ret.data
        yield factories
