{%- from "db/map.jinja" import db with context %}
# Removes the server packages; the data directory is left on disk.
include:
  - db.service.clean

db-package-clean-pkg-removed:
  pkg.removed:
    - pkgs: {{ db.pkgs | json }}
    - require:
      - sls: db.service.clean
