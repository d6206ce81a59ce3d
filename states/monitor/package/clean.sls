{%- from "monitor/map.jinja" import monitor with context %}
include:
  - monitor.service.clean

monitor-package-clean-pkg-removed:
  pkg.removed:
    - name: {{ monitor.node_exporter.pkg }}
    - require:
      - sls: monitor.service.clean
