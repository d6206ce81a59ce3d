"""
Beacon: programs run under supervisor (``supervisorctl status``) that are not RUNNING.

Reads ``supervisorctl status`` through Salt's ``cmd.run_all`` (Salt's ``supervisord.status``
misreads the output when a program is down, since supervisorctl 4 then exits 3 and Salt
prefixes the text with ``ERROR:``).  It speaks for every watched
program whose state is not RUNNING, and once more when it is RUNNING again::

    salt/beacon/<minion>/saltops_supervisor/shop
      {"program": "shop", "state": "FATAL", "running": false, "description": "Exited too quickly"}

A program supervisor does not know is reported with state ``UNKNOWN``.

Configuration::

    beacons:
      saltops_supervisor:
        - programs: [shop, worker]     # absent: every program supervisor runs
        - conf_file: /etc/supervisor/supervisord.conf   # optional, for supervisorctl -c
        - bin_env: /opt/venv           # optional, where supervisorctl lives
        - interval: 30
"""

import salt.utils.beacons

__virtualname__ = "saltops_supervisor"


def __virtual__():
    return __virtualname__


def validate(config):
    if not isinstance(config, list):
        return False, "saltops_supervisor: the configuration must be a list"
    conf = salt.utils.beacons.list_to_dict(config)
    programs = conf.get("programs")
    names_ok = isinstance(programs, list) and all(isinstance(p, str) and p for p in programs)
    if programs is not None and not names_ok:
        return False, "saltops_supervisor: programs must be a list of program names"
    for key in ("conf_file", "bin_env"):
        if conf.get(key) is not None and not isinstance(conf[key], str):
            return False, f"saltops_supervisor: {key} must be a path"
    return True, "valid"


STATES = ("STOPPED", "STARTING", "RUNNING", "BACKOFF", "STOPPING", "EXITED", "FATAL", "UNKNOWN")


def parse_status(text):
    """``{program: (state, description)}`` from ``supervisorctl status`` output; other lines are skipped."""
    out = {}
    for line in text.splitlines():
        parts = line.split(None, 2)
        if len(parts) >= 2 and parts[1] in STATES:
            out[parts[0]] = (parts[1], parts[2] if len(parts) > 2 else "")
    return out


def _status(conf):
    cmd = [conf.get("bin_env") and _ctl_in(conf["bin_env"]) or "supervisorctl"]
    if conf.get("conf_file"):
        cmd += ["-c", conf["conf_file"]]
    cmd.append("status")
    ret = __salt__["cmd.run_all"](cmd, python_shell=False, ignore_retcode=True)  # noqa: F821
    found = parse_status(ret.get("stdout") or "")
    # Exit 3 means "some program is not running"; anything else without programs: supervisord is unreachable.
    if not found and ret.get("retcode") not in (0, 3):
        said = (ret.get("stderr") or ret.get("stdout") or "supervisorctl failed").strip()
        return {}, (said.splitlines() or [""])[0]
    return found, ""


def _ctl_in(bin_env):
    import os.path

    return os.path.join(bin_env, "bin", "supervisorctl") if os.path.isdir(bin_env) else bin_env


def beacon(config):
    conf = salt.utils.beacons.list_to_dict(config)
    beacon_name = conf.get("_beacon_name", __virtualname__)
    status, unreachable = _status(conf)
    watched = conf.get("programs") or sorted(status)
    # Programs reported down live in a file: Salt builds a new __context__ at each pillar refresh.
    down_before = set(__salt__["saltops_beaconstate.load"](beacon_name).get("down") or [])  # noqa: F821
    down_now = set()
    events = []
    for name in watched:
        state, description = status.get(name, ("UNKNOWN", unreachable))
        running = state == "RUNNING"
        if not running:
            down_now.add(name)
        if not running or name in down_before:
            events.append({"tag": name, "program": name, "state": state, "running": running,
                           "description": str(description)[:200]})
    if down_now != down_before:
        __salt__["saltops_beaconstate.save"](beacon_name, {"down": sorted(down_now)})  # noqa: F821
    return events
