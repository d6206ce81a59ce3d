"""Fixtures of the store tests that need more than one process."""

from tests.support.stores import store, store_url  # noqa: F401
