"""A write refused for want of space is a StoreFull that says where to free it, on both backends.

SQLite's full disk is shown on a real filesystem in tests/unit/notify/test_disk_full.py; here
MariaDB's "table is full" (ER_RECORD_FILE_FULL, 1114), which InnoDB also answers when its disk
or table space is full, comes from a real server: a MEMORY table that outgrows
``max_heap_table_size``.
"""

import pytest
import sqlalchemy as sa

from saltops.errors import StoreFull, StoreUnavailable
from saltops.store.engine import Store


@pytest.mark.mysql
def test_mariadb_table_full_is_store_full(mysql_database):
    store = Store(mysql_database.url)
    try:
        with store.begin() as conn:
            conn.execute(sa.text("SET SESSION max_heap_table_size = 16384"))
            conn.execute(sa.text("CREATE TABLE small (id INT PRIMARY KEY, pad CHAR(200)) ENGINE=MEMORY"))
        with pytest.raises(StoreFull) as err:
            with store.begin() as conn:
                for i in range(10000):
                    conn.execute(sa.text("INSERT INTO small VALUES (:i, 'x')"), {"i": i})
        text = str(err.value)
        assert "the disk is full" in text and "is full" in text.split("(", 1)[1]
        assert f"database server {store.engine.url.host}:" in text and "free space" in text
        assert isinstance(err.value, StoreUnavailable)  # callers that wait for the database wait for room too
    finally:
        store.dispose()


def test_other_errors_are_not_taken_for_a_full_disk(tmp_path):
    store = Store(f"sqlite:///{tmp_path}/saltops.db")
    with pytest.raises(sa.exc.OperationalError) as err:
        with store.begin() as conn:
            conn.execute(sa.text("INSERT INTO no_such_table VALUES (1)"))
    assert not isinstance(err.value, StoreUnavailable)
    store.dispose()
