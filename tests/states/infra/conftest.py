"""What the testinfra checks in this folder expect: the pillar the host was applied with.

``SALTOPS_INFRA_PILLAR`` names a YAML file holding it (default: ``lab_pillar.yml``
beside this file); run the checks with testinfra's ``--hosts`` (``local://``,
``docker://<id>``, ``ssh://host``...).  They are named ``infra_*.py`` so that the
normal test run does not collect them: they only make sense after an apply.
"""

import os
from pathlib import Path

import pytest
import yaml


@pytest.fixture(scope="session")
def pillar():
    path = os.environ.get("SALTOPS_INFRA_PILLAR") or str(Path(__file__).with_name("lab_pillar.yml"))
    return yaml.safe_load(Path(path).read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def os_family(host):
    return (
        "RedHat"
        if host.system_info.distribution.lower() in ("rocky", "redhat", "centos", "almalinux")
        else "Debian"
    )


@pytest.fixture(scope="session")
def app(pillar):
    """(name, settings) of the first app of the host's CMDB record."""
    name = min(pillar["cmdb"]["apps"])
    return name, pillar["cmdb"]["apps"][name]
