"""A master worker forked after the cache was filled: its own connections, new changes seen."""

import multiprocessing
import os

from tests.support.pillar_hosts import host, write


def _child(cache, conn):
    try:
        view = cache.current()
        conn.send((view.snapshot.version, view.snapshot.record("web02.example.com") is not None, os.getpid()))
    except Exception as err:  # noqa: BLE001  (reported to the parent)
        conn.send(("error", repr(err), os.getpid()))
    finally:
        conn.close()


def test_a_forked_worker_uses_its_own_connections_and_sees_new_changes(store, sqlite_url, make_cache):
    write(store, host("web01.example.com"))
    cache = make_cache(sqlite_url)
    cache.current()
    version = write(store, host("web02.example.com"))
    ctx = multiprocessing.get_context("fork")
    parent_end, child_end = ctx.Pipe()
    proc = ctx.Process(target=_child, args=(cache, child_end))
    proc.start()
    result = parent_end.recv()
    proc.join(30)
    assert result[0] == version and result[1] is True and result[2] != os.getpid()
    # The parent's pool and snapshot still work after the fork.
    assert cache.current().snapshot.version == version
