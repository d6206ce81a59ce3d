{%- from "db/map.jinja" import db with context %}

db-config-clean-file-absent:
  file.absent:
    - name: {{ db.config_file }}
