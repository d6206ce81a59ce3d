"""Fixtures shared by the pillar tests of every tier: a SQLite CMDB, a clock, an event recorder, caches.

A tier's ``conftest.py`` imports them (``from tests.support.pillar_fixtures import *``).
"""

import pytest

from saltops.pillar import cache as pillar_cache
from saltops.store.engine import Store


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now=1_800_000_000.0):
        self.now = now

    def __call__(self):
        return self.now

    def advance(self, seconds):
        self.now += seconds


class Events:
    """Records fired events; ``fail = True`` makes the bus refuse them."""

    def __init__(self):
        self.fired = []
        self.fail = False

    def __call__(self, tag, data):
        if self.fail:
            return False
        self.fired.append((tag, data))
        return True

    def tags(self):
        return [tag for tag, _ in self.fired]


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def events():
    return Events()


@pytest.fixture
def sqlite_url(tmp_path):
    return f"sqlite:///{tmp_path / 'cmdb.db'}"


@pytest.fixture
def store(sqlite_url):
    s = Store(sqlite_url)
    s.migrate()
    yield s
    s.dispose()


@pytest.fixture
def make_cache(tmp_path, clock, events):
    made = []

    def make(url, **kwargs):
        kwargs.setdefault("snapshot_file", str(tmp_path / "snap" / "cmdb.msgpack"))
        kwargs.setdefault("fire", events)
        kwargs.setdefault("clock", clock)
        cache = pillar_cache.SnapshotCache(url, **kwargs)
        made.append(cache)
        return cache

    yield make
    for cache in made:
        cache.forget()
