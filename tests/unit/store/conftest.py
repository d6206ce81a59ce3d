"""The store tests' fixtures come from tests/support (the functional tier uses them too)."""

from tests.support.stores import store, store_url  # noqa: F401
