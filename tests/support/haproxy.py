"""A real haproxy driven by the lb formula on this machine, for the integration tests.

Shared by tests/integration/hecd (the CMDB -> balancer loop) and
tests/integration/deploy (blue/green flips).  The lb minion runs as root and
applies the real formula: haproxy from apt, /etc/haproxy/haproxy.cfg checked
by ``haproxy -c``, haproxy started and reloaded by its init script where
systemd is not PID 1.  :func:`kept_config` refuses to take over a haproxy it
did not see start and puts the machine back as it was at the end.
"""

import contextlib
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

HAPROXY_CFG = Path("/etc/haproxy/haproxy.cfg")
HAPROXY_PID = Path("/run/haproxy.pid")
HAPROXY_BIN = Path("/usr/sbin/haproxy")

# Skip marks for a module whose balancer minion applies the lb formula for real.
NEEDS_ROOT_AND_APT = [
    pytest.mark.skipif(
        not hasattr(os, "geteuid") or os.geteuid() != 0, reason="applying the lb state for real needs root"
    ),
    pytest.mark.skipif(
        shutil.which("apt-get") is None, reason="no apt-get: the lb formula is applied on Debian"
    ),
]


def haproxy_pids():
    """Pids of the live haproxy processes (zombies waiting to be reaped do not count)."""
    pids = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        name, _, rest = text.partition(") ")
        if name.endswith("(haproxy") and not rest.startswith("Z"):
            pids.add(int(stat.parent.name))
    return pids


@contextlib.contextmanager
def kept_config():
    """Skip when a haproxy of someone else runs; stop ours and put haproxy.cfg back at the end."""
    running = haproxy_pids()
    if running:
        pytest.skip(f"a haproxy already runs on this machine (pids {sorted(running)}): not taking it over")
    before = HAPROXY_CFG.read_bytes() if HAPROXY_CFG.exists() else None
    try:
        yield before
    finally:
        # No haproxy ran before: every haproxy now is the one the lb state started.
        ours = haproxy_pids()
        if HAPROXY_PID.exists():
            subprocess.run(["/etc/init.d/haproxy", "stop"], capture_output=True, check=False, timeout=60)
        for pid in sorted(haproxy_pids() & ours):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, 15)
        if before is None:
            HAPROXY_CFG.unlink(missing_ok=True)
        else:
            HAPROXY_CFG.write_bytes(before)


def lb_minion_overrides():
    """Minion settings for a balancer applying the formula on this machine."""
    extra = {}
    if not Path("/run/systemd/system").is_dir() and shutil.which("systemctl"):
        # systemctl without systemd as PID 1: Salt's systemd module would run
        # "offline" and never start haproxy; use the init script instead.
        extra["disable_modules"] = ["systemd_service"]
    return extra


def apt_ready():
    """``apt-get update`` once when haproxy is not installed yet (the formula installs it)."""
    if HAPROXY_BIN.exists():
        return
    update = subprocess.run(
        ["apt-get", "update", "-qq"], capture_output=True, text=True, timeout=600, check=False
    )
    assert update.returncode == 0, update.stderr


def wait_for(check, timeout=60, step=0.5):
    """``check()``'s first true value within ``timeout`` seconds, else its last value."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(step)
    return last
