{%- from "lb/map.jinja" import lb with context %}
include:
  - lb.config

# Reload (not restart) on a new configuration: haproxy hands the listening
# sockets to the new process and established connections finish on the old one.
lb-service-running-service-running:
  service.running:
    - name: {{ lb.haproxy.service }}
    - enable: true
    - reload: true
    - require:
      - pkg: lb-package-install-pkg-installed
    - watch:
      - sls: lb.config.file
