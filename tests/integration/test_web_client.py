"""The calls a salt-api web client's pages make, replayed as the lab's ``viewer`` and ``deployer``.

The chunks are those SaltGUI 1.34.0 sends (its ``static/scripts/Api.js`` and
``CommandBox.js``; docs/lab.md lists them per page): a runner's keyword
arguments at the top level of the chunk beside ``full_return``, ``kwarg``
only for minion functions.  Real salt-api, real eauth (``file``), the lab's
ACLs (``saltops.lab.users.ACLS``).
"""

import json

import pytest
import requests

from saltops.lab import demo

pytestmark = [pytest.mark.integration]

USERS = ("viewer", "deployer")

# page -> the chunks its panels post to salt-api's ``/`` (SaltGUI 1.34.0)
PAGES = {
    "minions": [
        {"client": "wheel", "fun": "key.list_all"},
        {"client": "wheel", "fun": "minions.connected"},
        {"client": "local", "fun": "grains.items", "tgt": "*", "tgt_type": "glob"},
        {"client": "runner", "fun": "manage.versions"},
    ],
    "keys": [
        {"client": "wheel", "fun": "key.list_all"},
        {"client": "wheel", "fun": "key.finger", "match": "*"},
    ],
    "grains": [{"client": "local", "fun": "grains.items", "tgt": demo.WEB, "tgt_type": "list"}],
    "pillars": [{"client": "local", "fun": "pillar.obfuscate", "tgt": "*", "tgt_type": "glob"}],
    "schedules": [
        {
            "client": "local",
            "fun": "schedule.list",
            "kwarg": {"return_yaml": False},
            "tgt": "*",
            "tgt_type": "glob",
        }
    ],
    "beacons": [
        {
            "client": "local",
            "fun": "beacons.list",
            "kwarg": {"return_yaml": False},
            "tgt": "*",
            "tgt_type": "glob",
        },
        {
            "client": "local",
            "fun": "beacons.list_available",
            "kwarg": {"return_yaml": False},
            "tgt": demo.LB,
            "tgt_type": "list",
        },
    ],
    "jobs": [{"client": "runner", "fun": "jobs.list_jobs"}, {"client": "runner", "fun": "jobs.active"}],
}

# Calls SaltGUI makes that the lab keeps from these users on purpose; SaltGUI
# tolerates each refusal (the login's set-up calls) or shows it on the page.
KEPT_FROM_THEM = [
    {"client": "wheel", "fun": "config.values"},  # the master's config, saltops:db_url included
    {"client": "runner", "fun": "state.orchestrate_show_sls", "arg": ["*"]},
    {"client": "local", "fun": "pillar.items", "tgt": demo.WEB, "tgt_type": "list"},  # pillar values
    {"client": "runner", "fun": "cache.pillar", "tgt": "*"},
    {"client": "local", "fun": "cmd.run", "tgt": "*", "tgt_type": "glob", "arg": ["id"]},
]


@pytest.fixture(scope="module")
def client(api, salt_minions):
    """``post(user, chunk)`` -> the response, as SaltGUI sends it (token header, JSON body)."""

    def post(user, chunk):
        return requests.post(
            api.url + "/",
            data=json.dumps(chunk),
            headers={
                "Accept": "application/json",
                "Content-Type": "application/json",
                "Cache-Control": "no-cache",
                "X-Auth-Token": api.token(user),
            },
            timeout=120,
        )

    return post


def _data(resp):
    assert resp.status_code == 200, (resp.status_code, resp.text[:300])
    [ret] = resp.json()["return"]
    return ret


@pytest.mark.parametrize("user", USERS)
def test_login_gives_the_permissions_the_client_needs_to_start(api, user):
    # SaltGUI refuses a login whose ``perms`` are empty ("No permissions").
    resp = api.login(user)
    assert resp.status_code == 200
    [login] = resp.json()["return"]
    assert login["perms"] and login["eauth"] == "file" and login["user"] == user


@pytest.mark.parametrize("user", USERS)
@pytest.mark.parametrize("page", sorted(PAGES))
def test_every_read_only_page_is_answered(client, user, page):
    for chunk in PAGES[page]:
        ret = _data(client(user, chunk))
        if chunk["client"] == "wheel":
            assert ret["data"]["success"] is True, ret
        elif chunk["client"] == "local":
            # every targeted minion answered, none with an error string
            assert ret, (page, chunk["fun"])
            for minion, value in ret.items():
                assert not (isinstance(value, str) and "is not available" in value), (minion, value)
        else:
            assert isinstance(ret, (dict, list)), ret


@pytest.mark.parametrize("user", USERS)
def test_the_page_data_is_what_the_pages_show(client, user):
    keys = _data(client(user, PAGES["keys"][0]))["data"]["return"]
    assert set(demo.MINION_IDS) <= set(keys["minions"])
    grains = _data(client(user, PAGES["grains"][0]))
    assert grains[demo.WEB]["id"] == demo.WEB
    # the pillar page shows the shape only: no value reaches the client
    shape = _data(client(user, PAGES["pillars"][0]))[demo.WEB]
    assert "cmdb" in shape and shape["cmdb"]["hostname"] == "<str>", shape["cmdb"]
    versions = _data(client(user, PAGES["minions"][3]))
    assert set(demo.MINION_IDS) <= set(versions.get("Up to date", {})) | set(
        versions.get("Minion requires update", {})
    )
    # a job page: one of this user's own jobs, by jid, as the Job panel asks for it
    jobs = _data(client(user, PAGES["jobs"][0]))
    mine = [jid for jid, job in jobs.items() if job.get("User") == user]
    assert mine, "the job list shows no job of the user's own"
    job = _data(client(user, {"client": "runner", "fun": "jobs.list_job", "jid": mine[-1]}))
    assert job["jid"] == mine[-1] and job["User"] == user


@pytest.mark.parametrize("user", USERS)
def test_what_the_lab_keeps_from_them_is_refused_by_salt_api(client, user):
    for chunk in KEPT_FROM_THEM:
        assert client(user, chunk).status_code == 401, chunk["fun"]


def test_the_command_box_runs_saltops_runners_with_its_argument_form(client):
    # "runners.cmdb.show <host>" and "runners.confpush.status app=... env=..." as the viewer
    shown = _data(
        client("viewer", {"client": "runner", "fun": "cmdb.show", "arg": [demo.LB], "full_return": False})
    )
    assert shown["hostname"] == demo.LB
    status = _data(
        client(
            "viewer",
            {"client": "runner", "fun": "confpush.status", "app": "shop", "env": "dev", "full_return": False},
        )
    )
    assert status == []
    # "runners.deploy.status" as the deployer
    assert isinstance(
        _data(client("deployer", {"client": "runner", "fun": "deploy.status", "full_return": False})), list
    )


def test_the_command_box_gets_saltops_refusals_with_their_reason(client):
    missing = _data(client("deployer", {"client": "runner", "fun": "deploy.resume", "full_return": False}))
    assert missing["result"] is False and missing["retcode"] == 1
    assert missing["error"].startswith("deploy.resume: missing argument(s): id; nothing was changed"), missing
    unknown = _data(
        client(
            "viewer",
            {"client": "runner", "fun": "cmdb.show", "arg": [demo.LB], "verbose": True, "full_return": False},
        )
    )
    assert unknown["result"] is False and "unknown argument(s) verbose" in unknown["error"], unknown
    bad = _data(
        client("viewer", {"client": "runner", "fun": "confpush.status", "id": "abc", "full_return": False})
    )
    assert bad["result"] is False and "a config push id is a number" in bad["error"], bad
    # A function the ACL does not grant is salt-api's own 401, before any SaltOps code runs.
    assert (
        client("viewer", {"client": "runner", "fun": "cmdb.update", "hostname": demo.WEB}).status_code == 401
    )


@pytest.mark.parametrize("user", USERS)
def test_the_events_page_streams_the_bus_with_the_login_session(api, user):
    # SaltGUI's EventSource sends no token header: the session cookie of its login does.
    session = requests.Session()
    resp = session.post(
        api.url + "/login",
        json={"username": user, "password": api.passwords[user], "eauth": "file"},
        headers={"Accept": "application/json"},
        timeout=30,
    )
    assert resp.status_code == 200
    with session.get(api.url + "/events", stream=True, timeout=30) as events:
        assert events.status_code == 200
        assert events.headers["Content-Type"].startswith("text/event-stream")
        first = next(line for line in events.iter_lines(decode_unicode=True) if line)
        assert first.startswith(("retry:", "tag:", "data:")), first
