{%- from "cache/map.jinja" import cache with context %}
include:
  - cache.service.clean

cache-package-clean-pkg-removed:
  pkg.removed:
    - name: {{ cache.pkg }}
    - require:
      - sls: cache.service.clean
