"""CMDB host records for the deploy unit tests."""


def host(name, idc="bj-idc1", lines=("telecom",), env="prod", status="online", apps=None):
    return {
        "hostname": name,
        "ip": "10.0.0.1",
        "lines": {line: "10.0.0.1" for line in lines},
        "roles": ["web"],
        "platform": "Debian-12",
        "machine_type": "vm",
        "idc": idc,
        "env": env,
        "status": status,
        "owner": "web-team",
        "apps": {"shop": {"port": 8000}} if apps is None else apps,
    }
