"""A throwaway Debian 12 host on this machine: a debootstrap root in its own namespaces.

The roles whose daemons would collide with this machine's own services (MariaDB on
3306, Redis on 6379) are applied for real inside such a host:

* **The root** is a ``debootstrap --variant=minbase`` Debian 12 with sysvinit,
  Python, curl, iproute2 and procps, plus Salt (the same version as this checkout's
  virtualenv) and pytest-testinfra in a virtualenv at ``/opt/salt``.  Building it
  takes about 90 s; the result is kept as a tarball under the test cache
  (``/var/cache/saltops-test`` or ``$SALTOPS_TEST_CACHE``), named by a hash of
  everything that goes into it, and rebuilt when missing.  Every run unpacks a fresh
  copy, so nothing one run installs is seen by the next.
* **The namespaces**: one ``unshare`` gives the host its own mount, PID, network,
  UTS and IPC namespaces; its PID 1 is a small reaper running chrooted in the root.
  The network namespace has only its own loopback, so MariaDB, Redis and the node
  exporter listen on the host's 127.0.0.1:3306/6379/9100 without touching this
  machine's.  ``/proc``, ``/dev``, ``/sys`` and ``/run`` are mounted inside the
  private mount namespace only: the machine's mount table never sees them, and they
  vanish with the namespace.
* **Teardown is the kernel's**: the reaper holds the read end of a pipe whose write
  end only the test process has.  When the test closes it, or dies however it dies,
  the reaper exits; PID 1 of a PID namespace exiting kills every process in it (the
  daemons the states started), and the mount and network namespaces go with them.
* **Packages**: the role states install their packages with Salt's ``pkg.installed``
  inside the network namespace, which cannot reach a mirror.  Before the apply, the
  package index is refreshed and the packages the rendered states name are
  downloaded (``apt-get install --download-only``, nothing installed) in the root
  with this machine's network; the ``.deb`` files are kept in the test cache, bind
  mounted on the root's ``/var/cache/apt/archives``, so a warm run downloads nothing.

``Namespace.run`` runs a command in the host: chrooted, with its network or (for the
downloads) with the machine's.
"""

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
SECURITY_MIRROR = "http://deb.debian.org/debian-security"
# What the root has before any role is applied: an init (sysvinit, the Debian
# alternative to systemd: its `runlevel` and `update-rc.d` are what Salt's
# debian_service module drives), what `base` would give a host, and what the
# testinfra checks need (curl, ss from iproute2, ps from procps).
INCLUDE = ("sysvinit-core", "python3", "python3-venv", "ca-certificates", "curl", "iproute2", "procps")
# Python packages of the root's /opt/salt, pinned to the versions of this checkout's venv.
WHEELS = ("salt", "pytest-testinfra", "pytest", "psutil")
# Bump when the way the root is built changes: the cached tarball is then rebuilt.
BUILD_VERSION = 1
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
WORK_PREFIX = "saltops-iso-"

REAPER = r"""
import os, select, signal, sys
fd = int(sys.argv[1])
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
while True:
    readable, _, _ = select.select([fd], [], [], 0.5)
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid == 0:
            break
    if readable and not os.read(fd, 64):
        sys.exit(0)
"""

SETUP = r"""
root=$1; name=$2; fd=$3; shift 3
mount --rbind /dev "$root/dev"
mount -t sysfs sysfs "$root/sys"
mount -t tmpfs -o mode=0755 tmpfs "$root/run"
mkdir -p "$root/run/lock"
while [ $# -gt 1 ]; do
  mkdir -p "$root$2"
  mount --bind "$1" "$root$2"
  shift 2
done
ip link set lo up
hostname "$name"
exec chroot "$root" /usr/bin/python3 -c "$REAPER" "$fd"
"""


class HostError(RuntimeError):
    """The isolated host could not be built or started."""


class BootstrapUnavailable(HostError):
    """debootstrap cannot be installed or cannot reach Debian's mirror from here."""


def cache_dir():
    path = Path(os.environ.get("SALTOPS_TEST_CACHE") or "/var/cache/saltops-test")
    path.mkdir(parents=True, exist_ok=True)
    return path


def missing_tools():
    """Why an isolated host cannot be made here (None when it can)."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "an isolated Debian root (debootstrap, namespaces) needs root"
    for tool in ("unshare", "nsenter", "chroot", "ip", "tar"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    if shutil.which("debootstrap") is None and shutil.which("apt-get") is None:
        return "no debootstrap and no apt-get to install it"
    return None


def ensure_debootstrap():
    """Install Debian's debootstrap where it is missing (refreshing the index if need be)."""
    if shutil.which("debootstrap"):
        return
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    install = ["apt-get", "install", "-y", "-qq", "debootstrap"]
    proc = subprocess.run(install, capture_output=True, text=True, timeout=600, check=False, env=env)
    if proc.returncode != 0:
        # A machine whose package index was never fetched knows no debootstrap yet.
        subprocess.run(["apt-get", "update", "-qq"], capture_output=True, timeout=600, check=False, env=env)
        proc = subprocess.run(install, capture_output=True, text=True, timeout=600, check=False, env=env)
    if proc.returncode != 0 or shutil.which("debootstrap") is None:
        raise BootstrapUnavailable(f"apt-get install debootstrap failed: {proc.stderr[-2000:]}")


def requirements():
    """Pinned requirements for the root's /opt/salt: this venv's versions."""
    return sorted(f"{name}=={metadata.version(name)}" for name in WHEELS)


def root_key():
    recipe = {
        "suite": SUITE,
        "mirror": MIRROR,
        "include": sorted(INCLUDE),
        "requirements": requirements(),
        "python": f"{sys.version_info[0]}.{sys.version_info[1]}",
        "build": BUILD_VERSION,
        "zstd": bool(shutil.which("zstd")),
    }
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]


@contextlib.contextmanager
def locked(path):
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _run(argv, timeout=900, **kwargs):
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False, **kwargs)
    if proc.returncode != 0:
        raise HostError(
            f"{' '.join(argv[:4])}... exited {proc.returncode}: {(proc.stderr or proc.stdout)[-3000:]}"
        )
    return proc


def _tar_flags():
    return ["-I", "zstd -T0 -3"] if shutil.which("zstd") else []


def _sources_list():
    return (
        f"deb {MIRROR} {SUITE} main\n"
        f"deb {MIRROR} {SUITE}-updates main\n"
        f"deb {SECURITY_MIRROR} {SUITE}-security main\n"
    )


def root_tarball(log=print):
    """Path of the cached root tarball, built first when it is missing."""
    cache = cache_dir()
    key = root_key()
    tarball = cache / f"root-{SUITE}-{key}.tar{'.zst' if shutil.which('zstd') else ''}"
    with locked(cache / ".lock"):
        if tarball.is_file():
            return tarball, False
        started = time.monotonic()
        ensure_debootstrap()
        # Builds interrupted earlier (the lock is ours: none is running).
        for stale in cache.glob("build-*"):
            shutil.rmtree(stale, ignore_errors=True)
        build = Path(tempfile.mkdtemp(prefix="build-", dir=cache))
        try:
            root = build / "root"
            # In a private mount namespace: debootstrap's own /proc and /sys mounts
            # cannot outlive it, whatever happens to it.
            debootstrap = subprocess.run(
                [
                    "unshare",
                    "--mount",
                    "--propagation",
                    "private",
                    "debootstrap",
                    "--variant=minbase",
                    "--include=" + ",".join(INCLUDE),
                    SUITE,
                    str(root),
                    MIRROR,
                ],
                capture_output=True,
                text=True,
                timeout=1200,
                check=False,
            )
            if debootstrap.returncode != 0:
                log_file = root / "debootstrap" / "debootstrap.log"
                detail = log_file.read_text()[-2000:] if log_file.is_file() else debootstrap.stderr[-2000:]
                raise BootstrapUnavailable(f"debootstrap {SUITE} from {MIRROR} failed: {detail}")
            (root / "etc/apt/sources.list").write_text(_sources_list(), encoding="utf-8")
            # The wheels come from this machine's package index setup, so the root
            # never needs one of its own.
            wheels = root / "tmp" / "wheels"
            _run(
                [sys.executable, "-m", "pip", "wheel", "-q", "-w", str(wheels), *requirements()],
                timeout=900,
            )
            with Namespace(root, "saltops-build") as ns:
                ns.check(["python3", "-m", "venv", "/opt/salt"], net=False)
                ns.check(
                    [
                        "/opt/salt/bin/pip",
                        "install",
                        "-q",
                        "--no-index",
                        "--find-links",
                        "/tmp/wheels",
                        *requirements(),
                    ],
                    net=False,
                    timeout=900,
                )
                for tool in ("salt-call", "py.test"):
                    ns.check(["ln", "-sf", f"/opt/salt/bin/{tool}", f"/usr/local/bin/{tool}"], net=False)
                ns.check(["apt-get", "clean"], net=False)
            shutil.rmtree(wheels)
            partial = tarball.with_name(tarball.name + ".partial")
            _run(
                [
                    "tar",
                    *_tar_flags(),
                    "--numeric-owner",
                    "--xattrs",
                    "-C",
                    str(root),
                    "-cf",
                    str(partial),
                    ".",
                ]
            )
            partial.rename(tarball)
            for old in cache.glob(f"root-{SUITE}-*.tar*"):
                if old != tarball:
                    old.unlink()
            log(f"isolated root built in {time.monotonic() - started:.0f}s: {tarball}")
            return tarball, True
        finally:
            shutil.rmtree(build, ignore_errors=True)


DEBS_INSIDE = "/var/cache/saltops-debs"


def debs_bind():
    """The (machine path, path inside) bind mount of the shared .deb cache."""
    debs = cache_dir() / "debs"
    (debs / "partial").mkdir(parents=True, exist_ok=True)
    return debs, DEBS_INSIDE


def fetch_packages(ns, root, packages):
    """Refresh the root's package index and put ``packages`` (with what they need) in its apt cache.

    Run with the machine's network, nothing installed.  The ``.deb`` files are
    downloaded into the shared cache (under a lock, and pruned of versions the
    mirror no longer has), then linked into the root's own
    ``/var/cache/apt/archives``, so the install inside uses a cache no other run
    writes to.
    """
    debs, inside = debs_bind()
    archives_option = f"Dir::Cache::Archives={inside}/"
    resolv = Path(root) / "etc" / "resolv.conf"
    shutil.copyfile("/etc/resolv.conf", resolv)
    try:
        with locked(cache_dir() / ".debs.lock"):
            ns.check(["apt-get", "update", "-qq"], net=False, timeout=600)
            ns.check(
                ["apt-get", "install", "-y", "-qq", "--download-only", "-o", archives_option, *packages],
                net=False,
                timeout=900,
            )
            ns.check(["apt-get", "autoclean", "-qq", "-o", archives_option], net=False)
            archives = Path(root) / "var" / "cache" / "apt" / "archives"
            for deb in debs.glob("*.deb"):
                target = archives / deb.name
                if not target.exists():
                    try:
                        os.link(deb, target)
                    except OSError:
                        shutil.copy2(deb, target)
    finally:
        # Inside the host there is then no resolver: apt's own refresh during the
        # apply fails at once instead of waiting for a name server it cannot reach.
        resolv.unlink(missing_ok=True)


def remove_stale_workdirs(base):
    """Remove the unpacked roots of earlier runs whose test process is gone.

    Nothing is mounted on them outside their (gone) mount namespace, so a plain
    recursive removal is safe.
    """
    for path in Path(base).glob(WORK_PREFIX + "*"):
        try:
            pid = int(path.name[len(WORK_PREFIX) :].split("-", 1)[0])
        except ValueError:
            continue
        if pid != os.getpid() and not Path(f"/proc/{pid}").exists():
            shutil.rmtree(path, ignore_errors=True)


def unpack(tarball, base="/var/tmp"):
    remove_stale_workdirs(base)
    work = Path(tempfile.mkdtemp(prefix=f"{WORK_PREFIX}{os.getpid()}-", dir=base))
    root = work / "root"
    root.mkdir()
    _run(["tar", *_tar_flags(), "--numeric-owner", "--xattrs", "-C", str(root), "-xf", str(tarball)])
    return work, root


class Namespace:
    """A host made of ``root``: own mount, PID, network, UTS and IPC namespaces.

    ``binds`` is a list of (machine path, path inside the root) bind mounts.
    """

    def __init__(self, root, hostname, binds=()):
        self.root = Path(root)
        self.hostname = hostname
        self.binds = list(binds)
        self.proc = None
        self.pid = None
        self._keepalive = None

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def start(self, timeout=30):
        read_end, self._keepalive = os.pipe()
        argv = [
            "unshare",
            "--mount",
            "--uts",
            "--ipc",
            "--net",
            "--pid",
            "--fork",
            "--propagation",
            "private",
            f"--mount-proc={self.root}/proc",
            "/bin/sh",
            "-ec",
            SETUP,
            "sh",
            str(self.root),
            self.hostname,
            str(read_end),
        ]
        for source, target in self.binds:
            argv += [str(source), str(target)]
        self.proc = subprocess.Popen(
            argv,
            pass_fds=(read_end,),
            env={"PATH": PATH, "REAPER": REAPER},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        os.close(read_end)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise HostError(f"the namespace did not start: {self.proc.stdout.read()[-2000:]}")
            pid = self._init_pid()
            if pid and self._chrooted(pid):
                self.pid = pid
                return
            time.sleep(0.05)
        self.stop()
        raise HostError("the namespace's init did not chroot in time")

    def _init_pid(self):
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        try:
            pids = children.read_text().split()
        except OSError:
            return None
        return int(pids[0]) if pids else None

    def _chrooted(self, pid):
        try:
            return os.path.realpath(f"/proc/{pid}/root") == os.path.realpath(self.root)
        except OSError:
            return False

    def stop(self, timeout=30):
        if self._keepalive is not None:
            os.close(self._keepalive)
            self._keepalive = None
        if self.proc is None:
            return
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            if self.pid:
                os.kill(self.pid, 9)  # PID 1 of the namespace: the kernel kills the rest
            self.proc.wait(timeout=timeout)
        self.proc.stdout.close()
        self.proc = None

    def command(self, argv, net=True):
        """``argv`` as run inside the host (``net=False``: with the machine's network)."""
        if self.pid is None:
            raise HostError("the namespace is not running")
        spaces = ["--mount", "--uts", "--ipc", "--pid"] + (["--net"] if net else [])
        return ["nsenter", f"--target={self.pid}", *spaces, "--root", "--wd", "--", *argv]

    def run(self, argv, net=True, env=None, timeout=600, input=None):
        base = {"PATH": PATH, "HOME": "/root", "LANG": "C.UTF-8", "DEBIAN_FRONTEND": "noninteractive"}
        return subprocess.run(
            self.command(argv, net=net),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            input=input,
            env=dict(base, **(env or {})),
        )

    def check(self, argv, **kwargs):
        proc = self.run(argv, **kwargs)
        if proc.returncode != 0:
            raise HostError(
                f"{' '.join(argv)} exited {proc.returncode}: {(proc.stderr + proc.stdout)[-3000:]}"
            )
        return proc

    def pids(self):
        """Machine PIDs of the processes running in the namespace."""
        found = []
        target = os.readlink(f"/proc/{self.pid}/ns/pid")
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    if os.readlink(entry / "ns" / "pid") == target:
                        found.append(int(entry.name))
                except OSError:
                    continue
        return found
