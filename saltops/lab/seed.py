"""Load the demo hosts into a CMDB database."""

import sqlalchemy as sa

from saltops import config
from saltops.cmdb import repo
from saltops.cmdb.model import Rules
from saltops.lab import demo
from saltops.store import get_store
from saltops.store.audit import utcnow
from saltops.store.schema import event_outbox
from saltops.store.schema import hosts as hosts_table

ACTOR = "saltops-lab"


def seed(db_url, hosts=None, announce=False):
    """Create the schema and upsert the demo hosts (unchanged hosts are left alone).

    The ``saltops/cmdb/changed`` event of the seeding is dropped from the outbox
    unless ``announce``: it is written before any minion exists, and minions
    render their pillar when they start.  Left pending, it would be fired with
    the next CMDB change and refresh every minion's pillar for nothing.

    Returns the write summary (``added``, ``updated``, ``unchanged``, ``version``).
    """
    conf = config.load({"saltops": {"db_url": db_url}})
    store = get_store(db_url)
    summary = repo.write(
        store,
        ACTOR,
        demo.hosts() if hosts is None else hosts,
        rules=Rules.from_config(conf),
        mode="upsert",
        action="seed",
        lb_serves=conf["cmdb"]["lb_serves"],
    )
    if not announce and (summary["added"] or summary["updated"]):
        _drop_event(store, summary["version"])
    return summary


def _drop_event(store, version):
    with store.begin() as conn:
        pending = conn.execute(
            sa.select(event_outbox.c.id, event_outbox.c.data).where(
                event_outbox.c.tag == repo.CHANGED_TAG, event_outbox.c.sent_at.is_(None)
            )
        ).all()
        ids = [row.id for row in pending if (row.data or {}).get("version") == version]
        if ids:
            conn.execute(event_outbox.update().where(event_outbox.c.id.in_(ids)).values(sent_at=utcnow()))


def seed_if_empty(db_url):
    """Seed a CMDB that has no host yet; leave one that has hosts as it is.

    Returns the write summary, or ``None`` when the CMDB already had hosts.
    """
    store = get_store(db_url)
    with store.connect() as conn:
        count = conn.execute(sa.select(sa.func.count()).select_from(hosts_table)).scalar()
    if count:
        return None
    return seed(db_url)
