"""kitchen.yml's structure: docker driver, salt_solo over states/ + pillar/,
Debian 12 and Rocky Linux 9, one suite per role verified by the testinfra checks."""

import shlex

import pytest
import yaml
from states_saltlocal import PILLAR, REPO, STATES

ROLES = ["base", "web", "lb", "db", "cache", "monitor"]


@pytest.fixture(scope="module")
def kitchen():
    return yaml.safe_load((REPO / "kitchen.yml").read_text(encoding="utf-8"))


def test_driver_and_platforms(kitchen):
    assert kitchen["driver"]["name"] == "docker"
    images = {p["name"]: p["driver"]["image"] for p in kitchen["platforms"]}
    assert images == {"debian-12": "debian:12", "rockylinux-9": "rockylinux/rockylinux:9"}
    for platform in kitchen["platforms"]:
        # the containers boot systemd, as the hosts the formulas target do
        assert (
            "systemd" in platform["driver"]["run_command"]
            or platform["driver"]["run_command"] == "/usr/sbin/init"
        )


def test_salt_solo_over_states_and_pillar(kitchen):
    prov = kitchen["provisioner"]
    assert prov["name"] == "salt_solo" and prov["is_file_root"] and prov["state_top_from_file"]
    extra = prov["salt_minion_extra_config"]
    sandbox = "/tmp/kitchen/srv/salt/"
    [file_root] = extra["file_roots"]["base"]
    assert file_root == sandbox + "states" and (STATES / "top.sls").is_file()
    assert sandbox + "pillar" in extra["pillar_roots"]["base"] and (PILLAR / "top.sls").is_file()
    [stack] = extra["ext_pillar"]
    assert stack["stack"] == sandbox + "pillar/stack/stack.cfg" and (PILLAR / "stack" / "stack.cfg").is_file()
    for target in prov["pillars_from_files"].values():
        assert (REPO / target).is_file(), target
    assert prov["pillars"]["top.sls"]["base"]["*"] == ["saltops", "fabricated", "suite"]
    assert ".git" in prov["salt_copy_filter"] and ".venv" in prov["salt_copy_filter"]


def test_one_suite_per_role_verified_by_testinfra(kitchen):
    suites = {s["name"]: s for s in kitchen["suites"]}
    assert sorted(suites) == sorted(ROLES)
    for role, suite in suites.items():
        roles = suite["provisioner"]["pillars"]["suite.sls"]["cmdb"]["roles"]
        assert role in roles and "base" in roles
        assert (STATES / role / "init.sls").is_file()
        words = shlex.split(suite["verifier"]["command"])
        assert "pytest" in words and "--sudo" in words
        assert any(w.startswith("--hosts=ssh://") for w in words)
        checks = [w for w in words if w.startswith("tests/states/infra/infra_")]
        assert f"tests/states/infra/infra_{role}.py" in checks
        for check in checks:
            assert (REPO / check).is_file(), check
