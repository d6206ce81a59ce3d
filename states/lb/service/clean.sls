{%- from "lb/map.jinja" import lb with context %}

lb-service-clean-service-dead:
  service.dead:
    - name: {{ lb.haproxy.service }}
    - enable: false
