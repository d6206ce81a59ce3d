{%- from "web/map.jinja" import web with context %}
# nginx, and the app runtimes kept running the way web:app:supervisor says
# (`systemd` units or `supervisor` programs: service/<supervisor>/running.sls).
include:
  - .nginx.running
  - .{{ web.app.supervisor }}.running
