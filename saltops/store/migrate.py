"""Schema migrations (Alembic), run programmatically.

Each subsystem owns an Alembic branch with its own label, so parts of SaltOps
add tables without touching each other's history; :func:`upgrade` brings every
branch to its head.  Several master workers may start at once, so the upgrade
runs under a lock: ``GET_LOCK`` on MySQL, a file lock beside a SQLite file.
"""

import fcntl
import os
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def _config():
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def _script():
    return ScriptDirectory.from_config(_config())


def heads():
    """The head revision of every branch."""
    return set(_script().get_heads())


def current(conn):
    """The revisions recorded in ``alembic_version`` (one per branch tip)."""
    return set(MigrationContext.configure(conn).get_current_heads())


def applied(conn):
    """Every revision in effect: the recorded tips and all they build on.

    Alembic records only branch tips; a branch that ``depends_on`` the core
    makes ``core_0001`` implicit, so it never shows in ``current``.
    """
    script = _script()
    seen = set()
    stack = list(current(conn))
    while stack:
        rev = script.get_revision(stack.pop())
        if rev is None or rev.revision in seen:
            continue
        seen.add(rev.revision)
        for parents in (rev.down_revision, rev.dependencies):
            if isinstance(parents, str):
                stack.append(parents)
            elif parents:
                stack.extend(parents)
    return seen


def up_to_date(conn):
    return heads() <= applied(conn)


@contextmanager
def _migration_lock(store):
    if store.dialect == "mysql":
        with store.engine.connect() as conn:
            got = conn.execute(sa.text("SELECT GET_LOCK('saltops_migrate', 120)")).scalar()
            if got != 1:
                raise RuntimeError("timed out waiting for another process's schema migration")
            try:
                yield
            finally:
                conn.execute(sa.text("SELECT RELEASE_LOCK('saltops_migrate')"))
    elif store.dialect == "sqlite" and store.engine.url.database not in (None, "", ":memory:"):
        path = os.path.abspath(store.engine.url.database) + ".migrate-lock"
        with open(path, "a+") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)
    else:
        yield


def upgrade(store):
    """Upgrade every branch to its head; cheap when already there."""
    with store.connect() as conn:
        if up_to_date(conn):
            return
    with _migration_lock(store):
        with store.engine.begin() as conn:
            if up_to_date(conn):
                return
            cfg = _config()
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "heads")
