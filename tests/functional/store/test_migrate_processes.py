"""Several master workers migrating one database at once: the migration lock lets one do it."""

import multiprocessing

import sqlalchemy as sa

from saltops.store import migrate
from saltops.store.engine import Store


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
