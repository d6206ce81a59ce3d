"""Apply db, cache and monitor for real, in a throwaway Debian 12 host.

This machine runs its own MariaDB (3306) and Redis (6379), which other tests use,
so these roles are not applied to it: they are applied with ``salt-call --local``
inside a debootstrap root with its own mount, PID and network namespaces
(``isolated_host.py``), where MariaDB, Redis and the node exporter listen on that
host's own loopback.  The host plays the CMDB record of ``infra/data_pillar.yml``
(roles db, cache and monitor; the Redis password by sdb reference).  Checked:

  * the first apply succeeds and installs the packages through ``pkg.installed``;
    the second changes nothing (idempotence);
  * the testinfra checks in ``infra/`` (``infra_db``, ``infra_cache``,
    ``infra_monitor``) pass, run by pytest inside the host against ``local://``:
    packages, config files, listening sockets, ``SELECT`` through the mysql
    client, ``redis-cli ping`` with the password resolved from its reference,
    node exporter metrics over HTTP;
  * a replica_of in the host's CMDB entry makes MariaDB read-only (restarted by
    the state), and taking it out makes it a primary again;
  * the pillar has the beacons of the host's roles, and Salt's beacon loop run
    once inside the host reports the three services running;
  * nothing listens on this machine's side: its own MariaDB and Redis are untouched;
  * a Redis password reference that does not resolve fails the run and leaves the
    configuration and the running Redis as they were.

Needs root (else skipped, with the reason); the Debian root is built once and
cached under /var/cache/saltops-test (``SALTOPS_TEST_CACHE``), with the downloaded
packages.  Figures: docs/roles.md.
"""

import json
import os
import secrets
import shutil
import socket
import time
from pathlib import Path

import isolated_host
import pytest
import yaml
from states_saltlocal import PILLAR, STATES, lowstates, state_results

HERE = Path(__file__).resolve().parent
DATA_PILLAR = HERE / "infra" / "data_pillar.yml"
ROLES = ("db", "cache", "monitor")
SRV = "/srv/saltops"
SECRETS_FILE = "/etc/salt/saltops-secrets.yml"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(isolated_host.missing_tools() is not None, reason=str(isolated_host.missing_tools())),
]


def _minion_config(minion_id):
    return {
        "id": minion_id,
        "file_client": "local",
        "file_roots": {"base": [f"{SRV}/states"]},
        "pillar_roots": {"base": [f"{SRV}/fabricated", f"{SRV}/pillar"]},
        "ext_pillar": [{"stack": f"{SRV}/pillar/stack/stack.cfg"}],
        # No systemd in the root: should a package pull systemctl in, Salt would
        # otherwise switch to its systemd module in "offline" mode (docs/roles.md).
        "disable_modules": ["systemd_service"],
        "saltops_secrets": {"driver": "yaml", "files": [SECRETS_FILE]},
        "state_verbose": False,
        "log_level_logfile": "info",
    }


def _provision(root, pillar, password):
    """Put the state and pillar trees, the minion config and the secret into the root."""
    srv = root / SRV.lstrip("/")
    shutil.copytree(STATES, srv / "states")
    shutil.copytree(PILLAR, srv / "pillar")
    shutil.copytree(HERE / "infra", srv / "infra", ignore=shutil.ignore_patterns("__pycache__"))
    fabricated = srv / "fabricated"
    fabricated.mkdir()
    (fabricated / "top.sls").write_text(yaml.safe_dump({"base": {"*": ["saltops", "fabricated"]}}))
    (fabricated / "fabricated.sls").write_text(yaml.safe_dump(pillar))
    etc_salt = root / "etc" / "salt"
    etc_salt.mkdir(parents=True, exist_ok=True)
    (etc_salt / "minion").write_text(yaml.safe_dump(_minion_config(pillar["cmdb"]["hostname"])))
    secret_file = root / SECRETS_FILE.lstrip("/")
    secret_file.touch(mode=0o600)
    secret_file.write_text(yaml.safe_dump({"redis_password": password}))


def salt(ns, fun, *args, timeout=600):
    """``salt-call --local`` inside the host: (returncode, data, output)."""
    proc = ns.run(
        ["salt-call", "--local", "--out", "json", "--retcode-passthrough", fun, *args],
        timeout=timeout,
    )
    try:
        data = json.loads(proc.stdout)["local"] if proc.stdout.strip() else None
    except (ValueError, KeyError):
        data = None
    return proc.returncode, data, proc.stderr + proc.stdout


def _packages(ns):
    """The packages the rendered role states install."""
    code, data, output = salt(ns, "state.show_sls", ",".join(ROLES))
    assert code == 0 and isinstance(data, dict), output[-3000:]
    names = []
    for state in lowstates(data).values():
        if state["fun"] == "pkg.installed":
            names += state["args"].get("pkgs") or [state["args"]["name"]]
    return names


def _tarball():
    try:
        return isolated_host.root_tarball()
    except isolated_host.BootstrapUnavailable as exc:
        pytest.skip(f"no Debian root can be bootstrapped here: {exc}")


@pytest.fixture(scope="module")
def data_host():
    pillar = yaml.safe_load(DATA_PILLAR.read_text())
    password = secrets.token_urlsafe(18)
    timings = {}
    started = time.monotonic()
    tarball, built = _tarball()
    timings["root " + ("built" if built else "cached")] = time.monotonic() - started
    mark = time.monotonic()
    work, root = isolated_host.unpack(tarball)
    ns = isolated_host.Namespace(root, pillar["cmdb"]["hostname"], binds=[isolated_host.debs_bind()])
    try:
        ns.start()
        timings["unpack+start"] = time.monotonic() - mark
        mark = time.monotonic()
        _provision(root, pillar, password)
        packages = _packages(ns)
        isolated_host.fetch_packages(ns, root, packages)
        timings["download"] = time.monotonic() - mark
        mark = time.monotonic()
        first = salt(ns, "state.apply", ",".join(ROLES))
        timings["first apply"] = time.monotonic() - mark
        yield {
            "ns": ns,
            "root": root,
            "pillar": pillar,
            "password": password,
            "packages": packages,
            "first": first,
            "timings": timings,
        }
    finally:
        ns.stop()
        shutil.rmtree(work, ignore_errors=True)
        print("isolated host timings:", ", ".join(f"{k} {v:.1f}s" for k, v in timings.items()))


def _failed(ret):
    return {sid: r["comment"] for sid, r in state_results(ret).items() if not r["result"]}


def test_first_apply_installs_and_starts_everything(data_host):
    code, ret, output = data_host["first"]
    assert code == 0 and ret, output[-5000:]
    assert not _failed(ret)
    results = state_results(ret)
    for role in ROLES:
        installed = results[f"{role}-package-install-pkg-installed"]
        assert installed["changes"], f"{role}: packages were not installed by the state"
        assert results[f"{role}-config-file-file-managed"]["result"] is True
        assert results[f"{role}-service-running-service-running"]["result"] is True
    assert {"mariadb-server", "redis-server", "prometheus-node-exporter"} <= set(data_host["packages"])
    print("timings:", data_host["timings"], f"{len(results)} states")


def test_second_apply_changes_nothing(data_host):
    started = time.monotonic()
    code, ret, output = salt(data_host["ns"], "state.apply", ",".join(ROLES))
    assert code == 0, output[-5000:]
    changed = {sid: r["changes"] for sid, r in state_results(ret).items() if r["changes"]}
    assert changed == {}
    assert not _failed(ret)
    print(f"second apply: {time.monotonic() - started:.1f}s")


def test_testinfra_checks_pass_inside_the_host(data_host):
    ns = data_host["ns"]
    proc = ns.run(
        [
            "/opt/salt/bin/python",
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--hosts=local://",
            "--rootdir",
            f"{SRV}/infra",
            "--confcutdir",
            f"{SRV}/infra",
            *(f"{SRV}/infra/infra_{role}.py" for role in ROLES),
        ],
        env={"SALTOPS_INFRA_PILLAR": f"{SRV}/fabricated/fabricated.sls"},
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
    assert " passed" in proc.stdout and "failed" not in proc.stdout and "skipped" not in proc.stdout
    print(proc.stdout.strip().splitlines()[-1])


def _mysql(ns, query):
    return ns.check(["mysql", "-N", "-B", "-e", query]).stdout.split()


def test_replica_from_cmdb_restarts_read_only(data_host):
    """The CMDB names a primary for this host: the config turns read-only and MariaDB restarts."""
    ns = data_host["ns"]
    assert _mysql(ns, "SELECT @@read_only") == ["0"]
    cmdb = {"apps": {"mysql": {"port": 3306, "replica_of": "saltops-iac-db0"}}}
    code, ret, output = salt(ns, "state.apply", "db", "pillar=" + json.dumps({"cmdb": cmdb}))
    assert code == 0, output[-3000:]
    results = state_results(ret)
    assert results["db-config-file-file-managed"]["changes"]
    assert results["db-service-running-service-running"]["changes"]  # restarted by the watch
    assert _mysql(ns, "SELECT @@read_only, @@log_slave_updates") == ["1", "1"]
    conf = ns.check(["cat", "/etc/mysql/mariadb.conf.d/60-saltops.cnf"]).stdout
    assert "# Replica of saltops-iac-db0 (from the CMDB)." in conf and "relay_log = relay-bin" in conf
    # Back to what the CMDB record says: a primary again.
    code, ret, output = salt(ns, "state.apply", "db")
    assert code == 0, output[-3000:]
    assert _mysql(ns, "SELECT @@read_only") == ["0"]


def test_pillar_holds_only_the_password_reference(data_host):
    ns = data_host["ns"]
    code, data, output = salt(ns, "pillar.get", "cache:requirepass", "unmask=True")
    assert code == 0, output
    assert data == "sdb://saltops_secrets/redis_password"
    conf = ns.check(["cat", "/etc/redis/redis.conf"]).stdout
    assert f"requirepass {data_host['password']}" in conf
    refused = ns.run(["redis-cli", "-h", "127.0.0.1", "ping"])
    assert "NOAUTH" in refused.stdout + refused.stderr


BEACONS_ONCE = r"""
import json, salt.beacons, salt.config, salt.minion
opts = salt.config.minion_config("/etc/salt/minion")
opts["loop_interval"] = 10 ** 6   # every beacon's interval is over on the second pass
minion = salt.minion.SMinion(opts)
beacons = salt.beacons.Beacon(minion.opts, minion.functions)
config = minion.opts["pillar"]["beacons"]
beacons.process(config, minion.opts["grains"])
print(json.dumps(beacons.process(config, minion.opts["grains"])))
"""


def test_role_beacons_in_pillar_and_reporting(data_host):
    ns = data_host["ns"]
    code, data, output = salt(ns, "pillar.get", "beacons", "unmask=True")
    assert code == 0, output
    assert {
        "load",
        "memusage",
        "diskusage",
        "saltops_db_services",
        "saltops_db_disk",
        "saltops_cache_services",
        "saltops_monitor_services",
    } <= set(data)
    assert "saltops_web_services" not in data and "saltops_lb_services" not in data
    # Salt's own beacon loop, run twice inside the host: the service beacons of the
    # three roles see their daemons running.
    proc = ns.run(["/opt/salt/bin/python", "-c", BEACONS_ONCE], timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    events = json.loads(proc.stdout.strip().splitlines()[-1])
    running = {}
    for event in events:
        assert event["tag"].startswith("salt/beacon/saltops-iac-data1/saltops_"), event
        for name, status in event["data"].items():
            if isinstance(status, dict) and "running" in status:
                running[name] = status["running"]
    assert running == {"mariadb": True, "redis-server": True, "prometheus-node-exporter": True}, events


def _connects(address, port):
    with socket.socket() as sock:
        sock.settimeout(2)
        return sock.connect_ex((address, port)) == 0


def test_nothing_leaks_to_this_machine(data_host):
    ip = data_host["pillar"]["cmdb"]["ip"]
    for port in (3306, 6379, 9100):
        assert not _connects(ip, port), f"{ip}:{port} answers on this machine"
    # Inside, the same addresses answer.
    ns = data_host["ns"]
    listening = ns.check(["ss", "-Htln"]).stdout
    for port in (3306, 6379, 9100):
        assert f":{port} " in listening, listening
    # This machine's own Redis, if it runs, is not the password-protected one.
    if _connects("127.0.0.1", 6379):
        with socket.create_connection(("127.0.0.1", 6379), timeout=2) as sock:
            sock.sendall(b"PING\r\n")
            assert sock.recv(64).startswith(b"+PONG")


def test_unresolved_password_reference_changes_nothing(data_host):
    ns = data_host["ns"]
    before = ns.check(["sha256sum", "/etc/redis/redis.conf"]).stdout
    pid_before = ns.check(["pidof", "redis-server"]).stdout.split()
    code, ret, output = salt(
        ns, "state.apply", "cache", 'pillar={"cache": {"requirepass": "sdb://saltops_secrets/no_such_key"}}'
    )
    assert code != 0, output[-3000:]
    results = state_results(ret)
    refused = results["cache-config-file-test-fail-without-changes"]
    assert refused["result"] is False and "sdb://saltops_secrets/no_such_key" in refused["comment"]
    assert "cache-config-file-file-managed" not in results
    assert results["cache-service-running-service-running"]["result"] is False
    assert ns.check(["sha256sum", "/etc/redis/redis.conf"]).stdout == before
    assert ns.check(["pidof", "redis-server"]).stdout.split() == pid_before
    pong = ns.run(["redis-cli", "-h", "127.0.0.1", "--no-auth-warning", "-a", data_host["password"], "ping"])
    assert pong.stdout.strip() == "PONG"


def test_teardown_leaves_no_process_or_mount(tmp_path):
    """A host of its own, stopped: its processes are gone and no mount is left."""
    tarball, _built = _tarball()
    work, root = isolated_host.unpack(tarball, base=tmp_path)
    ns = isolated_host.Namespace(root, "saltops-iac-probe")
    ns.start()
    ns.check(["sh", "-c", "sleep 600 >/dev/null 2>&1 &"])
    pids = ns.pids()
    assert len(pids) >= 2  # the reaper and the sleep
    mounts_inside = ns.check(["cat", "/proc/mounts"]).stdout
    assert " /proc proc " in mounts_inside and " /run tmpfs " in mounts_inside
    ns.stop()
    time.sleep(0.2)
    assert not [pid for pid in pids if os.path.exists(f"/proc/{pid}")]
    assert str(root) not in Path("/proc/self/mountinfo").read_text()
    shutil.rmtree(work)
