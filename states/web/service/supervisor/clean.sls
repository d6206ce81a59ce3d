{%- from "web/map.jinja" import web, apps with context %}
{%- for name in apps | sort %}

web-service-supervisor-clean-cmd-run-remove-{{ name }}:
  cmd.run:
    - name: supervisorctl stop saltops-app-{{ name }} && supervisorctl remove saltops-app-{{ name }}
    - onlyif: supervisorctl avail | grep -q "^saltops-app-{{ name }} "
    - require_in:
      - service: web-service-supervisor-clean-service-dead
{%- endfor %}

web-service-supervisor-clean-service-dead:
  service.dead:
    - name: {{ web.app.supervisor_service }}
    - enable: false
