"""Run the repository's state and pillar trees through a real masterless Salt.

Each call writes a minion config under a temporary root (file_roots = ``states/``,
pillar_roots = a generated pillar root in front of ``pillar/``, PillarStack over
``pillar/stack/stack.cfg`` as on the master) and runs ``salt-call --local`` in a
subprocess, so every render goes through Salt's own loader, renderers and top
file matching.  Grains can be overridden to stand for another platform.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
STATES = REPO / "states"
PILLAR = REPO / "pillar"
STACK_CFG = PILLAR / "stack" / "stack.cfg"
SALT_CALL = str(Path(sys.executable).with_name("salt-call"))

# Grains that stand for the platforms the formulas support.  Minion config
# grains take precedence over the core grains of the machine the test runs on.
PLATFORMS = {
    "debian12": {
        "os": "Debian",
        "os_family": "Debian",
        "osfinger": "Debian-12",
        "osmajorrelease": 12,
        "osrelease": "12",
        "oscodename": "bookworm",
        "init": "systemd",
        "virtual": "kvm",
    },
    "rocky9": {
        "os": "Rocky",
        "os_family": "RedHat",
        "osfinger": "Rocky Linux-9",
        "osmajorrelease": 9,
        "osrelease": "9.4",
        "oscodename": "Blue Onyx",
        "init": "systemd",
        "virtual": "kvm",
    },
    # A Debian 12 container without systemd as PID 1 (like the machine the
    # local apply tests run on, and most Docker containers).
    "debian12-container": {
        "os": "Debian",
        "os_family": "Debian",
        "osfinger": "Debian-12",
        "osmajorrelease": 12,
        "osrelease": "12",
        "oscodename": "bookworm",
        "init": "unknown",
        "virtual": "container",
    },
}


def write_config(root, minion_id, pillar, grains=None, extra=None):
    """Write a masterless minion config under ``root``; return the config dir.

    ``pillar`` is served from a generated pillar root placed in front of the
    repository's ``pillar/`` (its top file includes the repository's ``saltops``
    defaults and the generated data), so the CMDB keys reach PillarStack the way
    the saltops_cmdb ext_pillar's data does on a master.
    """
    root = Path(root)
    pillar_root = root / "pillar"
    pillar_root.mkdir(parents=True, exist_ok=True)
    (pillar_root / "top.sls").write_text(
        yaml.safe_dump({"base": {"*": ["saltops", "fabricated"]}}), encoding="utf-8"
    )
    (pillar_root / "fabricated.sls").write_text(yaml.safe_dump(pillar or {}), encoding="utf-8")
    config = {
        "id": minion_id,
        "file_client": "local",
        "root_dir": str(root / "root"),
        "file_roots": {"base": [str(STATES)]},
        "pillar_roots": {"base": [str(pillar_root), str(PILLAR)]},
        "ext_pillar": [{"stack": str(STACK_CFG)}],
        "log_file": str(root / "minion.log"),
        "log_level_logfile": "info",
        "cachedir": str(root / "cache"),
        "pki_dir": str(root / "pki"),
        "sock_dir": str(root / "sock"),
        "state_verbose": False,
    }
    if grains:
        config["grains"] = dict(grains, id=minion_id)
    config.update(extra or {})
    conf_dir = root / "conf"
    conf_dir.mkdir(parents=True, exist_ok=True)
    (conf_dir / "minion").write_text(yaml.safe_dump(config), encoding="utf-8")
    return conf_dir


def salt_call(conf_dir, fun, *args, env=None, timeout=600):
    """``salt-call --local fun args`` with ``conf_dir``; return (returncode, data, stderr)."""
    cmd = [SALT_CALL, "-c", str(conf_dir), "--local", "--out", "json", "--retcode-passthrough", fun, *args]
    proc = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=dict(os.environ, **(env or {})),
        check=False,
    )
    try:
        data = json.loads(proc.stdout)["local"] if proc.stdout.strip() else None
    except (ValueError, KeyError):
        data = None
    return proc.returncode, data, proc.stderr + proc.stdout


def lowstates(highstate):
    """``state.show_highstate``/``show_sls`` output -> {id: {"fun", "sls", "args"}}.

    Each state ID here holds one state, as the formulas write them.
    """
    out = {}
    for sid, body in highstate.items():
        for key, value in body.items():
            if key.startswith("__"):
                continue
            fun = next(item for item in value if isinstance(item, str))
            args = {}
            for item in value:
                if isinstance(item, dict):
                    args.update(item)
            out[sid] = {"fun": f"{key}.{fun}", "sls": body.get("__sls__"), "args": args}
    return out


def state_results(ret):
    """``state.apply`` output -> {state id: result dict}."""
    return {key.split("_|-")[1]: value for key, value in ret.items()}
