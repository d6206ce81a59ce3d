"""``saltops lab up | down | status``.

``up`` is idempotent: daemons that already run (found through their pid files)
are kept, missing ones are started, and it returns once every minion answers
``test.ping``.  ``down`` stops only the processes named by the lab's pid files.
"""

import fcntl
import json
import os
import shutil
import time
from contextlib import contextmanager
from pathlib import Path

import yaml

from saltops.lab import daemons, demo, seed
from saltops.lab import users as labusers
from saltops.lab.config import Layout, web_client_settings
from saltops.lab.daemons import LabError

ENV_DIR = "SALTOPS_LAB_DIR"
DEFAULT_DIR = ".lab"
MASTER_START_TIMEOUT = 90
MINION_READY_TIMEOUT = 180
API_START_TIMEOUT = 60


def resolve_dir(path=None):
    """The lab directory: ``path``, else ``$SALTOPS_LAB_DIR``, else ``./.lab``."""
    return Path(path or os.environ.get(ENV_DIR) or DEFAULT_DIR).expanduser().resolve()


class Lab:
    def __init__(self, lab_dir=None, minion_ids=demo.MINION_IDS):
        self.layout = Layout(resolve_dir(lab_dir), minion_ids)

    # ------------------------------------------------------------ bookkeeping

    def _read_state(self):
        try:
            return json.loads(self.layout.state_file.read_text())
        except (OSError, ValueError):
            return {}

    def _write_state(self, state):
        tmp = self.layout.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2, sort_keys=True))
        tmp.replace(self.layout.state_file)

    @contextmanager
    def _locked(self):
        self.layout.dir.mkdir(parents=True, exist_ok=True)
        with open(self.layout.dir / "lab.lock", "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _daemons(self):
        """``(name, argv, record, marker)`` for every lab daemon, in start order.

        ``record`` is the lab's own pid file: the pid of the process ``up``
        started, the leader of the daemon's process group (a salt-minion's pid
        file names its worker child instead).
        """
        lay = self.layout
        conf = str(lay.conf_dir)
        out = [
            (
                "master",
                [daemons.script("salt-master"), "-c", conf, "-l", "warning"],
                lay.record("master"),
                conf,
            )
        ]
        for minion_id in lay.minion_ids:
            mconf = str(lay.minion_conf_dir(minion_id))
            out.append(
                (
                    minion_id,
                    [daemons.script("salt-minion"), "-c", mconf, "-l", "warning"],
                    lay.record(minion_id),
                    mconf,
                )
            )
        out.append(
            ("api", [daemons.script("salt-api"), "-c", conf, "-l", "warning"], lay.record("api"), conf)
        )
        return out

    def _running(self):
        return {name: daemons.owned_pid(pidfile, marker) for name, _argv, pidfile, marker in self._daemons()}

    # ------------------------------------------------------------ config

    def _ports(self, state, running):
        old = state.get("ports") or {}
        if any(running.values()) and {"publish", "ret", "api"} <= set(old):
            # Something of ours already listens on them (a lab from before the alarm port gets one
            # for its next start).
            ports = dict(old)
            ports.setdefault("alarms", daemons.free_port(avoid=set(ports.values())))
            return ports
        ports = {}
        for name in ("publish", "ret", "api", "alarms"):
            port = old.get(name)
            if not port or not daemons.port_free(port):
                port = daemons.free_port(avoid=set(ports.values()))
            ports[name] = port
        return ports

    def _write_configs(self, ports, running, web_client=None):
        lay = self.layout
        lay.make_dirs()
        if not running.get("master") and not running.get("api"):
            _write_yaml(lay.master_conf, lay.master_config(ports, web_client))
            _write_yaml(lay.saltops_conf, lay.saltops_block(ports))
            lay.write_rules()
        for minion_id in lay.minion_ids:
            if not running.get(minion_id):
                _write_yaml(lay.minion_conf_dir(minion_id) / "minion", lay.minion_config(minion_id, ports))

    # ------------------------------------------------------------ commands

    def up(self, web_client=None):
        """Start whatever is not running; return :meth:`status` once every minion answers.

        ``web_client``: a static web client's folder for salt-api to serve
        (kept for later ``up`` calls; ``""`` drops it).  Changing it needs the
        lab stopped first, since a running salt-api keeps its settings.
        """
        lay = self.layout
        with self._locked():
            lay.make_dirs()
            state = self._read_state()
            running = self._running()
            if web_client is not None:
                web_client = self._web_client(state, running, web_client)
            web_client = state.get("web_client") if web_client is None else web_client
            ports = self._ports(state, running)
            labusers.ensure_users_file(lay.users_file)
            # The demo hosts go in once; later changes to the lab's CMDB are kept.
            seed.seed_if_empty(lay.db_url)
            # The people and the deploy ticket template (docs/lab.md, "A deploy ticket"), once.
            seed.seed_tickets(lay.db_url)
            self._write_configs(ports, running, web_client)
            state.update(
                ports=ports, lab_dir=str(lay.dir), sock_root=str(lay.sock_root), web_client=web_client
            )
            self._write_state(state)
            started = []
            for name, argv, pidfile, marker in self._daemons():
                if running.get(name):
                    continue
                log_path = lay.log_dir / f"{name}.out"
                self._clear_leftovers(name, pidfile, marker)
                proc = daemons.start(argv, log_path)
                Path(pidfile).write_text(str(proc.pid))
                # Salt writes its own pid file once the daemon is set up.
                if not daemons.wait_for_pid(proc, lay.pidfile(name), marker, timeout=30):
                    raise LabError(
                        f"{name} did not start (exit code {proc.poll()}); last lines of {log_path}:\n"
                        + daemons.tail(log_path)
                    )
                pid = proc.pid
                started.append(name)
                if name == "master":
                    self._wait_ports(
                        [ports["ret"], ports["publish"]],
                        "salt-master",
                        lay.log_dir / "master.log",
                        pid,
                        pidfile,
                    )
                if name == "api":
                    self._wait_ports([ports["api"]], "salt-api", lay.log_dir / "api.log", pid, pidfile)
            self._wait_minions()
            self.sync_modules()
            state["started_at"] = state.get("started_at") if not started else time.time()
            self._write_state(state)
        result = self.status()
        result["started"] = started
        return result

    @staticmethod
    def _web_client(state, running, folder):
        """The checked folder (``""`` for none); refuses a change while salt-api runs."""
        if folder:
            try:
                folder = web_client_settings(folder)["app"].rsplit("/", 1)[0]
            except ValueError as err:
                raise LabError(str(err)) from None
        changed = (folder or None) != (state.get("web_client") or None)
        if changed and (running.get("api") or running.get("master")):
            raise LabError("the lab is running: `saltops lab down` first, then `up --web-client ...`")
        return folder

    def _clear_leftovers(self, name, record, marker):
        """Before (re)starting a daemon: end what is left of its last run, drop Salt's stale pid files."""
        old = daemons.read_pid(record)
        if old:
            daemons.clear_group(old, marker)
        # Salt refuses to start while its "process responsibility" file names a
        # process that still looks alive (a killed worker waiting to be reaped).
        self.layout.pidfile(name).unlink(missing_ok=True)
        (self.layout.run_dir / f"process_responsibility_{name}.pid").unlink(missing_ok=True)

    def _wait_ports(self, ports, what, log_path, pid, pidfile):
        deadline = time.monotonic() + MASTER_START_TIMEOUT
        while time.monotonic() < deadline:
            if all(daemons.port_open(p) for p in ports):
                return
            if not daemons.read_pid(pidfile) or not Path(f"/proc/{pid}").exists():
                break
            time.sleep(0.2)
        raise LabError(
            f"{what} is not listening on {ports}; last lines of {log_path}:\n" + daemons.tail(log_path)
        )

    def _wait_minions(self):
        from salt.exceptions import SaltClientError

        deadline = time.monotonic() + MINION_READY_TIMEOUT
        answered = {}
        accepted = self.layout.pki_dir / "master" / "minions"
        while time.monotonic() < deadline:
            # A minion whose key is not accepted yet would miss the ping; wait for the keys first.
            if not all((accepted / m).exists() for m in self.layout.minion_ids):
                time.sleep(0.2)
                continue
            try:
                answered = self.ping(timeout=3)
            except SaltClientError:
                # A master still starting its processes (its engines, on a busy machine) may not
                # take the request in time: ask again until the deadline.
                answered = {}
            if all(answered.get(m) for m in self.layout.minion_ids):
                return
            time.sleep(1)
        missing = [m for m in self.layout.minion_ids if not answered.get(m)]
        logs = "\n".join(f"--- {m}:\n" + daemons.tail(self.layout.log_dir / f"{m}.log", 8) for m in missing)
        raise LabError(f"minions did not answer test.ping within {MINION_READY_TIMEOUT}s: {missing}\n{logs}")

    def ping(self, timeout=5):
        """``{minion id: True}`` for the minions that answer ``test.ping``."""
        import salt.client

        client = salt.client.LocalClient(c_path=str(self.layout.master_conf))
        try:
            ret = client.cmd(
                list(self.layout.minion_ids),
                "test.ping",
                tgt_type="list",
                timeout=timeout,
                gather_job_timeout=timeout,
            )
        finally:
            client.destroy()
        return {m: bool(ret.get(m)) for m in self.layout.minion_ids}

    def sync_modules(self):
        """Bring SaltOps' execution modules and beacons (salt://_modules, _beacons) to the lab minions."""
        import salt.client

        client = salt.client.LocalClient(c_path=str(self.layout.master_conf))
        try:
            ret = client.cmd(
                list(self.layout.minion_ids), "saltutil.sync_modules", tgt_type="list", timeout=60
            )
            # The monitoring beacons the pillar sets (salt://_beacons: CPU, bandwidth, sites...).
            beacons = client.cmd(
                list(self.layout.minion_ids), "saltutil.sync_beacons", tgt_type="list", timeout=60
            )
        finally:
            client.destroy()
        failed = [m for m in self.layout.minion_ids
                  if not isinstance(ret.get(m), list) or not isinstance(beacons.get(m), list)]
        if failed:
            raise LabError(f"saltutil.sync_modules/sync_beacons failed on {failed}: {ret} {beacons}")
        return ret

    def down(self):
        """Stop the daemons the lab started (minions and salt-api first, the master last)."""
        lay = self.layout
        with self._locked():
            stopped = []
            entries = self._daemons()
            # salt-api and the minions first (together), the master last.
            waves = [[e for e in entries if e[0] != "master"], [e for e in entries if e[0] == "master"]]
            for wave in waves:
                pids = {}
                for name, _argv, pidfile, marker in wave:
                    pid = daemons.owned_pid(pidfile, marker)
                    if pid:
                        pids[name] = pid
                daemons.stop(pids.values())
                stopped += list(pids)
                for name, _argv, pidfile, _marker in wave:
                    Path(pidfile).unlink(missing_ok=True)
                    lay.pidfile(name).unlink(missing_ok=True)
                    (lay.run_dir / f"process_responsibility_{name}.pid").unlink(missing_ok=True)
            if lay.sock_root != lay.run_dir / "sock" and lay.sock_root.is_dir():
                shutil.rmtree(lay.sock_root, ignore_errors=True)
        return {"lab_dir": str(lay.dir), "stopped": stopped}

    def status(self):
        lay = self.layout
        state = self._read_state()
        ports = state.get("ports") or {}
        running = self._running() if lay.master_conf.exists() else {}
        answered = {}
        if running.get("master"):
            import salt.exceptions

            try:
                answered = self.ping()
            except (salt.exceptions.SaltException, OSError):
                # The master is starting or stopping: report every minion as down.
                answered = {}
        api_url = f"http://127.0.0.1:{ports['api']}" if ports.get("api") else None
        minions = [
            {
                "id": m,
                "state": "up" if answered.get(m) is True else "down",
                "running": bool(running.get(m)),
                "pid": running.get(m),
                "roles": demo.roles_of(m),
                "config_dir": str(lay.minion_conf_dir(m)),
            }
            for m in lay.minion_ids
        ]
        return {
            "lab_dir": str(lay.dir),
            "config_dir": str(lay.conf_dir),
            "salt_command": f"salt -c {lay.conf_dir} '*' test.ping",
            "master": {
                "running": bool(running.get("master")),
                "pid": running.get("master"),
                "publish_port": ports.get("publish"),
                "ret_port": ports.get("ret"),
                "log_file": str(lay.log_dir / "master.log"),
            },
            "api": {
                "running": bool(running.get("api")),
                "pid": running.get("api"),
                "url": api_url,
                "web_client": state.get("web_client") or None,
                "eauth": "file",
                "log_file": str(lay.log_dir / "api.log"),
            },
            "api_url": api_url,
            "alarms": {
                "rules_file": str(lay.rules_file),
                "inbox": str(lay.inbox),
                "metrics_url": f"http://127.0.0.1:{ports['alarms']}/metrics" if ports.get("alarms") else None,
            },
            "users_file": str(lay.users_file),
            "users": {name: {"acl": acl} for name, acl in labusers.ACLS.items()},
            "db_url": lay.db_url,
            "sock_dir": str(lay.sock_root),
            "minions": minions,
            "all_up": bool(running.get("master"))
            and bool(running.get("api"))
            and all(m["state"] == "up" for m in minions),
        }


def _write_yaml(path, data):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, default_flow_style=False, sort_keys=False))
