{%- from "lb/map.jinja" import lb with context %}
include:
  - lb.service.clean

lb-package-clean-pkg-removed:
  pkg.removed:
    - name: {{ lb.haproxy.pkg }}
    - require:
      - sls: lb.service.clean
