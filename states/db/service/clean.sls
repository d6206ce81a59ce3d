{%- from "db/map.jinja" import db with context %}

db-service-clean-service-dead:
  service.dead:
    - name: {{ db.service }}
    - enable: false
