{%- from "cache/map.jinja" import cache with context %}
include:
  - cache.config

cache-service-running-service-running:
  service.running:
    - name: {{ cache.service }}
    - enable: true
    - watch:
      - file: cache-config-file-file-managed
