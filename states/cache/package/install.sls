{%- from "cache/map.jinja" import cache with context %}

cache-package-install-pkg-installed:
  pkg.installed:
    - name: {{ cache.pkg }}
