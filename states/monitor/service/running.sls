{%- from "monitor/map.jinja" import monitor with context %}
include:
  - monitor.config

monitor-service-running-service-running:
  service.running:
    - name: {{ monitor.node_exporter.service }}
    - enable: true
    - watch:
      - file: monitor-config-file-file-managed
