"""salt-lint over the whole state tree: zero findings."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from states_saltlocal import STATES

SALT_LINT = shutil.which("salt-lint", path=str(Path(sys.executable).parent)) or shutil.which("salt-lint")


@pytest.mark.skipif(SALT_LINT is None, reason="salt-lint is not installed (pip install salt-lint)")
def test_salt_lint_finds_nothing():
    files = sorted(str(p) for p in STATES.rglob("*.sls"))
    assert len(files) > 50  # every role, its parts and their clean twins
    proc = subprocess.run([SALT_LINT, *files], capture_output=True, text=True, check=False)
    assert proc.returncode == 0 and proc.stdout.strip() == "", proc.stdout + proc.stderr


@pytest.mark.skipif(SALT_LINT is None, reason="salt-lint is not installed (pip install salt-lint)")
def test_salt_lint_would_catch_a_finding(tmp_path):
    # The same command flags a known bad pattern, so the test above cannot pass vacuously.
    bad = tmp_path / "bad.sls"
    bad.write_text("bad-file-mode:\n  file.managed:\n    - name: /tmp/x\n    - mode: 644\n")
    proc = subprocess.run([SALT_LINT, str(bad)], capture_output=True, text=True, check=False)
    assert proc.returncode != 0 and "mode" in proc.stdout.lower()
