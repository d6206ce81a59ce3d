{%- from "web/map.jinja" import web with context %}
include:
  - web.service.clean

web-package-clean-pkg-removed:
  pkg.removed:
    - pkgs: {{ ([web.nginx.pkg] + web.app.pkgs) | json }}
    - require:
      - sls: web.service.clean
