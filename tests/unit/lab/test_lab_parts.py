"""The lab's parts that need no Salt daemon: layout, users, pid ownership, process stop."""

import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from saltops.lab import config as labconfig
from saltops.lab import control, daemons, demo, users


def test_layout_uses_absolute_paths_under_the_lab(tmp_path):
    lay = labconfig.Layout(tmp_path / "lab")
    ports = {"publish": 41001, "ret": 41002, "api": 41003, "alarms": 41004}
    master = lay.master_config(ports)
    assert master["root_dir"] == "/"
    # Every path Salt would otherwise put under /var, /etc or /srv.
    for key in (
        "pki_dir",
        "cachedir",
        "pidfile",
        "api_pidfile",
        "log_file",
        "key_logfile",
        "token_dir",
        "extension_modules",
        "syndic_dir",
        "sqlite_queue_dir",
        "autosign_grains_dir",
        "autosign_file",
        "autoreject_file",
        "ssh_log_file",
    ):
        assert master[key].startswith(str(lay.dir) + "/"), key
    assert master["sock_dir"].startswith(str(lay.sock_root))
    assert master["interface"] == "127.0.0.1"
    assert (master["publish_port"], master["ret_port"]) == (41001, 41002)
    assert master["rest_cherrypy"] == {"host": "127.0.0.1", "port": 41003, "disable_ssl": True}
    assert "saltops" not in master  # in master.d/saltops.conf
    block = lay.saltops_block(ports)["saltops"]
    assert block["db_url"] == f"sqlite:///{lay.dir / 'saltops.db'}"
    assert block["alarms"] == {"rules_file": str(lay.rules_file), "listen_port": 41004}
    assert block["notify"]["channels"] == {"inbox": {"type": "file", "path": str(lay.inbox)}}
    assert master["external_auth"]["file"]["^filename"] == str(lay.users_file)
    assert master["auto_accept"] is True and master["open_mode"] is False
    minion = lay.minion_config(demo.WEB, ports)
    assert minion["id"] == demo.WEB and minion["master_port"] == 41002
    assert minion["pki_dir"] != master["pki_dir"]
    for key in ("pki_dir", "cachedir", "pidfile", "log_file", "extension_modules"):
        assert minion[key].startswith(str(lay.dir) + "/"), key


def test_short_lab_keeps_sockets_inside():
    short = Path("/tmp/lab-x")
    assert labconfig.sock_root_for(short) == short / "run" / "sock"


def test_long_lab_path_puts_sockets_under_tmp(tmp_path):
    deep = tmp_path / ("x" * 60) / ("y" * 40)
    root = labconfig.sock_root_for(deep)
    assert str(root).startswith("/tmp/saltops-lab-")
    assert root == labconfig.sock_root_for(deep), "the same lab must always get the same socket dir"
    assert root != labconfig.sock_root_for(tmp_path / ("z" * 100))
    longest = str(root / demo.MINION_IDS[0] / ("s" * 45))
    assert len(longest) <= 107


def test_users_file_is_private_and_kept(tmp_path):
    path = tmp_path / "users"
    first = users.ensure_users_file(path)
    assert set(first) == set(users.ACLS)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert users.read_users_file(path) == first
    assert users.ensure_users_file(path) == first, "up must not change existing passwords"
    assert len(set(first.values())) == len(first)


def test_missing_user_is_added_without_touching_the_others(tmp_path):
    path = tmp_path / "users"
    users.write_users_file(path, {"ops": "keep-me"})
    out = users.ensure_users_file(path)
    assert out["ops"] == "keep-me" and set(out) == set(users.ACLS)


def test_external_auth_block():
    block = users.external_auth("/x/users")["file"]
    assert block["^filename"] == "/x/users"
    assert block["^filetype"] == "text" and block["^hashtype"] == "plaintext"
    jobs = [r"jobs\.list_jobs$", r"jobs\.list_job$", r"jobs\.lookup_jid$", r"jobs\.active$"]
    pages = [
        {"*": [r"grains\.items$", r"pillar\.obfuscate$", r"schedule\.list$", r"beacons\.list$",
               r"beacons\.list_available$"]},
        {"@wheel": [r"key\.list_all$", r"key\.finger$", r"minions\.connected$"]},
    ]
    assert block["viewer"] == [
        {
            "@runner": [
                r"cmdb\.list$",
                r"cmdb\.show$",
                r"cmdb\.targets$",
                r"cmdb\.history$",
                r"confpush\.(diff|history|status)$",
                *jobs,
                r"manage\.versions$",
            ]
        },
        *pages,
    ]
    assert block["deployer"] == [{"@runner": [r"deploy\..*", *jobs, r"manage\.versions$"]}, *pages]
    assert "@wheel" in block["ops"]


def test_lab_dir_resolution(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(control.ENV_DIR, raising=False)
    assert control.resolve_dir() == tmp_path / ".lab"
    monkeypatch.setenv(control.ENV_DIR, str(tmp_path / "env"))
    assert control.resolve_dir() == tmp_path / "env"
    assert control.resolve_dir(tmp_path / "opt") == tmp_path / "opt"


def test_status_of_a_lab_never_started(tmp_path):
    status = control.Lab(tmp_path / "lab").status()
    assert status["all_up"] is False
    assert status["master"]["running"] is False
    assert [m["id"] for m in status["minions"]] == list(demo.MINION_IDS)
    assert all(m["state"] == "down" for m in status["minions"])


def test_a_web_client_folder_is_served_by_salt_api_next_to_its_other_settings(tmp_path):
    folder = tmp_path / "saltgui"
    (folder / "static").mkdir(parents=True)
    (folder / "index.html").write_text("<html></html>")
    lay = labconfig.Layout(tmp_path / "lab")
    ports = {"publish": 41001, "ret": 41002, "api": 41003, "alarms": 41004}
    api = lay.master_config(ports, str(folder))["rest_cherrypy"]
    assert api == {
        "host": "127.0.0.1", "port": 41003, "disable_ssl": True,
        "app": str(folder / "index.html"), "static": str(folder / "static"), "static_path": "/static",
    }
    assert "app" not in lay.master_config(ports)["rest_cherrypy"]


def test_a_folder_without_a_web_client_is_refused_and_the_lab_is_left_alone(tmp_path):
    with pytest.raises(ValueError, match="no index.html and no static in it"):
        labconfig.web_client_settings(tmp_path)
    lab = control.Lab(tmp_path / "lab")
    with pytest.raises(daemons.LabError, match="is not a web client's folder"):
        lab.up(web_client=str(tmp_path))
    assert not lab.layout.master_conf.exists() and not lab.layout.state_file.exists()


def test_down_of_a_lab_never_started_stops_nothing(tmp_path):
    assert control.Lab(tmp_path / "lab").down()["stopped"] == []


@pytest.fixture
def sleeper(tmp_path):
    marker = str(tmp_path / "conf")
    proc = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)", "-c", marker],
        start_new_session=True,
    )
    yield proc, marker
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def test_owned_pid_needs_the_marker_as_a_whole_word(tmp_path, sleeper):
    proc, marker = sleeper
    pidfile = tmp_path / "p.pid"
    pidfile.write_text(str(proc.pid))
    time.sleep(0.2)
    assert daemons.owned_pid(pidfile, marker) == proc.pid
    assert daemons.owned_pid(pidfile, marker + "/minions/x") is None
    assert daemons.owned_pid(pidfile, str(tmp_path)) is None


def test_stale_or_foreign_pid_files_are_ignored(tmp_path):
    pidfile = tmp_path / "p.pid"
    assert daemons.owned_pid(pidfile, "x") is None
    pidfile.write_text("not a pid")
    assert daemons.owned_pid(pidfile, "x") is None
    # This test process is alive but is not a lab daemon.
    pidfile.write_text(str(os.getpid()))
    assert daemons.owned_pid(pidfile, str(tmp_path / "conf")) is None


def test_stop_ends_the_process_group(sleeper):
    proc, _marker = sleeper
    daemons.stop([proc.pid], timeout=10)
    assert proc.wait(timeout=5) is not None


def test_free_port_is_bindable():
    port = daemons.free_port()
    assert daemons.port_free(port)
    assert not daemons.port_open(port)


def test_demo_data_goes_in_once_and_later_changes_are_kept(tmp_path):
    from saltops import config
    from saltops.cmdb import repo
    from saltops.cmdb.model import Rules
    from saltops.lab import seed
    from saltops.store import get_store

    url = f"sqlite:///{tmp_path / 'cmdb.db'}"
    first = seed.seed_if_empty(url)
    assert sorted(first["added"]) == sorted(h["hostname"] for h in demo.HOSTS)
    store = get_store(url)
    rules = Rules.from_config(config.load({"saltops": {"db_url": url}}))
    repo.update(store, "alice", demo.WEB, {"status": "maintenance"}, rules)
    assert seed.seed_if_empty(url) is None
    with store.connect() as conn:
        assert repo.get_host(conn, demo.WEB)["status"] == "maintenance"
        assert len(repo.list_hosts(conn)) == len(demo.HOSTS)


def test_demo_hosts_are_valid_cmdb_records():
    from saltops import config
    from saltops.cmdb.model import Rules, validate_host

    rules = Rules.from_config(config.load({}))
    for host in demo.hosts():
        assert validate_host(host, rules)["hostname"] == host["hostname"]
    roles = {demo.WEB: "web", demo.LB: "lb", demo.DB: "db"}
    for minion_id, role in roles.items():
        assert role in demo.roles_of(minion_id)


def test_the_people_and_the_deploy_template_go_in_once_and_a_person_s_changes_are_kept(tmp_path):
    from saltops.lab import seed
    from saltops.lab import tickets as lab_tickets
    from saltops.org import people
    from saltops.store import get_store
    from saltops.tickets import templates

    url = f"sqlite:///{tmp_path / 'lab.db'}"
    first = seed.seed_tickets(url, now=1_800_000_000)
    assert first["template"]["name"] == lab_tickets.DEPLOY_TEMPLATE_NAME and first["template"]["version"] == 1
    store = get_store(url)
    with store.connect() as conn:
        assert people.manager_of(conn, "dev") == "lead" and people.members(conn, "ops") == ["ops"]
        assert templates.get(conn, "app-deploy")[1]["action"]["fun"] == "deploy.run"
    # Every person of the org who is also a lab user may log in; the applicant and approver have ACLs.
    assert {"dev", "lead", "ops"} <= set(users.ACLS)
    templates.save(store, "ops", lab_tickets.DEPLOY_TEMPLATE.replace("max: 200", "max: 300"), 1_800_000_001)
    assert seed.seed_tickets(url) is None
    with store.connect() as conn:
        assert templates.get(conn, "app-deploy")[0] == 2


@pytest.mark.parametrize("user, granted, refused", [
    ("dev", ["ticket.create", "ticket.show", "ticket.list", "ticket.cancel", "ticket.rate", "deploy.status"],
     ["ticket.approve", "ticket.retry", "ticket.report", "ticket.create_evil", "deploy.run", "cmdb.update"]),
    ("lead", ["ticket.approve", "ticket.reject", "ticket.return", "ticket.show", "deploy.status"],
     ["ticket.create", "ticket.retry", "ticket.approve_all", "ticket.template_save", "deploy.run"]),
])
def test_the_ticket_users_acls_admit_their_calls_only(ckminions, user, granted, refused):
    for fun in granted:
        assert ckminions.runner_check(users.ACLS[user], fun, {}) is True, fun
    for fun in refused:
        assert ckminions.runner_check(users.ACLS[user], fun, {}) is False, fun


def test_seeding_leaves_no_event_pending_unless_asked(tmp_path):
    from saltops.lab import seed
    from saltops.store import get_store, outbox

    quiet = f"sqlite:///{tmp_path / 'quiet.db'}"
    assert seed.seed(quiet)["added"]
    assert outbox.pending_count(get_store(quiet)) == 0

    loud = f"sqlite:///{tmp_path / 'loud.db'}"
    seed.seed(loud, announce=True)
    fired = []
    outbox.flush(get_store(loud), lambda tag, data: fired.append((tag, data)))
    assert [tag for tag, _ in fired] == ["saltops/cmdb/changed"]
    assert set(fired[0][1]["hostnames"]) == {h["hostname"] for h in demo.HOSTS}


@pytest.fixture
def ckminions(tmp_path):
    """Salt's own ACL checker, as the master runs it for a runner call from salt-api."""
    import salt.config
    import salt.utils.minions

    dirs = {key: str(tmp_path / key) for key in ("pki_dir", "cachedir", "sock_dir")}
    opts = salt.config.apply_master_config(
        dict(dirs, root_dir=str(tmp_path)), salt.config.DEFAULT_MASTER_OPTS.copy()
    )
    return salt.utils.minions.CkMinions(opts)


@pytest.mark.parametrize("user", ["viewer", "deployer"])
def test_lab_acls_admit_whole_names_only(ckminions, user):
    acl = users.ACLS[user]
    granted = {
        "viewer": [
            "cmdb.list",
            "cmdb.show",
            "cmdb.targets",
            "cmdb.history",
            "confpush.diff",
            "confpush.history",
            "confpush.status",
        ],
        "deployer": ["deploy.run", "deploy.status", "deploy.abort"],
    }[user] + ["jobs.list_jobs", "jobs.list_job", "jobs.lookup_jid", "jobs.active", "manage.versions"]
    for fun in granted:
        assert ckminions.runner_check(acl, fun, {}) is True, fun
    for fun in [name + "_evil" for name in granted if not name.startswith("deploy.")] + [
        "jobs.list_jobs_filter",
        "cmdb.update",
        "confpush.push",
        "confpush.rollback",
        "deployment.run",
        "jobs_list.jobs",
    ]:
        assert ckminions.runner_check(acl, fun, {}) is False, fun


def test_salt_matches_acl_entries_as_prefixes(ckminions):
    # Why every entry ends in `$` and escapes its dots: Salt's match is re.match.
    assert ckminions.runner_check([{"@runner": ["cmdb.list"]}], "cmdb.list_evil", {}) is True
    assert ckminions.runner_check([{"@runner": ["deploy.*"]}], "deployment.run", {}) is True
    assert ckminions.runner_check([{"@runner": users.exactly("cmdb.list")}], "cmdb.list_evil", {}) is False


def test_lab_settings_survive_another_master_d_file_and_its_rules_load(tmp_path):
    """Salt's include rule: master.d blocks merge key by key, so a person's own
    master.d/*.conf with a `saltops:` key keeps the lab's db_url (in the main file it would not)."""
    import salt.config
    import yaml

    from saltops import config as saltops_config
    from saltops.alarms import rules

    lay = labconfig.Layout(tmp_path / "lab")
    ports = {"publish": 41001, "ret": 41002, "api": 41003, "alarms": 41004}
    lay.make_dirs()
    control._write_yaml(lay.master_conf, lay.master_config(ports))
    control._write_yaml(lay.saltops_conf, lay.saltops_block(ports))
    (lay.saltops_conf.parent / "zz-mine.conf").write_text(yaml.safe_dump({"saltops": {"alarms": {"tick": 0.5}}}))
    opts = salt.config.master_config(str(lay.master_conf))
    conf = saltops_config.load(opts)
    assert saltops_config.db_url(conf) == lay.db_url
    assert conf["alarms"]["tick"] == 0.5 and conf["alarms"]["rules_file"] == str(lay.rules_file)
    # The rules: written once from the shipped defaults with the lab's timings; a person's edits are kept.
    assert lay.write_rules() is True
    ruleset = rules.load_file(str(lay.rules_file), channels={"inbox"})
    assert ruleset.route.group_wait == 5 and "ServiceDownWeb" in [r.name for r in ruleset.rules]
    lay.rules_file.write_text(lay.rules_file.read_text() + "# mine\n")
    assert lay.write_rules() is False and lay.rules_file.read_text().endswith("# mine\n")
