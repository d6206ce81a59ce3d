"""Master opts on SQLite for the ticket and org runners through Salt's own loaders (no daemons)."""

from tests.functional.tasks.conftest import opts, runners  # noqa: F401  (the same master opts and loader)
