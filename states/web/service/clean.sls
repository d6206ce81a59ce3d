{%- from "web/map.jinja" import web with context %}
# The app runtimes first, then nginx.
include:
  - .{{ web.app.supervisor }}.clean
  - .nginx.clean
