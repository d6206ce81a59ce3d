"""Load the demo hosts into a CMDB database."""

import sqlalchemy as sa

from saltops import config
from saltops.cmdb import repo
from saltops.cmdb.model import Rules
from saltops.lab import demo
from saltops.store import get_store
from saltops.store.schema import hosts as hosts_table

ACTOR = "saltops-lab"


def seed(db_url, hosts=None):
    """Create the schema and upsert the demo hosts (unchanged hosts are left alone).

    Returns the write summary (``added``, ``updated``, ``unchanged``, ``version``).
    """
    conf = config.load({"saltops": {"db_url": db_url}})
    store = get_store(db_url)
    return repo.write(
        store,
        ACTOR,
        demo.hosts() if hosts is None else hosts,
        rules=Rules.from_config(conf),
        mode="upsert",
        action="seed",
        lb_serves=conf["cmdb"]["lb_serves"],
    )


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
