"""The minion module ``saltops_release`` through a real Salt loader."""

import io
import os
import tarfile
import time

import deploy_appkit as kit
import pytest
from salt.exceptions import SaltInvocationError


def _settings(base, **extra):
    return kit.app_settings(base, kit.free_port(), **extra)


def _build(artifacts, version, **kw):
    path, digest = kit.build_artifact(artifacts.directory, version, **kw)
    return artifacts.url(path), digest


def _serving(settings):
    return kit.get(f"http://127.0.0.1:{settings['port']}/healthz")


def test_stage_and_switch_over_http(caller, artifacts, app_base):
    settings = _settings(app_base, pre_hook="hook_pre", post_hook="hook_post")
    url, digest = _build(artifacts, "1.0")

    staged = caller.cmd("saltops_release.stage", "shop", "1.0", url, digest, settings=settings)
    assert staged["result"] is True, staged
    assert [s["step"] for s in staged["steps"]] == ["fetch", "unpack"]
    release = os.path.join(app_base, "shop", "releases", "1.0")
    # The single top folder of the archive is dropped.
    assert os.path.isfile(os.path.join(release, "app.py"))
    assert not os.path.exists(os.path.join(app_base, "shop", "current"))
    assert os.listdir(os.path.join(app_base, "shop", ".cache")) == []

    # Staging again does not download again.
    before = len(artifacts.requests)
    again = caller.cmd("saltops_release.stage", "shop", "1.0", url, digest, settings=settings)
    assert again["result"] is True and again["staged"] == "cached"
    assert len(artifacts.requests) == before

    switched = caller.cmd("saltops_release.switch", "shop", "1.0", settings=settings)
    assert switched["result"] is True, switched
    assert [s["step"] for s in switched["steps"]] == [
        "pre_hook",
        "switch",
        "restart",
        "health",
        "post_hook",
        "prune",
    ]
    assert switched["previous"] is None
    assert os.readlink(os.path.join(app_base, "shop", "current")) == "releases/1.0"
    assert _serving(settings) == (200, "ok 1.0")
    with open(os.path.join(app_base, "shop", "hooks.log")) as fh:
        assert fh.read().split("\n")[:2] == ["pre 1.0", "post 1.0"]


def test_deploy_then_rollback(caller, artifacts, app_base):
    settings = _settings(app_base)
    for version in ("1.0", "2.0"):
        url, digest = _build(artifacts, version)
        ret = caller.cmd("saltops_release.deploy", "shop", version, url, digest, settings=settings)
        assert ret["result"] is True, ret
    assert _serving(settings) == (200, "ok 2.0")
    assert caller.cmd("saltops_release.status", "shop", settings=settings)["current"] == "2.0"

    back = caller.cmd("saltops_release.rollback", "shop", settings=settings)
    assert back["result"] is True, back
    assert back["version"] == "1.0" and back["previous"] == "2.0"
    assert _serving(settings) == (200, "ok 1.0")

    forward = caller.cmd("saltops_release.rollback", "shop", to="2.0", settings=settings)
    assert forward["result"] is True
    assert _serving(settings) == (200, "ok 2.0")


def test_rollback_to_a_release_not_on_disk_changes_nothing(caller, artifacts, app_base):
    settings = _settings(app_base)
    url, digest = _build(artifacts, "1.0")
    assert caller.cmd("saltops_release.deploy", "shop", "1.0", url, digest, settings=settings)["result"]

    ret = caller.cmd("saltops_release.rollback", "shop", to="0.9", settings=settings)
    assert ret["result"] is False
    assert "release 0.9 of shop is not on disk" in ret["comment"]
    assert "1.0" in ret["comment"]
    assert os.readlink(os.path.join(app_base, "shop", "current")) == "releases/1.0"
    assert _serving(settings) == (200, "ok 1.0")

    first = caller.cmd("saltops_release.rollback", "shop", settings=settings)
    assert first["result"] is False
    assert "no earlier release of shop is on disk" in first["comment"]


def test_bad_checksum_stages_nothing(caller, artifacts, app_base):
    settings = _settings(app_base)
    url, digest = _build(artifacts, "1.0")
    wrong = ("0" if digest[0] != "0" else "1") + digest[1:]
    ret = caller.cmd("saltops_release.deploy", "shop", "1.0", url, wrong, settings=settings)
    assert ret["result"] is False
    assert "checksum mismatch" in ret["comment"] and digest in ret["comment"]
    assert ret["steps"][-1]["step"] == "fetch" and ret["steps"][-1]["result"] is False
    app_dir = os.path.join(app_base, "shop")
    assert not os.path.exists(os.path.join(app_dir, "releases", "1.0"))
    assert not os.path.lexists(os.path.join(app_dir, "current"))
    assert os.listdir(os.path.join(app_dir, ".cache")) == []


def test_hanging_artifact_url_times_out(caller, artifacts, app_base):
    settings = _settings(app_base, fetch_timeout=1.5)
    start = time.monotonic()
    ret = caller.cmd(
        "saltops_release.stage", "shop", "1.0", artifacts.url("hang/shop.tar.gz"), "a" * 64, settings=settings
    )
    elapsed = time.monotonic() - start
    assert ret["result"] is False
    assert "timed out" in ret["comment"]
    assert elapsed < 10
    assert not os.path.exists(os.path.join(app_base, "shop", "releases", "1.0"))


def test_unreachable_and_missing_artifacts(caller, artifacts, app_base):
    settings = _settings(app_base)
    missing = caller.cmd(
        "saltops_release.stage", "shop", "1.0", artifacts.url("nope.tar.gz"), "a" * 64, settings=settings
    )
    assert missing["result"] is False and "HTTP 404" in missing["comment"]
    refused = caller.cmd(
        "saltops_release.stage",
        "shop",
        "1.0",
        f"http://127.0.0.1:{kit.free_port()}/x.tgz",
        "a" * 64,
        settings=settings,
    )
    assert refused["result"] is False and "refused" in refused["comment"].lower()


def test_salt_fileserver_artifact(caller, artifacts, file_root, app_base):
    settings = _settings(app_base)
    path, digest = kit.build_artifact(os.path.join(file_root, "artifacts"), "3.1")
    ret = caller.cmd(
        "saltops_release.deploy",
        "shop",
        "3.1",
        "salt://artifacts/" + os.path.basename(path),
        digest,
        settings=settings,
    )
    assert ret["result"] is True, ret
    assert _serving(settings) == (200, "ok 3.1")
    gone = caller.cmd(
        "saltops_release.stage", "shop", "3.2", "salt://artifacts/missing.tar.gz", digest, settings=settings
    )
    assert gone["result"] is False and "not on the master's fileserver" in gone["comment"]


def test_zip_artifact(caller, artifacts, app_base):
    settings = _settings(app_base)
    url, digest = _build(artifacts, "4.0", fmt="zip")
    ret = caller.cmd("saltops_release.deploy", "shop", "4.0", url, digest, settings=settings)
    assert ret["result"] is True, ret
    assert _serving(settings) == (200, "ok 4.0")


def test_failed_health_check_reports_previous(caller, artifacts, app_base):
    # Retries enough for the broken release to start on a loaded machine and answer 500.
    settings = _settings(app_base, health_retries=30)
    url, digest = _build(artifacts, "1.0")
    assert caller.cmd("saltops_release.deploy", "shop", "1.0", url, digest, settings=settings)["result"]
    url, digest = _build(artifacts, "1.1", broken=True)
    ret = caller.cmd("saltops_release.deploy", "shop", "1.1", url, digest, settings=settings)
    assert ret["result"] is False
    assert ret["previous"] == "1.0"
    health = next(s for s in ret["steps"] if s["step"] == "health")
    assert health["result"] is False and health["attempts"] == 30
    assert "HTTP 500" in ret["comment"]
    # The module reports; the master decides to roll back.
    assert caller.cmd("saltops_release.rollback", "shop", settings=settings)["result"] is True
    assert _serving(settings) == (200, "ok 1.0")


def test_failing_pre_hook_switches_nothing(caller, artifacts, app_base):
    settings = _settings(app_base)
    url, digest = _build(artifacts, "1.0")
    assert caller.cmd("saltops_release.deploy", "shop", "1.0", url, digest, settings=settings)["result"]
    url, digest = _build(artifacts, "2.0")
    bad = dict(settings, pre_hook="failing_migration")
    ret = caller.cmd("saltops_release.deploy", "shop", "2.0", url, digest, settings=bad)
    assert ret["result"] is False
    assert "hook failing_migration exited with 3" in ret["comment"] and "migration failed" in ret["comment"]
    assert os.readlink(os.path.join(app_base, "shop", "current")) == "releases/1.0"
    assert _serving(settings) == (200, "ok 1.0")


def test_keeps_last_n_releases(caller, artifacts, app_base):
    settings = _settings(app_base, keep=2)
    for version in ("1", "2", "3", "4"):
        url, digest = _build(artifacts, version)
        assert caller.cmd("saltops_release.deploy", "shop", version, url, digest, settings=settings)["result"]
        time.sleep(0.01)
    status = caller.cmd("saltops_release.status", "shop", settings=settings)
    assert status["current"] == "4"
    assert sorted(status["releases"]) == ["3", "4"]


def test_same_version_with_other_content_is_refused(caller, artifacts, app_base):
    settings = _settings(app_base)
    url, digest = _build(artifacts, "1.0")
    assert caller.cmd("saltops_release.stage", "shop", "1.0", url, digest, settings=settings)["result"]
    url2, digest2 = _build(artifacts, "1.0", broken=True)
    ret = caller.cmd("saltops_release.stage", "shop", "1.0", url2, digest2, settings=settings)
    assert ret["result"] is False and "must not change its content" in ret["comment"]


def test_archive_escaping_the_release_folder_is_refused(caller, artifacts, app_base):
    settings = _settings(app_base)
    path = os.path.join(artifacts.directory, "evil.tar.gz")
    with tarfile.open(path, "w:gz") as tar:
        data = b"x"
        info = tarfile.TarInfo("../../escaped")
        info.size = 1
        tar.addfile(info, io.BytesIO(data))
    ret = caller.cmd(
        "saltops_release.stage", "shop", "6.6", artifacts.url(path), kit.sha256_of(path), settings=settings
    )
    assert ret["result"] is False and "cannot unpack" in ret["comment"]
    assert not os.path.exists(os.path.join(app_base, "escaped"))
    releases = os.path.join(app_base, "shop", "releases")
    assert os.listdir(releases) == []


@pytest.mark.parametrize(
    "args, message",
    [
        (("../etc", "1.0", "http://x/a.tgz", "a" * 64), "app '../etc' is not an app name"),
        (("Shop", "1.0", "http://x/a.tgz", "a" * 64), "app 'Shop' is not an app name"),
        (("shop", "1/0", "http://x/a.tgz", "a" * 64), "version '1/0' is invalid"),
        (("shop", "1..0", "http://x/a.tgz", "a" * 64), "'..' is not allowed"),
        (("shop", "1.0", "http://x/a.tgz", "abc"), "sha256 must be 64 hexadecimal"),
    ],
)
def test_bad_input_is_refused(caller, app_base, args, message):
    with pytest.raises(SaltInvocationError, match=message.replace("(", r"\(").replace(".", r"\.")):
        caller.cmd("saltops_release.stage", *args, settings={"base": app_base})
    assert os.listdir(app_base) == []


def test_relative_base_is_refused(caller):
    with pytest.raises(SaltInvocationError, match="absolute path"):
        caller.cmd("saltops_release.status", "shop", settings={"base": "apps"})


def test_blue_green_slots(caller, artifacts, app_base):
    blue, green = kit.free_port(), kit.free_port()
    settings = _settings(app_base, slots={"blue": {"port": blue}, "green": {"port": green}})
    for version in ("1.0", "2.0"):
        url, digest = _build(artifacts, version)
        assert caller.cmd("saltops_release.stage", "shop", version, url, digest, settings=settings)["result"]

    ret = caller.cmd("saltops_release.install_slot", "shop", "1.0", "blue", settings=settings)
    assert ret["result"] is True, ret
    assert caller.cmd("saltops_release.set_active", "shop", "blue", settings=settings)["result"]
    ret = caller.cmd("saltops_release.install_slot", "shop", "2.0", "green", settings=settings)
    assert ret["result"] is True, ret
    # Both slots serve: the old one stays up for an instant rollback.
    assert kit.get(f"http://127.0.0.1:{blue}/healthz") == (200, "ok 1.0")
    assert kit.get(f"http://127.0.0.1:{green}/healthz") == (200, "ok 2.0")

    refused = caller.cmd("saltops_release.install_slot", "shop", "2.0", "blue", settings=settings)
    assert refused["result"] is False and "live slot" in refused["comment"]

    flipped = caller.cmd("saltops_release.set_active", "shop", "green", settings=settings)
    assert flipped["result"] is True and flipped["previous_slot"] == "blue"
    status = caller.cmd("saltops_release.status", "shop", settings=settings)
    assert status["active_slot"] == "green" and status["current"] == "2.0"
    assert status["slots"] == {"blue": "1.0", "green": "2.0"}
    health = caller.cmd("saltops_release.health", "shop", slot="blue", settings=settings)
    assert health["result"] is True and health["version"] == "1.0"

    with pytest.raises(SaltInvocationError, match="slot must be one of"):
        caller.cmd("saltops_release.set_active", "shop", "red", settings=settings)


def test_install_slot_without_slots_setting_is_refused(caller, app_base):
    with pytest.raises(SaltInvocationError, match="blue/green needs the setting slots"):
        caller.cmd("saltops_release.install_slot", "shop", "1.0", "green", settings={"base": app_base})
    assert not os.path.exists(os.path.join(app_base, "shop", "slots"))


def test_settings_by_host_picks_this_minions_entry(caller, artifacts, app_base):
    # One publication carries the settings of hosts that differ; each minion takes its own.
    mine = _settings(app_base)
    other = _settings(os.path.join(app_base, "elsewhere"))
    url, digest = _build(artifacts, "1.0")
    by_host = {"func-minion": mine, "web99.example.com": other}
    staged = caller.cmd("saltops_release.stage", "shop", "1.0", url, digest, settings_by_host=by_host)
    assert staged["result"] is True, staged
    switched = caller.cmd("saltops_release.switch", "shop", "1.0", settings_by_host=by_host)
    assert switched["result"] is True, switched
    assert _serving(mine) == (200, "ok 1.0")
    assert not os.path.exists(os.path.join(app_base, "elsewhere"))
    with pytest.raises(SaltInvocationError, match=r"no entry for this minion \(func-minion\)"):
        caller.cmd("saltops_release.health", "shop", settings_by_host={"web99.example.com": other})


def test_switch_into_a_slot(caller, artifacts, app_base):
    # A rolling deploy of a blue/green app: the release goes into the live slot, on its port.
    settings = _settings(app_base, slots={"blue": kit.free_port(), "green": kit.free_port()})
    for version in ("1.0", "2.0"):
        url, digest = _build(artifacts, version)
        assert caller.cmd("saltops_release.stage", "shop", version, url, digest, settings=settings)["result"]
    one = caller.cmd("saltops_release.switch", "shop", "1.0", settings=settings, slot="green")
    assert one["result"] is True and one["slot"] == "green", one
    assert kit.get(f"http://127.0.0.1:{settings['slots']['green']}/healthz") == (200, "ok 1.0")
    two = caller.cmd("saltops_release.switch", "shop", "2.0", settings=settings, slot="green")
    assert two["result"] is True and two["previous"] == "1.0", two
    assert kit.get(f"http://127.0.0.1:{settings['slots']['green']}/healthz") == (200, "ok 2.0")
    status = caller.cmd("saltops_release.status", "shop", settings=settings)
    assert status["current"] == "2.0" and status["active_slot"] == "green"
    assert os.readlink(os.path.join(app_base, "shop", "current")) == "slots/green"
    back = caller.cmd("saltops_release.rollback", "shop", settings=settings, slot="green")
    assert back["result"] is True and back["version"] == "1.0", back
    assert kit.get(f"http://127.0.0.1:{settings['slots']['green']}/healthz") == (200, "ok 1.0")
    with pytest.raises(SaltInvocationError, match="slot must be one of blue, green"):
        caller.cmd("saltops_release.switch", "shop", "2.0", settings=settings, slot="red")


# --------------------------------------------------------------- hooks are names, run without a shell


@pytest.mark.parametrize("setting", ["pre_hook", "post_hook", "restart", "reload"])
def test_a_command_in_a_hook_setting_is_refused_before_anything_changes(caller, artifacts, app_base, setting):
    url, digest = _build(artifacts, "1.0")
    settings = _settings(app_base, **{setting: "touch /tmp/pwned; sh bin/restart.sh"})
    with pytest.raises(
        SaltInvocationError, match=f"setting '{setting}' must name a hook declared in the pillar"
    ):
        caller.cmd("saltops_release.deploy", "shop", "1.0", url, digest, settings=settings)
    assert os.listdir(app_base) == []


def test_an_undeclared_hook_is_refused_before_anything_changes(caller, artifacts, app_base):
    url, digest = _build(artifacts, "1.0")
    settings = _settings(app_base, pre_hook="drop_database")
    with pytest.raises(SaltInvocationError, match="names the hook 'drop_database', which the pillar"):
        caller.cmd("saltops_release.stage", "shop", "1.0", url, digest, settings=settings)
    assert os.listdir(app_base) == []


def test_hooks_report_their_name_and_get_the_release_environment(caller, artifacts, app_base):
    settings = _settings(app_base, post_hook="hook_post")
    url, digest = _build(artifacts, "1.0")
    ret = caller.cmd("saltops_release.deploy", "shop", "1.0", url, digest, settings=settings)
    assert ret["result"] is True, ret
    steps = {s["step"]: s for s in ret["steps"]}
    assert steps["restart"]["hook"] == "app_restart" and steps["post_hook"]["hook"] == "hook_post"
    with open(os.path.join(app_base, "shop", "hooks.log")) as fh:
        assert fh.read() == "post 1.0\n"


# --------------------------------------------------------------- artifacts: local paths, sizes, members


@pytest.fixture(scope="module")
def local_dir(workdir):
    path = os.path.join(workdir, "local-artifacts")
    os.makedirs(path)
    return path


@pytest.fixture(scope="module")
def local_caller(workdir, file_root, local_dir):
    """A second minion whose config allows local artifacts from ``local_dir`` and caps downloads at 4000 bytes."""
    import salt.client
    import salt.config

    root = os.path.join(workdir, "minion-local")
    os.makedirs(root)
    conf = os.path.join(root, "minion")
    with open(conf, "w") as fh:
        fh.write(
            f"root_dir: {root}\n"
            "id: func-minion-local\n"
            "file_client: local\n"
            f"file_roots: {{base: [{file_root}]}}\n"
            f"pillar_roots: {{base: [{workdir}/pillar]}}\n"
            f"log_file: {root}/minion.log\n"
            f"saltops_release_local_dir: {local_dir}\n"
            "saltops_release_max_artifact_bytes: 4000\n"
        )
    return salt.client.Caller(mopts=salt.config.minion_config(conf))


@pytest.mark.parametrize("form", ["file://{}", "{}"])
def test_local_artifacts_are_refused_by_default(caller, local_dir, app_base, form):
    path, digest = kit.build_artifact(local_dir, "1.0")
    ret = caller.cmd(
        "saltops_release.stage", "shop", "1.0", form.format(path), digest, settings=_settings(app_base)
    )
    assert ret["result"] is False
    assert "local artifacts" in ret["comment"] and "saltops_release_local_dir" in ret["comment"]
    assert not os.path.exists(os.path.join(app_base, "shop", "releases", "1.0"))


def test_local_artifacts_inside_the_allowed_directory_only(local_caller, local_dir, workdir, app_base):
    path, digest = kit.build_artifact(local_dir, "1.0")
    ok = local_caller.cmd(
        "saltops_release.stage", "shop", "1.0", f"file://{path}", digest, settings=_settings(app_base)
    )
    assert ok["result"] is True, ok
    outside, digest2 = kit.build_artifact(os.path.join(workdir, "www"), "2.0")
    for artifact in (outside, f"file://{local_dir}/../www/{os.path.basename(outside)}"):
        ret = local_caller.cmd(
            "saltops_release.stage", "shop", "2.0", artifact, digest2, settings=_settings(app_base)
        )
        assert ret["result"] is False and "outside saltops_release_local_dir" in ret["comment"], ret
    assert not os.path.exists(os.path.join(app_base, "shop", "releases", "2.0"))


def test_a_download_larger_than_the_cap_is_refused(caller, artifacts, app_base):
    url, digest = _build(artifacts, "1.0")
    settings = _settings(app_base, max_artifact_bytes=100)
    ret = caller.cmd("saltops_release.stage", "shop", "1.0", url, digest, settings=settings)
    assert ret["result"] is False and "more than max_artifact_bytes (100)" in ret["comment"], ret
    assert os.listdir(os.path.join(app_base, "shop", ".cache")) == []
    assert not os.path.exists(os.path.join(app_base, "shop", "releases", "1.0"))


def test_the_cmdb_cannot_raise_the_minions_size_cap(local_caller, artifacts, app_base):
    path = os.path.join(artifacts.directory, "big.tar.gz")
    with open(path, "wb") as fh:
        fh.write(os.urandom(5000))
    settings = _settings(app_base, max_artifact_bytes=1 << 50)
    ret = local_caller.cmd(
        "saltops_release.stage", "shop", "1.0", artifacts.url(path), kit.sha256_of(path), settings=settings
    )
    assert ret["result"] is False and "more than max_artifact_bytes (4000)" in ret["comment"], ret
    assert not os.path.exists(os.path.join(app_base, "shop", "releases", "1.0"))


def _evil_tar(directory, name, members):
    """A tar.gz whose members are ``(TarInfo, data or None)``."""
    path = os.path.join(directory, name)
    with tarfile.open(path, "w:gz") as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                tar.addfile(info)
    return path


def _info(name, kind=tarfile.REGTYPE, linkname=""):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    return info


@pytest.mark.parametrize(
    "members, message",
    [
        ([(_info("/etc/cron.d/x"), b"x")], "absolute path or '..'"),
        ([(_info("a/../../x"), b"x")], "absolute path or '..'"),
        ([(_info("up", tarfile.SYMTYPE, "../../.."), None)], "links outside the release folder"),
        ([(_info("abs", tarfile.SYMTYPE, "/etc"), None)], "links to the absolute path"),
        ([(_info("hard", tarfile.LNKTYPE, "../outside"), None)], "links outside the release folder"),
        (
            [(_info("sub", tarfile.SYMTYPE, "."), None), (_info("sub/x"), b"x")],
            "written through a link of the archive",
        ),
        ([(_info("dev", tarfile.CHRTYPE), None)], "device or fifo"),
        ([(_info("pipe", tarfile.FIFOTYPE), None)], "device or fifo"),
        ([(_info("big"), b"y" * 5000)], "more than max_unpacked_bytes (4096)"),
        ([(_info(f"f{i}"), b"z") for i in range(20)], "more than max_members (10)"),
    ],
)
def test_archive_members_are_checked_before_unpacking(caller, artifacts, app_base, members, message):
    settings = _settings(app_base, max_unpacked_bytes=4096, max_members=10)
    path = _evil_tar(artifacts.directory, f"evil-{abs(hash(message))}.tar.gz", members)
    ret = caller.cmd(
        "saltops_release.stage", "shop", "6.6", artifacts.url(path), kit.sha256_of(path), settings=settings
    )
    assert ret["result"] is False and message in ret["comment"], ret
    assert os.listdir(os.path.join(app_base, "shop", "releases")) == []
    assert not os.path.exists(os.path.join(app_base, "escaped"))
