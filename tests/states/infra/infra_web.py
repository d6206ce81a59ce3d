"""testinfra checks for the web role (see conftest.py for how to run them)."""

import json


def test_web_packages(host, os_family):
    gunicorn = "python3-gunicorn" if os_family == "RedHat" else "gunicorn"
    for name in ("nginx", gunicorn):
        assert host.package(name).is_installed, name


def test_vhost_and_release(host, app):
    name, settings = app
    vhost = host.file(f"/etc/nginx/conf.d/saltops-{name}.conf")
    assert vhost.exists and f"server_name {settings['server_name']};" in vhost.content_string
    assert f"server 127.0.0.1:{settings['port']};" in vhost.content_string
    current = host.file(f"/srv/apps/{name}/current")
    assert current.is_symlink
    assert host.file(f"/srv/apps/{name}/releases/bootstrap/app.py").exists
    assert not host.file("/etc/nginx/sites-enabled/default").exists
    assert host.run("nginx -t").rc == 0


def test_listening(host, pillar, app):
    _name, settings = app
    port = pillar.get("web", {}).get("nginx", {}).get("listen_port", 80)
    assert host.socket(f"tcp://{pillar['cmdb']['ip']}:{port}").is_listening
    assert host.socket(f"tcp://127.0.0.1:{settings['port']}").is_listening


def test_http_through_nginx_to_the_app(host, pillar, app):
    name, settings = app
    port = pillar.get("web", {}).get("nginx", {}).get("listen_port", 80)
    out = host.check_output(
        f"curl -fsS --max-time 5 -H 'Host: {settings['server_name']}' "
        f"http://{pillar['cmdb']['ip']}:{port}{settings['health_url']}"
    )
    body = json.loads(out)
    assert body["app"] == name and body["host"] == pillar["cmdb"]["hostname"]
    assert body["path"] == settings["health_url"]
