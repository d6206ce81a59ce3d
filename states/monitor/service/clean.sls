{%- from "monitor/map.jinja" import monitor with context %}

monitor-service-clean-service-dead:
  service.dead:
    - name: {{ monitor.node_exporter.service }}
    - enable: false
