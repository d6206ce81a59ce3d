{%- from "web/map.jinja" import web, apps with context %}
{%- for name in apps | sort %}

web-service-clean-app-{{ name }}:
{%-   if web.app.supervisor == "systemd" %}
  service.dead:
    - name: saltops-app-{{ name }}
    - enable: false
{%-   else %}
  cmd.run:
    - name: supervisorctl stop saltops-app-{{ name }} && supervisorctl remove saltops-app-{{ name }}
    - onlyif: supervisorctl avail | grep -q "^saltops-app-{{ name }} "
{%-   endif %}
    - require_in:
      - service: web-service-clean-service-dead-nginx
{%- endfor %}

web-service-clean-service-dead-nginx:
  service.dead:
    - name: {{ web.nginx.service }}
    - enable: false
{%- if web.app.supervisor != "systemd" %}

web-service-clean-service-dead-supervisor:
  service.dead:
    - name: {{ web.app.supervisor_service }}
    - enable: false
{%- endif %}
