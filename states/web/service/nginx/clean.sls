{%- from "web/map.jinja" import web with context %}

web-service-nginx-clean-service-dead:
  service.dead:
    - name: {{ web.nginx.service }}
    - enable: false
