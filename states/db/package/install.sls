{%- from "db/map.jinja" import db with context %}

db-package-install-pkg-installed:
  pkg.installed:
    - pkgs: {{ db.pkgs | json }}
