"""CMDB host records and writes for the pillar tests."""

from saltops import config
from saltops.cmdb import repo
from saltops.cmdb.model import Rules

CONF = config.load({"cachedir": "/nonexistent"})
RULES = Rules.from_config(CONF)
LB_SERVES = CONF["cmdb"]["lb_serves"]


def host(name, roles=("base", "web"), env="prod", status="online", idc="bj-idc1", **extra):
    record = {
        "hostname": name,
        "ip": extra.pop("ip", "10.1.0.1"),
        "lines": extra.pop("lines", {"telecom": "203.0.113.1"}),
        "roles": list(roles),
        "platform": "Debian-12",
        "machine_type": "vm",
        "idc": idc,
        "env": env,
        "status": status,
        "owner": "web-team",
        "apps": extra.pop("apps", {"shop": {"port": 8000, "health_url": "/healthz"}}),
    }
    record.update(extra)
    return record


def write(store, *records, actor="pillar-tests"):
    """Upsert ``records`` in one CMDB change; returns the new version."""
    return repo.write(store, actor, list(records), rules=RULES, lb_serves=LB_SERVES)["version"]


def update(store, hostname, **changes):
    return repo.update(store, "pillar-tests", hostname, changes, RULES, lb_serves=LB_SERVES)["version"]


def remove(store, *hostnames, purge=False):
    return repo.remove(store, "pillar-tests", list(hostnames), purge=purge, lb_serves=LB_SERVES)["version"]
