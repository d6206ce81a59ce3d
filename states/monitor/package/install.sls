{%- from "monitor/map.jinja" import monitor with context %}

monitor-package-install-pkg-installed:
  pkg.installed:
    - name: {{ monitor.node_exporter.pkg }}
