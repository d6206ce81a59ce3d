{%- from "lb/map.jinja" import lb with context %}

lb-config-clean-file-absent:
  file.absent:
    - name: {{ lb.haproxy.config }}
