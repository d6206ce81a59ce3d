import sqlalchemy as sa

from saltops.store import migrate
from saltops.store.engine import Store


def _tables(store):
    return set(sa.inspect(store.engine).get_table_names())


def test_upgrade_creates_every_branch_head_and_is_idempotent(store_url):
    store = Store(store_url)
    with store.connect() as conn:
        assert not migrate.up_to_date(conn)
    store.migrate()
    with store.connect() as conn:
        assert migrate.up_to_date(conn) and migrate.heads() <= migrate.applied(conn)
    assert {"cmdb_hosts", "audit_log", "event_outbox", "saltops_meta", "alembic_version"} <= _tables(store)
    with store.connect() as conn:
        assert conn.execute(sa.text("SELECT value FROM saltops_meta WHERE name='cmdb_version'")).scalar() == 0
    # A second upgrade neither fails nor resets data.
    with store.begin() as conn:
        conn.execute(sa.text("UPDATE saltops_meta SET value = 7 WHERE name='cmdb_version'"))
    store.migrate()
    with store.connect() as conn:
        assert conn.execute(sa.text("SELECT value FROM saltops_meta WHERE name='cmdb_version'")).scalar() == 7
    store.dispose()


def test_every_branch_depends_on_core():
    # Each subsystem owns a branch; all of them must build on the core tables.
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(migrate._config())
    bases = [script.get_revision(b) for b in script.get_bases()]
    assert any(b.revision == "core_0001" for b in bases)
    for base in bases:
        if base.revision != "core_0001":
            deps = base.dependencies if isinstance(base.dependencies, tuple) else (base.dependencies,)
            assert "core_0001" in deps, f"{base.revision} must declare depends_on='core_0001'"
