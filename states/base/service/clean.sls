{%- from "base/map.jinja" import base with context %}

base-service-clean-service-dead:
  service.dead:
    - name: {{ base.time_sync.service }}
    - enable: false
