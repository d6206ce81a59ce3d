"""testinfra checks for the monitor role (see conftest.py for how to run them)."""

import pytest


@pytest.fixture(scope="module")
def names(os_family):
    if os_family == "RedHat":
        return {"pkg": "golang-github-prometheus-node-exporter", "service": "node_exporter"}
    return {"pkg": "prometheus-node-exporter", "service": "prometheus-node-exporter"}


@pytest.fixture(scope="module")
def listen(pillar):
    exporter = (pillar.get("monitor") or {}).get("node_exporter") or {}
    return f"{exporter.get('listen_address') or pillar['cmdb']['ip']}:{exporter.get('port', 9100)}"


def test_node_exporter_installed_and_running(host, names):
    assert host.package(names["pkg"]).is_installed
    assert host.service(names["service"]).is_running


def test_listens_on_the_cmdb_address_only(host, listen):
    assert host.socket(f"tcp://{listen}").is_listening
    assert not host.socket(f"tcp://0.0.0.0:{listen.rsplit(':', 1)[1]}").is_listening


def test_serves_metrics(host, listen):
    out = host.check_output(f"curl -fsS --max-time 5 http://{listen}/metrics")
    assert "node_load1 " in out and "node_exporter_build_info" in out
    assert 'node_scrape_collector_success{collector="processes"} 1' in out


def test_every_enabled_collector_works(host, os_family, listen):
    """Each collector the formula turns on succeeds here: none fails at every scrape."""
    args = (
        "/etc/sysconfig/node_exporter" if os_family == "RedHat" else "/etc/default/prometheus-node-exporter"
    )
    words = host.file(args).content_string.replace('"', " ").split()
    enabled = [word.split(".", 1)[1] for word in words if word.startswith("--collector.")]
    assert enabled
    out = host.check_output(f"curl -fsS --max-time 5 http://{listen}/metrics")
    for collector in enabled:
        assert f'node_scrape_collector_success{{collector="{collector}"}} 1' in out, collector
