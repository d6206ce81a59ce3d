{%- from "base/map.jinja" import base with context %}

base-config-limits-file-managed:
  file.managed:
    - name: {{ base.limits_file }}
    - source: salt://base/files/limits.conf.jinja
    - template: jinja
    - user: root
    - group: root
    - mode: "0644"
    - context:
        limits: {{ base.limits | json }}
