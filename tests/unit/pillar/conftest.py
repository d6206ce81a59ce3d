"""The pillar unit tests' fixtures come from tests/support (the functional tier uses them too)."""

from tests.support.pillar_fixtures import clock, events, make_cache, sqlite_url, store  # noqa: F401
