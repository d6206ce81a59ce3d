"""Salt configuration of the lab: the SaltOps master block plus the daemons' own settings.

:func:`master_overrides` is the part shared with the test fixtures
(``tests/support/``): the SaltOps block from :mod:`saltops.saltconf`, the
salt-api listener on loopback without TLS, and eauth ``file`` over the lab's
users file.  :class:`Layout` places everything else under one lab directory.
"""

import getpass
import hashlib
import os
from pathlib import Path

import yaml

from saltops import saltconf
from saltops.lab import demo, users
from saltops.paths import tree

MASTER_ID = "saltops-lab-master"

# The lab's alarm groups: sent 5 s after they form, news at most every 20 s.
LAB_ROUTE_TIMINGS = {"group_wait": "5s", "group_interval": "20s"}

# AF_UNIX socket paths are limited to 107 bytes on Linux; Salt's longest socket
# name under a sock_dir is about 40 bytes.  Longer lab paths put the sockets
# under /tmp instead.
_SOCKET_NAME_ROOM = 45
_SOCKET_PATH_MAX = 107


def master_overrides(db_url, users_file, api_port, root=None):
    """The master settings the lab and the test masters share."""
    block = saltconf.master_block(
        root=root,
        db_url=db_url,
        api={"host": "127.0.0.1", "port": int(api_port), "disable_ssl": True},
    )
    block["external_auth"] = users.external_auth(users_file)
    # Every lab minion runs on this one machine: a real apply of the balancer
    # state would rewrite the machine's own /etc/haproxy.  The lab shows the
    # balancer following the CMDB as test-mode diffs (docs/hecd.md).
    block["saltops"]["cmdb"] = {"balancer_test": True}
    return block


def sock_root_for(lab_dir, names=None):
    """The folder for the daemons' sockets: under the lab, or under /tmp when that is too long."""
    lab_dir = Path(lab_dir).resolve()
    longest = max(len(n) for n in (names or (MASTER_ID, *demo.MINION_IDS)))
    local = lab_dir / "run" / "sock"
    if len(str(local)) + 1 + longest + _SOCKET_NAME_ROOM <= _SOCKET_PATH_MAX:
        return local
    digest = hashlib.sha256(str(lab_dir).encode()).hexdigest()[:12]
    return Path("/tmp") / f"saltops-lab-{digest}"


def web_client_settings(folder):
    """rest_cherrypy's ``app``/``static`` settings for a static web client (SaltGUI's ``saltgui/`` folder).

    Served by salt-api itself, on the API's own origin: the client needs no
    CORS set-up.  Raises ``ValueError`` when ``folder`` does not hold one.
    """
    folder = Path(folder).expanduser().resolve()
    missing = [name for name in ("index.html", "static") if not (folder / name).exists()]
    if missing:
        raise ValueError(
            f"{folder} is not a web client's folder: no {' and no '.join(missing)} in it "
            "(for SaltGUI, give the saltgui/ folder of a release)"
        )
    return {"app": str(folder / "index.html"), "static": str(folder / "static"), "static_path": "/static"}


class Layout:
    """Where a lab keeps its files."""

    def __init__(self, lab_dir, minion_ids=demo.MINION_IDS):
        self.dir = Path(lab_dir).resolve()
        self.minion_ids = tuple(minion_ids)
        self.conf_dir = self.dir / "conf"
        self.master_conf = self.conf_dir / "master"
        # The `saltops:` block lives in master.d (Salt's default include), never in the main
        # file: blocks in several master.d files merge key by key, while one in the main file
        # would be replaced whole by any master.d file that sets a `saltops:` key.
        self.saltops_conf = self.conf_dir / "master.d" / "saltops.conf"
        self.alarms_dir = self.dir / "alarms"
        self.rules_file = self.alarms_dir / "rules.yml"
        self.inbox = self.alarms_dir / "inbox.log"
        self.run_dir = self.dir / "run"
        self.log_dir = self.dir / "logs"
        self.pki_dir = self.dir / "pki"
        self.cache_dir = self.dir / "cache"
        self.state_file = self.dir / "lab.json"
        self.users_file = self.dir / "users"
        self.db_file = self.dir / "saltops.db"
        self.sock_root = sock_root_for(self.dir, (MASTER_ID, *self.minion_ids))

    @property
    def db_url(self):
        return f"sqlite:///{self.db_file}"

    def minion_conf_dir(self, minion_id):
        return self.conf_dir / "minions" / minion_id

    def pidfile(self, name):
        """The pid file Salt writes for a daemon."""
        return self.run_dir / f"{name}.pid"

    def record(self, name):
        """The lab's record of the process it started for a daemon."""
        return self.run_dir / f"{name}.lab.pid"

    def master_config(self, ports, web_client=None):
        """The main master file; ``web_client``: a folder with ``index.html`` and ``static/`` that
        salt-api serves at its root and under ``/static`` (:func:`web_client_settings`)."""
        conf = {
            "id": MASTER_ID,
            # Every path below is absolute: with root_dir '/' Salt prepends nothing.
            "root_dir": "/",
            "user": getpass.getuser(),
            "interface": "127.0.0.1",
            "publish_port": ports["publish"],
            "ret_port": ports["ret"],
            "pki_dir": str(self.pki_dir / "master"),
            "cachedir": str(self.cache_dir / "master"),
            "sock_dir": str(self.sock_root / "master"),
            "pidfile": str(self.pidfile("master")),
            "api_pidfile": str(self.pidfile("api")),
            "log_file": str(self.log_dir / "master.log"),
            "key_logfile": str(self.log_dir / "key.log"),
            "api_logfile": str(self.log_dir / "api.log"),
            "log_level_logfile": "info",
            "token_dir": str(self.cache_dir / "master" / "tokens"),
            "extension_modules": str(self.cache_dir / "master" / "extmods"),
            "syndic_dir": str(self.cache_dir / "master" / "syndics"),
            "sqlite_queue_dir": str(self.cache_dir / "master" / "queues"),
            "autosign_grains_dir": str(self.pki_dir / "master" / "autosign_grains"),
            "autosign_file": str(self.pki_dir / "master" / "autosign.conf"),
            "autoreject_file": str(self.pki_dir / "master" / "autoreject.conf"),
            "ssh_log_file": str(self.log_dir / "ssh.log"),
            # A lab accepts its own minions; nothing but loopback can reach it.
            "open_mode": False,
            "auto_accept": True,
            "worker_threads": 3,
            "enable_legacy_startup_events": False,
        }
        conf.update(master_overrides(self.db_url, self.users_file, ports["api"]))
        conf.pop("saltops")  # in master.d/saltops.conf: :meth:`saltops_block`
        if web_client:
            conf["rest_cherrypy"].update(web_client_settings(web_client))
        return conf

    def saltops_block(self, ports):
        """``{"saltops": ...}`` for ``master.d/saltops.conf``: the CMDB, the alarm engine and its inbox."""
        block = master_overrides(self.db_url, self.users_file, ports["api"])["saltops"]
        block["alarms"] = {"rules_file": str(self.rules_file), "listen_port": int(ports["alarms"])}
        block["notify"] = {"channels": {"inbox": {"type": "file", "path": str(self.inbox)}}}
        return {"saltops": block}

    def write_rules(self):
        """The lab's alarm rules: the shipped defaults with group timings short enough for a tour.

        Written once; a person's edits are kept (the engine reloads the file when it changes).
        """
        if self.rules_file.exists():
            return False
        ruleset = yaml.safe_load(tree("salt").joinpath("alarms", "rules.yml").read_text())
        for route in [ruleset["route"], *ruleset["route"].get("routes", [])]:
            route.update(LAB_ROUTE_TIMINGS)
        self.alarms_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.rules_file.with_suffix(".tmp")
        tmp.write_text("# The lab's copy of salt/alarms/rules.yml, with shorter group timings.\n"
                       + yaml.safe_dump(ruleset, sort_keys=False))
        tmp.replace(self.rules_file)
        return True

    def minion_config(self, minion_id, ports):
        return {
            "id": minion_id,
            "root_dir": "/",
            "user": getpass.getuser(),
            "master": "127.0.0.1",
            "master_port": ports["ret"],
            "pki_dir": str(self.pki_dir / minion_id),
            "cachedir": str(self.cache_dir / minion_id),
            "sock_dir": str(self.sock_root / minion_id),
            "pidfile": str(self.pidfile(minion_id)),
            "log_file": str(self.log_dir / f"{minion_id}.log"),
            "extension_modules": str(self.cache_dir / minion_id / "extmods"),
            "log_level_logfile": "info",
            "acceptance_wait_time": 2,
            "grains": {"saltops_lab": True},
        }

    def make_dirs(self):
        for path in (self.conf_dir, self.run_dir, self.log_dir, self.pki_dir, self.cache_dir, self.sock_root,
                     self.alarms_dir):
            path.mkdir(parents=True, exist_ok=True)
        os.chmod(self.sock_root, 0o700)
