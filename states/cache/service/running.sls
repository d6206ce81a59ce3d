{%- from "cache/map.jinja" import cache with context %}
include:
  - cache.config

# Watches the config SLS, not the file: when the file is refused (see
# config/file.sls) the service is neither restarted nor touched.
cache-service-running-service-running:
  service.running:
    - name: {{ cache.service }}
    - enable: true
    - require:
      - pkg: cache-package-install-pkg-installed
    - watch:
      - sls: cache.config.file
