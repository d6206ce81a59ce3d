"""The batch planner: caps per ISP line and IDC, canary, blue/green."""

import random
from collections import Counter

import pytest

from saltops.deploy import config as dconfig
from saltops.deploy import plan as planner
from saltops.errors import ValidationError


def fleet(spec):
    """spec: [(count, idc, lines)] -> host dicts."""
    hosts = []
    for count, idc, lines in spec:
        for _ in range(count):
            hosts.append(
                {"hostname": f"h{len(hosts):03d}", "idc": idc, "lines": {line: "1.2.3.4" for line in lines}}
            )
    return hosts


def check_invariants(plan, hosts, max_share):
    names = [n for b in plan["batches"] for n in b["hosts"]]
    assert sorted(names) == sorted(h["hostname"] for h in hosts), "every host exactly once"
    by_name = {h["hostname"]: h for h in hosts}
    for batch in plan["batches"]:
        assert batch["hosts"], "no empty batch"
        counts = Counter(k for n in batch["hosts"] for k in planner.groups_of(by_name[n]))
        for key, count in counts.items():
            size = plan["caps"][key]["hosts"]
            assert count <= max(1, int(max_share * size + 1e-9)), (key, count, size)


def test_rolling_respects_line_and_idc_share():
    hosts = fleet(
        [(6, "bj-idc1", ["telecom"]), (6, "bj-idc1", ["unicom"]), (8, "sh-idc1", ["telecom", "unicom"])]
    )
    plan = planner.make_plan(hosts, "rolling", "50%", 0.25)
    check_invariants(plan, hosts, 0.25)
    # telecom has 14 hosts: at most 3 per batch; bj-idc1 has 12: at most 3.
    assert plan["caps"]["line:telecom"] == {"hosts": 14, "per_batch": 3}
    assert plan["caps"]["idc:bj-idc1"] == {"hosts": 12, "per_batch": 3}
    assert all(share <= 0.25 for share in planner.worst_share(plan, hosts).values())
    assert plan["batch_size"] == 10
    assert max(len(b["hosts"]) for b in plan["batches"]) <= 10


def test_batches_mix_idcs():
    hosts = fleet([(4, "bj-idc1", ["bgp"]), (4, "sh-idc1", ["bgp"])])
    plan = planner.make_plan(hosts, "rolling", 2, 1.0)
    by_name = {h["hostname"]: h for h in hosts}
    for batch in plan["batches"]:
        assert {by_name[n]["idc"] for n in batch["hosts"]} == {"bj-idc1", "sh-idc1"}


def test_a_small_group_still_gets_one_host_per_batch():
    hosts = fleet([(1, "gz-idc1", ["mobile"]), (9, "bj-idc1", ["telecom"])])
    plan = planner.make_plan(hosts, "rolling", 10, 0.34)
    check_invariants(plan, hosts, 0.34)
    assert plan["caps"]["idc:gz-idc1"]["per_batch"] == 1
    assert len(plan["batches"]) == 3  # bj-idc1/telecom: 3 per batch


def test_canary_comes_first():
    hosts = fleet([(10, "bj-idc1", ["telecom"]), (10, "sh-idc1", ["unicom"])])
    plan = planner.make_plan(hosts, "canary", "50%", 0.5, canary_size=2)
    assert plan["batches"][0]["kind"] == "canary" and len(plan["batches"][0]["hosts"]) == 2
    assert all(b["kind"] == "batch" for b in plan["batches"][1:])
    check_invariants(plan, hosts, 0.5)


def test_blue_green_installs_everywhere_at_once():
    hosts = fleet([(5, "bj-idc1", ["telecom"])])
    plan = planner.make_plan(hosts, "blue_green", 1, 0.2)
    assert [b["kind"] for b in plan["batches"]] == ["slot"]
    assert len(plan["batches"][0]["hosts"]) == 5


@pytest.mark.parametrize("seed", range(20))
def test_random_fleets_keep_every_invariant(seed):
    rnd = random.Random(seed)
    lines = ["telecom", "unicom", "mobile", "cernet", "bgp"]
    idcs = ["bj-idc1", "bj-idc2", "sh-idc1", "gz-idc1"]
    hosts = [
        {
            "hostname": f"n{i:04d}",
            "idc": rnd.choice(idcs),
            "lines": {l: "1.1.1.1" for l in rnd.sample(lines, rnd.randint(1, 3))},
        }
        for i in range(rnd.randint(1, 300))
    ]
    share = rnd.choice([0.1, 0.2, 0.34, 0.5, 1.0])
    plan = planner.make_plan(
        hosts, rnd.choice(["rolling", "canary"]), rnd.choice([1, 5, "10%", "50%"]), share
    )
    check_invariants(plan, hosts, share)
    assert [b["number"] for b in plan["batches"]] == list(range(len(plan["batches"])))


def test_bad_input():
    with pytest.raises(ValidationError, match="no hosts"):
        planner.make_plan([], "rolling", 1, 0.5)
    hosts = fleet([(1, "bj-idc1", ["telecom"])]) * 2
    with pytest.raises(ValidationError, match="listed twice"):
        planner.make_plan(hosts, "rolling", 1, 0.5)


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"strategy": "yolo"}, "strategy must be one of"),
        ({"batch_size": "0%"}, "between 1% and 100%"),
        ({"batch_size": "many"}, "batch_size must be a number"),
        ({"batch_size": 0}, "batch_size must be >= 1"),
        ({"max_share": 2}, "max_share must be between"),
        ({"max_failures": -1}, "max_failures must be >= 0"),
        ({"pause": "maybe"}, "pause must be true or false"),
        ({"colour": "red"}, "unknown deploy option"),
    ],
)
def test_bad_options(overrides, message):
    with pytest.raises(ValidationError, match=message):
        dconfig.options(dconfig.DEFAULTS, overrides)


def test_options_and_config():
    opts = dconfig.options(dconfig.DEFAULTS, {"pause": "true", "max_failures": "2", "batch_size": "10%"})
    assert opts["pause"] is True and opts["max_failures"] == 2
    assert dconfig.batch_size_of("10%", 45) == 4 and dconfig.batch_size_of("10%", 3) == 1
    from saltops.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown saltops:deploy key"):
        dconfig.load({"deploy": {"batchsize": 3}})
    with pytest.raises(ConfigError, match="max_share"):
        dconfig.load({"deploy": {"max_share": 0}})
    assert dconfig.load({"deploy": {"max_failures": 1}})["max_failures"] == 1
