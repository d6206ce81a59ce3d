{%- from "monitor/map.jinja" import monitor with context %}

monitor-config-clean-file-absent:
  file.absent:
    - name: {{ monitor.node_exporter.args_file }}
