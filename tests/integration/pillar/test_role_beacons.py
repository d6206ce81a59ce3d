"""The shipped PillarStack on a real salt-master: role beacons name the formulas' services.

The master reads pillar/stack/stack.cfg after the CMDB ext_pillar, as the lab
does; the role layers take each service name from the role formula's
parameters (states/<role>/parameters/, through pillar/stack/formula.jinja), so
the minion's beacons watch exactly what the formula runs on its OS family.
"""

import pytest
import yaml

from saltops.lab import demo
from saltops.paths import tree

pytestmark = pytest.mark.integration


def beacons_of(salt_master, minion_id):
    ret = salt_master.salt_cli(timeout=120).run("pillar.item", "beacons", "unmask=True", minion_tgt=minion_id)
    assert ret.returncode == 0, ret
    return ret.data["beacons"]


def services(beacon):
    [found] = [item["services"] for item in beacon if "services" in item]
    return set(found)


def formula_default(role, *keys):
    data = yaml.safe_load((tree("states") / role / "parameters" / "defaults.yaml").read_text())
    for key in keys:
        data = data[key]
    return data


def test_role_beacons_on_a_real_master_watch_the_formulas_services(salt_master, salt_minions, salt_call):
    os_family = salt_call(demo.DB, "grains.get", "os_family").data
    if os_family != "Debian":
        pytest.skip(f"the expected names below are the Debian defaults; this machine is {os_family}")
    db = beacons_of(salt_master, demo.DB)
    assert services(db["saltops_db_services"]) == {formula_default("db", "service")} == {"mariadb"}
    web = beacons_of(salt_master, demo.WEB)
    assert services(web["saltops_web_services"]) == {formula_default("web", "nginx", "service")}
    assert "saltops_db_services" not in web and "saltops_lb_services" not in web
    lb = beacons_of(salt_master, demo.LB)
    assert services(lb["saltops_lb_services"]) == {formula_default("lb", "haproxy", "service")}
