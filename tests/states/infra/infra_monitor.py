"""testinfra checks for the monitor role (see conftest.py for how to run them)."""


def test_node_exporter_serves_metrics(host, os_family, pillar):
    pkg = "golang-github-prometheus-node-exporter" if os_family == "RedHat" else "prometheus-node-exporter"
    service = "node_exporter" if os_family == "RedHat" else "prometheus-node-exporter"
    assert host.package(pkg).is_installed
    assert host.service(service).is_running
    out = host.check_output(f"curl -fsS --max-time 5 http://{pillar['cmdb']['ip']}:9100/metrics")
    assert "node_load1" in out
