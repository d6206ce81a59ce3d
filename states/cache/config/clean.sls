{%- from "cache/map.jinja" import cache with context %}

cache-config-clean-file-absent:
  file.absent:
    - name: {{ cache.config_file }}
