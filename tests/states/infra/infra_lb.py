"""testinfra checks for the lb role (see conftest.py for how to run them)."""

import json
import time


def test_haproxy_installed_and_config_valid(host):
    assert host.package("haproxy").is_installed
    assert host.run("haproxy -c -q -f /etc/haproxy/haproxy.cfg").rc == 0


def test_backends_from_cmdb(host, pillar):
    cfg = host.file("/etc/haproxy/haproxy.cfg").content_string
    port = pillar.get("lb", {}).get("backend_port", 80)
    for backend in pillar["cmdb_lb"]["lb"]["backends"]:
        assert f"server {backend['hostname']} {backend['ip']}:{port} check" in cfg
    assert f"CMDB at version {pillar['cmdb']['version']}" in cfg


def test_one_frontend_per_line(host, pillar):
    port = pillar.get("lb", {}).get("frontend", {}).get("port", 80)
    for line, address in pillar["cmdb"]["lines"].items():
        assert host.socket(f"tcp://{address}:{port}").is_listening, line


def test_http_through_each_line_reaches_the_app(host, pillar, app):
    name, settings = app
    port = pillar.get("lb", {}).get("frontend", {}).get("port", 80)
    hostnames = {b["hostname"] for b in pillar["cmdb_lb"]["lb"]["backends"]}
    for address in pillar["cmdb"]["lines"].values():
        url = f"http://{address}:{port}{settings['health_url']}"
        # haproxy marks a server up after its first health checks: allow a few seconds
        for _ in range(20):
            result = host.run(f"curl -fsS --max-time 5 -H 'Host: {settings['server_name']}' {url}")
            if result.rc == 0:
                break
            time.sleep(0.5)
        assert result.rc == 0, result.stderr
        body = json.loads(result.stdout)
        assert body["app"] == name and body["host"] in hostnames
