"""The live blue/green slots a balancer's pillar carries (``deploy_slots``).

The slot rows belong to the deploy (:func:`saltops.deploy.slots.live` reads
them).  A flip bumps the CMDB version, so one worker reads them again only when
the version its snapshot is at moved: one small query per change, none per
render.  The last rows read are kept in a file beside the snapshot file, for a
worker that starts while the database is down.
"""

import json
import logging
import os
import threading
import weakref

import sqlalchemy as sa

from saltops.deploy import slots
from saltops.errors import StoreUnavailable

log = logging.getLogger(__name__)

# Errors that mean "the database cannot be read right now".
_DB_ERRORS = (sa.exc.SQLAlchemyError, StoreUnavailable, OSError)


class SlotsUnavailable(StoreUnavailable):
    """The live slots cannot be read and none were read before."""


class LiveSlots:
    """One worker's copy of :func:`live`, read again only when the CMDB version moved.

    ``source`` gives the store to read from; ``backup_file`` (optional) keeps
    the last rows read, for a worker that starts while the database is down.
    """

    def __init__(self, source, backup_file=None):
        self.source = source
        self.backup_file = backup_file
        self.version = None
        self.data = None
        self.lock = threading.Lock()
        self.reads = 0

    def prefetch(self, version, stale=False):
        """Read the slots for ``version`` if not read yet (any render calls this: a balancer
        rendered first during an outage then still has them); never raises."""
        if stale or (self.data is not None and self.version == version):
            return
        try:
            self.get(version)
        except SlotsUnavailable:
            pass

    def get(self, version, stale=False):
        """The live slots for a render at CMDB ``version`` (``stale``: the database is known to be down)."""
        with self.lock:
            if self.data is not None and (self.version == version or stale):
                return self.data
            if not stale:
                try:
                    with self.source().connect() as conn:
                        data = slots.live(conn)
                except _DB_ERRORS as err:
                    log.warning("cannot read the live blue/green slots: %s", err)
                else:
                    self.reads += 1
                    self.version, self.data = version, data
                    self._save(data)
                    return data
            if self.data is None:
                self.data = self._load()
            if self.data is None:
                raise SlotsUnavailable(
                    "the live blue/green slots (table deploy_slots) cannot be read and this master has "
                    "no copy of them: a balancer's pillar is not rendered rather than route traffic to "
                    "the wrong slot; it recovers when the database answers"
                )
            return self.data

    def _save(self, data):
        if not self.backup_file:
            return
        try:
            text = json.dumps(data, sort_keys=True)
            try:
                with open(self.backup_file, encoding="utf-8") as fh:
                    if fh.read() == text:
                        return
            except OSError:
                pass
            os.makedirs(os.path.dirname(os.path.abspath(self.backup_file)), exist_ok=True)
            tmp = f"{self.backup_file}.{os.getpid()}.tmp"
            with open(tmp, "w", encoding="utf-8") as fh:
                fh.write(text)
            os.replace(tmp, self.backup_file)
        except OSError as err:
            log.warning("could not write %s: %s", self.backup_file, err)

    def _load(self):
        if not self.backup_file:
            return None
        try:
            with open(self.backup_file, encoding="utf-8") as fh:
                data = json.load(fh)
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None


_CACHES = weakref.WeakKeyDictionary()
_CACHES_LOCK = threading.Lock()


def for_snapshot_cache(cache):
    """The :class:`LiveSlots` of a :class:`~saltops.pillar.cache.SnapshotCache` (same database)."""
    with _CACHES_LOCK:
        found = _CACHES.get(cache)
        if found is None:
            backup = f"{cache.snapshot_file}.slots.json" if cache.snapshot_file else None
            found = LiveSlots(
                cache.read_store, backup
            )
            _CACHES[cache] = found
        return found
