"""testinfra checks for the base role (see conftest.py for how to run them)."""


def test_base_packages(host):
    for name in ("sudo", "curl", "ca-certificates", "rsync", "lsof"):
        assert host.package(name).is_installed, name


def test_users_and_keys(host, pillar):
    for name, user in pillar["base"]["users"].items():
        account = host.user(name)
        assert account.exists and account.shell == user.get("shell", "/bin/bash")
        keys = host.file(f"{account.home}/.ssh/authorized_keys")
        assert keys.exists and keys.user == name
        for key in user["ssh_keys"]:
            assert key in keys.content_string


def test_sudoers_checked_and_private(host, pillar):
    sudoers = host.file("/etc/sudoers.d/90-saltops")
    assert sudoers.exists and sudoers.mode == 0o440 and sudoers.user == "root"
    wanted = {name for name, user in pillar["base"]["users"].items() if user.get("sudo")}
    for name in wanted:
        assert f"{name} ALL=(ALL:ALL) NOPASSWD: ALL" in sudoers.content_string
    assert host.run("visudo -c -f /etc/sudoers.d/90-saltops").rc == 0


def test_limits_and_sysctl_files(host):
    limits = host.file("/etc/security/limits.d/90-saltops.conf")
    assert limits.exists and "nofile" in limits.content_string
    assert host.file("/etc/sysctl.d/90-saltops.conf").contains("net.core.somaxconn")


def test_timezone(host, pillar):
    zone = pillar.get("base", {}).get("timezone", "Etc/UTC")
    localtime = host.file("/etc/localtime")
    assert localtime.is_symlink and localtime.linked_to.endswith("/" + zone)


def test_minion_settings(host, pillar):
    path = pillar.get("base", {}).get("minion", {}).get("config_file", "/etc/salt/minion.d/90-saltops.conf")
    conf = host.file(path)
    assert conf.exists and "random_reauth_delay: 60" in conf.content_string
