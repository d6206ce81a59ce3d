{%- from "web/map.jinja" import web with context %}
# The app accounts and releases, each app's runtime definition for the way
# web:app:supervisor keeps it running (config/<supervisor>.sls), the vhosts.
include:
  - .apps
  - .{{ web.app.supervisor }}
  - .vhosts
