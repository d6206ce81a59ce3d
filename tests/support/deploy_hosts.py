"""CMDB host records for the deploy tests (one ISP line address per line, the ``shop`` app)."""

from tests.support.hosts import host_record


def host(name, idc="bj-idc1", lines=("telecom",), env="prod", status="online", apps=None):
    return host_record(
        name,
        lines={line: "10.0.0.1" for line in lines},
        roles=["web"],
        idc=idc,
        env=env,
        status=status,
        apps={"shop": {"port": 8000}} if apps is None else apps,
    )
