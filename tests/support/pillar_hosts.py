"""CMDB host records and writes for the pillar tests."""

from saltops import config
from saltops.cmdb import repo
from saltops.cmdb.model import Rules
from tests.support.hosts import host_record

CONF = config.load({"cachedir": "/nonexistent"})
RULES = Rules.from_config(CONF)
LB_SERVES = CONF["cmdb"]["lb_serves"]


def host(name, roles=("base", "web"), env="prod", status="online", idc="bj-idc1", **extra):
    return host_record(
        name,
        ip=extra.pop("ip", "10.1.0.1"),
        roles=list(roles),
        env=env,
        status=status,
        idc=idc,
        **extra,
    )


def write(store, *records, actor="pillar-tests"):
    """Upsert ``records`` in one CMDB change; returns the new version."""
    return repo.write(store, actor, list(records), rules=RULES, lb_serves=LB_SERVES)["version"]


def update(store, hostname, **changes):
    return repo.update(store, "pillar-tests", hostname, changes, RULES, lb_serves=LB_SERVES)["version"]


def remove(store, *hostnames, purge=False):
    return repo.remove(store, "pillar-tests", list(hostnames), purge=purge, lb_serves=LB_SERVES)["version"]
