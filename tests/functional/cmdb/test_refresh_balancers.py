"""``cmdb.refresh``'s balancer options through Salt's loader, with no daemons: what it refuses.

Publishing the pillar refresh and the balancer state needs a master and
minions: tests/integration/hecd runs the whole loop on real daemons.
"""

import pytest

from saltops.cmdb import api
from tests.support.cmdb_kit import CONF, counts, host
from tests.support.refusals import assert_refused


def seed(run):
    api.add(run.store, CONF, "seed", host("web01.x.com"))
    api.add(run.store, CONF, "seed", host("lb01.x.com", ip="10.10.1.2", roles=["base", "lb"]))
    return api.update(run.store, CONF, "seed", "web01.x.com", {"status": "maintenance"})["version"]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"test": "yes"}, "test='yes' must be True or False"),
        ({"timeout": "soon"}, "timeout='soon' is not a number of seconds"),
        ({"timeout": 0}, "timeout must be between 1 and 600"),
        ({"apply_timeout": 99999}, "apply_timeout must be between 1 and 3600"),
    ],
)
def test_bad_options_are_refused_before_anything_is_published(run, kwargs, message):
    version = seed(run)
    before = counts(run.store)
    assert_refused(run("refresh", version, **kwargs), message)
    assert counts(run.store) == before


@pytest.mark.parametrize(
    "cmdb, message",
    [
        ({"balancer_states": {"web": "lb"}}, "'web' is not a balancer role"),
        ({"balancer_states": {"lb": "lb && reboot"}}, "must be an SLS name"),
        ({"balancer_test": "sometimes"}, "balancer_test must be true or false"),
    ],
)
def test_a_bad_balancer_setting_names_itself(run, cmdb, message):
    version = seed(run)
    saved = dict(run.opts["saltops"])
    run.opts["saltops"]["cmdb"] = cmdb
    try:
        assert_refused(run("refresh", version), f"SaltOps configuration is invalid: .*{message}")
    finally:
        run.opts["saltops"] = saved


def test_a_balancer_change_without_a_master_fails_with_a_clear_error(run):
    # The plan has a balancer to update, so the refresh is waited for: with no
    # master to publish to, the call fails and says so (no traceback, no apply).
    version = seed(run)
    assert api.refresh_plan(run.store, CONF, version)["apply"] == {"lb01.x.com": ["lb"]}
    assert_refused(run("refresh", version, timeout=1), "saltutil.refresh_pillar|Salt master")
