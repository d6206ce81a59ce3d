"""Apply base, web and lb for real on this machine with ``salt-call --local``.

Needs root and apt (a Debian host or container); skipped with the reason
otherwise.  The host plays one CMDB record that is base, web and lb at once
(``infra/lab_pillar.yml``): nginx, the gunicorn app and haproxy listen only on
127.0.10.x addresses and non-default ports, so nothing else on the machine is
disturbed.  What is checked:
  * the first apply succeeds, the second changes nothing (idempotence);
  * the testinfra checks in ``infra/`` pass against ``local://`` (packages, files,
    listening ports, an HTTP request through haproxy and nginx to the app);
  * an invalid generated haproxy config is refused by ``haproxy -c`` and the
    running balancer keeps serving the previous one;
  * too few backends from the CMDB leaves the config alone too;
  * at teardown the services are stopped and the config clean twins remove
    what the apply wrote (files, the test user).
"""

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from states_saltlocal import salt_call, state_results, write_config

HERE = Path(__file__).resolve().parent
LAB_PILLAR = HERE / "infra" / "lab_pillar.yml"
HAPROXY_CFG = Path("/etc/haproxy/haproxy.cfg")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not hasattr(os, "geteuid") or os.geteuid() != 0, reason="applying states for real needs root"
    ),
    pytest.mark.skipif(shutil.which("apt-get") is None, reason="no apt-get: the local apply targets Debian"),
]


def _sysctl(key):
    return Path("/proc/sys/" + key.replace(".", "/")).read_text().split()[0]


def _timezone():
    target = os.path.realpath("/etc/localtime")
    return target.split("/zoneinfo/", 1)[1] if "/zoneinfo/" in target else "Etc/UTC"


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """Configure a masterless minion for the lab host, apply everything, clean up after."""
    root = tmp_path_factory.mktemp("apply")
    pillar = yaml.safe_load(LAB_PILLAR.read_text())
    # Machine-specific base settings: keep this machine's timezone and kernel
    # settings as they are, and write the minion drop-in under the test root.
    pillar["base"].update(
        timezone=_timezone(),
        sysctl={key: int(_sysctl(key)) for key in ("net.core.somaxconn", "net.ipv4.tcp_max_syn_backlog")},
        minion={"config_file": str(root / "minion.d" / "90-saltops.conf")},
    )
    extra = {}
    if not Path("/run/systemd/system").is_dir() and shutil.which("systemctl"):
        # systemctl is installed but systemd is not PID 1 (a container): Salt's
        # systemd service module would load in "offline" mode, where service
        # states do nothing.  Use the init.d scripts instead.
        extra["disable_modules"] = ["systemd_service"]
    conf = write_config(root, pillar["cmdb"]["hostname"], pillar, extra=extra)
    pillar_file = root / "pillar" / "fabricated.sls"

    update = subprocess.run(
        ["apt-get", "update", "-qq"], capture_output=True, text=True, timeout=600, check=False
    )
    assert update.returncode == 0, update.stderr

    started = time.monotonic()
    first = salt_call(conf, "state.apply")
    first_seconds = time.monotonic() - started
    try:
        yield {
            "conf": conf,
            "pillar": pillar,
            "pillar_file": pillar_file,
            "first": first,
            "first_seconds": first_seconds,
        }
    finally:
        # Stop what the apply started.  Not through the service clean twins: they
        # also disable start at boot, which Salt's debian_service cannot undo on a
        # container without insserv/mountkernfs, and the next run would fail.
        for service in ("haproxy", "nginx", "supervisor"):
            salt_call(conf, "service.stop", service)
        cleanup = salt_call(conf, "state.apply", "web.config.clean,base.config.clean")
        print("clean:", cleanup[0], cleanup[2][-2000:] if cleanup[0] else "")


def _failed(ret):
    return {sid: r["comment"] for sid, r in state_results(ret).items() if not r["result"]}


def test_first_apply_succeeds(lab):
    code, ret, output = lab["first"]
    assert code == 0 and ret, output[-5000:]
    assert not _failed(ret)
    results = state_results(ret)
    for sid in (
        "base-package-install-pkg-installed",
        "web-config-vhosts-file-managed-shop",
        "lb-config-file-file-managed",
        "lb-service-running-service-running",
    ):
        assert sid in results, sid
    slowest = sorted(results.items(), key=lambda item: -item[1].get("duration", 0))[:5]
    print(
        f"first apply: {lab['first_seconds']:.1f}s, {len(results)} states; slowest:",
        ", ".join(f"{sid} {r.get('duration', 0) / 1000:.1f}s" for sid, r in slowest),
    )


def test_second_apply_changes_nothing(lab):
    code, ret, output = salt_call(lab["conf"], "state.apply")
    assert code == 0, output[-5000:]
    changed = {sid: r["changes"] for sid, r in state_results(ret).items() if r["changes"]}
    assert changed == {}
    assert not _failed(ret)


def run_infra(lab, *names):
    files = [str(HERE / "infra" / f"infra_{name}.py") for name in names]
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--hosts=local://",
            "--rootdir",
            str(HERE / "infra"),
            "--confcutdir",
            str(HERE / "infra"),
            *files,
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=dict(os.environ, SALTOPS_INFRA_PILLAR=str(lab["pillar_file"])),
    )
    return proc


def test_testinfra_checks_pass(lab):
    proc = run_infra(lab, "base", "web", "lb")
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
    assert " passed" in proc.stdout and "failed" not in proc.stdout


def _through_lb(lab):
    pillar = lab["pillar"]
    app = pillar["cmdb"]["apps"]["shop"]
    address = pillar["cmdb"]["lines"]["telecom"]
    for _ in range(20):
        proc = subprocess.run(
            [
                "curl",
                "-fsS",
                "--max-time",
                "5",
                "-H",
                f"Host: {app['server_name']}",
                f"http://{address}:{pillar['lb']['frontend']['port']}{app['health_url']}",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode == 0:
            return json.loads(proc.stdout)
        time.sleep(0.5)
    raise AssertionError(f"no answer through the balancer: {proc.stderr}")


def _digest():
    return hashlib.sha256(HAPROXY_CFG.read_bytes()).hexdigest()


def test_invalid_balancer_config_is_refused_and_old_one_keeps_serving(lab):
    before = _digest()
    assert _through_lb(lab)["app"] == "shop"
    # A backend port haproxy cannot accept makes the generated file invalid.
    code, ret, output = salt_call(lab["conf"], "state.apply", "lb", 'pillar={"lb": {"backend_port": 99999}}')
    assert code != 0, output[-3000:]
    results = state_results(ret)
    refused = results["lb-config-file-file-managed"]
    assert refused["result"] is False and refused["changes"] == {}
    assert (
        "check_cmd" in refused["comment"] or "Failed" in refused["comment"] or "haproxy" in refused["comment"]
    )
    assert results["lb-service-running-service-running"]["result"] is False  # no reload of a refused config
    assert _digest() == before
    assert _through_lb(lab)["app"] == "shop"


def test_too_few_backends_leave_config_alone(lab):
    before = _digest()
    code, ret, _output = salt_call(
        lab["conf"],
        "state.apply",
        "lb",
        'pillar={"cmdb_lb": {"lb": {"serves": "web", "env": "lab", "backends": []}}}',
    )
    assert code != 0
    fail = state_results(ret)["lb-config-file-test-fail-without-changes"]
    assert fail["result"] is False and "fewer than lb:min_backends" in fail["comment"]
    assert _digest() == before
    assert _through_lb(lab)["host"] == "saltops-iac-web1"
