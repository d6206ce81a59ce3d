"""Render every role for Debian 12 and Rocky Linux 9 through a real Salt loader.

The CMDB pillar is fabricated (the shape of docs/pillar.md) and the platform is
chosen with grains; the assertions read the rendered state data: package and
service names per OS family, the haproxy backends and frontends, the vhosts,
and what the top file gives hosts the CMDB does not vouch for.
"""

import copy
import shutil
import subprocess

import jinja2
import pytest
from states_saltlocal import PLATFORMS, STATES, lowstates, salt_call, write_config

from tests.support.hosts import host_record

WEB01 = {
    "hostname": "web01.bj.example.com",
    "ip": "10.10.1.11",
    "lines": {"telecom": "203.0.113.11"},
    "idc": "bj-idc1",
    "apps": {
        "shop": {"port": 8000, "health_url": "/healthz", "server_name": "shop.example.com"},
        "blog": {"port": 8001, "health_url": "/ping"},
    },
}
WEB02 = {
    "hostname": "web02.sh.example.com",
    "ip": "10.20.1.12",
    "lines": {"unicom": "198.51.100.12"},
    "idc": "sh-idc1",
    "apps": {"shop": {"port": 8000, "health_url": "/healthz", "server_name": "shop.example.com"}},
}


def record(**over):
    """The ``cmdb`` pillar of a host with every role: its CMDB record plus the pillar's flags."""
    rec = host_record(
        "all01.bj.example.com",
        ip="10.10.1.50",
        lines={"telecom": "203.0.113.50", "unicom": "198.51.100.50"},
        roles=["base", "cache", "db", "lb", "monitor", "web"],
        apps={
            "shop": {"port": 8000, "health_url": "/healthz", "server_name": "shop.example.com"},
            "mysql": {"port": 3306, "replica_of": "db01.bj.example.com"},
        },
    )
    rec.update(known=True, stale=False, version=42)
    rec.update(over)
    return rec


def lb_pillar(backends=None, env="prod"):
    # Deliberately unsorted: the formula sorts by hostname itself.
    backends = [WEB02, WEB01] if backends is None else backends
    return {"lb": {"serves": "web", "env": env, "backends": copy.deepcopy(backends)}}


@pytest.fixture(scope="module")
def render(tmp_path_factory):
    """render(platform, pillar, fun="state.show_highstate", *args) -> rendered data (cached)."""
    cache = {}

    def _render(platform, pillar, fun="state.show_highstate", *args, extra=None, env=None):
        key = repr((platform, pillar, fun, args, extra, env))
        if key not in cache:
            root = tmp_path_factory.mktemp("render")
            conf = write_config(
                root,
                pillar.get("cmdb", {}).get("hostname", "stray01"),
                pillar,
                grains=PLATFORMS[platform],
                extra=extra,
            )
            code, data, output = salt_call(conf, fun, *args, env=env)
            assert code == 0 and data is not None, output
            cache[key] = data
        return cache[key]

    return _render


def full_host(platform):
    return {"cmdb": record(), "cmdb_lb": lb_pillar()}


def states(render, platform, pillar):
    data = render(platform, pillar)
    assert isinstance(data, dict), data
    return lowstates(data)


def pkgs_of(low):
    names = set()
    for state in low.values():
        if state["fun"] == "pkg.installed":
            names.update(state["args"].get("pkgs") or [state["args"].get("name")])
    return names


def services_of(low):
    return {s["args"]["name"] for s in low.values() if s["fun"] == "service.running"}


def files_of(low, fun="file.managed"):
    return {s["args"]["name"]: s["args"] for s in low.values() if s["fun"] == fun}


def sls_of(low):
    return {s["sls"] for s in low.values()}


# --- every role, per platform ------------------------------------------------------


@pytest.mark.parametrize(
    "platform, expected_pkgs, expected_services",
    [
        (
            "debian12",
            {
                "nginx",
                "gunicorn",
                "haproxy",
                "mariadb-server",
                "mariadb-client",
                "redis-server",
                "prometheus-node-exporter",
                "chrony",
                "sudo",
                "curl",
            },
            {
                "nginx",
                "haproxy",
                "mariadb",
                "redis-server",
                "prometheus-node-exporter",
                "chrony",
                "saltops-app-shop",
            },
        ),
        (
            "rocky9",
            {
                "nginx",
                "python3-gunicorn",
                "haproxy",
                "mariadb-server",
                "mariadb",
                "redis",
                "golang-github-prometheus-node-exporter",
                "chrony",
                "sudo",
                "curl",
            },
            {"nginx", "haproxy", "mariadb", "redis", "node_exporter", "chronyd", "saltops-app-shop"},
        ),
    ],
)
def test_every_role_renders_with_os_family_names(render, platform, expected_pkgs, expected_services):
    low = states(render, platform, full_host(platform))
    for role in ("base", "web", "lb", "db", "cache", "monitor"):
        assert any(sls.startswith(role + ".") for sls in sls_of(low)), role
    assert "notice" not in sls_of(low) and "base.safe" not in sls_of(low)
    pkgs = pkgs_of(low)
    assert expected_pkgs <= pkgs
    # systemd hosts run apps as units: no supervisor package, and the other family's names never leak
    assert "supervisor" not in pkgs
    other = {
        "debian12": {"redis", "python3-gunicorn", "node_exporter"},
        "rocky9": {"redis-server", "gunicorn", "prometheus-node-exporter"},
    }[platform]
    assert not pkgs & other
    assert services_of(low) == expected_services


def test_os_family_paths(render):
    deb = files_of(states(render, "debian12", full_host("debian12")))
    rocky = files_of(states(render, "rocky9", full_host("rocky9")))
    assert "/etc/mysql/mariadb.conf.d/60-saltops.cnf" in deb and "/etc/my.cnf.d/60-saltops.cnf" in rocky
    assert "/etc/default/prometheus-node-exporter" in deb and "/etc/sysconfig/node_exporter" in rocky
    assert "/etc/chrony/chrony.conf" in deb and "/etc/chrony.conf" in rocky
    assert deb["/etc/default/prometheus-node-exporter"]["context"]["var"] == "ARGS"
    assert rocky["/etc/sysconfig/node_exporter"]["context"]["var"] == "OPTIONS"
    assert "/etc/timezone" in deb and "/etc/timezone" not in rocky
    for files in (deb, rocky):
        assert "/etc/systemd/system/saltops-app-shop.service" in files
        assert files["/etc/sudoers.d/90-saltops"]["check_cmd"] == "/usr/sbin/visudo -c -f"


def test_lb_backends_frontends_and_check(render):
    low = states(render, "debian12", full_host("debian12"))
    haproxy = files_of(low)["/etc/haproxy/haproxy.cfg"]
    assert haproxy["check_cmd"] == "/usr/sbin/haproxy -c -q -f"
    ctx = haproxy["context"]
    assert ctx["apps"]["shop"]["servers"] == [
        {"name": "web01.bj.example.com", "address": "10.10.1.11", "port": 80},
        {"name": "web02.sh.example.com", "address": "10.20.1.12", "port": 80},
    ]
    assert ctx["apps"]["blog"]["servers"] == [
        {"name": "web01.bj.example.com", "address": "10.10.1.11", "port": 80}
    ]
    assert ctx["apps"]["shop"]["slot"] is None
    assert ctx["apps"]["blog"]["settings"]["server_name"] == "blog"
    assert ctx["apps"]["shop"]["settings"]["server_name"] == "shop.example.com"
    # one frontend per ISP line of the balancer host
    assert ctx["frontends"] == [
        {"name": "telecom", "address": "203.0.113.50"},
        {"name": "unicom", "address": "198.51.100.50"},
    ]
    assert ctx["version"] == 42 and ctx["serves"] == "web" and ctx["env"] == "prod"
    # the reload follows the checked file, never the other way round
    svc = next(s for s in low.values() if s["sls"] == "lb.service.running")
    assert svc["args"]["reload"] is True and {"sls": "lb.config.file"} in svc["args"]["watch"]


def test_lb_without_lines_binds_the_cmdb_ip(render):
    pillar = {"cmdb": record(lines={}, roles=["base", "lb"]), "cmdb_lb": lb_pillar()}
    ctx = files_of(states(render, "rocky9", pillar))["/etc/haproxy/haproxy.cfg"]["context"]
    assert ctx["frontends"] == [{"name": "main", "address": "10.10.1.50"}]


def render_haproxy(ctx):
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(STATES / "lb" / "files")),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )
    return env.get_template("haproxy.cfg.jinja").render(**ctx)


def test_haproxy_config_text(render):
    ctx = files_of(states(render, "debian12", full_host("debian12")))["/etc/haproxy/haproxy.cfg"]["context"]
    text = render_haproxy(ctx)
    assert "bind 203.0.113.50:80" in text and "bind 198.51.100.50:80" in text
    assert "server web01.bj.example.com 10.10.1.11:80 check" in text
    assert "server web02.sh.example.com 10.20.1.12:80 check" in text
    assert "use_backend bk_shop if { hdr(host),field(1,:) -i shop.example.com }" in text
    assert "http-check send meth GET uri /ping ver HTTP/1.1 hdr Host blog" in text
    assert "CMDB at version 42" in text
    if shutil.which("haproxy"):
        # haproxy itself accepts what the formula generates (it must resolve nothing: addresses only)
        cfg = text.replace("chroot /var/lib/haproxy", "")
        proc = subprocess.run(
            ["haproxy", "-c", "-f", "/dev/stdin"], input=cfg, text=True, capture_output=True, check=False
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr


def slotted(host, blue, green, form="port"):
    out = copy.deepcopy(host)
    ports = {"blue": blue, "green": green}
    if form == "mapping":
        ports = {slot: {"port": port} for slot, port in ports.items()}
    out["apps"]["shop"]["slots"] = ports
    return out


def test_lb_routes_a_blue_green_app_to_its_live_slot(render):
    web01 = slotted(WEB01, 8001, 8002)
    web02 = slotted(WEB02, 9001, 9002, form="mapping")
    third = dict(copy.deepcopy(WEB02), hostname="web03.sh.example.com", ip="10.20.1.13")
    pillar = {
        "cmdb": record(),
        "cmdb_lb": lb_pillar([web02, third, web01]),
        "deploy_slots": {"shop": {"active": "green"}},
    }
    ctx = files_of(states(render, "debian12", pillar))["/etc/haproxy/haproxy.cfg"]["context"]
    shop = ctx["apps"]["shop"]
    assert shop["slot"] == "green"
    assert shop["servers"] == [
        {"name": "web01.bj.example.com", "address": "10.10.1.11", "port": 8002},
        {"name": "web02.sh.example.com", "address": "10.20.1.12", "port": 9002},
    ]
    # a host of the app without slot ports cannot serve the live slot: left out, and said so
    assert shop["unslotted"] == ["web03.sh.example.com"]
    # an app without a live slot keeps the nginx port
    assert ctx["apps"]["blog"]["servers"] == [
        {"name": "web01.bj.example.com", "address": "10.10.1.11", "port": 80}
    ]
    text = render_haproxy(ctx)
    assert "server web01.bj.example.com 10.10.1.11:8002 check" in text
    assert "server web02.sh.example.com 10.20.1.12:9002 check" in text
    assert "# blue/green: live slot green" in text
    assert "# web03.sh.example.com left out: no port for slot green in its apps:shop:slots" in text
    blue = dict(pillar, deploy_slots={"shop": {"active": "blue"}})
    ctx = files_of(states(render, "debian12", blue))["/etc/haproxy/haproxy.cfg"]["context"]
    assert [s["port"] for s in ctx["apps"]["shop"]["servers"]] == [8001, 9001]


def test_lb_refuses_when_no_backend_has_the_live_slot(render):
    pillar = {
        "cmdb": record(),
        "cmdb_lb": lb_pillar([WEB02]),
        "deploy_slots": {"shop": {"active": "green"}},
    }
    low = states(render, "debian12", pillar)
    assert "/etc/haproxy/haproxy.cfg" not in files_of(low)
    refusal = next(s for s in low.values() if s["fun"] == "test.fail_without_changes")
    assert "fewer than lb:min_backends" in refusal["args"]["comment"]


def test_web_vhosts_from_apps(render):
    low = states(render, "debian12", full_host("debian12"))
    files = files_of(low)
    vhosts = {name: args for name, args in files.items() if name.startswith("/etc/nginx/conf.d/")}
    # mysql is the db role's CMDB entry, not a web app
    assert set(vhosts) == {"/etc/nginx/conf.d/saltops-shop.conf"}
    ctx = vhosts["/etc/nginx/conf.d/saltops-shop.conf"]["context"]
    assert ctx["listen"] == "10.10.1.50:80" and ctx["upstream"] == "127.0.0.1:8000"
    assert ctx["app"]["server_name"] == "shop.example.com" and ctx["default_server"] is True
    unit = files["/etc/systemd/system/saltops-app-shop.service"]["context"]
    assert unit["app"]["workers"] == 4  # pillar/stack/env/prod.yml over the default of 2
    nginx_test = next(s for s in low.values() if s["args"].get("name") == "/usr/sbin/nginx -t")
    assert {"file": "web-config-vhosts-file-managed-shop"} in nginx_test["args"]["onchanges"]


@pytest.mark.parametrize("platform", ["debian12", "rocky9", "debian12-container"])
def test_every_state_id_names_its_sls_and_its_state(render, platform):
    # formula-part-action-state: the ID starts with its SLS path, then the state function
    low = states(render, platform, full_host(platform))
    for sid, state in low.items():
        prefix = state["sls"].replace(".", "-") + "-" + state["fun"].replace(".", "-").replace("_", "-")
        assert sid.startswith(prefix), (sid, state["sls"], state["fun"])


@pytest.mark.parametrize(
    "platform, runtime, other",
    [("debian12", "systemd", "supervisor"), ("rocky9", "systemd", "supervisor"),
     ("debian12-container", "supervisor", "systemd")],
)
def test_web_runtime_parts_chosen_by_parameter(render, platform, runtime, other):
    sls = sls_of(states(render, platform, full_host(platform)))
    assert {f"web.config.{runtime}", f"web.service.{runtime}.running", "web.service.nginx.running"} <= sls
    assert not {s for s in sls if other in s.split(".")}
    clean = lowstates(render(platform, full_host(platform), "state.show_sls", "web.clean"))
    assert {s["sls"] for s in clean.values()} == {
        f"web.service.{runtime}.clean", "web.service.nginx.clean", "web.config.clean", "web.package.clean"
    }
    # the clean twin stops every app the CMDB gives the host, then nginx
    stops = [s["args"]["name"] for s in clean.values() if s["sls"] == f"web.service.{runtime}.clean"]
    assert any("saltops-app-shop" in name for name in stops), stops


@pytest.mark.parametrize("platform", ["debian12", "debian12-container"])
def test_web_host_without_apps_runs_nginx_only(render, platform):
    pillar = {"cmdb": record(roles=["base", "web"], apps={})}
    low = states(render, platform, pillar)
    assert services_of(low) & {"nginx"} and not any(n.startswith("saltops-app-") for n in services_of(low))
    clean = lowstates(render(platform, pillar, "state.show_sls", "web.clean"))
    assert "web-service-nginx-clean-service-dead" in clean


def test_container_platform_uses_supervisor_and_no_time_daemon(render):
    low = states(render, "debian12-container", full_host("debian12-container"))
    pkgs = pkgs_of(low)
    assert "supervisor" in pkgs and "chrony" not in pkgs
    files = files_of(low)
    assert "/etc/supervisor/conf.d/saltops-app-shop.conf" in files
    assert not any(name.startswith("/etc/systemd/system/") for name in files)
    assert "chrony" not in services_of(low)


def test_db_replica_from_cmdb(render):
    ctx = files_of(states(render, "debian12", full_host("debian12")))[
        "/etc/mysql/mariadb.conf.d/60-saltops.cnf"
    ]["context"]
    assert ctx["read_only"] is True and ctx["replica_of"] == "db01.bj.example.com"
    assert ctx["server_id"] == 10 * 16777216 + 10 * 65536 + 1 * 256 + 50
    primary = {"cmdb": record(roles=["base", "db"], apps={"mysql": {"port": 3307}})}
    ctx = files_of(states(render, "rocky9", primary))["/etc/my.cnf.d/60-saltops.cnf"]["context"]
    assert ctx["read_only"] is False and ctx["port"] == 3307


def test_cache_secret_by_reference(render):
    pillar = {
        "cmdb": record(roles=["base", "cache"]),
        "cache": {"requirepass": "sdb://osenv/SALTOPS_TEST_REDIS_PW"},
    }
    data = render(
        "debian12",
        pillar,
        "state.show_sls",
        "cache",
        extra={"osenv": {"driver": "env"}},
        env={"SALTOPS_TEST_REDIS_PW": "s3cret-from-env"},
    )
    ctx = files_of(lowstates(data))["/etc/redis/redis.conf"]
    assert ctx["context"]["requirepass"] == "s3cret-from-env" and ctx["show_changes"] is False
    assert ctx["context"]["bind"] == "10.10.1.50"


# --- beacons from the pillar, per role ----------------------------------------------


@pytest.mark.parametrize("platform, cache_service", [("debian12", "redis-server"), ("rocky9", "redis")])
def test_beacons_follow_roles(render, platform, cache_service):
    beacons = render(platform, full_host(platform), "pillar.item", "beacons", "--", "unmask=True")["beacons"]
    assert {
        "load",
        "memusage",
        "diskusage",
        "saltops_web_services",
        "saltops_lb_services",
        "saltops_db_services",
        "saltops_cache_services",
        "saltops_monitor_services",
    } <= set(beacons)
    cache = beacons["saltops_cache_services"]
    assert {"beacon_module": "service"} in cache
    assert next(item["services"] for item in cache if "services" in item) == {
        cache_service: {"onchangeonly": True}
    }
    web_only = render(
        platform, {"cmdb": record(roles=["base", "web"])}, "pillar.item", "beacons", "--", "unmask=True"
    )["beacons"]
    assert "saltops_web_services" in web_only and "saltops_lb_services" not in web_only


@pytest.mark.parametrize("platform, supervised", [("debian12", False), ("debian12-container", True), ("rocky9", False)])
def test_monitoring_beacons_cpu_bandwidth_sites_and_supervisor(render, platform, supervised):
    beacons = render(platform, full_host(platform), "pillar.item", "beacons", "--", "unmask=True")["beacons"]
    assert {"percent": 90} in beacons["saltops_cpu"] and {"max_mbps": 800} in beacons["saltops_bandwidth"]
    # One site per web app of the host's CMDB record (mysql is the db role's), on the app's port.
    [sites] = [item["sites"] for item in beacons["saltops_sites"] if "sites" in item]
    assert sites == {"shop": {"url": "http://127.0.0.1:8000/healthz", "timeout": 5}}
    programs = [item["programs"] for item in beacons.get("saltops_supervisor", []) if "programs" in item]
    assert programs == ([["saltops-app-shop"]] if supervised else [])
    # A host without web apps gets no site or supervisor beacon.
    bare = render(platform, {"cmdb": record(roles=["base", "web"], apps={})}, "pillar.item", "beacons", "--",
                  "unmask=True")["beacons"]
    assert "saltops_sites" not in bare and "saltops_supervisor" not in bare and "saltops_cpu" in bare


def watched_services(beacons, role):
    [services] = [item["services"] for item in beacons[f"saltops_{role}_services"] if "services" in item]
    return set(services)


def running_services(low, role):
    # the web role's app runtimes (systemd units, or supervisor and its programs) are
    # watched by the process beacon, not the service one
    return {
        s["args"]["name"]
        for s in low.values()
        if s["fun"] == "service.running" and s["sls"].startswith(role + ".")
        and not s["args"]["name"].startswith("saltops-app-")
        and s["args"]["name"] not in ("supervisor", "supervisord")
    }


@pytest.mark.parametrize("platform", ["debian12", "rocky9", "debian12-container"])
def test_role_beacons_watch_the_services_the_formulas_run(render, platform):
    # One source: the beacons read the names from the formulas' parameters stack.
    pillar = full_host(platform)
    beacons = render(platform, pillar, "pillar.item", "beacons", "--", "unmask=True")["beacons"]
    low = states(render, platform, pillar)
    for role in ("web", "lb", "db", "cache", "monitor"):
        assert watched_services(beacons, role) == running_services(low, role), role
    [processes] = [i["processes"] for i in beacons["saltops_web_processes"] if "processes" in i]
    assert processes == {"gunicorn": "running"}


def test_a_site_override_of_a_service_name_reaches_the_beacon(render):
    pillar = dict(full_host("rocky9"), cache={"service": "redis-sentinel-managed"})
    beacons = render("rocky9", pillar, "pillar.item", "beacons", "--", "unmask=True")["beacons"]
    low = states(render, "rocky9", pillar)
    assert watched_services(beacons, "cache") == running_services(low, "cache") == {"redis-sentinel-managed"}


def test_role_beacons_without_the_formulas_fail_the_pillar_with_the_reason(tmp_path):
    # file_roots without the role formulas: the pillar says what is missing, it does not
    # hand out a beacon watching a nameless service.
    empty = tmp_path / "no-states"
    empty.mkdir()
    conf = write_config(
        tmp_path, "all01.bj.example.com", {"cmdb": record(roles=["base", "cache"])},
        grains=PLATFORMS["debian12"], extra={"file_roots": {"base": [str(empty)]}},
    )
    code, data, output = salt_call(conf, "pillar.items")
    assert "cache/parameters/defaults.yaml under file_roots:base" in output, output
    assert not (data or {}).get("beacons", {}).get("saltops_cache_services")


# --- hosts the CMDB does not vouch for ----------------------------------------------


def notices(low):
    return [s["args"]["text"] for s in low.values() if s["fun"] == "test.show_notification"]


SAFE = {
    "base.package.install",
    "base.config.timezone",
    "base.config.timesync",
    "base.config.minion",
    "base.service.running",
    "notice",
}


@pytest.mark.parametrize("platform", ["debian12", "rocky9"])
def test_unknown_minion_gets_safe_base_and_a_reason(render, platform):
    pillar = {
        "cmdb": {
            "known": False,
            "hostname": "stray01",
            "status": "unknown",
            "roles": [],
            "reason": "minion id is not a CMDB hostname",
            "version": 42,
        },
        "base": {"users": {"alice": {"sudo": True, "ssh_keys": ["ssh-ed25519 AAAAC3Nza alice"]}}},
    }
    low = states(render, platform, pillar)
    assert sls_of(low) <= SAFE and "notice" in sls_of(low)
    assert not any(s["fun"] in ("user.present", "ssh_auth.manage", "sysctl.present") for s in low.values())
    assert "/etc/sudoers.d/90-saltops" not in files_of(low)
    [text] = notices(low)
    assert "does not know" in text and "minion id is not a CMDB hostname" in text
    beacons = render(platform, pillar, "pillar.item", "beacons", "--", "unmask=True")["beacons"]
    # Host health is watched on every host; nothing watches sites or services it was never given.
    assert set(beacons) == {"load", "memusage", "diskusage", "saltops_cpu", "saltops_bandwidth"}


def test_decommissioned_host_gets_no_roles(render):
    pillar = {"cmdb": record(status="decommissioned", roles=["base", "lb", "web"]), "cmdb_lb": lb_pillar()}
    low = states(render, "debian12", pillar)
    assert sls_of(low) <= SAFE
    assert not pkgs_of(low) & {"nginx", "haproxy", "gunicorn"}
    [text] = notices(low)
    assert "decommissioned" in text and "lb, web" in text


@pytest.mark.parametrize(
    "pillar",
    [{}, {"cmdb": {}}, {"cmdb": {"hostname": "web01.bj.example.com", "roles": ["base", "web"]}}],
    ids=["no-cmdb-key", "empty-cmdb", "cmdb-without-known"],
)
def test_missing_cmdb_pillar_fails_the_run_loudly(render, pillar, tmp_path):
    # A skipped ext_pillar must not pass for "no roles": the run gets the guard and nothing else.
    low = states(render, "rocky9", pillar)
    assert sls_of(low) == {"guard"}
    [guard] = low.values()
    assert guard["fun"] == "test.fail_without_changes" and guard["args"]["failhard"] is True
    assert "CMDB pillar is missing" in guard["args"]["comment"]
    # Applied for real (the guard is the only state): the run fails and says why.
    conf = write_config(tmp_path, "web01.bj.example.com", pillar, grains=PLATFORMS["rocky9"])
    code, data, output = salt_call(conf, "state.apply")
    assert code != 0, output
    [result] = data.values()
    assert result["result"] is False and "saltops_cmdb ext_pillar did not run" in result["comment"]
    assert result["changes"] == {}


def test_guard_passes_when_the_cmdb_pillar_is_there(render):
    pillar = {"cmdb": record(roles=["base"])}
    low = states(render, "debian12", pillar)
    assert "guard" not in sls_of(low)
    low = lowstates(render("debian12", pillar, "state.show_sls", "guard"))
    assert [s["fun"] for s in low.values()] == ["test.succeed_without_changes"]


def test_maintenance_host_keeps_roles_and_is_told(render):
    pillar = {"cmdb": record(status="maintenance", roles=["base", "web"])}
    low = states(render, "debian12", pillar)
    assert "web.service.nginx.running" in sls_of(low) and "base.config.sudoers" in sls_of(low)
    [text] = notices(low)
    assert "maintenance" in text and "load balancers leave it out" in text


def test_stale_cmdb_is_reported(render):
    pillar = {"cmdb": record(stale=True, stale_since="2026-11-25T10:00:00Z", roles=["base"])}
    [text] = notices(states(render, "debian12", pillar))
    assert "unreachable" in text and "2026-11-25T10:00:00Z" in text


# --- the balancer refuses to rewrite its config from missing or too little data -----


def test_lb_without_cmdb_lb_pillar_leaves_config_alone(render):
    low = states(render, "debian12", {"cmdb": record(roles=["base", "lb"])})
    assert "/etc/haproxy/haproxy.cfg" not in files_of(low)
    fail = low["lb-config-file-test-fail-without-changes"]
    assert fail["fun"] == "test.fail_without_changes" and "cmdb_lb:lb is missing" in fail["args"]["comment"]


def test_lb_with_too_few_backends_leaves_config_alone(render):
    low = states(render, "debian12", {"cmdb": record(roles=["base", "lb"]), "cmdb_lb": lb_pillar([])})
    assert "/etc/haproxy/haproxy.cfg" not in files_of(low)
    assert (
        "fewer than lb:min_backends (1)" in low["lb-config-file-test-fail-without-changes"]["args"]["comment"]
    )
    # dev allows a balancer with no backend (pillar/stack/env/dev.yml): it answers 503
    low = states(
        render,
        "debian12",
        {"cmdb": record(roles=["base", "lb"], env="dev"), "cmdb_lb": lb_pillar([], env="dev")},
    )
    ctx = files_of(low)["/etc/haproxy/haproxy.cfg"]["context"]
    assert ctx["apps"] == {} and "backend bk_none" in render_haproxy(ctx)
