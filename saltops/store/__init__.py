"""The SaltOps data store: one schema on MySQL/MariaDB or SQLite.

Use :func:`get_store` with the ``db_url`` of the ``saltops:`` config; every write
goes through :meth:`Store.begin`, one transaction per change.
"""

from saltops.store.engine import Store, get_store

__all__ = ["Store", "get_store"]
