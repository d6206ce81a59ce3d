"""Load the demo hosts into a CMDB database, and the lab's people and deploy ticket template."""

import time

from saltops import config
from saltops.cmdb import repo
from saltops.cmdb.model import Rules
from saltops.lab import demo
from saltops.lab import tickets as lab_tickets
from saltops.store import get_store

ACTOR = "saltops-lab"


def seed(db_url, hosts=None, announce=False):
    """Create the schema and upsert the demo hosts (unchanged hosts are left alone).

    The seeding queues no ``saltops/cmdb/changed`` event unless ``announce``: it
    is written before any minion exists, and minions render their pillar when
    they start.  Left pending, it would be fired with the next CMDB change and
    refresh every minion's pillar for nothing.

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
        announce=announce,
    )
    return summary


def seed_if_empty(db_url):
    """Seed a CMDB that has no host yet; leave one that has hosts as it is.

    Returns the write summary, or ``None`` when the CMDB already had hosts.
    """
    store = get_store(db_url)
    with store.connect() as conn:
        count = repo.count_hosts(conn)
    if count:
        return None
    return seed(db_url)


def seed_tickets(db_url, now=None):
    """Load the lab's people and save its deploy ticket template, unless the lab has a template of that name.

    The template is saved without asking Salt's runner loader (no master runs
    yet); the deploy ticket test saves the same text through
    ``ticket.template_save``, which does.  Returns what was done, or ``None``
    when the template was there already (people and templates a person
    changed in the lab are kept).
    """
    import sqlalchemy as sa

    from saltops.org import people
    from saltops.tickets import templates
    from saltops.tickets.schema import templates as template_rows

    store = get_store(db_url)
    with store.connect() as conn:
        there = conn.execute(sa.select(template_rows.c.version).where(
            template_rows.c.name == lab_tickets.DEPLOY_TEMPLATE_NAME).limit(1)).first()
    if there is not None:
        return None
    now = time.time() if now is None else now
    org = people.load(store, ACTOR, lab_tickets.ORG, now)
    saved = templates.save(store, ACTOR, lab_tickets.DEPLOY_TEMPLATE, now)
    return {"org": org, "template": saved}
