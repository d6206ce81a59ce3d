"""`pip install .` ships the Salt trees and the loader entry point serves them."""

import configparser
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(ROOT)],
        check=True,
        capture_output=True,
    )
    (path,) = out.glob("saltops-*.whl")
    return path


def test_wheel_carries_every_tree_and_the_entry_point(wheel):
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        entry_points = next(n for n in names if n.endswith("entry_points.txt"))
        parser = configparser.ConfigParser()
        parser.read_string(zf.read(entry_points).decode())
        pillar = zf.read("saltops/_tree/_pillar/ext_pillar_cmdb.py").decode()
    assert parser["salt.loader"]["saltops"] == "saltops.loader:loader_dirs"
    assert parser["console_scripts"]["saltops"] == "saltops.cli:main"
    for folder in ("_runners", "_modules", "states", "reactor", "salt"):
        shipped = {p.name for p in (ROOT / folder).rglob("*") if p.is_file() and "__pycache__" not in p.parts}
        in_wheel = {Path(n).name for n in names if n.startswith(f"saltops/_tree/{folder}/")}
        assert shipped <= in_wheel, f"{folder}: missing {sorted(shipped - in_wheel)}"
    # The symlink in _pillar/ is shipped as the module itself, not as a link.
    assert pillar == (ROOT / "ext_pillar_cmdb.py").read_text()
    assert "saltops/store/migrations/versions/core_0001_cmdb_audit_outbox.py" in names


def test_installed_package_serves_its_own_copies(wheel, tmp_path):
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
        check=True,
        capture_output=True,
    )
    code = "import json, saltops.loader as l; print(json.dumps(l.loader_dirs()))"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env={"PYTHONPATH": str(target)}, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    dirs = json.loads(out.stdout)
    for kind in ("runners", "modules", "pillar"):
        (path,) = dirs[kind]
        assert path.startswith(str(target / "saltops" / "_tree")), path
        assert Path(path).is_dir()
    assert (Path(dirs["pillar"][0]) / "ext_pillar_cmdb.py").is_file()


def test_checkout_serves_its_top_level_trees():
    from saltops.loader import loader_dirs

    dirs = loader_dirs()
    assert dirs["runners"] == [str(ROOT / "_runners")]
    assert dirs["pillar"] == [str(ROOT / "_pillar")]
