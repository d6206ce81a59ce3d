"""The architecture's rules, checked on the code (docs/architecture.md draws the rooms).

The import contracts in ``pyproject.toml`` are run through import-linter; the
Salt adapters are plain files that Salt's loader reads (not packages), so their
rules are checked here from their source.
"""

import ast
import logging
import os
import re

import pytest
from importlinter.cli import lint_imports

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ADAPTERS = [
    os.path.join(folder, name)
    for folder in ("_runners", "_engines", "_output")
    for name in sorted(os.listdir(os.path.join(REPO, folder)))
    if name.endswith(".py")
] + ["ext_pillar_cmdb.py"]


def _imports(path):
    with open(os.path.join(REPO, path), encoding="utf-8") as fh:
        tree = ast.parse(fh.read(), path)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.module


def test_import_contracts_hold(capsys):
    # In process (no subprocess in the unit tier); import-linter prints the broken chains.
    # It configures logging with dictConfig, which disables every logger that exists by then:
    # put them back, or the log assertions of the tests that run later in this process fail.
    disabled = {logger: logger.disabled for logger in list(logging.root.manager.loggerDict.values())
                if isinstance(logger, logging.Logger)}
    try:
        code = lint_imports(config_filename=os.path.join(REPO, "pyproject.toml"), no_cache=True, no_logo=True)
    finally:
        for logger, was in disabled.items():
            logger.disabled = was
    assert code == 0, capsys.readouterr().out


@pytest.mark.parametrize("path", ADAPTERS)
def test_adapters_leave_the_database_to_the_core(path):
    found = [name for name in _imports(path) if name == "sqlalchemy" or name.startswith("sqlalchemy.")]
    assert not found, f"{path} imports {found}: queries belong in saltops/"


# Public despite the underscore: SQLAlchemy documents Row._mapping as its API.
PUBLIC_UNDERSCORED = {"_mapping"}


def _defined_here(tree):
    """Underscored names this module defines itself (functions, classes, attributes it sets)."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            names.add(node.attr)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
    return {name for name in names if name.startswith("_")}


def test_the_core_calls_no_salt_dunder_and_no_private_name_of_another_module():
    dunder = re.compile(r"__(salt|opts|pillar|grains|context|jid_event|user)__")
    problems = []
    for root, _dirs, files in os.walk(os.path.join(REPO, "saltops")):
        if "_tree" in root:
            continue
        for name in files:
            if not name.endswith(".py"):
                continue
            path = os.path.join(root, name)
            with open(path, encoding="utf-8") as fh:
                tree = ast.parse(fh.read(), path)
            own = _defined_here(tree) | PUBLIC_UNDERSCORED
            for node in ast.walk(tree):
                if isinstance(node, ast.Name) and dunder.fullmatch(node.id):
                    problems.append(f"{os.path.relpath(path, REPO)}:{node.lineno}: {node.id}")
                if (
                    isinstance(node, ast.Attribute)
                    and node.attr.startswith("_")
                    and not node.attr.startswith("__")
                    and node.attr not in own
                ):
                    problems.append(f"{os.path.relpath(path, REPO)}:{node.lineno}: {ast.unparse(node)}")
    assert not problems, "\n".join(sorted(problems))
