"""Which CMDB versions still owe their pillar refresh: queued by the write, claimed once.

A ``saltops/cmdb/changed`` event is a hint: any minion can put one on the
master bus (``event.send`` with a batched ``preload``), with any version.  So
the write that queues the event also queues a row here, in the same
transaction, and the reactor's refresh acts only after :func:`claim` took that
row.  A version no write queued (a deploy flip, a version not written yet, a
number made up) has no row; a version already refreshed has a claimed row:
either way :func:`claim` says no and nothing is published.
"""

import sqlalchemy as sa

from saltops.cmdb.schema import refreshes
from saltops.store.audit import utcnow

# Rows this many versions behind the newest write are dropped when a write
# queues its own: a refresh that old no longer tells anyone anything.
KEEP_VERSIONS = 10000


def queue(conn, version):
    """Record, in the write's transaction, that ``version`` owes a refresh."""
    version = int(version)
    # Rows at or above ``version`` can only be left from a counter restored to an
    # older value (a database restore): they belong to changes that no longer exist.
    conn.execute(
        refreshes.delete().where(
            sa.or_(refreshes.c.version <= version - KEEP_VERSIONS, refreshes.c.version >= version)
        )
    )
    conn.execute(refreshes.insert().values(version=version, queued_at=utcnow(), claimed_at=None))


def claim(store, version, by):
    """Take the refresh of ``version``; ``True`` for exactly one caller per queued version.

    One conditional UPDATE in its own committed transaction: of two reactor
    runs for the same version (a replayed or forged event), the database lets
    one change the row and the other finds it claimed.
    """
    with store.begin() as conn:
        done = conn.execute(
            refreshes.update()
            .where(refreshes.c.version == int(version), refreshes.c.claimed_at.is_(None))
            .values(claimed_at=utcnow(), claimed_by=str(by)[:128])
        )
        return done.rowcount == 1


def status(conn, version):
    """``"queued"``, ``"claimed"`` or ``None`` (no write queued a refresh for ``version``)."""
    row = conn.execute(
        sa.select(refreshes.c.claimed_at).where(refreshes.c.version == int(version))
    ).first()
    if row is None:
        return None
    return "queued" if row.claimed_at is None else "claimed"
