"""Every reactor SLS names its states `saltops-<area>-<event>-<action>[-<fingerprint>]`.

Each file under reactor/ is rendered through Salt's own jinja|yaml renderers
with a well-formed event of the tag it reacts to (`saltops/<area>/.../<event>`),
and every state ID it produces must carry that area and event, so a reactor job
in the master log and in `jobs.list_jobs` says where it came from.
"""

import re

import pytest
import salt.config
import salt.loader
import salt.template
from states_saltlocal import REPO

REACTOR = REPO / "reactor"
FINGERPRINT = "0123456789abcdef"
ID = re.compile(
    r"saltops-(?P<area>[a-z]+)-(?P<event>[a-z]+)-(?P<action>[a-z]+(?:-[a-z]+)*)(?:-(?P<fp>[0-9a-f]{16}))?"
)


# Reactor SLS -> the tag of an event it reacts to.  A new reactor file gets a line here.
TAGS = {
    "alarm_remediate.sls": f"saltops/alarm/{FINGERPRINT}/firing",
    "alarm_resolved_log.sls": f"saltops/alarm/{FINGERPRINT}/resolved",
    "cmdb_changed.sls": "saltops/cmdb/changed",
    "cmdb_recovered.sls": "saltops/cmdb/recovered",
    "confpush_cmdb_changed.sls": "saltops/cmdb/changed",
}


def test_every_reactor_file_has_an_event_here():
    assert sorted(p.name for p in REACTOR.glob("*.sls")) == sorted(TAGS)


@pytest.fixture(scope="module")
def render():
    opts = salt.config.master_config(None)
    renderers = salt.loader.render(opts, {})

    def _render(path, tag, data):
        return salt.template.compile_template(
            str(path), renderers, "jinja|yaml", opts["renderer_blacklist"], opts["renderer_whitelist"],
            tag=tag, data=data,
        )

    return _render


@pytest.mark.parametrize("name", sorted(TAGS))
def test_reactor_state_ids_follow_one_pattern(render, name):
    tag = TAGS[name]
    parts = tag.split("/")
    area, event = parts[1], parts[-1]
    rendered = render(REACTOR / name, tag, {"id": "saltops-master", "version": 7})
    assert rendered, f"{name} renders nothing for a well-formed {tag} event"
    for sid in rendered:
        match = ID.fullmatch(sid)
        assert match, f"{name}: state ID {sid!r} is not saltops-<area>-<event>-<action>[-<fingerprint>]"
        assert (match["area"], match["event"]) == (area, event), sid
        assert match["fp"] in (None, FINGERPRINT), sid


def test_the_pattern_rejects_other_shapes():
    others = ("alarm-remediate-0123456789abcdef", "saltops-cmdb-changed", "refresh-runner", "saltops-Cmdb-x-y")
    for sid in others:
        assert not ID.fullmatch(sid), sid
