import multiprocessing

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


def _upgrade_in_child(url, queue):
    try:
        Store(url).migrate()
        queue.put("ok")
    except Exception as err:  # reported to the parent
        queue.put(repr(err))


def test_concurrent_upgrades_from_several_processes(store_url):
    # Master workers start together; the migration lock must let exactly one
    # of them create the schema and the others see it done.
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_upgrade_in_child, args=(store_url, queue)) for _ in range(3)]
    for p in procs:
        p.start()
    results = [queue.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(30)
    assert results == ["ok", "ok", "ok"]
    store = Store(store_url)
    with store.connect() as conn:
        assert migrate.up_to_date(conn) and migrate.heads() <= migrate.applied(conn)
        assert conn.execute(sa.text("SELECT COUNT(*) FROM saltops_meta WHERE name='cmdb_version'")).scalar() == 1
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
