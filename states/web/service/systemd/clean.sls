{%- from "web/map.jinja" import apps with context %}
{%- for name in apps | sort %}

web-service-systemd-clean-service-dead-{{ name }}:
  service.dead:
    - name: saltops-app-{{ name }}
    - enable: false
{%- endfor %}
