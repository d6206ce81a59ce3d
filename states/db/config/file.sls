{%- from "db/map.jinja" import db, instance, is_replica, server_id with context %}
include:
  - db.package.install

db-config-file-file-managed:
  file.managed:
    - name: {{ db.config_file }}
    - source: salt://db/files/saltops.cnf.jinja
    - template: jinja
    - user: root
    - group: root
    - mode: "0644"
    - context:
        settings: {{ db.settings | json }}
        port: {{ instance.port }}
        server_id: {{ server_id }}
        replica_of: {{ instance.replica_of | json }}
        read_only: {{ is_replica | json }}
    - require:
      - pkg: db-package-install-pkg-installed
