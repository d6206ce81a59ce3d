{%- from "db/map.jinja" import db with context %}
include:
  - db.config

# A configuration change needs a restart for MariaDB; it is done here, in the
# state run an operator started, never by a reactor.
db-service-running-service-running:
  service.running:
    - name: {{ db.service }}
    - enable: true
    - watch:
      - file: db-config-file-file-managed
