"""Fixtures: a real Salt loader (``salt.client.Caller``, file_client local) and artifacts."""

import os
import shutil
import sys
import tempfile

import pytest
import salt.client
import salt.config

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import deploy_appkit


@pytest.fixture(scope="module")
def workdir():
    # Short path: Salt's AF_UNIX sockets live under the root dir.
    path = tempfile.mkdtemp(prefix="sodf-", dir="/tmp")
    yield path
    deploy_appkit.stop_apps(path)
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def file_root(workdir):
    path = os.path.join(workdir, "files")
    os.makedirs(os.path.join(path, "artifacts"))
    return path


@pytest.fixture(scope="module")
def caller(workdir, file_root):
    root = os.path.join(workdir, "minion")
    os.makedirs(os.path.join(workdir, "pillar"))
    deploy_appkit.write_hooks_pillar(os.path.join(workdir, "pillar"))
    os.makedirs(root)
    conf = os.path.join(root, "minion")
    with open(conf, "w") as fh:
        fh.write(
            f"root_dir: {root}\n"
            "id: func-minion\n"
            "file_client: local\n"
            f"file_roots: {{base: [{file_root}]}}\n"
            f"pillar_roots: {{base: [{workdir}/pillar]}}\n"
            f"log_file: {root}/minion.log\n"
        )
    return salt.client.Caller(mopts=salt.config.minion_config(conf))


@pytest.fixture(scope="module")
def artifacts(workdir):
    path = os.path.join(workdir, "www")
    os.makedirs(path)
    with deploy_appkit.ArtifactServer(path) as server:
        yield server


@pytest.fixture
def app_base(workdir, request):
    # Parametrized tests share a name's first characters: a unique folder each.
    os.makedirs(os.path.join(workdir, "apps"), exist_ok=True)
    base = tempfile.mkdtemp(prefix=request.node.name[:32] + "-", dir=os.path.join(workdir, "apps"))
    yield base
    deploy_appkit.stop_apps(base)
