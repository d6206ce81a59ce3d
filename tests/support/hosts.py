"""The one CMDB host-record factory of the suite: a valid record, any field overridden.

Each tier's kit (``tests/support/cmdb_kit.py``, ``pillar_hosts.py``,
``deploy_hosts.py``, the tasks and states tests) builds on :func:`host_record`
with the defaults its tests read, so a new CMDB field is added here once.
"""

import copy

DEFAULTS = {
    "ip": "10.0.0.1",
    "lines": {"telecom": "203.0.113.1"},
    "roles": ["base", "web"],
    "platform": "Debian-12",
    "machine_type": "vm",
    "idc": "bj-idc1",
    "env": "prod",
    "status": "online",
    "owner": "web-team",
    "apps": {"shop": {"port": 8000, "health_url": "/healthz"}},
}


def host_record(name, /, **fields):
    """A full CMDB record for hostname ``name``: the defaults above, then ``fields`` (deep-copied;
    a ``hostname`` among them wins, for tests that build a record with a bad one)."""
    record = copy.deepcopy(DEFAULTS)
    record["hostname"] = name
    record.update(copy.deepcopy(fields))
    return record
