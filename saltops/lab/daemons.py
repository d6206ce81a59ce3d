"""Starting, finding and stopping the lab's background processes.

A daemon belongs to the lab when its pid file (written by Salt itself) names a
live process whose command line carries the lab's config directory: a stale
pid file, or a pid reused by an unrelated process, is never signalled.
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from saltops.errors import SaltOpsError


class LabError(SaltOpsError):
    """The lab could not be brought to the state asked for."""


def script(name):
    """The path of a Salt script (``salt-master``...) of this Python environment."""
    candidate = Path(sys.executable).parent / name
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return str(candidate)
    found = shutil.which(name)
    if found:
        return found
    raise LabError(f"{name} not found beside {sys.executable} nor on PATH; install Salt in this environment")


def _cmdline(pid):
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return raw.replace(b"\0", b" ").decode("utf-8", "replace")


def _is_zombie(pid):
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return True
    return fields[0] in ("Z", "X")


def _reap(pid):
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def read_pid(pidfile):
    try:
        text = Path(pidfile).read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def owned_pid(pidfile, marker):
    """The pid in ``pidfile`` if that process is alive and its command line contains ``marker``."""
    pid = read_pid(pidfile)
    if not pid:
        return None
    if _is_zombie(pid):
        _reap(pid)
        return None
    cmdline = _cmdline(pid)
    # The marker (a config dir) must be a whole word of the command line, so
    # that <lab>/conf does not match a minion's <lab>/conf/minions/<id>.
    if cmdline is None or f" {marker} " not in f" {cmdline.strip()} ":
        return None
    return pid


def start(argv, log_path):
    """Start ``argv`` in its own session, output appended to ``log_path``; return the Popen."""
    Path(log_path).parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )


def wait_for_pid(proc, pidfile, marker, timeout):
    """Wait until the started process has written its pid file; return the pid."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return None
        pid = owned_pid(pidfile, marker)
        if pid:
            return pid
        time.sleep(0.1)
    return None


def stop(pids, timeout=30):
    """Stop lab daemons and the processes of their groups (SIGTERM, then SIGKILL).

    All of ``pids`` are signalled at once and waited for together.
    """
    groups = {}
    for pid in pids:
        try:
            pgid = os.getpgid(pid)
        except ProcessLookupError:
            continue
        # Each daemon was started as the leader of its own session and group, so
        # its group holds exactly its worker processes.
        groups[pid] = pgid if pgid == pid else None
    for pid, pgid in groups.items():
        _signal(pid, pgid, signal.SIGTERM)
    if _wait_gone(groups, timeout):
        return
    for pid, pgid in groups.items():
        _signal(pid, pgid, signal.SIGKILL)
    _wait_gone(groups, 10)


def _wait_gone(groups, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(_group_alive(pid, pgid) for pid, pgid in groups.items()):
            return True
        time.sleep(0.1)
    return False


def _signal(pid, pgid, sig):
    try:
        if pgid:
            os.killpg(pgid, sig)
        else:
            os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _group_alive(pid, pgid):
    if not _is_zombie(pid) and _cmdline(pid) is not None:
        return True
    _reap(pid)
    if not pgid:
        return False
    return bool(_group_members(pgid))


def clear_group(pgid, marker, timeout=10):
    """Kill what is left of a lab daemon's process group after its leader died.

    Only processes of group ``pgid`` whose command line carries ``marker`` are
    signalled; returns once none of them is alive (zombies count as gone).
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = [pid for pid in _group_members(pgid) if f" {marker} " in f" {(_cmdline(pid) or '').strip()} "]
        if not left:
            return
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.1)


def _group_members(pgid):
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        try:
            if os.getpgid(pid) == pgid and not _is_zombie(pid):
                members.append(pid)
        except (ProcessLookupError, PermissionError):
            continue
    return members


def port_open(port, host="127.0.0.1"):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def port_free(port, host="127.0.0.1"):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port(avoid=()):
    """An unused TCP port on 127.0.0.1 (not one of ``avoid``)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port not in avoid:
            return port
    raise LabError("could not find a free TCP port on 127.0.0.1")


def tail(path, lines=20):
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])
