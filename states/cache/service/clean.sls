{%- from "cache/map.jinja" import cache with context %}

cache-service-clean-service-dead:
  service.dead:
    - name: {{ cache.service }}
    - enable: false
