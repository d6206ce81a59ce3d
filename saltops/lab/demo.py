"""Demo CMDB data for the lab and the integration tests.

Three hosts run as real minions (one web server, one load balancer, one
database); two more exist only in the CMDB so that filters, balancer backends
and drift have something to show: ``web02`` is in maintenance (left out of the
balancer's backends) and ``cache01`` is offline.

The three minions run on this machine, so their CMDB ``ip`` is ``127.0.0.1``,
an address their ``ipv4`` grain reports: ``cmdb.drift`` in a fresh lab is clean
until something really drifts.  Their ISP line addresses stay demo values.
"""

import copy

DOMAIN = "lab.saltops"

WEB = f"web01.{DOMAIN}"
LB = f"lb01.{DOMAIN}"
DB = f"db01.{DOMAIN}"

# The hosts that run as minions, in start order.
MINION_IDS = (WEB, LB, DB)

# What the lab's minions report among their ipv4 grains (they all run on this machine).
MINION_IP = "127.0.0.1"

_COMMON = {"platform": "Debian-12", "machine_type": "vm", "idc": "lab", "env": "dev"}

HOSTS = [
    {
        **_COMMON,
        "hostname": WEB,
        "ip": MINION_IP,
        "lines": {"intranet": "10.20.0.11"},
        "roles": ["base", "web"],
        "status": "online",
        "owner": "web-team",
        "apps": {"shop": {"port": 8000, "health_url": "/healthz"}},
    },
    {
        **_COMMON,
        "hostname": f"web02.{DOMAIN}",
        "ip": "10.20.0.12",
        "lines": {"intranet": "10.20.0.12"},
        "roles": ["base", "web"],
        "status": "maintenance",
        "owner": "web-team",
        "apps": {"shop": {"port": 8000, "health_url": "/healthz"}},
    },
    {
        **_COMMON,
        "hostname": LB,
        "ip": MINION_IP,
        "lines": {"telecom": "203.0.113.10", "unicom": "198.51.100.10", "intranet": "10.20.0.2"},
        "roles": ["base", "lb"],
        "status": "online",
        "owner": "ops-team",
        "apps": {},
    },
    {
        **_COMMON,
        "hostname": DB,
        "ip": MINION_IP,
        "lines": {"intranet": "10.20.0.21"},
        "roles": ["base", "db"],
        "status": "online",
        "owner": "dba-team",
        "apps": {"mysql": {"port": 3306, "server_id": 1}},
    },
    {
        **_COMMON,
        "hostname": f"cache01.{DOMAIN}",
        "ip": "10.20.0.31",
        "lines": {"intranet": "10.20.0.31"},
        "roles": ["base", "cache"],
        "status": "offline",
        "owner": "ops-team",
        "apps": {},
    },
]


def hosts():
    """A fresh copy of the demo host records."""
    return copy.deepcopy(HOSTS)


def roles_of(hostname):
    for host in HOSTS:
        if host["hostname"] == hostname:
            return list(host["roles"])
    return []
