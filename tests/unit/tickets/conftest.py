"""Ticket tests: a store on SQLite and MariaDB (shared per session, emptied per test) with the kit's people."""

import time

import pytest

from saltops import config
from saltops.cmdb import repo
from saltops.cmdb.model import Rules
from saltops.org import people
from saltops.tickets import templates
from tests.support import tickets_kit
from tests.support.hosts import host_record


class Clock:
    """A clock the tests move by hand (delegations end, approvals take time)."""

    def __init__(self):
        self.now = time.time()

    def __call__(self):
        return self.now


def prepare(store):
    tickets_kit.empty(store)
    if not getattr(store, "_ticket_hosts", False):
        repo.write(store, "tester", [host_record("web1.example.com"), host_record("web2.example.com")],
                   rules=Rules.from_config(config.load({})), mode="upsert")
        store._ticket_hosts = True
    people.load(store, "tester", tickets_kit.ORG, time.time())
    templates.save(store, "tester", tickets_kit.MAINT, time.time())
    return store


@pytest.fixture(params=["sqlite", pytest.param("mysql", marks=pytest.mark.mysql)])
def store(request, backend_stores):
    return prepare(backend_stores(request.param, "tickets"))


@pytest.fixture
def sqlite_store(backend_stores):
    return prepare(backend_stores("sqlite", "tickets"))


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def executor():
    return tickets_kit.Executor()
